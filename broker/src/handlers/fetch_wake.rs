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
//! An incremental fetch of a session keeps its watches between requests in the session's
//! [`crate::fetch_session::SessionWakeups`]; [`partition_changes`] is how they find a
//! partition's watch here.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use kafka_protocol::messages::FetchRequest;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::fetch_session::PartitionKey;

pub(super) use crate::fetch_session::Closed;

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

/// The change watch of the partition `key` names, if it is hosted here: how a session's
/// [`crate::fetch_session::SessionWakeups`] arm their waits on this broker.
pub(super) fn partition_changes(
    broker: &Broker,
) -> impl Fn(&PartitionKey) -> Option<watch::Receiver<i64>> + '_ {
    move |key| {
        let topic = if key.topic_id.is_nil() {
            broker.replicas.topic(key.topic.as_str())
        } else {
            broker.replicas.topic_by_id(key.topic_id)
        };
        topic
            .and_then(|t| broker.replicas.partition(&t.meta.name, key.partition))
            .map(|p| p.subscribe_changes())
    }
}
