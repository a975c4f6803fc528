//! One partition of a topic on this broker: its log, the offsets clients see, and its role in
//! replication ([`Role`]).
//!
//! - **Offline** (at start, and without a live leader): serves nothing.
//! - **Leader**: appends stamp the leader epoch; follower fetches report their positions to
//!   [`LeaderState`], which bounds the high watermark by the ISR and proposes ISR changes
//!   that the caller sends to the controller; `acks=all` waits on [`Partition::wait_for_high_watermark`].
//! - **Follower**: appends batches fetched from the leader as they are, truncates where its
//!   log diverged, and takes the leader's high watermark (capped by its own log end).
//!
//! Thread-safety: the log sits behind a `RwLock`; appends take it for writing (one at a time
//! per partition, which is what assigns offsets in order), reads and offset queries take it
//! for reading and run concurrently. The role sits behind a `Mutex` taken before the log
//! lock whenever both are needed, never the other way round.

pub mod leader;
pub mod sequence_gaps;
pub mod verification;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::Clock;
use crate::controller::command::PartitionChange;
use crate::log::{Appended, Log, LogAppendInfo, LogConfig, LogError, PendingFlush, TxnMarker};
use leader::{IsrChangeFailure, LeaderState};
use sequence_gaps::RefusedBatches;
use verification::{VerificationGuard, VerificationGuards};

/// An append holding the partition's locks this long is logged: every produce to the
/// partition waited for it.
const SLOW_APPEND: Duration = Duration::from_millis(100);

/// This broker's part in replicating a partition.
#[derive(Debug, Clone)]
pub enum Role {
    /// Leader, with what it knows of its followers.
    Leader(LeaderState),
    /// Follower of `leader` in `leader_epoch`.
    Follower {
        /// The leader's id.
        leader: i32,
        /// The leader epoch.
        leader_epoch: i32,
    },
    /// A replica without a live leader: serves nothing.
    Offline {
        /// The leader epoch.
        leader_epoch: i32,
    },
}

/// Why a partition operation was refused; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// `NOT_LEADER_OR_FOLLOWER` (6).
    #[error("this broker is not the leader of the partition")]
    NotLeader,
    /// `FENCED_LEADER_EPOCH` (74): the request carries an older epoch.
    #[error("leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch {
        /// The request's epoch.
        requested: i32,
        /// This replica's epoch.
        current: i32,
    },
    /// `UNKNOWN_LEADER_EPOCH` (76): the request carries a newer epoch than this replica knows.
    #[error("leader epoch {requested} is newer than the current {current}")]
    UnknownLeaderEpoch {
        /// The request's epoch.
        requested: i32,
        /// This replica's epoch.
        current: i32,
    },
    /// `NOT_ENOUGH_REPLICAS` (19).
    #[error("min.insync.replicas is {min_isr} but the in-sync replica set has {isr} member(s)")]
    NotEnoughReplicas {
        /// ISR size.
        isr: usize,
        /// The topic's `min.insync.replicas`.
        min_isr: usize,
    },
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND` (20).
    #[error(
        "the in-sync replica set shrank below min.insync.replicas ({min_isr}) after the append"
    )]
    NotEnoughReplicasAfterAppend {
        /// The topic's `min.insync.replicas`.
        min_isr: usize,
    },
    /// `REQUEST_TIMED_OUT` (7): the ISR did not replicate in time.
    #[error("the in-sync replicas did not replicate the records within the timeout")]
    Timeout,
    /// `POLICY_VIOLATION` (44): DeleteRecords on a topic whose `cleanup.policy` lacks `delete`.
    #[error("records of {topic}-{partition} cannot be deleted: its cleanup.policy is compact")]
    DeleteOnCompactedTopic {
        /// The topic.
        topic: String,
        /// The partition index.
        partition: i32,
    },
    /// `INVALID_TXN_STATE` (48): a transactional batch whose transaction the coordinator did
    /// not confirm includes this partition (KIP-890 verification), or whose confirmation a
    /// marker made stale.
    #[error("producer {producer_id} at epoch {producer_epoch} has no verified transaction including this partition")]
    UnverifiedTransaction {
        /// The producer id.
        producer_id: i64,
        /// The batch's producer epoch.
        producer_epoch: i16,
    },
    /// The retriable error of an earlier batch of the same producer that was refused before
    /// its append, for a batch out of sequence only because of it (see [`sequence_gaps`]).
    #[error("{reason}")]
    BehindRefusedBatch {
        /// The earlier batch's error.
        error: ResponseError,
        /// Why.
        reason: String,
    },
    /// A storage error.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl PartitionError {
    /// The Kafka error a client gets.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            PartitionError::NotLeader => ResponseError::NotLeaderOrFollower,
            PartitionError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            PartitionError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
            PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
            PartitionError::NotEnoughReplicasAfterAppend { .. } => {
                ResponseError::NotEnoughReplicasAfterAppend
            }
            PartitionError::Timeout => ResponseError::RequestTimedOut,
            PartitionError::DeleteOnCompactedTopic { .. } => ResponseError::PolicyViolation,
            PartitionError::UnverifiedTransaction { .. } => ResponseError::InvalidTxnState,
            PartitionError::BehindRefusedBatch { error, .. } => *error,
            PartitionError::Log(e) => e.kafka_error(),
        }
    }

    /// The Kafka error code, for a response field.
    pub fn code(&self) -> i16 {
        self.kafka_error().code()
    }
}

/// Where a follower fetches from next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerPosition {
    /// The leader.
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// This log's end offset.
    pub fetch_offset: i64,
    /// The newest epoch in this log, -1 if none.
    pub last_fetched_epoch: i32,
    /// This log's start offset.
    pub log_start_offset: i64,
}

/// What a leader answers a follower's fetch.
#[derive(Debug, Clone)]
pub struct FollowerFetch {
    /// Batches from the fetch offset (empty when diverged, or when they are in `file`).
    pub records: Bytes,
    /// The batches as a range of the segment file (see [`Partition::fetch_for_follower`]).
    pub file: Option<crate::log::FileRecords>,
    /// The leader's high watermark.
    pub high_watermark: i64,
    /// The leader's log start offset.
    pub log_start_offset: i64,
    /// `(epoch, end offset)` where the follower's log diverged, if it did.
    pub diverging: Option<(i32, i64)>,
    /// An ISR expansion to send to the controller.
    pub isr_change: Option<PartitionChange>,
    /// The follower is in the ISR and at the log end, with nothing to propose: reading again
    /// answers the same until the partition changes (what a fetch session may skip).
    pub settled: bool,
}

/// A partition hosted by this broker.
#[derive(Debug)]
pub struct Partition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index within the topic.
    pub index: i32,
    log: RwLock<Log>,
    role: Mutex<Role>,
    /// The high watermark, for `acks=all` waiters; it also changes (value or not) on every
    /// leader append and role change, which is what wakes long-polling fetches.
    high_watermark_tx: watch::Sender<i64>,
    clock: Arc<dyn Clock>,
    last_periodic_flush: Mutex<Instant>,
    /// Open transaction verifications (KIP-890), see [`verification`].
    verification: Mutex<VerificationGuards>,
    /// Idempotent batches refused before their append, see [`sequence_gaps`].
    refused: Mutex<RefusedBatches>,
}

/// Sizes and offsets of a partition, for metrics and admin answers.
#[derive(Debug, Clone, Copy)]
pub struct PartitionStats {
    /// Bytes of all segments.
    pub size_bytes: u64,
    /// First offset still in the log.
    pub log_start_offset: i64,
    /// Offset the next appended record will get.
    pub log_end_offset: i64,
    /// Number of segments.
    pub segments: usize,
    /// Every offset below this is fsynced.
    pub recovery_point: i64,
    /// High watermark minus last stable offset: how far open transactions hold
    /// `read_committed` consumers back.
    pub last_stable_offset_lag: i64,
}

/// What a read returned.
#[derive(Debug, Clone)]
pub struct PartitionRead {
    /// Whole record batches, exactly as stored (empty when they are in `file`).
    pub records: Bytes,
    /// The batches as a range of the segment file, for a read that asked for one
    /// ([`Partition::read_for_fetch`]).
    pub file: Option<crate::log::FileRecords>,
    /// High watermark at the time of the read.
    pub high_watermark: i64,
    /// Last stable offset at the time of the read.
    pub last_stable_offset: i64,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
    /// For a `read_committed` read: the aborted transactions overlapping what was read.
    pub aborted: Option<Vec<crate::log::AbortedTxn>>,
}

impl Partition {
    /// The directory a partition's log lives in: `<data-dir>/<topic>-<index>`.
    pub fn dir_name(topic: &str, index: i32) -> String {
        format!("{topic}-{index}")
    }

    /// Opens (recovering if needed) or creates the partition's log under `data_dir`.
    pub fn open(
        data_dir: &std::path::Path,
        topic: Arc<str>,
        topic_id: Uuid,
        index: i32,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LogError> {
        let dir: PathBuf = data_dir.join(Self::dir_name(&topic, index));
        let log = Log::open(&dir, config, clock.clone())?;
        let (high_watermark_tx, _) = watch::channel(log.high_watermark());
        Ok(Self {
            topic,
            topic_id,
            index,
            log: RwLock::new(log),
            // Serves nothing until the metadata image gives it a role.
            role: Mutex::new(Role::Offline { leader_epoch: -1 }),
            high_watermark_tx,
            clock,
            last_periodic_flush: Mutex::new(Instant::now()),
            verification: Mutex::new(VerificationGuards::default()),
            refused: Mutex::new(RefusedBatches::default()),
        })
    }

    /// Writes a file of the replica's directory, fsynced with its log's next flush
    /// ([`Log::write_file_unsynced`]).
    pub fn write_file_unsynced(&self, name: &str, content: &[u8]) -> Result<(), LogError> {
        self.log.read().write_file_unsynced(name, content)
    }

    /// A receiver that changes on every append as leader, high watermark move and role change:
    /// what a long-polling fetch of this partition waits for.
    pub fn subscribe_changes(&self) -> watch::Receiver<i64> {
        self.high_watermark_tx.subscribe()
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role.lock().clone()
    }

    /// The leader epoch this replica knows.
    pub fn leader_epoch(&self) -> i32 {
        match &*self.role.lock() {
            Role::Leader(l) => l.leader_epoch,
            Role::Follower { leader_epoch, .. } | Role::Offline { leader_epoch } => *leader_epoch,
        }
    }

    /// Whether this replica serves produce and consumer fetches.
    pub fn is_leader(&self) -> bool {
        matches!(&*self.role.lock(), Role::Leader(_))
    }

    /// Checks a request's `current_leader_epoch` (-1: not given) against this leader.
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), PartitionError> {
        let role = self.role.lock();
        let current = match &*role {
            Role::Leader(l) => l.leader_epoch,
            _ => return Err(PartitionError::NotLeader),
        };
        match requested {
            -1 => Ok(()),
            r if r < current => Err(PartitionError::FencedLeaderEpoch {
                requested: r,
                current,
            }),
            r if r > current => Err(PartitionError::UnknownLeaderEpoch {
                requested: r,
                current,
            }),
            _ => Ok(()),
        }
    }

    /// Appends a producer's record batches as leader. With `min_isr`, refuses when the ISR
    /// is smaller (`acks=all`).
    pub fn append(&self, records: &Bytes) -> Result<LogAppendInfo, PartitionError> {
        self.append_checked(records, None)
    }

    /// [`Partition::append`] that first checks the ISR holds at least `min_isr` replicas.
    pub fn append_checked(
        &self,
        records: &Bytes,
        min_isr: Option<usize>,
    ) -> Result<LogAppendInfo, PartitionError> {
        let appended = self.append_on_leader(min_isr, |log, epoch| {
            Ok(log.append_as_leader(records, epoch)?)
        });
        self.explain_sequence_gaps(records, appended)
    }

    /// Keeps a client append's outcome, except that an idempotent batch refused before its
    /// append is remembered, and a later batch of the same producer out of sequence only
    /// because of it gets the same retriable error (see [`sequence_gaps`]).
    fn explain_sequence_gaps(
        &self,
        records: &Bytes,
        appended: Result<LogAppendInfo, PartitionError>,
    ) -> Result<LogAppendInfo, PartitionError> {
        let error = match appended {
            Ok(info) => return Ok(info),
            Err(e) => e,
        };
        let now = Instant::now();
        match &error {
            PartitionError::NotLeader
            | PartitionError::NotEnoughReplicas { .. }
            | PartitionError::Log(LogError::Io { .. }) => {
                self.refused
                    .lock()
                    .record(records, error.kafka_error(), error.to_string(), now);
            }
            &PartitionError::Log(LogError::OutOfOrderSequence {
                producer_id,
                epoch,
                first_sequence,
                last_sequence,
            }) => {
                let refused = self.refused.lock();
                if let Some(r) =
                    refused.explains(producer_id, epoch, first_sequence, last_sequence, now)
                {
                    tracing::debug!(topic = %self.topic, partition = self.index, producer_id, epoch, first_sequence, last_sequence, "a batch behind a refused one gets the refused one's error");
                    return Err(PartitionError::BehindRefusedBatch {
                        error: r.error,
                        reason: format!(
                            "sequence {first_sequence} follows a batch refused before it: {}",
                            r.reason
                        ),
                    });
                }
            }
            _ => {}
        }
        Err(error)
    }

    /// What a produce needs before its transactional batches may open a transaction here:
    /// for each producer of `records` whose transaction this partition does not have open at
    /// the batch's epoch, a guard to hold while the transaction coordinator is asked (see
    /// [`verification`]). Empty: append at once.
    pub fn start_verification(&self, records: &Bytes) -> Vec<VerificationGuard> {
        let producers = verification::transactional_producers(records);
        if producers.is_empty() {
            return Vec::new();
        }
        let log = self.log.read();
        let mut guards = self.verification.lock();
        producers
            .into_iter()
            .filter(|&(id, epoch)| !verification::has_ongoing_transaction(&log, id, epoch))
            .map(|(id, epoch)| guards.start(id, epoch))
            .collect()
    }

    /// The coordinator did not confirm `guard`'s transaction: forget the guard.
    pub fn discard_verification(&self, guard: &VerificationGuard) {
        self.verification.lock().discard(guard);
    }

    /// [`Partition::append_checked`] for a produce under transaction verification: every
    /// transactional batch must continue a transaction open here at its epoch, or be covered
    /// by one of `guards` still open (no marker of its producer since), else
    /// [`PartitionError::UnverifiedTransaction`] and nothing is appended.
    pub fn append_verified(
        &self,
        records: &Bytes,
        min_isr: Option<usize>,
        guards: &[VerificationGuard],
    ) -> Result<LogAppendInfo, PartitionError> {
        let producers = verification::transactional_producers(records);
        let appended = self.append_on_leader(min_isr, |log, epoch| {
            self.check_verified(log, &producers, guards)?;
            Ok(log.append_as_leader(records, epoch)?)
        });
        self.explain_sequence_gaps(records, appended)
    }

    /// Under the log lock: each of `producers` continues a transaction open here at its epoch
    /// or is covered by one of `guards` still open.
    fn check_verified(
        &self,
        log: &Log,
        producers: &[(i64, i16)],
        guards: &[VerificationGuard],
    ) -> Result<(), PartitionError> {
        let open = self.verification.lock();
        for &(producer_id, producer_epoch) in producers {
            let verified = verification::has_ongoing_transaction(log, producer_id, producer_epoch)
                || guards.iter().any(|g| {
                    g.producer_id == producer_id
                        && g.producer_epoch == producer_epoch
                        && open.holds(g)
                });
            if !verified {
                return Err(PartitionError::UnverifiedTransaction {
                    producer_id,
                    producer_epoch,
                });
            }
        }
        Ok(())
    }

    /// Appends batches a coordinator built (transactional offset commits) as leader; see
    /// [`Log::append_as_coordinator`]. With `guards` (KIP-890 verification of TxnOffsetCommit)
    /// every transactional batch must continue a transaction open here at its epoch or be
    /// covered by a guard still open, as for [`Partition::append_verified`].
    pub fn append_as_coordinator(
        &self,
        records: &Bytes,
        guards: Option<&[VerificationGuard]>,
    ) -> Result<LogAppendInfo, PartitionError> {
        let producers = match guards {
            Some(_) => verification::transactional_producers(records),
            None => Vec::new(),
        };
        self.append_on_leader(None, |log, epoch| {
            if let Some(guards) = guards {
                self.check_verified(log, &producers, guards)?;
            }
            Ok(log.append_as_coordinator(records, epoch)?)
        })
    }

    /// The guard to hold while the coordinator is asked whether the producer's transaction
    /// includes this partition, or `None` when the partition has that transaction open
    /// already (see [`verification`]).
    pub fn start_producer_verification(
        &self,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Option<VerificationGuard> {
        let log = self.log.read();
        if verification::has_ongoing_transaction(&log, producer_id, producer_epoch) {
            return None;
        }
        Some(self.verification.lock().start(producer_id, producer_epoch))
    }

    /// Appends a transaction marker as leader (WriteTxnMarkers). The caller waits for the
    /// high watermark to pass it, as Kafka writes markers with `acks=all`.
    pub fn append_txn_marker(&self, marker: &TxnMarker) -> Result<LogAppendInfo, PartitionError> {
        self.append_on_leader(None, |log, epoch| {
            let info = log.append_marker_as_leader(marker, epoch)?;
            self.verification.lock().on_marker(marker.producer_id);
            Ok(info)
        })
    }

    /// Runs `append` on the log under the leader's locks (refused unless this replica leads,
    /// and with `min_isr` unless the ISR is that large), then advances the high watermark,
    /// wakes waiting fetches and runs the flushes rolls queued. An append that holds the locks
    /// for [`SLOW_APPEND`] or longer is logged.
    fn append_on_leader(
        &self,
        min_isr: Option<usize>,
        append: impl FnOnce(&mut Log, i32) -> Result<LogAppendInfo, PartitionError>,
    ) -> Result<LogAppendInfo, PartitionError> {
        let (info, flushes) = {
            let mut role = self.role.lock();
            let mut log = self.log.write();
            let locked = Instant::now();
            let info = match &mut *role {
                Role::Leader(leader) => {
                    if let Some(min_isr) = min_isr {
                        if leader.isr.len() < min_isr {
                            return Err(PartitionError::NotEnoughReplicas {
                                isr: leader.isr.len(),
                                min_isr,
                            });
                        }
                    }
                    let mut info = append(&mut log, leader.leader_epoch)?;
                    info.leader_epoch = leader.leader_epoch;
                    advance_high_watermark(leader, &mut log);
                    info
                }
                _ => return Err(PartitionError::NotLeader),
            };
            self.high_watermark_tx.send_replace(log.high_watermark());
            let flushes = log.take_pending_flushes();
            let held = locked.elapsed();
            if held >= SLOW_APPEND {
                // Every produce to the partition waited this long: the disk (a roll's new
                // files, a write blocked by writeback) is the usual cause.
                tracing::warn!(topic = %self.topic, partition = self.index, held_ms = held.as_millis() as u64, rolled = !flushes.is_empty(), "slow append");
            }
            (info, flushes)
        };
        self.run_pending_flushes(flushes);
        Ok(info)
    }

    /// Runs the flushes queued by segment rolls (the rolled segments' fsyncs) on a blocking
    /// thread, after the locks are released: appends never wait for them. Without a runtime
    /// (tests of this type alone) they run here.
    fn run_pending_flushes(&self, flushes: Vec<PendingFlush>) {
        if flushes.is_empty() {
            return;
        }
        let (topic, index) = (self.topic.clone(), self.index);
        let work = move || {
            for flush in flushes {
                let upto = flush.upto();
                let started = Instant::now();
                match flush.run() {
                    Ok(_) => {
                        tracing::debug!(%topic, partition = index, upto, elapsed_ms = started.elapsed().as_millis() as u64, "flushed rolled segments")
                    }
                    // The recovery point stays put: a restart recovers these segments again.
                    Err(e) => {
                        tracing::error!(%topic, partition = index, upto, error = %e, "flushing rolled segments failed")
                    }
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(work)),
            Err(_) => work(),
        }
    }

    /// Waits until the high watermark passes `appended` (every in-sync replica has it), as
    /// `acks=all` does; with `min_isr`, fails once the ISR is smaller than that.
    ///
    /// The high watermark counts only while this replica still leads and the record at
    /// `appended.last_offset` is still the one appended: a leader that lost its leadership
    /// may have truncated the record and taken another leader's at the same offset, and a
    /// high watermark passing that offset then says nothing about the append (NOT_LEADER: an
    /// idempotent client retries, and its retry is answered as a duplicate if the record did
    /// survive). Checked on every wake-up, not only while waiting, since a produce request waits
    /// for its partitions one after another and the wait for a later one may start late.
    pub async fn wait_for_high_watermark(
        &self,
        appended: Appended,
        min_isr: usize,
        timeout: Duration,
    ) -> Result<(), PartitionError> {
        let mut rx = self.high_watermark_tx.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            if self.is_replicated(appended, Some(min_isr))? {
                return Ok(());
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Err(PartitionError::NotLeader) },
                _ = tokio::time::sleep_until(deadline) => return Err(PartitionError::Timeout),
            }
        }
    }

    /// Whether `appended` is on every in-sync replica: this replica leads, the high watermark
    /// is past it and it is still the record appended (see
    /// [`Partition::wait_for_high_watermark`]); `Err` when it never will be from here.
    pub fn is_replicated(
        &self,
        appended: Appended,
        min_isr: Option<usize>,
    ) -> Result<bool, PartitionError> {
        let role = self.role.lock();
        let Role::Leader(leader) = &*role else {
            return Err(PartitionError::NotLeader);
        };
        let log = self.log.read();
        if log.high_watermark() > appended.last_offset {
            let still_ours = leader.leader_epoch == appended.leader_epoch
                || log
                    .leader_epoch_cache()
                    .epoch_for_offset(appended.last_offset)
                    == Some(appended.leader_epoch);
            return if still_ours {
                Ok(true)
            } else {
                Err(PartitionError::NotLeader)
            };
        }
        match min_isr {
            Some(min_isr) if leader.isr.len() < min_isr => {
                Err(PartitionError::NotEnoughReplicasAfterAppend { min_isr })
            }
            _ => Ok(false),
        }
    }

    /// Becomes (or stays) leader in `leader_epoch` with the given replicas and ISR.
    pub fn make_leader(
        &self,
        local_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
    ) -> Result<(), LogError> {
        let now = self.clock.now_ms();
        let mut role = self.role.lock();
        let mut log = self.log.write();
        match &mut *role {
            Role::Leader(l) if l.leader_epoch == leader_epoch => {
                if l.update_membership(partition_epoch, replicas, isr, now) {
                    tracing::debug!(topic = %self.topic, partition = self.index, partition_epoch, ?isr, "partition membership changed");
                }
            }
            _ => {
                let end = log.log_end_offset();
                log.maybe_assign_epoch_start_offset(leader_epoch, end)?;
                self.verification.lock().clear();
                *role = Role::Leader(LeaderState::new(
                    local_id,
                    leader_epoch,
                    partition_epoch,
                    replicas,
                    isr,
                    end,
                    now,
                ));
                tracing::info!(topic = %self.topic, partition = self.index, leader_epoch, ?isr, log_end_offset = end, "became leader");
            }
        }
        if let Role::Leader(l) = &mut *role {
            advance_high_watermark(l, &mut log);
        }
        self.high_watermark_tx.send_replace(log.high_watermark());
        Ok(())
    }

    /// Becomes a follower of `leader` in `leader_epoch` (or offline when there is no leader).
    pub fn make_follower(&self, leader: i32, leader_epoch: i32) {
        let mut role = self.role.lock();
        let next = if leader < 0 {
            Role::Offline { leader_epoch }
        } else {
            Role::Follower {
                leader,
                leader_epoch,
            }
        };
        let changed = match (&*role, &next) {
            (
                Role::Follower {
                    leader: a,
                    leader_epoch: e,
                },
                Role::Follower {
                    leader: b,
                    leader_epoch: f,
                },
            ) => a != b || e != f,
            (Role::Offline { leader_epoch: e }, Role::Offline { leader_epoch: f }) => e != f,
            _ => true,
        };
        if changed {
            tracing::info!(topic = %self.topic, partition = self.index, leader, leader_epoch, "became follower");
            *role = next;
            self.verification.lock().clear();
            // Wake acks=all waiters: they answer NOT_LEADER_OR_FOLLOWER.
            self.high_watermark_tx.send_modify(|_| {});
        }
    }

    /// Where to fetch from next, if this replica follows a leader.
    pub fn follower_position(&self) -> Option<FollowerPosition> {
        let role = self.role.lock();
        let Role::Follower {
            leader,
            leader_epoch,
        } = &*role
        else {
            return None;
        };
        let log = self.log.read();
        Some(FollowerPosition {
            leader: *leader,
            leader_epoch: *leader_epoch,
            fetch_offset: log.log_end_offset(),
            last_fetched_epoch: log.latest_epoch().unwrap_or(-1),
            log_start_offset: log.log_start_offset(),
        })
    }

    fn check_follower(&self, role: &Role, leader_epoch: i32) -> Result<(), PartitionError> {
        match role {
            Role::Follower {
                leader_epoch: e, ..
            } if *e == leader_epoch => Ok(()),
            _ => Err(PartitionError::NotLeader),
        }
    }

    /// Appends batches fetched from the leader and takes its high watermark.
    pub fn append_from_leader(
        &self,
        leader_epoch: i32,
        records: &Bytes,
        leader_high_watermark: i64,
        leader_log_start: i64,
    ) -> Result<(), PartitionError> {
        let flushes = {
            let role = self.role.lock();
            self.check_follower(&role, leader_epoch)?;
            let mut log = self.log.write();
            if !records.is_empty() {
                log.append_as_follower(records)?;
            }
            let end = log.log_end_offset();
            log.update_high_watermark(leader_high_watermark.min(end));
            if leader_log_start > log.log_start_offset() && leader_log_start <= log.high_watermark()
            {
                log.maybe_increment_log_start_offset(leader_log_start)?;
            }
            log.take_pending_flushes()
        };
        self.run_pending_flushes(flushes);
        Ok(())
    }

    /// Truncates where this follower's log diverged from the leader's (`diverging_epoch`).
    pub fn truncate_diverged(
        &self,
        leader_epoch: i32,
        epoch: i32,
        end_offset: i64,
    ) -> Result<(), PartitionError> {
        let role = self.role.lock();
        self.check_follower(&role, leader_epoch)?;
        let mut log = self.log.write();
        let state = log.offset_truncation_state(epoch, end_offset);
        let end_before = log.log_end_offset();
        if log.truncate_to(state.offset)? {
            tracing::warn!(topic = %self.topic, partition = self.index, offset = state.offset, log_end_offset = end_before, leader_epoch, "truncated a diverged log");
        }
        Ok(())
    }

    /// Restarts this follower's log empty at the leader's log start (it fell behind it).
    pub fn restart_at_leader_start(
        &self,
        leader_epoch: i32,
        leader_log_start: i64,
    ) -> Result<(), PartitionError> {
        let role = self.role.lock();
        self.check_follower(&role, leader_epoch)?;
        self.log
            .write()
            .truncate_fully_and_start_at(leader_log_start)?;
        Ok(())
    }

    /// Serves a follower's fetch on the leader: diverging-epoch check, then records up to the
    /// log end; records the follower's position, advances the high watermark, and proposes
    /// adding the follower to the ISR when it caught up and its broker is `eligible` (the
    /// metadata image shows it active: a fenced or shutting-down broker may keep fetching,
    /// but the controller would refuse it). Batches spanning at least `file_from` bytes come
    /// back as a range of the segment file (`usize::MAX`: never).
    #[allow(clippy::too_many_arguments)] // one follower's fetch of one partition, field by field
    pub fn fetch_for_follower(
        &self,
        replica: i32,
        fetch_offset: i64,
        follower_log_start: i64,
        last_fetched_epoch: i32,
        current_leader_epoch: i32,
        max_bytes: usize,
        eligible: bool,
        file_from: usize,
    ) -> Result<FollowerFetch, PartitionError> {
        self.check_leader_epoch(current_leader_epoch)?;
        let now = self.clock.now_ms();
        let mut role = self.role.lock();
        let Role::Leader(leader) = &mut *role else {
            return Err(PartitionError::NotLeader);
        };
        let mut log = self.log.write();
        if last_fetched_epoch >= 0 {
            let (epoch, end) = log.end_offset_for_epoch(last_fetched_epoch);
            if epoch < last_fetched_epoch || end < fetch_offset {
                return Ok(FollowerFetch {
                    records: Bytes::new(),
                    file: None,
                    high_watermark: log.high_watermark(),
                    log_start_offset: log.log_start_offset(),
                    diverging: Some((epoch, end)),
                    isr_change: None,
                    settled: false,
                });
            }
        }
        let end = log.log_end_offset();
        // Nothing at all for 0 bytes (the leader throttle is spent): the fetch still counts
        // for the follower's position and the ISR.
        let (records, file) = if max_bytes == 0 {
            (Bytes::new(), None)
        } else if file_from == usize::MAX {
            (log.read(fetch_offset, max_bytes, end, true)?.records, None)
        } else {
            let (data, file) = log.read_for_fetch(fetch_offset, max_bytes, end, true, file_from)?;
            (data.records, file)
        };
        let start_before = leader.followers.get(&replica).map(|f| f.log_start_offset);
        leader.record_fetch(replica, fetch_offset, follower_log_start, end, now);
        let before = log.high_watermark();
        advance_high_watermark(leader, &mut log);
        let high_watermark = log.high_watermark();
        let isr_change = leader
            .propose_expansion(replica, high_watermark, eligible, now)
            .map(|isr| self.change(leader, isr));
        // A moved follower log start may complete a DeleteRecords waiting for the low
        // watermark: wake the waiters even if the high watermark stayed.
        if high_watermark != before || start_before != Some(follower_log_start) {
            self.high_watermark_tx.send_replace(high_watermark);
        }
        let settled = fetch_offset >= end && isr_change.is_none() && leader.isr.contains(&replica);
        Ok(FollowerFetch {
            records,
            file,
            high_watermark,
            log_start_offset: log.log_start_offset(),
            diverging: None,
            isr_change,
            settled,
        })
    }

    /// DeleteRecords on the leader: moves the log start offset up to `offset` (-1: the high
    /// watermark), which must not be above the high watermark; a topic whose cleanup policy
    /// lacks `delete` refuses. Segments wholly below the new start are deleted by the next
    /// retention pass; reads below it answer OFFSET_OUT_OF_RANGE from now on. Followers move
    /// theirs when their next fetch reports it (see [`Partition::wait_for_low_watermark`]).
    /// Returns the offset the log now starts at or after.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, PartitionError> {
        if !self.is_leader() {
            return Err(PartitionError::NotLeader);
        }
        let mut log = self.log.write();
        if !log.config().cleanup_policy.delete {
            return Err(PartitionError::DeleteOnCompactedTopic {
                topic: self.topic.to_string(),
                partition: self.index,
            });
        }
        let high_watermark = log.high_watermark();
        let offset = if offset == -1 { high_watermark } else { offset };
        if offset < 0 || offset > high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: log.log_start_offset(),
                log_end: high_watermark,
            }
            .into());
        }
        if log.maybe_increment_log_start_offset(offset)? {
            tracing::info!(topic = %self.topic, partition = self.index, log_start_offset = offset, "records deleted (DeleteRecords)");
        }
        drop(log);
        self.high_watermark_tx.send_modify(|_| {});
        Ok(offset)
    }

    /// Waits until the low watermark (the smallest log start offset among this leader and its
    /// followers on `alive` brokers) reaches `offset`; returns it. What DeleteRecords answers:
    /// once it returns, no live replica that could become leader still serves deleted records.
    pub async fn wait_for_low_watermark(
        &self,
        offset: i64,
        alive: impl Fn(i32) -> bool,
        timeout: Duration,
    ) -> Result<i64, PartitionError> {
        let mut rx = self.high_watermark_tx.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            let low = match &*self.role.lock() {
                Role::Leader(l) => l.low_watermark(self.log.read().log_start_offset(), &alive),
                _ => return Err(PartitionError::NotLeader),
            };
            if low >= offset {
                return Ok(low);
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Err(PartitionError::NotLeader) },
                _ = tokio::time::sleep_until(deadline) => return Err(PartitionError::Timeout),
            }
        }
    }

    /// An ISR shrink to send to the controller, if a follower lagged more than `max_lag_ms`.
    pub fn maybe_shrink_isr(&self, max_lag_ms: i64) -> Option<PartitionChange> {
        let now = self.clock.now_ms();
        let mut role = self.role.lock();
        let Role::Leader(leader) = &mut *role else {
            return None;
        };
        let leader_end = self.log.read().log_end_offset();
        let isr = leader.propose_shrink(now, max_lag_ms, leader_end)?;
        Some(self.change(leader, isr))
    }

    /// The controller did not apply `change` (see [`LeaderState::isr_change_failed`]).
    pub fn isr_change_failed(&self, change: &PartitionChange, failure: IsrChangeFailure) {
        let now = self.clock.now_ms();
        if let Role::Leader(leader) = &mut *self.role.lock() {
            if leader.leader_epoch == change.leader_epoch {
                leader.isr_change_failed(change.partition_epoch, &change.isr, failure, now);
            }
        }
    }

    fn change(&self, leader: &LeaderState, isr: Vec<i32>) -> PartitionChange {
        PartitionChange {
            topic: self.topic.to_string(),
            partition: self.index,
            leader: leader.local_id,
            leader_epoch: leader.leader_epoch,
            partition_epoch: leader.partition_epoch,
            isr,
        }
    }

    /// Reads whole batches from `offset`, at most `max_bytes` unless `min_one_message` lets the
    /// first batch exceed it, never past the high watermark, and for `read_committed` never
    /// past the last stable offset, with the aborted transactions of the range read (Kafka's
    /// `FetchIsolation.TXN_COMMITTED`).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_message: bool,
        read_committed: bool,
    ) -> Result<PartitionRead, LogError> {
        self.read_for_fetch(
            offset,
            max_bytes,
            min_one_message,
            read_committed,
            usize::MAX,
        )
    }

    /// [`Partition::read`] for a consumer's Fetch that can send records from the segment file:
    /// batches spanning at least `file_from` bytes come back as a range of it
    /// ([`PartitionRead::file`], `records` empty).
    pub fn read_for_fetch(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_message: bool,
        read_committed: bool,
        file_from: usize,
    ) -> Result<PartitionRead, LogError> {
        let log = self.log.read();
        let high_watermark = log.high_watermark();
        let last_stable_offset = log.last_stable_offset();
        let max_offset = if read_committed {
            last_stable_offset
        } else {
            high_watermark
        };
        let (data, file) = if file_from == usize::MAX {
            (
                log.read(offset, max_bytes, max_offset, min_one_message)?,
                None,
            )
        } else {
            log.read_for_fetch(offset, max_bytes, max_offset, min_one_message, file_from)?
        };
        let aborted = read_committed.then(|| {
            let upper = match &file {
                Some(file) => file.next_offset,
                None if data.records.is_empty() => return Vec::new(),
                None => crate::log::batch::RecordBatchIter::new(&data.records)
                    .filter_map(Result::ok)
                    .last()
                    .map_or(offset, |(h, _)| h.next_offset()),
            };
            log.collect_aborted_txns(offset, upper)
        });
        Ok(PartitionRead {
            records: data.records,
            file,
            high_watermark,
            last_stable_offset,
            log_start_offset: log.log_start_offset(),
            aborted,
        })
    }

    /// The last stable offset: `read_committed` consumers read below it.
    pub fn last_stable_offset(&self) -> i64 {
        self.log.read().last_stable_offset()
    }

    /// Reads whole batches from `offset` up to the log end, past the high watermark: for the
    /// coordinators loading their internal topics when this broker becomes leader (a leader
    /// never truncates its own log, so what it holds stays). At most `max_bytes`, but always
    /// the first batch.
    pub fn read_to_log_end(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<PartitionRead, LogError> {
        let log = self.log.read();
        let data = log.read(offset, max_bytes, log.log_end_offset(), true)?;
        Ok(PartitionRead {
            records: data.records,
            file: None,
            high_watermark: log.high_watermark(),
            last_stable_offset: log.last_stable_offset(),
            log_start_offset: log.log_start_offset(),
            aborted: None,
        })
    }

    /// The high watermark: every offset below it is on every in-sync replica.
    pub fn high_watermark(&self) -> i64 {
        self.log.read().high_watermark()
    }

    /// The log end offset.
    pub fn log_end_offset(&self) -> i64 {
        self.log.read().log_end_offset()
    }

    /// The log start offset.
    pub fn log_start_offset(&self) -> i64 {
        self.log.read().log_start_offset()
    }

    /// OffsetForLeaderEpoch on the leader (after [`Partition::check_leader_epoch`]): the
    /// largest epoch at most `epoch` this log has and the offset where it ended (the log end
    /// for the latest), or `(-1, -1)` for an epoch older than any it knows. Consumers use it
    /// after a leader change to find out whether their position was truncated away.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.log.read().end_offset_for_epoch(epoch)
    }

    /// ListOffsets by timestamp: the first offset whose record timestamp is at least `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        self.log.read().fetch_offset_for_timestamp(ts)
    }

    /// ListOffsets MAX_TIMESTAMP: the offset and timestamp of the newest-stamped record.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        self.log.read().max_timestamp_and_offset()
    }

    /// Sizes and offsets.
    pub fn stats(&self) -> PartitionStats {
        let log = self.log.read();
        PartitionStats {
            size_bytes: log.size_in_bytes(),
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            segments: log.num_segments(),
            recovery_point: log.recovery_point(),
            last_stable_offset_lag: log.high_watermark() - log.last_stable_offset(),
        }
    }

    /// Bytes of whole batches from `offset` on: what a follower whose log ends at `offset`
    /// still has to copy (reassignment progress). Reads a little of the segment holding
    /// `offset` to find its batch boundary.
    pub fn bytes_from(&self, offset: i64) -> Result<u64, LogError> {
        let log = self.log.read();
        let mut bytes = 0;
        for segment in log.segments() {
            if segment.next_offset() <= offset {
                continue;
            }
            if segment.base_offset() >= offset {
                bytes += segment.size();
            } else if let Some(batch) = segment.find_batch(offset)? {
                bytes += segment.size().saturating_sub(batch.position);
            }
        }
        Ok(bytes)
    }

    /// The log's lock, for the log cleaner: it reads segment handles under the read lock and
    /// takes the write lock only to swap cleaned segments in (`crate::log::cleaner`).
    pub fn log_lock(&self) -> &RwLock<Log> {
        &self.log
    }

    /// Whether the log runs with exactly `config`.
    pub fn has_config(&self, config: &LogConfig) -> bool {
        self.log.read().config() == config
    }

    /// Applies a changed topic config to the log.
    pub fn update_config(&self, config: LogConfig) {
        self.log.write().update_config(config);
    }

    /// Deletes segments past retention; returns how many were deleted.
    pub fn apply_retention(&self) -> Result<usize, LogError> {
        let (deleted, flushes) = {
            let mut log = self.log.write();
            (log.delete_old_segments()?, log.take_pending_flushes())
        };
        self.run_pending_flushes(flushes);
        Ok(deleted)
    }

    /// Forgets the idempotent producers idle for `expiration_ms` or more
    /// (`producer.id.expiration.ms`); returns how many. Every replica does it, as in Kafka,
    /// so a follower taking over knows no more producers than its leader did.
    pub fn remove_expired_producers(&self, expiration_ms: i64) -> usize {
        self.log.write().remove_expired_producers(expiration_ms)
    }

    /// Fsyncs the log if `flush.ms` has passed since this partition's last periodic flush
    /// (appends check `flush.messages` and `flush.ms` themselves; this covers a quiet log).
    pub fn flush_if_due(&self) -> Result<(), LogError> {
        let flush_ms = self.log.read().config().flush_ms;
        if flush_ms == i64::MAX {
            return Ok(());
        }
        let mut last = self.last_periodic_flush.lock();
        if last.elapsed() >= Duration::from_millis(flush_ms.max(0) as u64) {
            self.checkpoint()?;
            *last = Instant::now();
        }
        Ok(())
    }

    /// Flushes and writes the recovery checkpoint (blocking), holding the log's lock only to
    /// queue the flush ([`Log::queue_flush`]): appends go on while the segments are fsynced.
    pub fn checkpoint(&self) -> Result<(), LogError> {
        let flushes = {
            let mut log = self.log.write();
            log.queue_flush()?;
            log.take_pending_flushes()
        };
        for flush in flushes {
            flush.run()?;
        }
        Ok(())
    }

    /// Flushes and closes the log cleanly (a restart then skips recovery).
    pub fn close(&self) -> Result<(), LogError> {
        self.log.write().close()
    }
}

/// Moves the leader's high watermark to what the ISR allows.
fn advance_high_watermark(leader: &LeaderState, log: &mut Log) {
    if let Some(bound) = leader.high_watermark_bound(log.log_end_offset()) {
        log.maybe_increment_high_watermark(bound);
    }
}

#[cfg(test)]
mod tests;
