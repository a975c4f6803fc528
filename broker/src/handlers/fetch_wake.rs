//! What wakes a long-polling Fetch (and ShareFetch): a change of one of the partitions it asked for, or a new
//! metadata image, and nothing else.
//!
//! Each [`crate::partition::Partition`] publishes a watch that changes on every append, high
//! watermark move and role change ([`crate::partition::Partition::subscribe_changes`]). A fetch
//! subscribes to the partitions of its request that this broker hosts, plus the replica
//! manager's image watch (a partition created, deleted or moved), marks them all seen before
//! each read and sleeps until one changes. So an append wakes only the fetches that read its
//! partition (the followers copying it, the consumers reading it), not every long poll on the
//! broker, and a change that lands after the read is never missed: it was not marked seen.
//!
//! An incremental fetch of a session ([`SessionWakeups`]) keeps its watches between requests:
//! one wait per partition, each polled again only when its partition changed (the waits sit
//! in a `FuturesUnordered`, which polls only the woken ones). So a request learns which of
//! its session's thousands of partitions changed for the cost of those that did, and reads
//! only them (and those whose last read was not settled), not the whole session each time.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use kafka_protocol::messages::FetchRequest;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::fetch_session::PartitionKey;

/// The broker is shutting down: no more changes will come.
#[derive(Debug)]
pub(super) struct Closed;

/// The watches one fetch request waits on.
pub(super) struct FetchWakeups {
    partitions: Vec<watch::Receiver<i64>>,
    image: watch::Receiver<u64>,
}

impl FetchWakeups {
    /// Subscribes to the requested partitions hosted here (names from v12 down, ids from v13)
    /// and to new images.
    pub(super) fn new(broker: &Broker, request: &FetchRequest, version: i16) -> Self {
        let mut partitions = Vec::new();
        for ft in &request.topics {
            let topic = if version >= 13 {
                broker.replicas.topic_by_id(ft.topic_id)
            } else {
                broker.replicas.topic(&ft.topic)
            };
            let Some(topic) = topic else { continue };
            for fp in &ft.partitions {
                if let Some(p) = broker.replicas.partition(&topic.meta.name, fp.partition) {
                    partitions.push(p.subscribe_changes());
                }
            }
        }
        Self {
            partitions,
            image: broker.replicas.subscribe_image_applied(),
        }
    }

    /// Subscribes to `partitions` (a ShareFetch's, led here) and to new images.
    pub(super) fn for_partitions(
        broker: &Broker,
        partitions: impl IntoIterator<Item = std::sync::Arc<crate::partition::Partition>>,
    ) -> Self {
        Self {
            partitions: partitions
                .into_iter()
                .map(|p| p.subscribe_changes())
                .collect(),
            image: broker.replicas.subscribe_image_applied(),
        }
    }

    /// Marks every change so far seen; call before reading the partitions. Partitions dropped
    /// since (deleted, moved away) are no longer watched: their watch would fire forever.
    pub(super) fn mark_seen(&mut self) {
        self.partitions.retain(|rx| rx.has_changed().is_ok());
        for rx in &mut self.partitions {
            rx.borrow_and_update();
        }
        self.image.borrow_and_update();
    }

    /// Waits until something changed since [`FetchWakeups::mark_seen`]. A partition dropped
    /// meanwhile counts as a change, once (the next read answers for it).
    pub(super) async fn changed(&mut self) -> Result<(), Closed> {
        // One boxed future per partition per wait (not per record): a fetch waits at most
        // once per wake-up.
        let mut waits: Vec<Pin<Box<dyn Future<Output = _> + Send + '_>>> = self
            .partitions
            .iter_mut()
            .map(|rx| Box::pin(rx.changed()) as Pin<Box<dyn Future<Output = _> + Send>>)
            .collect();
        let mut image = Box::pin(self.image.changed());
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = image.as_mut().poll(cx) {
                return Poll::Ready(result.map_err(|_| Closed));
            }
            for wait in &mut waits {
                if wait.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Ok(()));
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// One partition's wait: its key, the number it was armed with, and its receiver back
/// (`None`: the partition was dropped, its watch closed).
struct Fired {
    key: PartitionKey,
    generation: u64,
    rx: Option<watch::Receiver<i64>>,
}

type Wait = Pin<Box<dyn Future<Output = Fired> + Send>>;

fn wait(key: PartitionKey, generation: u64, mut rx: watch::Receiver<i64>) -> Wait {
    Box::pin(async move {
        let rx = rx.changed().await.is_ok().then_some(rx);
        Fired {
            key,
            generation,
            rx,
        }
    })
}

/// What changed, on this broker, among one fetch session's partitions since they were last
/// read; kept in the session between its requests.
///
/// Invariant: every key of the session hosted here has one armed wait of its current
/// generation, or is in `dirty`; a wait is armed (its receiver marked seen) before the
/// partition is read, so a change after the read fires it.
pub struct SessionWakeups {
    image: watch::Receiver<u64>,
    waits: FuturesUnordered<Wait>,
    /// Watched keys and the number their wait was armed with (each arming takes a new one);
    /// a fired wait with another number (its partition forgotten, perhaps added again, or
    /// re-armed after a new image) is dropped.
    generations: HashMap<PartitionKey, u64>,
    generation: u64,
    /// To read at the next pass: changed, added, or not settled at the last read.
    dirty: HashSet<PartitionKey>,
    /// When every partition was last read.
    last_full: Instant,
    /// Read everything next pass, whatever the image says.
    full: bool,
}

impl std::fmt::Debug for SessionWakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWakeups")
            .field("watched", &self.generations.len())
            .field("dirty", &self.dirty.len())
            .finish_non_exhaustive()
    }
}

impl SessionWakeups {
    /// Watches nothing yet; the first pass reads (and watches) every partition.
    pub fn new(broker: &Broker) -> Self {
        Self {
            image: broker.replicas.subscribe_image_applied(),
            waits: FuturesUnordered::new(),
            generations: HashMap::new(),
            generation: 0,
            dirty: HashSet::new(),
            last_full: Instant::now(),
            full: true,
        }
    }

    /// Whether the next pass must read every partition: a new image (partitions created,
    /// moved, brokers fenced or back: resolve and watch them all again), or `every` passed
    /// since the last full read (so a follower that stays caught up on an idle partition is
    /// still seen fetching it, for the ISR, and nothing a watch cannot see goes unanswered
    /// for long).
    pub fn needs_full(&self, every: std::time::Duration) -> bool {
        self.full || self.image.has_changed().unwrap_or(true) || self.last_full.elapsed() >= every
    }

    /// Reads everything at the next pass.
    pub fn force_full(&mut self) {
        self.full = true;
    }

    /// Resolves and watches every key afresh and marks them all to read.
    pub fn rearm_all<'a>(
        &mut self,
        broker: &Broker,
        keys: impl IntoIterator<Item = &'a PartitionKey>,
    ) {
        self.image.borrow_and_update();
        self.waits = FuturesUnordered::new();
        self.generations.clear();
        self.dirty.clear();
        for key in keys {
            self.arm(broker, key.clone());
        }
        self.last_full = Instant::now();
        self.full = false;
    }

    /// A partition the request added or changed: watched if it is not, read next pass.
    pub fn changed(&mut self, broker: &Broker, key: PartitionKey) {
        if self.generations.contains_key(&key) {
            self.dirty.insert(key);
        } else {
            self.arm(broker, key);
        }
    }

    /// A partition the request forgot: no longer watched or read.
    pub fn forget(&mut self, key: &PartitionKey) {
        self.generations.remove(key);
        self.dirty.remove(key);
    }

    /// Reads `key` again next pass (its last read was not settled).
    pub fn unsettled(&mut self, key: PartitionKey) {
        self.dirty.insert(key);
    }

    /// The partitions to read now: moves the ones that changed into the set (re-arming their
    /// waits first) and takes it.
    pub fn take_dirty(&mut self) -> Vec<PartitionKey> {
        // A poll goes through every woken wait until one is ready, so the first pending poll
        // means none is left.
        while let Some(Some(fired)) = self.waits.next().now_or_never() {
            self.on_fired(fired);
        }
        self.dirty.drain().collect()
    }

    /// Waits until a watched partition changes or a new image is applied.
    pub(super) async fn changed_any(&mut self) -> Result<(), Closed> {
        loop {
            tokio::select! {
                image = self.image.changed() => {
                    return image.map_err(|_| Closed);
                }
                Some(fired) = self.waits.next(), if !self.waits.is_empty() => {
                    if self.on_fired(fired) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Resolves `key` to the partition hosted here and arms its wait; marks it to read.
    fn arm(&mut self, broker: &Broker, key: PartitionKey) {
        let topic = if key.topic_id.is_nil() {
            broker.replicas.topic(key.topic.as_str())
        } else {
            broker.replicas.topic_by_id(key.topic_id)
        };
        let partition = topic.and_then(|t| broker.replicas.partition(&t.meta.name, key.partition));
        if let Some(partition) = partition {
            // A fresh receiver has seen the current value: only later changes fire it.
            let rx = partition.subscribe_changes();
            self.generation += 1;
            self.generations.insert(key.clone(), self.generation);
            self.waits.push(wait(key.clone(), self.generation, rx));
        }
        // Not hosted here: read every pass (it answers an error) until a new image.
        self.dirty.insert(key);
    }

    /// Takes a fired wait: marks its partition to read and re-arms it (seen now, before the
    /// read). Whether it was one of the session's current waits.
    fn on_fired(&mut self, fired: Fired) -> bool {
        if self.generations.get(&fired.key) != Some(&fired.generation) {
            return false;
        }
        match fired.rx {
            Some(mut rx) => {
                rx.borrow_and_update();
                self.waits
                    .push(wait(fired.key.clone(), fired.generation, rx));
            }
            // Dropped (deleted, moved away): read once more, then only after a new image.
            None => {
                self.generations.remove(&fired.key);
            }
        }
        self.dirty.insert(fired.key);
        true
    }
}
