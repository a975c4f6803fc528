//! The share coordinator of one broker (KIP-932): the durable state of share partitions in
//! the internal topic `__share_group_state`, Kafka's `ShareCoordinator`.
//!
//! **Where the state lives.** A share partition's state is keyed by group, topic id and
//! partition; the key `group:topicId:partition` hashes (as Kafka's) to one of the topic's
//! partitions, and the leader of that partition is the key's share coordinator. This is the
//! shape of `__consumer_offsets` and the group coordinator, for the same reasons: the state
//! is replicated by the ordinary ISR machinery (a write is answered once the in-sync replicas
//! hold it), its ownership follows partition leadership in the metadata image with no
//! election of its own, and it is spread over the cluster's brokers independently of where
//! the data partitions' leaders are. The share-partition leader therefore reaches its state
//! over the Kafka protocol (ReadShareGroupState, WriteShareGroupState; see
//! [`super::persister`]), as Kafka's does, also when it happens to be the coordinator itself:
//! one path.
//!
//! Ownership follows leadership as the group coordinator's: [`LeadershipListener`] marks a
//! partition as loading (requests for its keys answer COORDINATOR_LOAD_IN_PROGRESS), replays
//! it from its log start ([`super::state_records`]: the latest snapshot per key, overlaid by
//! the updates after it), then serves it; resigning drops its keys (NOT_COORDINATOR).
//!
//! For the share-group admin APIs it also answers ReadShareGroupStateSummary (start offset
//! and epochs), InitializeShareGroupState (the state replaced by an empty window at a start
//! offset, in a newer state epoch: what an offset reset writes) and DeleteShareGroupState
//! (tombstones; the deleted key's state epoch is kept in memory so that a leader still
//! holding the old state is fenced, and the next leader reads the epoch after it).
//!
//! A write is appended as one ShareUpdate, or as a ShareSnapshot every
//! `share.coordinator.snapshot.update.records.per.snapshot` updates and for a key's first
//! write, and answered once replicated (`share.coordinator.write.timeout.ms`). A write from
//! an older leader epoch than the key saw is FENCED_LEADER_EPOCH, from an older state epoch
//! FENCED_STATE_EPOCH.
//!
//! Thread-safety: the ownership table and the key map are `RwLock`s held only to look up or
//! insert; each key's state has its own mutex, held for one write's append (so two writes of
//! a key reach the log in the order they changed the state), never across the wait for the
//! replicas.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::{Mutex, RwLock};

use super::partition::{DeliveryState, StateBatch};
use super::state_records::{self, SharePartitionKey, ShareState, ShareUpdate, StateRecord};
use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::group::coordinator::partition_for;
use crate::log::batch::RecordBatchHeader;
use crate::log::Appended;
use crate::partition::{Partition, PartitionError};
use crate::replica_manager::{AdminError, CreateTopic, LeadershipListener, ReplicaManager};

/// The internal topic holding share-partition state.
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";

/// Where a `__share_group_state` partition stands on this broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ownership {
    Loading { leader_epoch: i32 },
    Active,
}

/// One key's state and how many updates were written since its last snapshot.
#[derive(Debug, Default)]
struct Entry {
    state: ShareState,
    updates_since_snapshot: i64,
    /// Whether a snapshot of the key was written (a key's first write is a snapshot).
    has_snapshot: bool,
    /// Deleted by DeleteShareGroupState: the state is gone (tombstones written), the state
    /// epoch is kept so that a leader still holding the old state is fenced (its writes carry
    /// an epoch at or below it) and a new one reads the next epoch.
    deleted: bool,
}

/// What ReadShareGroupStateSummary answers of one share partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSummary {
    /// The state epoch.
    pub state_epoch: i32,
    /// The leader epoch of the last write or read.
    pub leader_epoch: i32,
    /// SPSO; -1 when the share partition has no state.
    pub start_offset: i64,
    /// Records of the in-flight window (at or above SPSO) already done with, acknowledged
    /// or archived: KIP-1226's delivery-complete count, which the lag leaves out; -1 when the
    /// share partition has no state.
    pub delivery_complete_count: i32,
}

/// A write of one share partition's state (WriteShareGroupState's partition data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    /// The state epoch the writer read.
    pub state_epoch: i32,
    /// The share-partition leader's epoch.
    pub leader_epoch: i32,
    /// The new SPSO (-1: unchanged).
    pub start_offset: i64,
    /// The batches that changed.
    pub batches: Vec<StateBatch>,
}

/// The share coordinator.
#[derive(Debug)]
pub struct ShareCoordinator {
    config: Arc<BrokerConfig>,
    replicas: Arc<ReplicaManager>,
    clock: Arc<dyn Clock>,
    owned: RwLock<HashMap<i32, Ownership>>,
    states: RwLock<HashMap<SharePartitionKey, Arc<Mutex<Entry>>>>,
    me: Weak<ShareCoordinator>,
}

impl ShareCoordinator {
    /// A coordinator that owns nothing yet.
    pub fn new(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            config,
            replicas,
            clock,
            owned: RwLock::new(HashMap::new()),
            states: RwLock::new(HashMap::new()),
            me: me.clone(),
        })
    }

    /// The `__share_group_state` partition of `key`, with the topic's partition count (or the
    /// configured one before it exists).
    pub fn partition_for(&self, key: &SharePartitionKey) -> i32 {
        self.partition_for_key(&key.coordinator_key())
    }

    /// The `__share_group_state` partition of a coordinator key (`group:topicId:partition`,
    /// FindCoordinator's key type 2).
    pub fn partition_for_key(&self, coordinator_key: &str) -> i32 {
        let partitions = self
            .replicas
            .topic(SHARE_STATE_TOPIC)
            .map(|t| t.meta.partitions)
            .unwrap_or_else(|| self.num_partitions());
        partition_for(coordinator_key, partitions)
    }

    fn num_partitions(&self) -> i32 {
        self.config
            .share_coordinator("share.coordinator.state.topic.num.partitions") as i32
    }

    /// Creates `__share_group_state` through the controller if it does not exist yet
    /// (compacted: see [`super::state_records`] for why that keeps what a load needs), with
    /// the `share.coordinator.state.topic.*` partitions, replication (capped at the brokers
    /// available), `min.insync.replicas` (capped at the replication) and segment size.
    pub async fn ensure_state_topic(&self) -> Result<(), AdminError> {
        if self.replicas.topic(SHARE_STATE_TOPIC).is_some() {
            return Ok(());
        }
        let available = self.replicas.image().placeable_brokers().len().max(1) as i16;
        let replication_factor = (self
            .config
            .share_coordinator("share.coordinator.state.topic.replication.factor")
            as i16)
            .min(available);
        let min_isr = self
            .config
            .share_coordinator("share.coordinator.state.topic.min.isr")
            .min(i64::from(replication_factor));
        let segment_bytes = self
            .config
            .share_coordinator("share.coordinator.state.topic.segment.bytes");
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("min.insync.replicas".to_string(), min_isr.to_string()),
            ("segment.bytes".to_string(), segment_bytes.to_string()),
        ]);
        match self
            .replicas
            .create_topic(CreateTopic {
                partitions: Some(self.num_partitions()),
                replication_factor: Some(replication_factor),
                configs,
                ..CreateTopic::new(SHARE_STATE_TOPIC)
            })
            .await
        {
            Ok(_) | Err(AdminError::TopicAlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The partition of `key` if this broker serves it, else Kafka's error code.
    fn check(&self, key: &SharePartitionKey) -> Result<i32, i16> {
        let partition = self.partition_for(key);
        match self.owned.read().get(&partition) {
            Some(Ownership::Active) => Ok(partition),
            Some(Ownership::Loading { .. }) => Err(ResponseError::CoordinatorLoadInProgress.code()),
            None => Err(ResponseError::NotCoordinator.code()),
        }
    }

    /// ReadShareGroupState: the state of `key` (`None`: never written), the reader's leader
    /// epoch remembered so that an older leader's writes are fenced.
    pub fn read(
        &self,
        key: &SharePartitionKey,
        leader_epoch: i32,
    ) -> Result<Option<ShareState>, i16> {
        self.check(key)?;
        let Some(entry) = self.states.read().get(key).cloned() else {
            return Ok(None);
        };
        let mut entry = entry.lock();
        if entry.deleted {
            // No state, at the epoch after the deleted one (see `Entry::deleted`).
            return Ok(Some(ShareState {
                state_epoch: entry.state.state_epoch + 1,
                start_offset: -1,
                ..ShareState::default()
            }));
        }
        if leader_epoch < entry.state.leader_epoch {
            return Err(ResponseError::FencedLeaderEpoch.code());
        }
        entry.state.leader_epoch = leader_epoch;
        Ok(Some(entry.state.clone()))
    }

    /// ReadShareGroupStateSummary: the start offset and epochs of `key`, without taking part
    /// in leader-epoch fencing (an admin reads it, not a leader).
    pub fn read_summary(&self, key: &SharePartitionKey) -> Result<StateSummary, i16> {
        self.check(key)?;
        let entry = self.states.read().get(key).cloned();
        Ok(match entry {
            Some(entry) => {
                let entry = entry.lock();
                if entry.deleted {
                    // As `read` answers it: no state, in the epoch after the deleted one.
                    StateSummary {
                        state_epoch: entry.state.state_epoch + 1,
                        leader_epoch: entry.state.leader_epoch,
                        start_offset: -1,
                        delivery_complete_count: -1,
                    }
                } else {
                    StateSummary {
                        state_epoch: entry.state.state_epoch,
                        leader_epoch: entry.state.leader_epoch,
                        start_offset: entry.state.start_offset,
                        delivery_complete_count: delivery_complete_count(&entry.state),
                    }
                }
            }
            None => StateSummary {
                state_epoch: 0,
                leader_epoch: -1,
                start_offset: -1,
                delivery_complete_count: -1,
            },
        })
    }

    /// InitializeShareGroupState: replaces `key`'s state by an empty in-flight window at
    /// `start_offset` in `state_epoch`, which must be above the key's current state epoch
    /// (FENCED_STATE_EPOCH otherwise): the share-partition leader still holding the old state
    /// is fenced by its next write and loads the new one. Written as a snapshot and answered
    /// once replicated.
    pub async fn initialize(
        &self,
        key: &SharePartitionKey,
        state_epoch: i32,
        start_offset: i64,
    ) -> Result<(), i16> {
        if start_offset < 0 {
            return Err(ResponseError::InvalidRequest.code());
        }
        let partition = self.check(key)?;
        let Some(log) = self.replicas.partition(SHARE_STATE_TOPIC, partition) else {
            return Err(ResponseError::NotCoordinator.code());
        };
        let entry = self.states.write().entry(key.clone()).or_default().clone();
        let appended = {
            let mut entry = entry.lock();
            let known = entry.has_snapshot || entry.deleted;
            if known && state_epoch <= entry.state.state_epoch {
                return Err(ResponseError::FencedStateEpoch.code());
            }
            let next = ShareState {
                snapshot_epoch: entry.state.snapshot_epoch + 1,
                state_epoch,
                leader_epoch: entry.state.leader_epoch,
                start_offset,
                write_timestamp: self.clock.now_ms(),
                batches: Vec::new(),
            };
            let value = state_records::encode_snapshot(&next);
            let appended = self.append(&log, state_records::encode_key(key, true), Some(value))?;
            entry.state = next;
            entry.has_snapshot = true;
            entry.deleted = false;
            entry.updates_since_snapshot = 0;
            appended
        };
        self.wait_replicated(&log, appended).await
    }

    /// DeleteShareGroupState: tombstones for `key`'s snapshot and updates; answered once
    /// replicated. Deleting a key without state succeeds.
    pub async fn delete(&self, key: &SharePartitionKey) -> Result<(), i16> {
        let partition = self.check(key)?;
        let Some(log) = self.replicas.partition(SHARE_STATE_TOPIC, partition) else {
            return Err(ResponseError::NotCoordinator.code());
        };
        let Some(entry) = self.states.read().get(key).cloned() else {
            return Ok(());
        };
        let appended = {
            let mut entry = entry.lock();
            if entry.deleted {
                return Ok(());
            }
            self.append(&log, state_records::encode_key(key, false), None)?;
            let appended = self.append(&log, state_records::encode_key(key, true), None)?;
            let state_epoch = entry.state.state_epoch;
            *entry = Entry {
                state: ShareState {
                    state_epoch,
                    leader_epoch: entry.state.leader_epoch,
                    ..ShareState::default()
                },
                deleted: true,
                ..Entry::default()
            };
            appended
        };
        self.wait_replicated(&log, appended).await
    }

    /// Waits until the in-sync replicas of `log` hold `appended`
    /// (`share.coordinator.write.timeout.ms`).
    async fn wait_replicated(&self, log: &Partition, appended: Appended) -> Result<(), i16> {
        let timeout = Duration::from_millis(
            self.config
                .share_coordinator("share.coordinator.write.timeout.ms")
                .max(1) as u64,
        );
        log.wait_for_high_watermark(appended, 1, timeout)
            .await
            .map_err(|e| match e {
                PartitionError::NotLeader => ResponseError::NotCoordinator.code(),
                _ => ResponseError::CoordinatorNotAvailable.code(),
            })
    }

    /// WriteShareGroupState: applies `write` to `key`'s state, appends it, and waits until
    /// the in-sync replicas hold it.
    pub async fn write(&self, key: &SharePartitionKey, write: StateWrite) -> Result<(), i16> {
        let partition = self.check(key)?;
        let Some(log) = self.replicas.partition(SHARE_STATE_TOPIC, partition) else {
            return Err(ResponseError::NotCoordinator.code());
        };
        let entry = self.states.write().entry(key.clone()).or_default().clone();
        let appended = {
            let mut entry = entry.lock();
            if write.leader_epoch < entry.state.leader_epoch {
                return Err(ResponseError::FencedLeaderEpoch.code());
            }
            let fenced = if entry.deleted {
                write.state_epoch <= entry.state.state_epoch
            } else {
                entry.has_snapshot && write.state_epoch < entry.state.state_epoch
            };
            if fenced {
                return Err(ResponseError::FencedStateEpoch.code());
            }
            if entry.deleted {
                // A new leader starting over after a delete: a first write again.
                entry.deleted = false;
                entry.has_snapshot = false;
            }
            let update = ShareUpdate {
                snapshot_epoch: entry.state.snapshot_epoch,
                leader_epoch: write.leader_epoch,
                start_offset: write.start_offset,
                batches: write.batches,
            };
            let mut next = entry.state.clone();
            next.apply_update(&update);
            next.leader_epoch = write.leader_epoch;
            next.state_epoch = next.state_epoch.max(write.state_epoch);
            let per_snapshot = self
                .config
                .share_coordinator("share.coordinator.snapshot.update.records.per.snapshot");
            let snapshot = !entry.has_snapshot || entry.updates_since_snapshot >= per_snapshot;
            let value = if snapshot {
                next.snapshot_epoch += 1;
                next.write_timestamp = self.clock.now_ms();
                state_records::encode_snapshot(&next)
            } else {
                state_records::encode_update(&update)
            };
            let appended =
                self.append(&log, state_records::encode_key(key, snapshot), Some(value))?;
            entry.state = next;
            if snapshot {
                entry.has_snapshot = true;
                entry.updates_since_snapshot = 0;
            } else {
                entry.updates_since_snapshot += 1;
            }
            appended
        };
        self.wait_replicated(&log, appended).await
    }

    /// The one write path into the topic: one record (`None`: a tombstone) as one batch.
    fn append(&self, log: &Partition, key: Bytes, value: Option<Bytes>) -> Result<Appended, i16> {
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: self.clock.now_ms(),
            key: Some(key),
            value,
            headers: IndexMap::new(),
        };
        let mut batch = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        if let Err(e) = RecordBatchEncoder::encode(&mut batch, [&record], &options) {
            tracing::error!(error = %e, "encoding a __share_group_state record failed");
            return Err(ResponseError::UnknownServerError.code());
        }
        match log.append(&batch.freeze()) {
            Ok(info) => Ok(info.appended()),
            Err(PartitionError::NotLeader) => Err(ResponseError::NotCoordinator.code()),
            Err(e) => {
                tracing::error!(partition = log.index, error = %e, "appending to __share_group_state failed");
                Err(ResponseError::CoordinatorNotAvailable.code())
            }
        }
    }

    /// Replays `partition` and serves its keys, unless it resigned or was re-elected
    /// meanwhile.
    fn load(&self, partition: i32, leader_epoch: i32) {
        let entries = match self.replicas.partition(SHARE_STATE_TOPIC, partition) {
            Some(log) => replay(&log),
            None => HashMap::new(),
        };
        let mut owned = self.owned.write();
        if owned.get(&partition) != Some(&Ownership::Loading { leader_epoch }) {
            return;
        }
        let count = entries.len();
        let mut states = self.states.write();
        for (key, entry) in entries {
            states.insert(key, Arc::new(Mutex::new(entry)));
        }
        owned.insert(partition, Ownership::Active);
        tracing::info!(
            partition,
            leader_epoch,
            keys = count,
            "loaded __share_group_state partition"
        );
    }
}

/// Every key's state in `log`, from its log start to its log end: snapshots replace, updates
/// overlay, tombstones delete. Undecodable records are skipped with a warning.
fn replay(log: &Partition) -> HashMap<SharePartitionKey, Entry> {
    let mut entries: HashMap<SharePartitionKey, Entry> = HashMap::new();
    let mut offset = log.log_start_offset();
    let log_end = log.log_end_offset();
    while offset < log_end {
        let read = match log.read_to_log_end(offset, 1 << 20) {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(partition = log.index, offset, error = %e, "reading __share_group_state failed; its share partitions may be incomplete");
                break;
            }
        };
        let mut bytes = read.records;
        let start = offset;
        while !bytes.is_empty() {
            let next = RecordBatchHeader::parse(&bytes, 0).map(|h| h.next_offset());
            let Ok(set) = RecordBatchDecoder::decode(&mut bytes) else {
                break;
            };
            for r in set.records.iter().filter(|r| !r.control) {
                let Some(key) = r.key.as_deref() else {
                    continue;
                };
                match state_records::decode(key, r.value.as_deref()) {
                    Ok((key, None)) => {
                        entries.remove(&key);
                    }
                    Ok((key, Some(record))) => apply(entries.entry(key).or_default(), record),
                    Err(e) => {
                        tracing::warn!(partition = log.index, offset = r.offset, error = %e, "skipping a __share_group_state record")
                    }
                }
            }
            if let Ok(next) = next {
                offset = offset.max(next);
            }
        }
        if offset == start {
            break;
        }
    }
    entries
}

/// Replays one record onto a key's entry.
fn apply(entry: &mut Entry, record: StateRecord) {
    match record {
        StateRecord::Snapshot(state) => {
            entry.state = state;
            entry.has_snapshot = true;
            entry.updates_since_snapshot = 0;
        }
        StateRecord::Update(update) => {
            entry.state.apply_update(&update);
            entry.updates_since_snapshot += 1;
        }
    }
}

impl LeadershipListener for ShareCoordinator {
    fn on_become_leader(&self, topic: &str, partition: i32, leader_epoch: i32) {
        if topic != SHARE_STATE_TOPIC {
            return;
        }
        {
            let mut owned = self.owned.write();
            if owned.get(&partition) == Some(&Ownership::Active) {
                // A new epoch of the same leadership: the state in memory is current.
                return;
            }
            owned.insert(partition, Ownership::Loading { leader_epoch });
        }
        match (tokio::runtime::Handle::try_current(), self.me.upgrade()) {
            (Ok(runtime), Some(me)) => {
                drop(runtime.spawn_blocking(move || me.load(partition, leader_epoch)));
            }
            _ => self.load(partition, leader_epoch),
        }
    }

    fn on_resign(&self, topic: &str, partition: i32) {
        if topic != SHARE_STATE_TOPIC {
            return;
        }
        self.owned.write().remove(&partition);
        let partitions = self
            .replicas
            .topic(SHARE_STATE_TOPIC)
            .map_or_else(|| self.num_partitions(), |t| t.meta.partitions);
        self.states
            .write()
            .retain(|key, _| partition_for(&key.coordinator_key(), partitions) != partition);
    }
}

/// KIP-1226's delivery-complete count of `state`: the offsets at or above its start offset
/// whose persisted state is ACKNOWLEDGED or ARCHIVED; -1 without a start offset.
pub fn delivery_complete_count(state: &ShareState) -> i32 {
    if state.start_offset < 0 {
        return -1;
    }
    let done: i64 = state
        .batches
        .iter()
        .filter(|b| {
            matches!(
                DeliveryState::from_persisted(b.delivery_state),
                Some(DeliveryState::Acknowledged | DeliveryState::Archived)
            )
        })
        .map(|b| (b.last_offset - b.first_offset.max(state.start_offset) + 1).max(0))
        .sum();
    done.min(i64::from(i32::MAX)) as i32
}

/// KIP-1226's share-partition lag: the records between the start offset and the end of the
/// partition (`end_offset`, its high watermark) not yet acknowledged or archived.
pub fn share_lag(end_offset: i64, start_offset: i64, delivery_complete_count: i32) -> i64 {
    (end_offset - start_offset - i64::from(delivery_complete_count)).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_state_topic_takes_the_share_coordinator_settings() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::handlers::tests::broker_with(
            dir.path(),
            &[
                ("share.coordinator.state.topic.num.partitions", "4"),
                ("share.coordinator.state.topic.min.isr", "2"),
                ("share.coordinator.state.topic.segment.bytes", "1048576"),
            ],
        )
        .await;
        broker.share_coordinator.ensure_state_topic().await.unwrap();
        let topic = broker.replicas.topic(SHARE_STATE_TOPIC).unwrap();
        assert_eq!(topic.meta.partitions, 4);
        let config = |key: &str| topic.meta.configs.get(key).cloned();
        assert_eq!(config("cleanup.policy").as_deref(), Some("compact"));
        assert_eq!(config("segment.bytes").as_deref(), Some("1048576"));
        // One broker: replication factor 1, and min.insync.replicas capped at it (else no
        // write to the topic could ever be acknowledged).
        assert_eq!(config("min.insync.replicas").as_deref(), Some("1"));
        // Created once: a second call finds it.
        broker.share_coordinator.ensure_state_topic().await.unwrap();
    }
}
