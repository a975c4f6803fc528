//! The partitions this broker hosts and the cluster's topics as the metadata image describes
//! them.
//!
//! How the pieces fit:
//! - At start, [`ReplicaManager::open`] recovers every partition log found in the data
//!   directory; each starts *offline* (serving nothing) until the image assigns it a role.
//! - `apply` follows the metadata image: it creates the local replicas the image assigns to
//!   this broker, makes each one leader or follower (starting the follower's fetcher), removes
//!   replicas the image no longer places here, and tells leadership listeners (the group
//!   coordinator) which partitions this broker now leads.
//! - `topics` turns admin requests (create, grow, reconfigure, delete) into metadata
//!   commands written through the controller, with replicas placed by `weir_api::placement`.
//! - [`AdminError`] is the one error of topic and cluster admin, here and in the admin service
//!   above, with its Kafka error and gRPC status.
//!
//! Thread-safety: the topic and partition maps are `RwLock`s read on every request and
//! written only when an image is applied, which happens on one task at a time.

mod acls;
mod apply;
mod broker_configs;
mod client_quotas;
mod error;
mod lease;
mod local;
mod scram_credentials;
mod topics;

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use kafka_protocol::error::ResponseError;
use parking_lot::RwLock;
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::controller::image::MetadataImage;
use crate::controller::{Controller, ControllerError};
use crate::partition::leader::IsrChangeFailure;
use crate::partition::Partition;
use crate::replication::fetcher::{FetcherConfig, ReplicaFetcherManager};

/// AlterPartition refusals that mean this leader's view is behind the controller's: unknown
/// topic or partition, not the leader, fenced leader epoch, stale partition epoch. The image
/// that settles them is on its way.
const STALE_METADATA: [ResponseError; 4] = [
    ResponseError::UnknownTopicOrPartition,
    ResponseError::NotLeaderOrFollower,
    ResponseError::FencedLeaderEpoch,
    ResponseError::InvalidUpdateVersion,
];

pub use self::apply::LeadershipListener;
pub use self::error::AdminError;
pub use self::lease::RegistrationLease;
pub use self::topics::{assignment_of, placeable, validate_topic_name, CreateTopic};

/// A topic as the metadata image describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Number of partitions; partitions are `0..partitions`.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Topic-level config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
}

/// A topic of the cluster.
#[derive(Debug)]
pub struct TopicState {
    /// Name, id, partition count, configs.
    pub meta: TopicMetadata,
}

/// The cluster's topics by name and by id. Invariant: both maps hold the same topics; they are
/// only built together, by [`Topics::new`], from each applied image.
#[derive(Debug, Default)]
struct Topics {
    by_name: HashMap<Arc<str>, Arc<TopicState>>,
    by_id: HashMap<Uuid, Arc<TopicState>>,
}

impl Topics {
    fn new(by_name: HashMap<Arc<str>, Arc<TopicState>>) -> Self {
        let by_id = by_name.values().map(|t| (t.meta.id, t.clone())).collect();
        Self { by_name, by_id }
    }
}

/// A hosted replica by topic and index.
type PartitionKey = (Arc<str>, i32);

/// A partition key seen as `(&str, i32)`, so the partition map is searched with a borrowed
/// topic name: `HashMap::get` takes any type the key borrows as, and `(Arc<str>, i32)` cannot
/// borrow as `(&str, i32)`, but can as this trait object, which a `(&str, i32)` also is.
/// Requests name partitions by `&str`; a lookup must not allocate an `Arc<str>` for each.
trait PartitionLookup {
    fn key(&self) -> (&str, i32);
}

impl PartitionLookup for PartitionKey {
    fn key(&self) -> (&str, i32) {
        (&self.0, self.1)
    }
}

impl PartitionLookup for (&str, i32) {
    fn key(&self) -> (&str, i32) {
        *self
    }
}

impl<'a> Borrow<dyn PartitionLookup + 'a> for PartitionKey {
    fn borrow(&self) -> &(dyn PartitionLookup + 'a) {
        self
    }
}

/// Hashes as `(Arc<str>, i32)` does (`Arc<str>` hashes its `str`), which `Borrow` requires.
impl Hash for dyn PartitionLookup + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for dyn PartitionLookup + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn PartitionLookup + '_ {}

/// Every partition on this broker, and the cluster's topics.
pub struct ReplicaManager {
    /// The file and `--set` settings.
    config: Arc<BrokerConfig>,
    /// `config` with the dynamic settings of the latest image ([`broker_configs`]).
    effective: RwLock<Arc<BrokerConfig>>,
    clock: Arc<dyn Clock>,
    topics: RwLock<Topics>,
    partitions: RwLock<HashMap<PartitionKey, Arc<Partition>>>,
    image: RwLock<Arc<MetadataImage>>,
    controller: OnceLock<Arc<Controller>>,
    fetchers: ReplicaFetcherManager,
    /// The leader side of the replication throttle: what this broker serves to followers of
    /// the replicas its topics list in `leader.replication.throttled.replicas`, at its
    /// `leader.replication.throttled.rate`.
    leader_throttle: crate::replication::throttle::ReplicationThrottle,
    listeners: RwLock<Vec<Weak<dyn LeadershipListener>>>,
    /// This broker's registration epoch once it has caught up with the log up to it; until
    /// then an image may be stale and nothing local is deleted on its word.
    caught_up_epoch: AtomicI64,
    /// This broker's registration epoch (-1 before it registered).
    registration_epoch: AtomicI64,
    image_applied: watch::Sender<u64>,
    isr_changes: IsrChangeCounts,
    lease: RegistrationLease,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager")
            .field("partitions", &self.partitions.read().len())
            .finish_non_exhaustive()
    }
}

/// ISR changes this broker got applied, as leader.
#[derive(Debug, Default)]
pub struct IsrChangeCounts {
    /// Followers removed from an ISR.
    pub shrinks: AtomicU64,
    /// Followers added to an ISR.
    pub expands: AtomicU64,
    /// ISR changes the controller refused or did not answer.
    pub failures: AtomicU64,
}

impl ReplicaManager {
    /// Recovers every partition log found in the data directory (each offline until the
    /// metadata image gives it a role) and removes directories that a deletion interrupted
    /// by a crash left behind.
    pub fn open(config: Arc<BrokerConfig>, clock: Arc<dyn Clock>) -> Result<Self, AdminError> {
        let partitions = local::open_existing(&config, &clock)?;
        let fetchers = ReplicaFetcherManager::new(FetcherConfig {
            local_id: config.node_id,
            max_wait: config.duration_ms("replica.fetch.wait.max.ms"),
            partition_max_bytes: config.int("replica.fetch.max.bytes") as i32,
            socket_timeout: config.duration_ms("replica.socket.timeout.ms"),
            min_bytes: config.int("replica.fetch.min.bytes") as i32,
            response_max_bytes: config.int("replica.fetch.response.max.bytes") as i32,
            backoff: config.duration_ms("replica.fetch.backoff.ms"),
        });
        Ok(Self {
            effective: RwLock::new(config.clone()),
            config,
            clock,
            topics: RwLock::new(Topics::default()),
            partitions: RwLock::new(partitions),
            image: RwLock::new(Arc::new(MetadataImage::default())),
            controller: OnceLock::new(),
            fetchers,
            leader_throttle: Default::default(),
            listeners: RwLock::new(Vec::new()),
            caught_up_epoch: AtomicI64::new(-1),
            registration_epoch: AtomicI64::new(-1),
            image_applied: watch::channel(0).0,
            isr_changes: Default::default(),
            lease: RegistrationLease::default(),
        })
    }

    /// The broker config.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// This broker's id.
    pub fn local_id(&self) -> i32 {
        self.config.node_id
    }

    /// The reassignment throttle this broker's fetchers share.
    pub fn replication_throttle(&self) -> &crate::replication::throttle::ReplicationThrottle {
        self.fetchers.throttle()
    }

    /// The leader side of the replication throttle.
    pub fn leader_throttle(&self) -> &crate::replication::throttle::ReplicationThrottle {
        &self.leader_throttle
    }

    /// Whether follower fetches of `topic`-`partition` from this leader are throttled: the
    /// topic lists this replica in `leader.replication.throttled.replicas`.
    pub fn is_leader_throttled(&self, configs: &BTreeMap<String, String>, partition: i32) -> bool {
        apply::listed_replica(
            configs,
            "leader.replication.throttled.replicas",
            partition,
            self.local_id(),
        )
    }

    /// The controller, once attached.
    pub fn controller(&self) -> Option<&Arc<Controller>> {
        self.controller.get()
    }

    /// The metadata image last applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicState>> {
        self.topics.read().by_name.get(name).cloned()
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<TopicState>> {
        self.topics.read().by_id.get(&id).cloned()
    }

    /// This broker's replica of a partition, if it hosts one.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let key: &dyn PartitionLookup = &(topic, index);
        self.partitions.read().get(key).cloned()
    }

    /// All topics, sorted by name.
    pub fn all_topics(&self) -> Vec<Arc<TopicState>> {
        let mut v: Vec<_> = self.topics.read().by_name.values().cloned().collect();
        v.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        v
    }

    /// Every replica this broker hosts.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Tells waiters that a new metadata image was applied (roles, topics, brokers changed).
    fn notify_image_applied(&self) {
        self.image_applied.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes after every applied image: for whoever waits for the metadata
    /// to show something, and for long-polling fetches (a partition created, moved, deleted).
    pub fn subscribe_image_applied(&self) -> watch::Receiver<u64> {
        self.image_applied.subscribe()
    }

    /// Cleans the filthiest compacted log that is due, if any, with `cleaner` (one cleaner
    /// thread's pass); returns whether a log was cleaned. Blocking: run it off the async
    /// workers.
    pub fn clean_filthiest(
        &self,
        manager: &crate::log::cleaner::LogCleanerManager,
        cleaner: &mut crate::log::cleaner::Cleaner,
    ) -> bool {
        let partitions = self.all_partitions();
        let Some((partition, in_progress)) = manager.grab_filthiest(&partitions, |p| p.log_lock())
        else {
            return false;
        };
        let now = || self.clock.now_ms();
        match manager.clean(cleaner, partition.log_lock(), in_progress, now) {
            Ok(stats) => {
                tracing::info!(
                    topic = %partition.topic,
                    partition = partition.index,
                    cleaned_to = stats.cleaned_to,
                    bytes_read = stats.bytes_read,
                    bytes_written = stats.bytes_written,
                    records_removed = stats.records_removed,
                    segments_in = stats.segments_in,
                    segments_out = stats.segments_out,
                    aborted = stats.aborted,
                    elapsed_ms = stats.elapsed_ms,
                    throttled_ms = stats.throttled_ms,
                    "log cleaner pass"
                );
                true
            }
            Err(_) => false,
        }
    }

    /// Runs retention on every partition.
    pub fn apply_retention(&self) {
        for p in self.all_partitions() {
            match p.apply_retention() {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments")
                }
                Err(e) => {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                }
            }
        }
    }

    /// Forgets, in every partition, the idempotent producers idle for longer than
    /// `producer.id.expiration.ms`, so producer state stays bounded.
    pub fn remove_expired_producers(&self) {
        let expiration_ms = self.effective_config().producer_id_expiration_ms();
        let removed: usize = self
            .all_partitions()
            .iter()
            .map(|p| p.remove_expired_producers(expiration_ms))
            .sum();
        if removed > 0 {
            tracing::info!(removed, expiration_ms, "expired idle producer ids");
        }
    }

    /// Lets every partition fsync if its `flush.ms` is due.
    pub fn flush_due(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.flush_if_due() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "flush failed");
            }
        }
    }

    /// Flushes every partition and writes recovery checkpoints.
    pub fn checkpoint(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.checkpoint() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "checkpoint failed");
            }
        }
    }

    /// Proposes ISR shrinks for followers that lag more than `replica.lag.time.max.ms`.
    pub async fn shrink_lagging_isrs(&self) {
        let max_lag = self
            .config
            .duration_ms("replica.lag.time.max.ms")
            .as_millis() as i64;
        let changes: Vec<_> = self
            .all_partitions()
            .into_iter()
            .filter_map(|p| p.maybe_shrink_isr(max_lag).map(|c| (p, c)))
            .collect();
        for (partition, change) in changes {
            tracing::warn!(topic = %partition.topic, partition = partition.index, isr = ?change.isr, "shrinking the ISR");
            self.propose_isr_change(&partition, change).await;
        }
    }

    /// Sends an ISR change to the controller; on refusal the partition may propose again.
    pub async fn propose_isr_change(
        &self,
        partition: &Partition,
        change: crate::controller::command::PartitionChange,
    ) {
        let Some(controller) = self.controller.get() else {
            partition.isr_change_failed(&change, IsrChangeFailure::Unknown);
            return;
        };
        let before = partition.role();
        let growing = match &before {
            crate::partition::Role::Leader(l) => change.isr.len() > l.isr.len(),
            _ => false,
        };
        if growing {
            tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?change.isr, leader_epoch = change.leader_epoch, "expanding the ISR");
        }
        let command = crate::controller::command::MetadataCommand::AlterPartition(change.clone());
        match controller.write_ok(command).await {
            Ok(_) => {
                let counter = if growing {
                    &self.isr_changes.expands
                } else {
                    &self.isr_changes.shrinks
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let failure = match &e {
                    ControllerError::Refused { error, .. } if STALE_METADATA.contains(error) => {
                        IsrChangeFailure::StaleMetadata
                    }
                    ControllerError::Refused { .. } => IsrChangeFailure::Rejected,
                    _ => IsrChangeFailure::Unknown,
                };
                self.isr_changes.failures.fetch_add(1, Ordering::Relaxed);
                tracing::info!(topic = %partition.topic, partition = partition.index, error = %e, ?failure, "ISR change not applied");
                partition.isr_change_failed(&change, failure);
            }
        }
    }

    /// Stops fetchers and closes every log cleanly; the next start skips recovery. Each close
    /// waits for a few fsyncs (the log's flush, its producer snapshot, the clean-shutdown
    /// marker): thousands of partitions are closed on several threads, whose waits overlap.
    pub fn shutdown(&self) {
        self.fetchers.shutdown();
        let partitions = self.all_partitions();
        apply::map_on_threads(&partitions, apply::LEADERSHIP_THREADS, |p| {
            if let Err(e) = p.close() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "closing log failed");
            }
        });
    }

    /// ISR shrinks and expands this broker got applied as leader.
    pub fn isr_change_counts(&self) -> &IsrChangeCounts {
        &self.isr_changes
    }

    fn caught_up(&self) -> bool {
        self.caught_up_epoch.load(Ordering::Acquire) >= 0
    }

    /// Records this broker's registration: images from before it assign no roles.
    pub fn set_registration_epoch(&self, broker_epoch: i64) {
        self.registration_epoch
            .store(broker_epoch, Ordering::Release);
    }

    /// This broker's registration lease, renewed by its heartbeats.
    pub fn lease(&self) -> &RegistrationLease {
        &self.lease
    }

    /// Whether this broker may act on its own view of the cluster now (see `lease`): its
    /// registration lease holds and its image shows it unfenced. Always true while no lease is
    /// in force.
    pub fn holds_lease(&self) -> bool {
        if !self.lease.holds_at(std::time::Instant::now()) {
            return false;
        }
        !self.lease.in_force()
            || self
                .image()
                .brokers
                .get(&self.config.node_id)
                .is_some_and(|b| !b.fenced)
    }

    /// Marks this broker as caught up with the metadata log up to its registration.
    pub fn set_caught_up(&self, broker_epoch: i64) {
        self.caught_up_epoch.store(broker_epoch, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_partition_key_finds_what_the_owned_key_holds() {
        let keys: Vec<PartitionKey> = ["a", "b", "topic-with-a-longer-name"]
            .into_iter()
            .flat_map(|t| (0..50).map(move |i| (Arc::from(t), i)))
            .collect();
        let map: HashMap<PartitionKey, usize> = keys
            .iter()
            .cloned()
            .enumerate()
            .map(|(n, k)| (k, n))
            .collect();
        for (n, (topic, index)) in keys.iter().enumerate() {
            let key: &dyn PartitionLookup = &(&**topic, *index);
            assert_eq!(map.get(key), Some(&n));
        }
        let missing: [&dyn PartitionLookup; 2] = [&("a", 50), &("c", 0)];
        for key in missing {
            assert_eq!(map.get(key), None);
        }
    }

    fn topic(name: &str, id: Uuid) -> Arc<TopicState> {
        Arc::new(TopicState {
            meta: TopicMetadata {
                name: name.to_string(),
                id,
                partitions: 1,
                replication_factor: 1,
                configs: BTreeMap::new(),
            },
        })
    }

    #[test]
    fn topics_are_found_by_name_and_by_id() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let topics = Topics::new(HashMap::from([
            (Arc::from("a"), topic("a", a)),
            (Arc::from("b"), topic("b", b)),
        ]));
        assert_eq!(topics.by_id[&a].meta.name, "a");
        assert_eq!(topics.by_id[&b].meta.name, "b");
        assert_eq!(topics.by_name["b"].meta.id, b);
        assert!(!topics.by_id.contains_key(&Uuid::from_u128(3)));
    }
}
