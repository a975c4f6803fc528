//! Followers copy their leaders: one fetcher task per leader broker fetches every partition
//! this broker follows from it, with Kafka's Fetch API (v12: `replica_id`, `last_fetched_epoch`
//! and `diverging_epoch`), exactly as a Kafka follower does, through a fetch session
//! ([`super::session`]): a round sends only the partitions whose position moved.
//!
//! Per partition and response:
//! - records are appended as they are (offsets and epochs from the leader), and the follower's
//!   high watermark becomes the leader's, capped by its own log end;
//! - a `diverging_epoch` means this log holds records the leader does not have (it led an
//!   epoch that ended differently): truncate to where the logs agree, fetch again;
//! - `OFFSET_OUT_OF_RANGE` below the leader's log start restarts the log at that start;
//! - leadership errors leave the partition until the metadata image moves it.
//!
//! The set of partitions per fetcher changes with the metadata image
//! ([`ReplicaFetcherManager::assign`]); a fetcher with nothing to fetch parks. Partitions this
//! broker is adding by a reassignment are *throttled*: their fetched bytes are charged to the
//! broker's [`ReplicationThrottle`], and they sit out fetch rounds while it is empty.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::{BrokerId, FetchRequest};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::client::{BrokerConnection, ClientError};
use super::session::{FetchSessionHandler, SessionKey};
use super::throttle::{Allowance, ReplicationThrottle};
use crate::partition::Partition;

/// Fetch version followers use: the newest that still names topics (ids start at v13).
pub const REPLICA_FETCH_VERSION: i16 = 12;

const ERROR_OFFSET_OUT_OF_RANGE: i16 = ResponseError::OffsetOutOfRange.code();

/// Settings of the fetchers (Kafka's `replica.fetch.*`).
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// This broker's id.
    pub local_id: i32,
    /// `replica.fetch.wait.max.ms`.
    pub max_wait: Duration,
    /// `replica.fetch.max.bytes` (per partition).
    pub partition_max_bytes: i32,
    /// `replica.socket.timeout.ms`.
    pub socket_timeout: Duration,
    /// `replica.fetch.min.bytes`: what the leader waits for (up to `max_wait`).
    pub min_bytes: i32,
    /// `replica.fetch.response.max.bytes`: most bytes of one response, over all partitions
    /// (a first batch larger than that still comes whole, as in Kafka).
    pub response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: the pause after a failed fetch or connection.
    pub backoff: Duration,
}

type Key = (Arc<str>, i32);

/// A partition a fetcher copies, and whether it counts against the reassignment throttle.
#[derive(Debug, Clone)]
struct Assigned {
    partition: Arc<Partition>,
    throttled: bool,
}

#[derive(Debug)]
struct Fetcher {
    leader_addr: Mutex<String>,
    /// Sorted by topic, then index: a round plans its partitions in this order.
    partitions: Mutex<BTreeMap<Key, Assigned>>,
    wake: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The fetchers of this broker, one per leader it follows.
#[derive(Debug)]
pub struct ReplicaFetcherManager {
    config: FetcherConfig,
    fetchers: Mutex<HashMap<i32, Arc<Fetcher>>>,
    throttle: Arc<ReplicationThrottle>,
}

impl ReplicaFetcherManager {
    /// No fetchers yet.
    pub fn new(config: FetcherConfig) -> Self {
        Self {
            config,
            fetchers: Mutex::new(HashMap::new()),
            throttle: Arc::new(ReplicationThrottle::default()),
        }
    }

    /// The reassignment throttle all fetchers share.
    pub fn throttle(&self) -> &ReplicationThrottle {
        &self.throttle
    }

    /// Sets the reassignment throttle's rate (`None`: unthrottled).
    pub fn set_throttle(&self, bytes_per_second: Option<u64>) {
        self.throttle.set_rate(bytes_per_second, Instant::now());
        for f in self.fetchers.lock().values() {
            f.wake.notify_one();
        }
    }

    /// Makes `partition` fetch from `leader` at `leader_addr` (`host:port` of its Kafka
    /// listener), removing it from any other fetcher; `throttled` when this broker is adding
    /// the replica by a reassignment.
    pub fn assign(
        &self,
        partition: &Arc<Partition>,
        leader: i32,
        leader_addr: &str,
        throttled: bool,
    ) {
        let key: Key = (partition.topic.clone(), partition.index);
        let mut fetchers = self.fetchers.lock();
        for (id, f) in fetchers.iter() {
            if *id != leader {
                f.partitions.lock().remove(&key);
            }
        }
        let fetcher = fetchers
            .entry(leader)
            .or_insert_with(|| self.spawn(leader, leader_addr))
            .clone();
        *fetcher.leader_addr.lock() = leader_addr.to_string();
        fetcher.partitions.lock().insert(
            key,
            Assigned {
                partition: partition.clone(),
                throttled,
            },
        );
        fetcher.wake.notify_one();
    }

    /// Stops fetching `topic`/`index` (it became leader, moved away, or was deleted).
    pub fn remove(&self, topic: &str, index: i32) {
        for f in self.fetchers.lock().values() {
            f.partitions
                .lock()
                .retain(|(t, i), _| !(&**t == topic && *i == index));
        }
    }

    /// Stops every fetcher.
    pub fn shutdown(&self) {
        for (_, f) in self.fetchers.lock().drain() {
            if let Some(task) = f.task.lock().take() {
                task.abort();
            }
        }
    }

    fn spawn(&self, leader: i32, leader_addr: &str) -> Arc<Fetcher> {
        let config = self.config.clone();
        let throttle = self.throttle.clone();
        // The fetcher exists before its task starts, so the task always finds it.
        let fetcher = Arc::new(Fetcher {
            leader_addr: Mutex::new(leader_addr.to_string()),
            partitions: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            task: Mutex::new(None),
        });
        let weak = Arc::downgrade(&fetcher);
        let task = tokio::spawn(async move { run(weak, leader, config, throttle).await });
        *fetcher.task.lock() = Some(task);
        fetcher
    }
}

/// Longest a fetcher waits for the throttle before looking at its partitions again.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(1);

/// One partition in a fetch round: where it fetches from and how many bytes it may take. A
/// round's `Planned`s are sorted by topic, then index (the order of [`Fetcher::partitions`]):
/// the fetch session and [`find_planned`] rely on it.
struct Planned {
    partition: Arc<Partition>,
    position: crate::partition::FollowerPosition,
    max_bytes: i32,
    throttled: bool,
}

async fn run(
    fetcher: std::sync::Weak<Fetcher>,
    leader: i32,
    config: FetcherConfig,
    throttle: Arc<ReplicationThrottle>,
) {
    let mut connection: Option<(String, BrokerConnection)> = None;
    let mut session = FetchSessionHandler::default();
    loop {
        let Some(f) = fetcher.upgrade() else { return };
        // A snapshot, so the positions are read without holding up `assign` and `remove`.
        let assigned: Vec<Assigned> = f.partitions.lock().values().cloned().collect();
        let (positions, throttle_wait) = plan_round(assigned, leader, &config, &throttle);
        if positions.is_empty() {
            // Parks until assigned a partition (or the throttle refills); the timeout
            // re-checks that the manager lives. With nothing to fetch from this leader its
            // connection goes: the leader would close it once idle for its
            // connections.max.idle.ms, and the next round would meet that as a failure.
            if throttle_wait.is_none() {
                connection = None;
            }
            let wait = throttle_wait.unwrap_or(Duration::from_secs(1));
            tokio::select! {
                _ = f.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        let addr = f.leader_addr.lock().clone();
        drop(f);
        if connection.as_ref().is_none_or(|(a, _)| *a != addr) {
            match BrokerConnection::connect(
                &addr,
                format!("weir-replica-{}", config.local_id),
                config.socket_timeout,
            )
            .await
            {
                Ok(c) => {
                    connection = Some((addr.clone(), c));
                    // Perhaps another broker behind the address: start without a session.
                    session = FetchSessionHandler::default();
                }
                Err(e) => {
                    tracing::debug!(leader, %addr, error = %e, "cannot reach leader");
                    tokio::time::sleep(config.backoff).await;
                    continue;
                }
            }
        }
        let Some((_, conn)) = connection.as_mut() else {
            continue;
        };
        let request = fetch_request(&config, &positions, &mut session);
        let timeout = config.socket_timeout + config.max_wait;
        match conn.request(&request, REPLICA_FETCH_VERSION, timeout).await {
            Ok(response) if !session.handle_response(&response) => {
                tracing::debug!(
                    leader,
                    error = response.error_code,
                    "fetch session refused; fetching in full"
                );
            }
            Ok(response) => {
                let mut backoff = false;
                let mut throttled_bytes = 0;
                for topic in response.responses {
                    for pd in topic.partitions {
                        let Some(planned) =
                            find_planned(&positions, &topic.topic.0, pd.partition_index)
                        else {
                            continue;
                        };
                        let (partition, pos) = (&planned.partition, &planned.position);
                        if planned.throttled {
                            throttled_bytes += pd.records.as_ref().map_or(0, |r| r.len() as u64);
                        }
                        if let Err(e) = handle_partition(partition, pos, pd) {
                            backoff = true;
                            tracing::debug!(topic = %partition.topic, partition = partition.index, leader, error = %e, "replica fetch");
                        }
                    }
                }
                if throttled_bytes > 0 {
                    throttle.consume(throttled_bytes, Instant::now());
                }
                if backoff {
                    tokio::time::sleep(config.backoff).await;
                }
            }
            Err(e) => {
                tracing::debug!(leader, %addr, error = %e, "replica fetch failed; reconnecting");
                session.reset();
                if !matches!(e, ClientError::Timeout(_)) {
                    tokio::time::sleep(config.backoff).await;
                }
                connection = None;
            }
        }
    }
}

/// The partitions of this round, in the order of `assigned`: every followed partition of
/// `leader`, except throttled ones while the throttle is empty (then also how long until it
/// refills); throttled ones fetch at most what the throttle allows.
///
/// Every partition's position is read every round, not only those a response moved: a
/// metadata image (a new leader epoch) or a truncation moves positions too.
fn plan_round(
    assigned: Vec<Assigned>,
    leader: i32,
    config: &FetcherConfig,
    throttle: &ReplicationThrottle,
) -> (Vec<Planned>, Option<Duration>) {
    let mut allowance = None;
    let mut wait = None;
    let mut planned = Vec::new();
    for a in assigned {
        let Some(position) = a
            .partition
            .follower_position()
            .filter(|pos| pos.leader == leader)
        else {
            continue;
        };
        let mut max_bytes = config.partition_max_bytes;
        if a.throttled {
            match *allowance.get_or_insert_with(|| throttle.allowance(Instant::now())) {
                Allowance::Unlimited => {}
                Allowance::Bytes(n) => {
                    max_bytes = max_bytes.min(i32::try_from(n).unwrap_or(i32::MAX));
                }
                Allowance::WaitFor(d) => {
                    wait = Some(d.min(MAX_THROTTLE_WAIT));
                    continue;
                }
            }
        }
        planned.push(Planned {
            partition: a.partition,
            position,
            max_bytes,
            throttled: a.throttled,
        });
    }
    (planned, wait)
}

/// The planned partition of a response's `topic`/`index`, if this round asked for it.
fn find_planned<'a>(positions: &'a [Planned], topic: &str, index: i32) -> Option<&'a Planned> {
    positions
        .binary_search_by(|p| (&*p.partition.topic, p.partition.index).cmp(&(topic, index)))
        .ok()
        .map(|i| &positions[i])
}

/// The round's fetch: through `session`, only the partitions whose position changed since the
/// last request (all of them when the session is new or lost).
fn fetch_request(
    config: &FetcherConfig,
    positions: &[Planned],
    session: &mut FetchSessionHandler,
) -> FetchRequest {
    let wanted: Vec<(SessionKey, FetchPartition)> = positions
        .iter()
        .map(|planned| {
            let (p, pos) = (&planned.partition, &planned.position);
            let fetch = FetchPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(pos.leader_epoch)
                .with_fetch_offset(pos.fetch_offset)
                .with_last_fetched_epoch(pos.last_fetched_epoch)
                .with_log_start_offset(pos.log_start_offset)
                .with_partition_max_bytes(planned.max_bytes);
            ((p.topic.clone(), p.index), fetch)
        })
        .collect();
    let mut request = FetchRequest::default()
        .with_replica_id(BrokerId(config.local_id))
        .with_max_wait_ms(config.max_wait.as_millis() as i32)
        .with_min_bytes(config.min_bytes)
        .with_max_bytes(config.response_max_bytes);
    session.build(&mut request, wanted);
    request
}

/// Applies one partition of a fetch response. An `Err` asks the fetcher to back off.
fn handle_partition(
    partition: &Partition,
    pos: &crate::partition::FollowerPosition,
    pd: kafka_protocol::messages::fetch_response::PartitionData,
) -> Result<(), String> {
    match pd.error_code {
        0 => {}
        ERROR_OFFSET_OUT_OF_RANGE if pos.fetch_offset < pd.log_start_offset => {
            return partition
                .restart_at_leader_start(pos.leader_epoch, pd.log_start_offset)
                .map_err(|e| e.to_string());
        }
        code => return Err(format!("leader answered error {code}")),
    }
    if pd.diverging_epoch.epoch >= 0 {
        return partition
            .truncate_diverged(
                pos.leader_epoch,
                pd.diverging_epoch.epoch,
                pd.diverging_epoch.end_offset,
            )
            .map_err(|e| e.to_string());
    }
    let records = pd.records.unwrap_or_default();
    partition
        .append_from_leader(
            pos.leader_epoch,
            &records,
            pd.high_watermark,
            pd.log_start_offset,
        )
        .map_err(|e| e.to_string())
}
