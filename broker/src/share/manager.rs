//! The share partitions this broker leads and the share sessions of the consumers fetching
//! from it: Kafka's `SharePartitionManager`. ShareFetch and ShareAcknowledge go through it.
//!
//! A [`SharePartition`] is loaded on the first fetch or acknowledgement of a (group,
//! partition) on its leader, per leader epoch, from its share coordinator
//! ([`super::persister`]): a new leader (failover, restart, re-election) carries on from what
//! was persisted, and what was acquired then is AVAILABLE again with its delivery count. A
//! share partition never persisted starts where `share.auto.offset.reset` says (the high
//! watermark for `latest`, the log start for `earliest`).
//!
//! **Durability.** A fetch that acquired records and an acknowledgement are persisted before
//! their answer says they succeeded: the whole in-flight window, SPSO and every delivery count
//! (acquisitions included, so a record in flight at a failover comes back with its count
//! kept), written to the coordinator with WriteShareGroupState. Writes of one share partition
//! go one at a time and group-commit: a writer finding its change already persisted by the
//! write before it returns at once; otherwise it writes the newest state, which covers every
//! change made so far. Releases (lock expiry, a closed session) are not written on their own:
//! the persisted form of an ACQUIRED record is already AVAILABLE.
//!
//! Thread-safety: the partition map and the session cache are mutexes held only to look up,
//! insert or update; each share partition has its own mutex, held for one acquisition or
//! acknowledgement (never across a log read's wait or a write to the coordinator), and an
//! async mutex ordering its writes.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use uuid::Uuid;

use super::coordinator::StateWrite;
use super::partition::{
    push_run, AcknowledgeType, AcquiredRecords, SharePartition, SharePartitionConfig,
    SharePartitionStats,
};
use super::persister::SharePersister;
use super::session::{SessionUpdate, SharePartitionId, ShareSessionCache, ShareSessionError};
use super::state_records::SharePartitionKey;
use crate::clock::Clock;
use crate::config::group::group_config;
use crate::config::BrokerConfig;
use crate::log::batch::RecordBatchIter;
use crate::log::LogError;
use crate::partition::Partition;
use crate::replica_manager::ReplicaManager;

/// The records most ShareFetch requests may acquire per partition when the request does not
/// say (`max.poll.records`' default).
pub const DEFAULT_MAX_RECORDS: usize = 500;

/// One share partition led here: its state, and what of it is persisted.
#[derive(Debug)]
struct ShareEntry {
    key: SharePartitionKey,
    state: Mutex<SharePartition>,
    /// Bumped, under `state`'s lock, by every change that must be persisted.
    changes: AtomicU64,
    /// The `changes` value the coordinator holds; held across a write, so that writes go
    /// one at a time.
    persisted: tokio::sync::Mutex<u64>,
}

/// One acknowledgement batch of a request: first and last offset, and the types (one for
/// the range, or one per offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcknowledgementBatch {
    /// The first offset.
    pub first_offset: i64,
    /// The last offset (inclusive).
    pub last_offset: i64,
    /// Kafka's acknowledge type codes.
    pub acknowledge_types: Vec<i8>,
}

impl From<&kafka_protocol::messages::share_fetch_request::AcknowledgementBatch>
    for AcknowledgementBatch
{
    fn from(b: &kafka_protocol::messages::share_fetch_request::AcknowledgementBatch) -> Self {
        Self {
            first_offset: b.first_offset,
            last_offset: b.last_offset,
            acknowledge_types: b.acknowledge_types.clone(),
        }
    }
}

impl From<&kafka_protocol::messages::share_acknowledge_request::AcknowledgementBatch>
    for AcknowledgementBatch
{
    fn from(b: &kafka_protocol::messages::share_acknowledge_request::AcknowledgementBatch) -> Self {
        Self {
            first_offset: b.first_offset,
            last_offset: b.last_offset,
            acknowledge_types: b.acknowledge_types.clone(),
        }
    }
}

/// What a ShareFetch got from one partition.
#[derive(Debug, Clone, Default)]
pub struct FetchedPartition {
    /// Kafka's error code (0: none).
    pub error_code: i16,
    /// The leader epoch of the partition here.
    pub leader_epoch: i32,
    /// Whole record batches holding the acquired records.
    pub records: Bytes,
    /// The acquired runs.
    pub acquired: Vec<AcquiredRecords>,
}

/// Counters and gauges of the share partitions (`weir_share_*`).
#[derive(Debug, Clone)]
pub struct ShareMetrics {
    /// Records acquired by a fetch.
    pub acquired: IntCounter,
    /// Records acquired again after an earlier delivery.
    pub redeliveries: IntCounter,
    /// Records archived (rejected, gaps, out of deliveries).
    pub archived: IntCounter,
    /// Acquisition locks that ran out.
    pub lock_timeouts: IntCounter,
    /// Records acquired and not yet acknowledged, over every share partition here.
    pub in_flight: IntGauge,
    /// Open share sessions.
    pub sessions: IntGauge,
    /// Records acknowledged, by Kafka's acknowledge type (`Accept`, `Release`, `Reject`):
    /// Kafka's `record-acknowledgement-count` of `share-group-metrics`, named as the
    /// Prometheus JMX exporter shows it.
    pub acknowledgements: IntCounterVec,
}

impl ShareMetrics {
    /// The metrics, registered in `registry`.
    pub fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        Ok(Self {
            acquired: counter(
                "weir_share_records_acquired_total",
                "Records handed to share consumers",
            )?,
            redeliveries: counter(
                "weir_share_redeliveries_total",
                "Records handed to a share consumer again after an earlier delivery",
            )?,
            archived: counter(
                "weir_share_records_archived_total",
                "Records archived: rejected, gaps, or out of deliveries",
            )?,
            lock_timeouts: counter(
                "weir_share_acquisition_lock_timeouts_total",
                "Acquisition locks that ran out before an acknowledgement",
            )?,
            in_flight: gauge(
                "weir_share_in_flight_records",
                "Records acquired by share consumers and not yet acknowledged",
            )?,
            sessions: gauge("weir_share_sessions", "Open share sessions")?,
            acknowledgements: {
                let c = IntCounterVec::new(
                    prometheus::Opts::new(
                        "kafka_server_share_group_metrics_record_acknowledgement_total",
                        "Records acknowledged by share consumers, by acknowledge type",
                    ),
                    &["ack_type"],
                )?;
                registry.register(Box::new(c.clone()))?;
                for t in ["Accept", "Release", "Reject"] {
                    c.with_label_values(&[t]);
                }
                c
            },
        })
    }
}

/// The share partitions led here, and the share sessions.
#[derive(Debug)]
pub struct SharePartitionManager {
    config: SharePartitionConfig,
    start_at_earliest: bool,
    replicas: Arc<ReplicaManager>,
    clock: Arc<dyn Clock>,
    partitions: Mutex<HashMap<SharePartitionKey, Arc<ShareEntry>>>,
    persister: SharePersister,
    sessions: Mutex<ShareSessionCache>,
    /// Share partitions a new share session added, to check against the coordinator once
    /// before serving them from memory ([`Self::revalidate`]).
    revalidate: Mutex<std::collections::HashSet<SharePartitionKey>>,
    /// Signalled when records became available again (released, lock expired), so long
    /// polls waiting on the partitions' own watches also wake for those.
    released: tokio::sync::Notify,
    metrics: ShareMetrics,
}

impl SharePartitionManager {
    /// A manager over the partitions of `replicas`.
    pub fn new(
        config: &BrokerConfig,
        replicas: Arc<ReplicaManager>,
        clock: Arc<dyn Clock>,
        persister: SharePersister,
        metrics: ShareMetrics,
    ) -> Self {
        Self {
            config: SharePartitionConfig::from_broker(config),
            start_at_earliest: config.share_auto_offset_reset_earliest(),
            replicas,
            clock,
            partitions: Mutex::new(HashMap::new()),
            persister,
            sessions: Mutex::new(ShareSessionCache::default()),
            revalidate: Mutex::new(std::collections::HashSet::new()),
            released: tokio::sync::Notify::new(),
            metrics,
        }
    }

    /// The persister reaching the share coordinators (the share-group admin APIs use it).
    pub fn persister(&self) -> &SharePersister {
        &self.persister
    }

    /// `group.share.record.lock.duration.ms`, for ShareFetch's `AcquisitionLockTimeoutMs`.
    pub fn lock_duration_ms(&self, group_id: &str) -> i32 {
        let (config, _) = self.group_settings(group_id);
        config.record_lock_duration_ms.min(i64::from(i32::MAX)) as i32
    }

    /// The share-partition settings of `group_id` and whether its new share partitions start
    /// at the log start: the broker's, with the group's own configs
    /// (`share.record.lock.duration.ms`, `share.delivery.count.limit`,
    /// `share.auto.offset.reset`; [`crate::config::group`]) laid over them.
    pub fn group_settings(&self, group_id: &str) -> (SharePartitionConfig, bool) {
        let image = self.replicas.image();
        let Some(own) = image.group_configs.get(group_id) else {
            return (self.config.clone(), self.start_at_earliest);
        };
        let mut config = self.config.clone();
        let mut earliest = self.start_at_earliest;
        for (key, value) in own {
            let valid = group_config(key).filter(|d| d.kind.validate(key, value.trim()).is_ok());
            let Some(def) = valid else { continue };
            let value = value.trim();
            match def.name {
                "share.auto.offset.reset" => earliest = value == "earliest",
                "share.record.lock.duration.ms" => {
                    config.record_lock_duration_ms =
                        value.parse().unwrap_or(config.record_lock_duration_ms)
                }
                "share.delivery.count.limit" => {
                    config.delivery_count_limit =
                        value.parse().unwrap_or(config.delivery_count_limit)
                }
                _ => {}
            }
        }
        (config, earliest)
    }

    /// The current time of the injected clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A ShareFetch's session epoch, added and forgotten partitions. A new session (epoch 0)
    /// marks its partitions for revalidation (see `Self::revalidate`).
    pub fn update_session(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        added: Vec<SharePartitionId>,
        forgotten: Vec<SharePartitionId>,
    ) -> Result<SessionUpdate, ShareSessionError> {
        if epoch == 0 {
            self.revalidate
                .lock()
                .extend(added.iter().map(|(topic_id, partition)| SharePartitionKey {
                    group_id: group_id.to_string(),
                    topic_id: *topic_id,
                    partition: *partition,
                }));
        }
        let mut sessions = self.sessions.lock();
        let result = sessions.update(group_id, member_id, epoch, added, forgotten);
        self.metrics.sessions.set(sessions.len() as i64);
        result
    }

    /// A ShareAcknowledge's session epoch; the session's partitions when it closes it.
    pub fn acknowledge_session(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<Option<BTreeSet<SharePartitionId>>, ShareSessionError> {
        let mut sessions = self.sessions.lock();
        let result = sessions.acknowledge(group_id, member_id, epoch);
        self.metrics.sessions.set(sessions.len() as i64);
        result
    }

    /// A future that completes when records are released after it was created; create it
    /// before reading, as with the partitions' watches.
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    /// The partition led here, or Kafka's error code.
    pub fn leader(&self, topic_id: Uuid, partition: i32) -> Result<Arc<Partition>, i16> {
        let Some(topic) = self.replicas.topic_by_id(topic_id) else {
            return Err(ResponseError::UnknownTopicId.code());
        };
        if !(0..topic.meta.partitions).contains(&partition) {
            return Err(ResponseError::UnknownTopicOrPartition.code());
        }
        match self.replicas.partition(&topic.meta.name, partition) {
            Some(p) if p.is_leader() => Ok(p),
            _ => Err(ResponseError::NotLeaderOrFollower.code()),
        }
    }

    /// The share partition of `group_id` on `partition` (led here) in its current leader
    /// epoch, loaded from its share coordinator first if this broker has not loaded it in
    /// this epoch; Kafka's error code when the coordinator cannot be read.
    async fn share_partition(
        &self,
        group_id: &str,
        topic_id: Uuid,
        index: i32,
        partition: &Partition,
    ) -> Result<Arc<ShareEntry>, i16> {
        let leader_epoch = partition.leader_epoch();
        let key = SharePartitionKey {
            group_id: group_id.to_string(),
            topic_id,
            partition: index,
        };
        let (config, start_at_earliest) = self.group_settings(group_id);
        if let Some(entry) = self.loaded(&key, leader_epoch) {
            {
                // A group config changed: new locks and releases follow it.
                let mut sp = entry.state.lock();
                if sp.config() != &config {
                    sp.set_config(config.clone());
                }
            }
            if !self.revalidate.lock().remove(&key) {
                return Ok(entry);
            }
            match self.revalidate(&entry).await {
                Ok(true) => return Ok(entry),
                Ok(false) => {}
                Err(code) => {
                    // Checked on the next request instead.
                    self.revalidate.lock().insert(key);
                    return Err(code);
                }
            }
        }
        let persisted = self.persister.read(&key, leader_epoch).await?;
        // No state yet, or deleted: a fresh start, in the state epoch the coordinator gave.
        let fresh_epoch = persisted
            .as_ref()
            .filter(|s| s.start_offset < 0)
            .map(|s| s.state_epoch);
        let mut sp = match persisted.filter(|s| s.start_offset >= 0) {
            Some(state) => {
                let mut sp =
                    SharePartition::from_state(config.clone(), state.start_offset, &state.batches);
                sp.state_epoch = state.state_epoch;
                sp
            }
            None => {
                let start = if start_at_earliest {
                    partition.log_start_offset()
                } else {
                    partition.high_watermark()
                };
                let mut sp = SharePartition::new(config, start);
                sp.state_epoch = fresh_epoch.unwrap_or(0);
                sp
            }
        };
        sp.leader_epoch = leader_epoch;
        let mut partitions = self.partitions.lock();
        // Another request may have loaded it meanwhile: the first one in wins.
        if let Some(entry) = partitions
            .get(&key)
            .filter(|e| e.state.lock().leader_epoch == leader_epoch)
        {
            return Ok(entry.clone());
        }
        tracing::debug!(group = group_id, %topic_id, partition = index, leader_epoch, start_offset = sp.start_offset(), "share partition loaded");
        let entry = Arc::new(ShareEntry {
            key: key.clone(),
            state: Mutex::new(sp),
            changes: AtomicU64::new(0),
            persisted: tokio::sync::Mutex::new(0),
        });
        partitions.insert(key, entry.clone());
        Ok(entry)
    }

    /// Whether a loaded share partition still holds the coordinator's state: the state epoch
    /// is the same and the state was not deleted. An admin changes the state only while the
    /// group is empty (AlterShareGroupOffsets, DeleteShareGroupOffsets, DeleteGroups), so the
    /// next member opens a new share session, whose partitions are checked here once; one
    /// found stale is dropped, and the caller loads it again.
    ///
    /// A share partition that never changed (nothing acquired yet) matches a coordinator
    /// without state in the same epoch: it stays, so that one started at the high watermark
    /// (`share.auto.offset.reset=latest`) does not move on past records produced since.
    async fn revalidate(&self, entry: &Arc<ShareEntry>) -> Result<bool, i16> {
        let summary = self.persister.read_summary(&entry.key).await?;
        let state_epoch = entry.state.lock().state_epoch;
        let changed = entry.changes.load(Ordering::Acquire) > 0;
        if summary.state_epoch == state_epoch && (summary.start_offset >= 0 || !changed) {
            return Ok(true);
        }
        self.evict(entry);
        Ok(false)
    }

    /// The share partition of `key` if loaded in `leader_epoch`.
    fn loaded(&self, key: &SharePartitionKey, leader_epoch: i32) -> Option<Arc<ShareEntry>> {
        self.partitions
            .lock()
            .get(key)
            .filter(|e| e.state.lock().leader_epoch == leader_epoch)
            .cloned()
    }

    /// Persists `entry` up to change `version` at least (see the module docs); Kafka's error
    /// code when the coordinator did not take it.
    async fn persist(&self, entry: &ShareEntry, version: u64) -> Result<(), i16> {
        let mut persisted = entry.persisted.lock().await;
        if *persisted >= version {
            return Ok(());
        }
        let (newest, write) = {
            let sp = entry.state.lock();
            let write = StateWrite {
                state_epoch: sp.state_epoch,
                leader_epoch: sp.leader_epoch,
                start_offset: sp.start_offset(),
                batches: sp.state_batches(),
            };
            (entry.changes.load(Ordering::Acquire), write)
        };
        self.persister.write(&entry.key, &write).await?;
        *persisted = newest;
        Ok(())
    }

    /// Applies a member's acknowledgements of one partition; Kafka's error code (0: all
    /// applied and persisted). A batch that fails leaves the others applied, as Kafka.
    /// `allow_renew`: the request said it carries Renew acknowledgements (ShareFetch /
    /// ShareAcknowledge v2 `IsRenewAck`, KIP-1222); a Renew without it, or an unknown type,
    /// is INVALID_REQUEST.
    pub async fn acknowledge(
        &self,
        group_id: &str,
        member_id: &str,
        topic_id: Uuid,
        index: i32,
        batches: &[AcknowledgementBatch],
        allow_renew: bool,
    ) -> i16 {
        let partition = match self.leader(topic_id, index) {
            Ok(p) => p,
            Err(code) => return code,
        };
        let mut parsed = Vec::with_capacity(batches.len());
        for b in batches {
            let types: Option<Vec<AcknowledgeType>> = b
                .acknowledge_types
                .iter()
                .map(|t| {
                    AcknowledgeType::from_code(*t)
                        .filter(|t| allow_renew || *t != AcknowledgeType::Renew)
                })
                .collect();
            match types {
                Some(types) if !types.is_empty() => parsed.push((b, types)),
                _ => return ResponseError::InvalidRequest.code(),
            }
        }
        let entry = match self
            .share_partition(group_id, topic_id, index, &partition)
            .await
        {
            Ok(entry) => entry,
            Err(code) => return code,
        };
        let now = self.now_ms();
        let mut code = 0;
        let mut applied = false;
        let version = {
            let mut sp = entry.state.lock();
            let before = (sp.stats(), sp.acquired_count());
            self.expire(&mut sp, now);
            for (b, types) in parsed {
                match sp.acknowledge(member_id, b.first_offset, b.last_offset, &types, now) {
                    Ok(_) => {
                        // A renewal only moves a lock, which is not persisted.
                        applied |= types.iter().any(|t| *t != AcknowledgeType::Renew);
                        self.count_acknowledgements(b.first_offset, b.last_offset, &types);
                    }
                    Err(e) => {
                        tracing::debug!(group = group_id, member = member_id, error = %e, "share acknowledgement refused");
                        code = e.code();
                    }
                }
            }
            self.publish(&sp, before);
            entry
                .changes
                .fetch_add(u64::from(applied), Ordering::AcqRel)
                + u64::from(applied)
        };
        self.released.notify_waiters();
        if applied {
            if let Err(e) = self.persist(&entry, version).await {
                tracing::warn!(group = group_id, %topic_id, partition = index, code = e, "persisting a share acknowledgement failed");
                self.evict_if_fenced(&entry, e);
                return e;
            }
        }
        code
    }

    /// Acquires records of one partition for a member: reads the log from where the share
    /// partition can acquire (committed data only, below the high watermark) and acquires up
    /// to `max_records` of what it read, persisting the acquisition (delivery counts) before
    /// handing the records out.
    ///
    /// A share partition whose state an admin replaced or deleted meanwhile
    /// (AlterShareGroupOffsets, DeleteShareGroupOffsets, DeleteGroups) is fenced by the
    /// coordinator (FENCED_STATE_EPOCH) on its first write: it is dropped, loaded again, and
    /// the fetch tried once more on the new state.
    pub async fn fetch(
        &self,
        group_id: &str,
        member_id: &str,
        topic_id: Uuid,
        index: i32,
        max_bytes: usize,
        max_records: i32,
    ) -> FetchedPartition {
        let fenced = ResponseError::FencedStateEpoch.code();
        let first = self
            .fetch_once(group_id, member_id, topic_id, index, max_bytes, max_records)
            .await;
        if first.error_code != fenced {
            return first;
        }
        self.fetch_once(group_id, member_id, topic_id, index, max_bytes, max_records)
            .await
    }

    async fn fetch_once(
        &self,
        group_id: &str,
        member_id: &str,
        topic_id: Uuid,
        index: i32,
        max_bytes: usize,
        max_records: i32,
    ) -> FetchedPartition {
        let partition = match self.leader(topic_id, index) {
            Ok(p) => p,
            Err(error_code) => {
                return FetchedPartition {
                    error_code,
                    leader_epoch: -1,
                    ..FetchedPartition::default()
                }
            }
        };
        let leader_epoch = partition.leader_epoch();
        let max_records = if max_records > 0 {
            max_records as usize
        } else {
            DEFAULT_MAX_RECORDS
        };
        let entry = match self
            .share_partition(group_id, topic_id, index, &partition)
            .await
        {
            Ok(entry) => entry,
            Err(error_code) => {
                return FetchedPartition {
                    error_code,
                    leader_epoch,
                    ..FetchedPartition::default()
                }
            }
        };
        let now = self.now_ms();
        let (out, version) =
            self.acquire(&entry, &partition, member_id, max_bytes, max_records, now);
        if out.acquired.is_empty() {
            return out;
        }
        if let Err(error_code) = self.persist(&entry, version).await {
            tracing::warn!(group = group_id, %topic_id, partition = index, code = error_code, "persisting a share acquisition failed; released");
            let mut sp = entry.state.lock();
            let before = (sp.stats(), sp.acquired_count());
            for run in &out.acquired {
                let released = [AcknowledgeType::Release];
                let _ =
                    sp.acknowledge(member_id, run.first_offset, run.last_offset, &released, now);
            }
            self.publish(&sp, before);
            drop(sp);
            self.evict_if_fenced(&entry, error_code);
            self.released.notify_waiters();
            return FetchedPartition {
                error_code,
                leader_epoch,
                ..FetchedPartition::default()
            };
        }
        out
    }

    /// The locked part of [`SharePartitionManager::fetch`]: reads the log and acquires; the
    /// fetched records and the change version to persist.
    fn acquire(
        &self,
        entry: &ShareEntry,
        partition: &Partition,
        member_id: &str,
        max_bytes: usize,
        max_records: usize,
        now: i64,
    ) -> (FetchedPartition, u64) {
        let leader_epoch = partition.leader_epoch();
        let mut sp = entry.state.lock();
        let window = (sp.start_offset(), sp.end_offset());
        let before = (sp.stats(), sp.acquired_count());
        self.expire(&mut sp, now);
        let mut out = FetchedPartition {
            leader_epoch,
            ..FetchedPartition::default()
        };
        let version = |sp: &SharePartition, acquired: bool| {
            let changed = acquired || (sp.start_offset(), sp.end_offset()) != window;
            entry
                .changes
                .fetch_add(u64::from(changed), Ordering::AcqRel)
                + u64::from(changed)
        };
        let Some(mut offset) = sp.fetch_offset() else {
            let v = version(&sp, false);
            return (out, v);
        };
        // One retry: an offset below the log start (retention) moves SPSO to the log start.
        let read = match partition.read(offset, max_bytes, true, false) {
            Err(LogError::OffsetOutOfRange { .. }) => {
                sp.reset_start_offset(partition.log_start_offset());
                let Some(retry) = sp.fetch_offset() else {
                    let v = version(&sp, false);
                    return (out, v);
                };
                offset = retry;
                partition.read(offset, max_bytes, true, false)
            }
            other => other,
        };
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                out.error_code = e.kafka_code();
                let v = version(&sp, false);
                return (out, v);
            }
        };
        let mut remaining = max_records;
        // The byte range of the batches holding acquired records.
        let mut span: Option<(usize, usize)> = None;
        for batch in RecordBatchIter::new(&read.records) {
            let Ok((header, range)) = batch else { break };
            if remaining == 0 {
                break;
            }
            if header.is_control() {
                sp.archive_range(header.base_offset(), header.last_offset());
                continue;
            }
            let got = sp.acquire(
                member_id,
                header.base_offset(),
                header.last_offset(),
                remaining,
                now,
            );
            if got.is_empty() {
                continue;
            }
            for run in got {
                remaining -= (run.last_offset - run.first_offset + 1) as usize;
                push_run(&mut out.acquired, run);
            }
            span = Some(span.map_or((range.start, range.end), |(s, _)| (s, range.end)));
        }
        if let Some((start, end)) = span {
            out.records = read.records.slice(start..end);
        }
        self.publish(&sp, before);
        let v = version(&sp, !out.acquired.is_empty());
        (out, v)
    }

    /// Gives back what `member_id` holds in `partitions` (its share session closed).
    pub fn release_member(
        &self,
        group_id: &str,
        member_id: &str,
        partitions: &BTreeSet<SharePartitionId>,
    ) {
        let mut released = 0;
        for (topic_id, index) in partitions {
            let key = SharePartitionKey {
                group_id: group_id.to_string(),
                topic_id: *topic_id,
                partition: *index,
            };
            let Some(entry) = self.partitions.lock().get(&key).cloned() else {
                continue;
            };
            let mut sp = entry.state.lock();
            let before = (sp.stats(), sp.acquired_count());
            released += sp.release_member(member_id);
            self.publish(&sp, before);
        }
        if released > 0 {
            self.released.notify_waiters();
        }
    }

    /// The earliest acquisition lock expiry among `partitions` of the group, for a long
    /// poll's wake-up.
    pub fn next_lock_expiry(
        &self,
        group_id: &str,
        partitions: &BTreeSet<SharePartitionId>,
    ) -> Option<i64> {
        let map = self.partitions.lock();
        partitions
            .iter()
            .filter_map(|(t, p)| {
                map.get(&SharePartitionKey {
                    group_id: group_id.to_string(),
                    topic_id: *t,
                    partition: *p,
                })
            })
            .filter_map(|e| e.state.lock().next_lock_expiry())
            .min()
    }

    /// Forgets the share partitions of `topic_id` (deleted) or of a partition no longer led
    /// here; called from the replica manager's leadership changes in a later step.
    pub fn forget_partition(&self, topic_id: Uuid, index: i32) {
        self.partitions
            .lock()
            .retain(|k, _| !(k.topic_id == topic_id && k.partition == index));
    }

    /// Counts one applied acknowledgement batch by type (one type for the range, or one per
    /// offset).
    fn count_acknowledgements(&self, first: i64, last: i64, types: &[AcknowledgeType]) {
        let records = (last - first + 1).max(0) as u64;
        let count = |t: &AcknowledgeType, n: u64| {
            let name = match t {
                AcknowledgeType::Accept => "Accept",
                AcknowledgeType::Release => "Release",
                AcknowledgeType::Reject => "Reject",
                AcknowledgeType::Renew => "Renew",
                AcknowledgeType::Gap => return,
            };
            self.metrics
                .acknowledgements
                .with_label_values(&[name])
                .inc_by(n);
        };
        match types {
            [one] => count(one, records),
            per_offset => per_offset.iter().for_each(|t| count(t, 1)),
        }
    }

    /// Drops `entry` if the coordinator fenced its state epoch (an admin replaced or deleted
    /// the state), so that the next request loads the state anew; what it had acquired leaves
    /// the in-flight gauge with it.
    fn evict_if_fenced(&self, entry: &Arc<ShareEntry>, code: i16) {
        if code == ResponseError::FencedStateEpoch.code() {
            self.evict(entry);
        }
    }

    /// Drops `entry` (if still the loaded one), with what it had in flight.
    fn evict(&self, entry: &Arc<ShareEntry>) {
        let mut partitions = self.partitions.lock();
        if partitions
            .get(&entry.key)
            .is_some_and(|e| Arc::ptr_eq(e, entry))
        {
            partitions.remove(&entry.key);
            let in_flight = entry.state.lock().acquired_count() as i64;
            self.metrics.in_flight.sub(in_flight);
            tracing::info!(group = %entry.key.group_id, topic_id = %entry.key.topic_id, partition = entry.key.partition, "share partition state replaced by an admin; reloading it");
        }
    }

    fn expire(&self, sp: &mut SharePartition, now_ms: i64) {
        if sp.expire_locks(now_ms) > 0 {
            self.released.notify_waiters();
        }
    }

    /// Moves the metrics by what one share partition's counters moved since `before`.
    fn publish(&self, sp: &SharePartition, before: (SharePartitionStats, usize)) {
        let (before, before_in_flight) = before;
        let after = sp.stats();
        let m = &self.metrics;
        m.redeliveries
            .inc_by(after.redeliveries - before.redeliveries);
        m.archived.inc_by(after.archived - before.archived);
        m.lock_timeouts
            .inc_by(after.lock_timeouts - before.lock_timeouts);
        m.acquired.inc_by(after.acquired - before.acquired);
        m.in_flight
            .add(sp.acquired_count() as i64 - before_in_flight as i64);
    }
}
