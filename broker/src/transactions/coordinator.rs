//! The transaction coordinator of one broker: the transactional ids whose
//! `__transaction_state` partition it leads, their one write path into that topic, the
//! markers of ending transactions and the timeout timer.
//!
//! Ownership follows leadership, as the group coordinator's: [`LeadershipListener`] marks a
//! partition loading (its ids answer COORDINATOR_LOAD_IN_PROGRESS), replays it to its log end,
//! then serves its ids and restarts the markers of every transaction it finds in
//! PrepareCommit/PrepareAbort, so a coordinator failover in the middle of a commit completes
//! the commit. A partition it no longer leads answers NOT_COORDINATOR.
//!
//! Every change of an id's state is written to `__transaction_state` and waits for the
//! in-sync replicas before memory changes and before the client hears of it. Each id has an
//! async mutex held across that write, so requests for one id apply in order; requests for
//! different ids run in parallel.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::RwLock;
use prometheus::{IntCounter, IntGauge};
use tokio::sync::Mutex;

use super::records::{decode_key, decode_value, encode_key, encode_value};
use super::state::{ClientVersion, Decision, TopicPartition, TransactionMetadata, TxnState};
use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::partition::PartitionError;
use crate::producer_ids::ProducerIdManager;
use crate::replica_manager::{AdminError, CreateTopic, LeadershipListener, ReplicaManager};

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// How long a state change may wait for the in-sync replicas (Kafka's `request.timeout.ms`).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a `__transaction_state` partition stands on this broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ownership {
    Loading { leader_epoch: i32 },
    Active { leader_epoch: i32 },
}

/// One transactional id: its partition and its state (`None` until InitProducerId wrote one).
#[derive(Debug)]
struct Entry {
    partition: i32,
    metadata: Option<TransactionMetadata>,
}

/// Counters and gauges of the coordinator (exported by the broker's registry).
#[derive(Debug, Clone)]
pub struct TransactionMetrics {
    /// Transactions open (Ongoing) on this coordinator.
    pub ongoing: IntGauge,
    /// Transactions committed.
    pub commits: IntCounter,
    /// Transactions aborted (by the producer, a fencing producer or a timeout).
    pub aborts: IntCounter,
    /// Transactions aborted because they outlived their timeout.
    pub timeouts: IntCounter,
}

impl TransactionMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let ongoing = IntGauge::new(
            "weir_transaction_coordinator_ongoing_transactions",
            "Transactions open on this broker's transaction coordinator.",
        )?;
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        registry.register(Box::new(ongoing.clone()))?;
        Ok(Self {
            ongoing,
            commits: counter(
                "weir_transaction_coordinator_commits_total",
                "Transactions committed (every COMMIT marker written).",
            )?,
            aborts: counter(
                "weir_transaction_coordinator_aborts_total",
                "Transactions aborted (every ABORT marker written), whatever asked for it.",
            )?,
            timeouts: counter(
                "weir_transaction_coordinator_timeouts_total",
                "Transactions the coordinator aborted because they outlived transaction.timeout.ms.",
            )?,
        })
    }

    /// Unregistered metrics, for tests.
    pub fn unregistered() -> Self {
        Self::register(&prometheus::Registry::new()).expect("fresh registry")
    }
}

/// What DescribeTransactions and ListTransactions report of an id.
#[derive(Debug, Clone)]
pub struct TransactionListing {
    /// The transactional id.
    pub transactional_id: String,
    /// Its state.
    pub metadata: TransactionMetadata,
}

/// The transaction coordinator. Thread-safe.
#[derive(Debug)]
pub struct TransactionCoordinator {
    pub(super) config: Arc<BrokerConfig>,
    pub(super) replicas: Arc<ReplicaManager>,
    producer_ids: Arc<ProducerIdManager>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) metrics: TransactionMetrics,
    owned: RwLock<HashMap<i32, Ownership>>,
    ids: RwLock<HashMap<String, Arc<Mutex<Entry>>>>,
    /// Connections to other coordinators, for partition leaders' verifications.
    pub(super) peers: crate::replication::client::PeerConnections,
    pub(super) me: Weak<TransactionCoordinator>,
}

impl TransactionCoordinator {
    /// A coordinator that owns nothing until the replica manager reports leaderships.
    pub fn new(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        producer_ids: Arc<ProducerIdManager>,
        clock: Arc<dyn Clock>,
        metrics: TransactionMetrics,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            config,
            replicas,
            producer_ids,
            clock,
            metrics,
            owned: RwLock::new(HashMap::new()),
            ids: RwLock::new(HashMap::new()),
            peers: crate::replication::client::PeerConnections::new(
                "weir-txn-verification",
                super::verification::IDLE_CONNECTIONS_PER_PEER,
            ),
            me: me.clone(),
        })
    }

    /// The coordinator's clock, for handlers that compare times with its state.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Partitions of `__transaction_state`: the topic's, or the setting before it exists.
    fn num_partitions(&self) -> i32 {
        self.replicas
            .topic(TRANSACTION_STATE_TOPIC)
            .map(|t| t.meta.partitions)
            .unwrap_or_else(|| self.config.transaction_state_log_num_partitions())
    }

    /// The `__transaction_state` partition of `transactional_id` (Kafka's hash).
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        crate::group::coordinator::partition_for(transactional_id, self.num_partitions())
    }

    /// Creates `__transaction_state` if it does not exist: compacted, as Kafka's, with
    /// `transaction.state.log.*` partitions, replication (capped at the brokers available)
    /// and segment size.
    pub async fn ensure_topic(&self) -> Result<(), AdminError> {
        if self.replicas.topic(TRANSACTION_STATE_TOPIC).is_some() {
            return Ok(());
        }
        let available = self.replicas.image().placeable_brokers().len().max(1) as i16;
        let replication_factor = self
            .config
            .transaction_state_log_replication_factor()
            .min(available);
        let min_isr = self
            .config
            .transaction_state_log_min_isr()
            .min(i32::from(replication_factor));
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                self.config
                    .transaction_state_log_segment_bytes()
                    .to_string(),
            ),
            ("min.insync.replicas".to_string(), min_isr.to_string()),
        ]);
        match self
            .replicas
            .create_topic(CreateTopic {
                partitions: Some(self.config.transaction_state_log_num_partitions()),
                replication_factor: Some(replication_factor),
                configs,
                ..CreateTopic::new(TRANSACTION_STATE_TOPIC)
            })
            .await
        {
            Ok(_) | Err(AdminError::TopicAlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The partition of `transactional_id` and this coordinator's epoch for it, or the error
    /// a client gets when this broker does not (yet) serve it.
    pub fn check_coordinator(&self, transactional_id: &str) -> Result<(i32, i32), i16> {
        let partition = self.partition_for(transactional_id);
        match self.owned.read().get(&partition) {
            Some(Ownership::Active { leader_epoch }) => Ok((partition, *leader_epoch)),
            Some(Ownership::Loading { .. }) => Err(ResponseError::CoordinatorLoadInProgress.code()),
            None => Err(ResponseError::NotCoordinator.code()),
        }
    }

    fn entry(&self, transactional_id: &str, partition: i32) -> Arc<Mutex<Entry>> {
        if let Some(e) = self.ids.read().get(transactional_id) {
            return e.clone();
        }
        self.ids
            .write()
            .entry(transactional_id.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Entry {
                    partition,
                    metadata: None,
                }))
            })
            .clone()
    }

    /// A snapshot of every id and its entry, for the sweeps (no lock held while they run).
    fn entries(&self) -> Vec<(String, Arc<Mutex<Entry>>)> {
        self.ids
            .read()
            .iter()
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect()
    }

    /// The one write path: appends `metadata` for `transactional_id` to its partition and
    /// waits for the in-sync replicas.
    async fn write(
        &self,
        transactional_id: &str,
        partition: i32,
        metadata: Option<&TransactionMetadata>,
    ) -> Result<(), i16> {
        let Some(log) = self.replicas.partition(TRANSACTION_STATE_TOPIC, partition) else {
            return Err(ResponseError::NotCoordinator.code());
        };
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
            timestamp: self.now_ms(),
            key: Some(encode_key(transactional_id)),
            value: metadata.map(encode_value),
            headers: IndexMap::new(),
        };
        let mut batch = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut batch, [&record], &options)
            .map_err(|_| ResponseError::UnknownServerError.code())?;
        let coordinator_error = |e: PartitionError| {
            tracing::warn!(transactional_id, partition, error = %e, "writing __transaction_state failed");
            match e {
                PartitionError::NotLeader => ResponseError::NotCoordinator.code(),
                _ => ResponseError::CoordinatorNotAvailable.code(),
            }
        };
        let info = log.append(&batch.freeze()).map_err(coordinator_error)?;
        log.wait_for_high_watermark(info.appended(), 1, WRITE_TIMEOUT)
            .await
            .map_err(coordinator_error)
    }

    /// Writes `next` and, once replicated, makes it the id's state; starts the markers of a
    /// Prepare* state and keeps the metrics.
    async fn apply(
        &self,
        transactional_id: &str,
        entry: &mut Entry,
        next: TransactionMetadata,
    ) -> Result<(), i16> {
        self.write(transactional_id, entry.partition, Some(&next))
            .await?;
        let was_ongoing = entry
            .metadata
            .as_ref()
            .is_some_and(|m| m.state == TxnState::Ongoing);
        let ongoing = next.state == TxnState::Ongoing;
        if ongoing && !was_ongoing {
            self.metrics.ongoing.inc();
        } else if was_ongoing && !ongoing {
            self.metrics.ongoing.dec();
        }
        let preparing = next.state.is_preparing();
        entry.metadata = Some(next.clone());
        if preparing {
            self.send_markers(transactional_id.to_string(), entry.partition, next);
        }
        Ok(())
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use.
    pub async fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), i16> {
        if timeout_ms <= 0 || i64::from(timeout_ms) > self.config.transaction_max_timeout_ms() {
            return Err(ResponseError::InvalidTransactionTimeout.code());
        }
        let (partition, _) = self.check_coordinator(transactional_id)?;
        let entry = self.entry(transactional_id, partition);
        let mut entry = entry.lock().await;
        let now = self.now_ms();
        let decision = match &entry.metadata {
            None => {
                if expected.is_some() {
                    // Kafka: a KIP-360 re-init of an id the coordinator does not know.
                    return Err(ResponseError::InvalidProducerIdMapping.code());
                }
                Decision::Write(TransactionMetadata::new(
                    self.new_producer_id().await?,
                    timeout_ms,
                    now,
                ))
            }
            Some(current) => match current.init_producer(expected, timeout_ms, now) {
                Decision::NewProducerId => {
                    current.rotate_producer(self.new_producer_id().await?, timeout_ms, now)
                }
                d => d,
            },
        };
        match decision {
            Decision::Reply(code) if code != 0 => Err(code),
            Decision::Reply(_) | Decision::NewProducerId => {
                Err(ResponseError::UnknownServerError.code())
            }
            Decision::Write(next) => {
                let fencing = next.state == TxnState::PrepareAbort;
                let ids = (next.producer_id, next.producer_epoch);
                self.apply(transactional_id, &mut entry, next).await?;
                if fencing {
                    // The open transaction is being aborted: the client retries.
                    return Err(ResponseError::ConcurrentTransactions.code());
                }
                Ok(ids)
            }
        }
    }

    async fn new_producer_id(&self) -> Result<i64, i16> {
        let Some(controller) = self.replicas.controller() else {
            return Err(ResponseError::CoordinatorNotAvailable.code());
        };
        self.producer_ids.next_id(controller).await.map_err(|e| {
            tracing::error!(error = %e, "allocating a producer id");
            ResponseError::CoordinatorNotAvailable.code()
        })
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn (`ClientVersion::V1`), or an implicit add for
    /// a transactions-version-2 client: the error code for all of `partitions`.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        client: ClientVersion,
    ) -> i16 {
        let (partition, _) = match self.check_coordinator(transactional_id) {
            Ok(p) => p,
            Err(code) => return code,
        };
        let entry = self.entry(transactional_id, partition);
        let mut entry = entry.lock().await;
        let Some(current) = &entry.metadata else {
            return ResponseError::InvalidProducerIdMapping.code();
        };
        match current.add_partitions(
            producer_id,
            producer_epoch,
            partitions,
            self.now_ms(),
            client,
        ) {
            Decision::Reply(code) => code,
            Decision::NewProducerId => ResponseError::UnknownServerError.code(),
            Decision::Write(next) => match self.apply(transactional_id, &mut entry, next).await {
                Ok(()) => 0,
                Err(code) => code,
            },
        }
    }

    /// Whether every one of `partitions` is in the open transaction of the producer (the
    /// verify-only form of AddPartitionsToTxn, v4+). A transaction being ended answers
    /// CONCURRENT_TRANSACTIONS, as in Kafka: the producer's next transaction may include the
    /// partition once the markers are written.
    pub async fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<bool>, i16> {
        let (partition, _) = self.check_coordinator(transactional_id)?;
        let entry = self.entry(transactional_id, partition);
        let entry = entry.lock().await;
        let Some(current) = &entry.metadata else {
            return Err(ResponseError::InvalidProducerIdMapping.code());
        };
        if current.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping.code());
        }
        if current.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced.code());
        }
        if matches!(
            current.state,
            TxnState::PrepareCommit | TxnState::PrepareAbort
        ) {
            return Err(ResponseError::ConcurrentTransactions.code());
        }
        let open = current.state == TxnState::Ongoing;
        Ok(partitions
            .iter()
            .map(|p| open && current.partitions.contains(p))
            .collect())
    }

    /// EndTxn: answered once PrepareCommit/PrepareAbort is replicated; the markers go on in
    /// the background. The producer id and epoch the client continues with (EndTxn v5:
    /// bumped by the end, see [`TransactionMetadata::end_v2`]), or the error code.
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        client: ClientVersion,
    ) -> Result<(i64, i16), i16> {
        let (partition, _) = self.check_coordinator(transactional_id)?;
        let entry = self.entry(transactional_id, partition);
        let mut entry = entry.lock().await;
        let Some(current) = &entry.metadata else {
            return Err(ResponseError::InvalidProducerIdMapping.code());
        };
        let now = self.now_ms();
        let decision = match client {
            ClientVersion::V1 => current.end(producer_id, producer_epoch, commit, now),
            ClientVersion::V2 => {
                match current.end_v2(producer_id, producer_epoch, commit, now, None) {
                    Decision::NewProducerId => {
                        let next = self.new_producer_id().await?;
                        current.end_v2(producer_id, producer_epoch, commit, now, Some(next))
                    }
                    d => d,
                }
            }
        };
        match decision {
            Decision::Reply(0) => Ok(current.client_producer()),
            Decision::Reply(code) => Err(code),
            Decision::NewProducerId => Err(ResponseError::UnknownServerError.code()),
            Decision::Write(next) => {
                let continues_with = next.client_producer();
                self.apply(transactional_id, &mut entry, next).await?;
                Ok(continues_with)
            }
        }
    }

    /// Called by the marker task once every marker of `written` is on its partition: writes
    /// CompleteCommit/CompleteAbort, unless the id moved on meanwhile.
    pub(super) async fn complete(&self, transactional_id: &str, written: &TransactionMetadata) {
        let Some(entry) = self.ids.read().get(transactional_id).cloned() else {
            return;
        };
        let mut entry = entry.lock().await;
        if self.check_coordinator(transactional_id).is_err() {
            return;
        }
        let same = entry.metadata.as_ref() == Some(written);
        let Some(next) = same.then(|| written.complete(self.now_ms())).flatten() else {
            return;
        };
        let committed = next.state == TxnState::CompleteCommit;
        if self.apply(transactional_id, &mut entry, next).await.is_ok() {
            if committed {
                self.metrics.commits.inc();
            } else {
                self.metrics.aborts.inc();
            }
        }
    }

    /// DescribeTransactions of one id.
    pub async fn describe(&self, transactional_id: &str) -> Result<TransactionMetadata, i16> {
        self.check_coordinator(transactional_id)?;
        let entry = self.ids.read().get(transactional_id).cloned();
        let Some(entry) = entry else {
            return Err(ResponseError::TransactionalIdNotFound.code());
        };
        let metadata = entry.lock().await.metadata.clone();
        metadata.ok_or(ResponseError::TransactionalIdNotFound.code())
    }

    /// Every id this coordinator serves, with its state.
    pub async fn list(&self) -> Vec<TransactionListing> {
        let ids = self.entries();
        let mut listings = Vec::with_capacity(ids.len());
        for (id, entry) in ids {
            if self.check_coordinator(&id).is_err() {
                continue;
            }
            let metadata = entry.lock().await.metadata.clone();
            if let Some(metadata) = metadata {
                listings.push(TransactionListing {
                    transactional_id: id,
                    metadata,
                });
            }
        }
        listings.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        listings
    }

    /// Aborts the open transactions that outlived their timeout (Kafka's
    /// `abortTimedOutTransactions`, every
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub async fn abort_timed_out(&self) {
        let now = self.now_ms();
        let ids = self.entries();
        for (id, entry) in ids {
            if self.check_coordinator(&id).is_err() {
                continue;
            }
            let mut entry = entry.lock().await;
            let Some(next) = entry.metadata.as_ref().and_then(|m| m.expire(now)) else {
                continue;
            };
            tracing::info!(transactional_id = %id, producer_id = next.producer_id, "aborting a transaction past its timeout");
            if self.apply(&id, &mut entry, next).await.is_ok() {
                self.metrics.timeouts.inc();
            }
        }
    }

    /// Forgets the ids whose producers have been idle longer than
    /// `transactional.id.expiration.ms` with no transaction open (Kafka's
    /// `removeExpiredTransactionalIds`): a tombstone in `__transaction_state`, then out of
    /// memory. A producer coming back later gets a new producer id.
    pub async fn expire_transactional_ids(&self) {
        let now = self.now_ms();
        let expiration = self.config.transactional_id_expiration_ms();
        let ids = self.entries();
        for (id, entry) in ids {
            if self.check_coordinator(&id).is_err() {
                continue;
            }
            let mut entry = entry.lock().await;
            let idle = entry.metadata.as_ref().is_some_and(|m| {
                matches!(
                    m.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && now.saturating_sub(m.update_ms) > expiration
            });
            if !idle || self.write(&id, entry.partition, None).await.is_err() {
                continue;
            }
            entry.metadata = None;
            drop(entry);
            tracing::info!(transactional_id = %id, "transactional id expired");
            self.ids.write().remove(&id);
        }
    }

    /// Replays `partition` to its log end and serves its ids, restarting the markers of the
    /// transactions that were ending; unless it resigned or was re-elected meanwhile.
    fn load(&self, partition: i32, leader_epoch: i32, runtime: tokio::runtime::Handle) {
        let loaded = match self.replicas.partition(TRANSACTION_STATE_TOPIC, partition) {
            Some(log) => replay(&log),
            None => HashMap::new(),
        };
        let mut owned = self.owned.write();
        if owned.get(&partition) != Some(&Ownership::Loading { leader_epoch }) {
            return;
        }
        let mut ids = self.ids.write();
        let mut ending = Vec::new();
        for (id, metadata) in loaded {
            if metadata.state == TxnState::Ongoing {
                self.metrics.ongoing.inc();
            }
            if metadata.state.is_preparing() {
                ending.push((id.clone(), metadata.clone()));
            }
            ids.insert(
                id,
                Arc::new(Mutex::new(Entry {
                    partition,
                    metadata: Some(metadata),
                })),
            );
        }
        owned.insert(partition, Ownership::Active { leader_epoch });
        drop(ids);
        drop(owned);
        tracing::info!(
            partition,
            leader_epoch,
            ending = ending.len(),
            "loaded __transaction_state partition"
        );
        let _guard = runtime.enter();
        for (id, metadata) in ending {
            self.send_markers(id, partition, metadata);
        }
    }

    fn resign(&self, partition: i32) {
        self.owned.write().remove(&partition);
        let mut ids = self.ids.write();
        ids.retain(|_, entry| match entry.try_lock() {
            Ok(e) => {
                let gone = e.partition == partition;
                if gone
                    && e.metadata
                        .as_ref()
                        .is_some_and(|m| m.state == TxnState::Ongoing)
                {
                    self.metrics.ongoing.dec();
                }
                !gone
            }
            // A request in flight keeps the entry; its write fails (not the leader any more)
            // and the next request finds the partition not owned.
            Err(_) => true,
        });
    }
}

/// The latest state per transactional id in a `__transaction_state` partition (a tombstone
/// forgets the id), read to the log end (a new leader never truncates its own log).
fn replay(log: &crate::partition::Partition) -> HashMap<String, TransactionMetadata> {
    let mut states = HashMap::new();
    let mut offset = log.log_start_offset();
    loop {
        let read = match log.read_to_log_end(offset, 1 << 20) {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(error = %e, offset, "reading __transaction_state failed");
                break;
            }
        };
        if read.records.is_empty() {
            break;
        }
        for item in crate::log::batch::RecordBatchIter::new(&read.records) {
            let Ok((header, range)) = item else { break };
            offset = offset.max(header.next_offset());
            if header.is_control() {
                continue;
            }
            let mut bytes = read.records.slice(range);
            let Ok(set) = RecordBatchDecoder::decode(&mut bytes) else {
                tracing::warn!(
                    offset = header.base_offset(),
                    "skipping an undecodable __transaction_state batch"
                );
                continue;
            };
            for record in set.records {
                let Some(Ok(id)) = record.key.as_deref().map(decode_key) else {
                    continue;
                };
                match record.value.as_deref().map(decode_value) {
                    None => {
                        states.remove(&id);
                    }
                    Some(Ok(metadata)) => {
                        states.insert(id, metadata);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(transactional_id = %id, error = %e, "skipping an undecodable __transaction_state value")
                    }
                }
            }
        }
    }
    states
}

impl LeadershipListener for TransactionCoordinator {
    fn on_become_leader(&self, topic: &str, partition: i32, leader_epoch: i32) {
        if topic != TRANSACTION_STATE_TOPIC {
            return;
        }
        {
            let mut owned = self.owned.write();
            if let Some(Ownership::Active { .. }) = owned.get(&partition) {
                owned.insert(partition, Ownership::Active { leader_epoch });
                return;
            }
            owned.insert(partition, Ownership::Loading { leader_epoch });
        }
        match (tokio::runtime::Handle::try_current(), self.me.upgrade()) {
            (Ok(runtime), Some(me)) => {
                let handle = runtime.clone();
                drop(runtime.spawn_blocking(move || me.load(partition, leader_epoch, handle)));
            }
            _ => tracing::error!(
                partition,
                "no runtime to load a __transaction_state partition"
            ),
        }
    }

    fn on_resign(&self, topic: &str, partition: i32) {
        if topic == TRANSACTION_STATE_TOPIC {
            self.resign(partition);
        }
    }
}
