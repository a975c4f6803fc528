//! The group coordinator of one broker: which `__consumer_offsets` partitions it leads, the
//! groups of those partitions, the one write path into the topic, and the timers.
//!
//! Ownership follows leadership. [`GroupCoordinator::on_become_leader`] marks a partition as
//! loading (requests for its groups answer COORDINATOR_LOAD_IN_PROGRESS), replays it, and
//! then serves its groups; [`GroupCoordinator::on_resign`] drops them (requests answer
//! NOT_COORDINATOR and parked JoinGroup/SyncGroup requests are answered the same). Both are
//! called by the replica manager as the metadata image moves `__consumer_offsets` leadership
//! ([`LeadershipListener`]).
//!
//! Thread-safety: the ownership table and the group map are `RwLock`s held only to look up
//! or insert; each group has its own mutex, held for one operation, including the append of
//! what the operation must store (so two members' writes for one group keep their order).
//! The transactional indexes (`txn_groups`, `completed_while_loading`) are mutexes taken last
//! and held briefly; see [`super::txn_commit`] for their order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Weak};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::{Mutex, RwLock};
use prometheus::IntCounter;

use super::classic::{Group, GroupConfig, GroupState};
use super::consumer::ConsumerGroupConfig;
use super::consumer_records;
use super::loader::LoadedPartition;
use super::records::RecordKey;
use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::log::{Appended, LogError};
use crate::partition::verification::VerificationGuard;
use crate::partition::PartitionError;
use crate::replica_manager::{AdminError, CreateTopic, LeadershipListener, ReplicaManager};

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Where a `__consumer_offsets` partition stands on this broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ownership {
    /// Being replayed; its groups are not served yet.
    Loading { leader_epoch: i32 },
    /// Loaded; its groups are served.
    Active { leader_epoch: i32 },
}

/// A key and value (None: tombstone) to append to `__consumer_offsets`.
pub type OffsetsRecord = (Bytes, Option<Bytes>);

/// The producer of a transactional `__consumer_offsets` batch, and the KIP-890 verification
/// guards its append must find still open (`None`: not verified).
struct Transactional<'a> {
    producer_id: i64,
    producer_epoch: i16,
    guards: Option<&'a [VerificationGuard]>,
}

/// The group coordinator.
#[derive(Debug)]
pub struct GroupCoordinator {
    pub(super) config: Arc<BrokerConfig>,
    pub(super) group_config: GroupConfig,
    pub(super) consumer_config: ConsumerGroupConfig,
    pub(super) share_config: crate::share::group::ShareGroupConfig,
    pub(super) replicas: Arc<ReplicaManager>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) rebalances: IntCounter,
    num_partitions: AtomicI32,
    pub(super) owned: RwLock<HashMap<i32, Ownership>>,
    pub(super) groups: RwLock<HashMap<String, Arc<Mutex<Group>>>>,
    /// Open transactions with offsets: producer id → the groups holding its pending
    /// transactional commits (Kafka's `openGroupsForProducer`), so that a marker finds them.
    pub(super) txn_groups: Mutex<HashMap<i64, BTreeSet<String>>>,
    /// Per partition being loaded: the transactions completed meanwhile (producer id, commit),
    /// applied once the load has installed its groups.
    pub(super) completed_while_loading: Mutex<HashMap<i32, Vec<(i64, bool)>>>,
    /// This coordinator, for the loads it runs on blocking threads.
    me: Weak<GroupCoordinator>,
}

/// Kafka's `String.hashCode()` of a group id (UTF-16 code units, wrapping arithmetic).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group: `abs(hashCode) % partitions`, with Kafka's
/// `Utils.abs` (which maps `i32::MIN` to 0).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

impl GroupCoordinator {
    /// A coordinator that owns nothing yet.
    pub fn new(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        clock: Arc<dyn Clock>,
        rebalances: IntCounter,
    ) -> Arc<Self> {
        let group_config = GroupConfig {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms(),
            min_session_timeout_ms: config.group_min_session_timeout_ms(),
            max_session_timeout_ms: config.group_max_session_timeout_ms(),
            max_size: config.group_max_size(),
        };
        let num_partitions = replicas
            .topic(OFFSETS_TOPIC)
            .map(|t| t.meta.partitions)
            .unwrap_or_else(|| config.offsets_topic_num_partitions());
        let consumer_config = Self::consumer_group_config(&config);
        let share_config = crate::share::group::ShareGroupConfig::from_broker(&config);
        Arc::new_cyclic(|me| Self {
            config,
            group_config,
            consumer_config,
            share_config,
            replicas,
            clock,
            rebalances,
            num_partitions: AtomicI32::new(num_partitions),
            owned: RwLock::new(HashMap::new()),
            groups: RwLock::new(HashMap::new()),
            txn_groups: Mutex::new(HashMap::new()),
            completed_while_loading: Mutex::new(HashMap::new()),
            me: me.clone(),
        })
    }

    /// The clock time in ms.
    pub(super) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The `__consumer_offsets` partition of `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.num_partitions.load(Ordering::Acquire))
    }

    /// Creates `__consumer_offsets` through the controller if it does not exist yet
    /// (FindCoordinator does this on first use). Leadership of its partitions reaches the
    /// coordinator through [`LeadershipListener`] as the metadata image places them.
    pub async fn ensure_offsets_topic(&self) -> Result<(), AdminError> {
        if let Some(t) = self.replicas.topic(OFFSETS_TOPIC) {
            self.num_partitions
                .store(t.meta.partitions, Ordering::Release);
            if !t.meta.configs.contains_key("cleanup.policy") {
                self.compact_offsets_topic(&t.meta.configs).await;
            }
            return Ok(());
        }
        let partitions = self.config.offsets_topic_num_partitions();
        // Kafka's default is 3; a cluster can only place as many replicas as it has brokers.
        let available = self.replicas.image().placeable_brokers().len().max(1) as i16;
        let replication_factor = self
            .config
            .offsets_topic_replication_factor()
            .min(available);
        // Compacted, as Kafka's: the latest record per key is all a load needs.
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                self.config.offsets_topic_segment_bytes().to_string(),
            ),
        ]);
        match self
            .replicas
            .create_topic(CreateTopic {
                partitions: Some(partitions),
                replication_factor: Some(replication_factor),
                configs,
                ..CreateTopic::new(OFFSETS_TOPIC)
            })
            .await
        {
            Ok(_) | Err(AdminError::TopicAlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        if let Some(t) = self.replicas.topic(OFFSETS_TOPIC) {
            self.num_partitions
                .store(t.meta.partitions, Ordering::Release);
        }
        Ok(())
    }

    /// Switches a `__consumer_offsets` created before Weir compacted it (delete policy with
    /// `retention.ms=-1`, no `cleanup.policy` set) to `cleanup.policy=compact`, once, keeping
    /// its other settings. A policy set by hand is left alone.
    async fn compact_offsets_topic(&self, configs: &BTreeMap<String, String>) {
        let mut configs = configs.clone();
        if configs.get("retention.ms").map(String::as_str) == Some("-1") {
            configs.remove("retention.ms");
        }
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        match self
            .replicas
            .alter_topic_configs(OFFSETS_TOPIC, configs, false)
            .await
        {
            Ok(()) => tracing::info!("__consumer_offsets switched to cleanup.policy=compact"),
            Err(e) => {
                tracing::warn!(error = %e, "switching __consumer_offsets to compact failed; retried on the next lookup")
            }
        }
    }

    /// This broker became leader of `partition` at `leader_epoch`: replay it to its log end,
    /// then serve its groups. Blocking (reads the partition's log); requests meanwhile answer
    /// COORDINATOR_LOAD_IN_PROGRESS. A new leader epoch of a partition this broker already
    /// serves changes nothing: the groups in memory are current (everything they stored went
    /// through this leader), and replacing them would strand the requests parked in them.
    pub fn on_become_leader(&self, partition: i32, leader_epoch: i32) {
        if self.start_loading(partition, leader_epoch) {
            self.load(partition, leader_epoch);
        }
    }

    /// Marks `partition` as loading in `leader_epoch`; false if it is served already (a new
    /// epoch of the same leadership) and there is nothing to load.
    pub(super) fn start_loading(&self, partition: i32, leader_epoch: i32) -> bool {
        let mut owned = self.owned.write();
        if let Some(Ownership::Active { .. }) = owned.get(&partition) {
            owned.insert(partition, Ownership::Active { leader_epoch });
            return false;
        }
        owned.insert(partition, Ownership::Loading { leader_epoch });
        self.completed_while_loading.lock().remove(&partition);
        true
    }

    /// Replays `partition` and serves its groups, unless it resigned or was re-elected
    /// meanwhile (then the newer call wins).
    pub(super) fn load(&self, partition: i32, leader_epoch: i32) {
        let started = std::time::Instant::now();
        let loaded = match self.replicas.partition(OFFSETS_TOPIC, partition) {
            Some(log) => LoadedPartition::replay(&log),
            None => LoadedPartition::default(),
        };
        let read_to = loaded.read_to;
        let now = self.now_ms();
        let mut owned = self.owned.write();
        if owned.get(&partition) != Some(&Ownership::Loading { leader_epoch }) {
            // Resigned (or re-elected) while loading: the newer call wins.
            return;
        }
        let mut groups = self.groups.write();
        let mut loaded = loaded;
        // Markers written while the replay ran, perhaps past where it read: applied to the
        // groups below, taken under the ownership lock so that none slips between (see
        // `complete_transaction`).
        let completed = self
            .completed_while_loading
            .lock()
            .remove(&partition)
            .unwrap_or_default();
        let mut topics = None;
        for group_id in loaded.group_ids() {
            let mut group = match loaded.groups.remove(&group_id) {
                Some(value) => Group::from_value(
                    &group_id,
                    value,
                    self.group_config,
                    self.rebalances.clone(),
                    now,
                ),
                None => Group::new(&group_id, self.group_config, self.rebalances.clone(), now),
            };
            let records = loaded.consumer.remove(&group_id);
            let share = records
                .as_ref()
                .is_some_and(|r| r.keys().any(|(kind, _)| kind.is_share()));
            if let Some(records) = records.as_ref().filter(|_| share) {
                let topics = topics.get_or_insert_with(|| self.topic_image());
                group.share = Some(super::share_records::from_records(
                    &group_id,
                    records,
                    topics,
                    &self.share_config,
                    now,
                ));
                group.sync_consumer_state(now);
            } else if let Some(records) = records {
                let topics = topics.get_or_insert_with(|| self.topic_image());
                group.consumer = Some(consumer_records::from_records(
                    &group_id,
                    &records,
                    topics,
                    self.consumer_config.session_timeout_ms,
                    now,
                ));
                group.sync_consumer_state(now);
            }
            if let Some(offsets) = loaded.offsets.remove(&group_id) {
                let committed = group.committed_offsets_mut();
                for (tp, (value, record_offset)) in offsets {
                    committed.apply(tp, value, record_offset);
                }
            }
            if let Some(open) = loaded.pending_txn.remove(&group_id) {
                let offsets = group.committed_offsets_mut();
                for (producer_id, pending) in open {
                    for (tp, (value, record_offset)) in pending {
                        offsets.add_pending_txn(producer_id, [(tp, value)], record_offset);
                    }
                }
                for &(producer_id, commit) in &completed {
                    offsets.complete_txn(producer_id, commit);
                }
                let mut txn_groups = self.txn_groups.lock();
                for producer_id in offsets.pending_txn_producers() {
                    txn_groups
                        .entry(producer_id)
                        .or_default()
                        .insert(group_id.clone());
                }
            }
            if let Some(stale) = groups.insert(group_id, Arc::new(Mutex::new(group))) {
                // Nothing should be left from an earlier tenure (on_resign drops it), but a
                // group replaced here must not keep requests parked forever.
                stale.lock().kill(ResponseError::NotCoordinator.code(), now);
            }
        }
        owned.insert(partition, Ownership::Active { leader_epoch });
        tracing::info!(
            partition,
            leader_epoch,
            read_to,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded __consumer_offsets partition"
        );
    }

    /// This broker no longer leads `partition`: its groups are dropped and their parked
    /// requests answered NOT_COORDINATOR.
    pub fn on_resign(&self, partition: i32) {
        self.owned.write().remove(&partition);
        self.completed_while_loading.lock().remove(&partition);
        let now = self.now_ms();
        let n = self.num_partitions.load(Ordering::Acquire);
        self.txn_groups.lock().retain(|_, groups| {
            groups.retain(|id| partition_for(id, n) != partition);
            !groups.is_empty()
        });
        // Take them out of the map first: operations lock a group and then the map (to remove
        // it), so the map lock must not be held while waiting for a group.
        let dropped: Vec<Arc<Mutex<Group>>> = {
            let mut groups = self.groups.write();
            let ids: Vec<String> = groups
                .keys()
                .filter(|id| partition_for(id, n) == partition)
                .cloned()
                .collect();
            ids.iter().filter_map(|id| groups.remove(id)).collect()
        };
        for group in dropped {
            group.lock().kill(ResponseError::NotCoordinator.code(), now);
        }
    }

    /// Whether this broker serves `group_id` now: `Ok(partition)`, or NOT_COORDINATOR /
    /// COORDINATOR_LOAD_IN_PROGRESS, or COORDINATOR_NOT_AVAILABLE while this broker's
    /// registration lease has lapsed (cut off from the quorum long enough that a successor may
    /// have taken its partitions over; see `replica_manager::lease`).
    pub fn check_coordinator(&self, group_id: &str) -> Result<i32, i16> {
        let partition = self.partition_for(group_id);
        if !self.replicas.holds_lease() {
            tracing::debug!(
                group = group_id,
                partition,
                "refusing to coordinate: the registration lease has lapsed"
            );
            return Err(ResponseError::CoordinatorNotAvailable.code());
        }
        match self.owned.read().get(&partition) {
            Some(Ownership::Active { .. }) => Ok(partition),
            Some(Ownership::Loading { .. }) => Err(ResponseError::CoordinatorLoadInProgress.code()),
            None => Err(ResponseError::NotCoordinator.code()),
        }
    }

    /// The group, if this broker coordinates it and it exists.
    pub fn group(&self, group_id: &str) -> Result<Option<Arc<Mutex<Group>>>, i16> {
        self.check_coordinator(group_id)?;
        Ok(self.groups.read().get(group_id).cloned())
    }

    /// The group, created empty if it does not exist.
    pub fn group_or_create(&self, group_id: &str) -> Result<Arc<Mutex<Group>>, i16> {
        self.check_coordinator(group_id)?;
        if let Some(g) = self.groups.read().get(group_id) {
            return Ok(g.clone());
        }
        let now = self.now_ms();
        Ok(self
            .groups
            .write()
            .entry(group_id.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Group::new(
                    group_id,
                    self.group_config,
                    self.rebalances.clone(),
                    now,
                )))
            })
            .clone())
    }

    /// Removes a group from the map (deleted or expired) and marks it dead.
    pub(super) fn remove_group(&self, group: &mut Group) {
        self.groups.write().remove(&group.group_id);
        group.kill(ResponseError::CoordinatorNotAvailable.code(), self.now_ms());
    }

    /// The one write path into `__consumer_offsets`: appends `records` as one batch to the
    /// group's partition and returns the offset of its last record. OffsetCommit then waits
    /// for the in-sync replicas ([`GroupCoordinator::wait_replicated`]), outside the group's
    /// lock.
    pub fn append(&self, group_id: &str, records: Vec<OffsetsRecord>) -> Result<Appended, i16> {
        self.append_batch(group_id, records, None)
    }

    /// [`GroupCoordinator::append`] for TxnOffsetCommit: one transactional batch of
    /// `producer_id` at `producer_epoch` (no sequence, as Kafka's coordinator writes it),
    /// appended through [`crate::partition::Partition::append_as_coordinator`]. A producer
    /// epoch older than the log knows is INVALID_PRODUCER_EPOCH.
    pub fn append_transactional(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        records: Vec<OffsetsRecord>,
        guards: Option<&[VerificationGuard]>,
    ) -> Result<Appended, i16> {
        self.append_batch(
            group_id,
            records,
            Some(Transactional {
                producer_id,
                producer_epoch,
                guards,
            }),
        )
    }

    /// Encodes `records` as one batch (transactional for `Some(producer id, epoch)`) and
    /// appends it to the group's partition; the offset of its last record.
    fn append_batch(
        &self,
        group_id: &str,
        records: Vec<OffsetsRecord>,
        transactional: Option<Transactional<'_>>,
    ) -> Result<Appended, i16> {
        let producer = transactional
            .as_ref()
            .map(|t| (t.producer_id, t.producer_epoch));
        let partition = self.check_coordinator(group_id)?;
        let Some(log) = self.replicas.partition(OFFSETS_TOPIC, partition) else {
            return Err(ResponseError::CoordinatorNotAvailable.code());
        };
        let now = self.now_ms();
        let records: Vec<Record> = records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: producer.is_some(),
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: producer.map_or(-1, |(id, _)| id),
                producer_epoch: producer.map_or(-1, |(_, epoch)| epoch),
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: now,
                key: Some(key),
                value,
                headers: IndexMap::new(),
            })
            .collect();
        let mut batch = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: match self.config.offsets_topic_compression_codec() {
                1 => Compression::Gzip,
                2 => Compression::Snappy,
                3 => Compression::Lz4,
                4 => Compression::Zstd,
                _ => Compression::None,
            },
        };
        if let Err(e) = RecordBatchEncoder::encode(&mut batch, &records, &options) {
            tracing::error!(group = group_id, error = %e, "encoding __consumer_offsets records failed");
            return Err(ResponseError::UnknownServerError.code());
        }
        let batch = batch.freeze();
        let appended = match &transactional {
            None => log.append(&batch),
            Some(t) => log.append_as_coordinator(&batch, t.guards),
        };
        match appended {
            Ok(info) => Ok(info.appended()),
            Err(e) => {
                tracing::error!(group = group_id, partition, error = %e, "appending to __consumer_offsets failed");
                Err(match e {
                    PartitionError::Log(LogError::RecordTooLarge { .. }) => {
                        ResponseError::InvalidCommitOffsetSize.code()
                    }
                    PartitionError::Log(LogError::InvalidProducerEpoch { .. }) => {
                        ResponseError::InvalidProducerEpoch.code()
                    }
                    PartitionError::NotLeader => ResponseError::NotCoordinator.code(),
                    PartitionError::UnverifiedTransaction { .. } => {
                        ResponseError::InvalidTxnState.code()
                    }
                    _ => ResponseError::CoordinatorNotAvailable.code(),
                })
            }
        }
    }

    /// Waits until every in-sync replica of `group_id`'s `__consumer_offsets` partition has
    /// the records `appended` (the high watermark passes them, still in the leader epoch they
    /// were appended in or on its records: see `Partition::wait_for_high_watermark`), at most
    /// `offsets.commit.timeout.ms`, as Kafka's coordinator writes with `acks=all`. Called by
    /// OffsetCommit after the append, with no lock held. Errors as Kafka's coordinator maps
    /// them: this broker no longer leads → NOT_COORDINATOR; a timeout or a shrunken ISR →
    /// COORDINATOR_NOT_AVAILABLE (the client finds the coordinator again and retries).
    pub async fn wait_replicated(&self, group_id: &str, appended: Appended) -> Result<(), i16> {
        let partition = self.partition_for(group_id);
        let Some(log) = self.replicas.partition(OFFSETS_TOPIC, partition) else {
            return Err(ResponseError::NotCoordinator.code());
        };
        let timeout =
            std::time::Duration::from_millis(self.config.offsets_commit_timeout_ms().max(0) as u64);
        log.wait_for_high_watermark(appended, 1, timeout)
            .await
            .map_err(|e| match e {
                PartitionError::NotLeader => ResponseError::NotCoordinator.code(),
                _ => ResponseError::CoordinatorNotAvailable.code(),
            })
    }

    /// Appends the group's metadata if an operation changed it.
    pub(super) fn persist_if_dirty(&self, group: &mut Group) -> Result<(), i16> {
        if !group.take_dirty() || group.state() == GroupState::Dead {
            return Ok(());
        }
        self.persist_metadata(group)
    }

    /// Appends the group's metadata record.
    pub(super) fn persist_metadata(&self, group: &Group) -> Result<(), i16> {
        self.append_metadata(group).map(|_| ())
    }

    /// Appends the group's metadata record; the offset of the record.
    pub(super) fn append_metadata(&self, group: &Group) -> Result<Appended, i16> {
        let key = RecordKey::Group {
            group: group.group_id.clone(),
        }
        .encode();
        self.append(
            &group.group_id,
            vec![(key, Some(group.metadata_value().encode()))],
        )
    }

    /// This coordinator, for work that outlives a request (`None` while it is dropped).
    pub(super) fn me(&self) -> Option<Arc<GroupCoordinator>> {
        self.me.upgrade()
    }

    /// Whether any owned partition is still being replayed.
    pub fn any_loading(&self) -> bool {
        self.owned
            .read()
            .values()
            .any(|o| matches!(o, Ownership::Loading { .. }))
    }

    /// Whether every `__consumer_offsets` partition is loaded and served here (tests on one
    /// broker, which leads them all).
    #[cfg(test)]
    pub(super) fn all_loaded(&self) -> bool {
        let owned = self.owned.read();
        (0..self.num_partitions.load(Ordering::Acquire))
            .all(|p| matches!(owned.get(&p), Some(Ownership::Active { .. })))
    }

    /// Committed offsets of every group, for the lag metric: (group, topic, partition, offset).
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let mut out = Vec::new();
        for group in self.all_groups() {
            let g = group.lock();
            for ((topic, partition), v) in g.offsets() {
                out.push((g.group_id.clone(), topic.clone(), *partition, v.offset));
            }
        }
        out
    }

    /// How many classic groups are in each state, for the groups metric.
    pub fn count_by_state(&self) -> HashMap<GroupState, usize> {
        let mut counts = HashMap::new();
        for group in self.all_groups() {
            let g = group.lock();
            if g.consumer().is_none() && g.share().is_none() {
                *counts.entry(g.state()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// How many KIP-848 consumer groups are in each state (Kafka's state names).
    pub fn count_consumer_groups_by_state(&self) -> HashMap<&'static str, usize> {
        let mut counts = HashMap::new();
        for group in self.all_groups() {
            let g = group.lock();
            if let Some(c) = g.consumer().filter(|_| g.state() != GroupState::Dead) {
                *counts.entry(c.state().name()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Every group this broker serves now.
    pub fn all_groups(&self) -> Vec<Arc<Mutex<Group>>> {
        self.groups.read().values().cloned().collect()
    }

    /// Fires the rebalance timers of every group (called every few tens of ms).
    pub fn tick(&self) {
        let now = self.now_ms();
        let mut topics = None;
        for group in self.all_groups() {
            let mut g = group.lock();
            if g.consumer().is_some() {
                self.tick_consumer_group(&mut g, &mut topics, now);
                continue;
            }
            if g.share().is_some() {
                self.tick_share_group(&mut g, &mut topics, now);
                continue;
            }
            let removed = g.tick(now);
            if !removed.is_empty() {
                tracing::info!(group = %g.group_id, members = ?removed, state = g.state().name(), "members removed (session or rebalance timeout)");
            }
            if let Err(code) = self.persist_if_dirty(&mut g) {
                tracing::warn!(group = %g.group_id, code, "storing group metadata failed");
            }
        }
    }

    /// `offsets.retention.minutes`: expires the offsets of groups that have been empty that
    /// long (tombstones in the log), and removes empty groups left with nothing.
    pub fn expire_offsets(&self) {
        let now = self.now_ms();
        let retention_ms = self.config.offsets_retention_ms();
        for group in self.all_groups() {
            let mut g = group.lock();
            let expired = g.expired_offsets(now, retention_ms);
            if !expired.is_empty() {
                let tombstones = expired
                    .iter()
                    .map(|(topic, partition)| {
                        let key = RecordKey::Offset {
                            group: g.group_id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        };
                        (key.encode(), None)
                    })
                    .collect();
                let Ok(appended) = self.append(&g.group_id, tombstones) else {
                    continue;
                };
                g.delete_offsets(&expired, appended.last_offset);
                tracing::info!(group = %g.group_id, offsets = expired.len(), "expired committed offsets");
            }
            if g.is_removable() && self.append(&g.group_id, self.group_tombstones(&g)).is_ok() {
                self.remove_group(&mut g);
            }
        }
    }
}

impl LeadershipListener for GroupCoordinator {
    fn on_become_leader(&self, topic: &str, partition: i32, leader_epoch: i32) {
        if topic != OFFSETS_TOPIC {
            return;
        }
        if let Some(t) = self.replicas.topic(OFFSETS_TOPIC) {
            self.num_partitions
                .store(t.meta.partitions, Ordering::Release);
        }
        // Off the image-applying task: the replay reads the whole partition, and the other
        // partitions of the image (their leaders, the producers waiting for them) must not
        // wait for it.
        if !self.start_loading(partition, leader_epoch) {
            return;
        }
        match (tokio::runtime::Handle::try_current(), self.me.upgrade()) {
            (Ok(runtime), Some(me)) => {
                drop(runtime.spawn_blocking(move || me.load(partition, leader_epoch)));
            }
            _ => self.load(partition, leader_epoch),
        }
    }

    fn on_resign(&self, topic: &str, partition: i32) {
        if topic == OFFSETS_TOPIC {
            GroupCoordinator::on_resign(self, partition);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_kafkas_hash() {
        // Values of Java's String.hashCode().
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
        assert_eq!(partition_for("hello", 50), 22);
        // Its hash is Integer.MIN_VALUE, which Kafka's Utils.abs maps to 0.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Non-ASCII counts UTF-16 code units, as Java does.
        assert_eq!(java_string_hash("é"), 0xe9);
        assert_eq!(java_string_hash("😀"), 0xd83d * 31 + 0xde00);
    }
}
