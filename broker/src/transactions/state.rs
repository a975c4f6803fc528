//! One transactional id's state, and the decisions the coordinator takes on it: pure, with
//! time passed in (Kafka's `TransactionMetadata` and `TransactionState`).
//!
//! ```text
//!            InitProducerId (epoch + 1)
//!   Empty ──────────────────────────────► Empty
//!     │ AddPartitionsToTxn / AddOffsetsToTxn
//!     ▼
//!   Ongoing ──EndTxn(commit)──► PrepareCommit ──markers written──► CompleteCommit
//!     │   └──EndTxn(abort), InitProducerId, timeout (epoch + 1)──► PrepareAbort ──► CompleteAbort
//!     ▲                                                                              │
//!     └──────────────── AddPartitionsToTxn (a new transaction) ◄──────────────────┘
//! ```
//!
//! A decision either answers at once ([`Decision::Reply`]) or names the state to write to
//! `__transaction_state` first ([`Decision::Write`]); the coordinator applies it to memory
//! only once it is on the in-sync replicas.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

/// A topic partition of a transaction.
pub type TopicPartition = (String, i32);

/// Kafka's transaction states, with their ids in `__transaction_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction open (after InitProducerId).
    Empty,
    /// Partitions added: a transaction is open.
    Ongoing,
    /// EndTxn(commit) accepted; markers being written.
    PrepareCommit,
    /// EndTxn(abort), a fencing InitProducerId or a timeout; markers being written.
    PrepareAbort,
    /// Every COMMIT marker written.
    CompleteCommit,
    /// Every ABORT marker written.
    CompleteAbort,
    /// Expired (the id is forgotten).
    Dead,
    /// Kafka writes this while it bumps the epoch of a transaction it then aborts.
    PrepareEpochFence,
}

impl TxnState {
    /// The id Kafka stores.
    pub fn id(self) -> i8 {
        match self {
            Self::Empty => 0,
            Self::Ongoing => 1,
            Self::PrepareCommit => 2,
            Self::PrepareAbort => 3,
            Self::CompleteCommit => 4,
            Self::CompleteAbort => 5,
            Self::Dead => 6,
            Self::PrepareEpochFence => 7,
        }
    }

    /// The state of a stored id.
    pub fn from_id(id: i8) -> Option<Self> {
        Some(match id {
            0 => Self::Empty,
            1 => Self::Ongoing,
            2 => Self::PrepareCommit,
            3 => Self::PrepareAbort,
            4 => Self::CompleteCommit,
            5 => Self::CompleteAbort,
            6 => Self::Dead,
            7 => Self::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name Kafka's tools print (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
            Self::Dead => "Dead",
            Self::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Markers are being written: the transaction may not change until they are.
    pub fn is_preparing(self) -> bool {
        matches!(
            self,
            Self::PrepareCommit | Self::PrepareAbort | Self::PrepareEpochFence
        )
    }
}

/// What `__transaction_state` holds for one transactional id.
///
/// Invariant: `partitions` is empty unless the state is Ongoing or Prepare*;
/// `start_ms` is the time the open transaction began (-1 when none is open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` of the producer.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// Partitions of the open (or ending) transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the open transaction began.
    pub start_ms: i64,
    /// Last change.
    pub update_ms: i64,
    /// The producer id before the last roll-over to a new one (-1: none); a retried EndTxn
    /// of the rolled-over producer is recognised by it (Kafka's `previousProducerId`).
    pub prev_producer_id: i64,
    /// While an ending transaction rolls the producer id over (its epoch exhausted), the id
    /// the producer continues with (-1: none; Kafka's `nextProducerId`).
    pub next_producer_id: i64,
    /// The transactions version of the client: 2 when its transaction is ended with EndTxn
    /// v5 or had partitions added implicitly (KIP-890: the epoch is bumped at every end),
    /// 0 for clients of transactions version 1.
    pub client_transaction_version: i16,
}

/// What the client of a request speaks (Kafka's `TransactionVersion` per request: EndTxn
/// v5 and the broker form of AddPartitionsToTxn are version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientVersion {
    /// Transactions version 0/1: AddPartitionsToTxn from the client, no epoch bump at ends.
    V1,
    /// Transactions version 2 (KIP-890): implicit adds, an epoch bump at every end.
    V2,
}

/// What a request leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer with this error code (0: success) and change nothing.
    Reply(i16),
    /// Write this state; answer success once it is replicated.
    Write(TransactionMetadata),
    /// The epoch is exhausted: allocate a new producer id and write
    /// [`TransactionMetadata::rotate_producer`].
    NewProducerId,
}

fn error(e: ResponseError) -> Decision {
    Decision::Reply(e.code())
}

/// The largest epoch before a producer gets a new id (Kafka keeps `Short.MAX_VALUE` free).
const MAX_EPOCH: i16 = i16::MAX - 1;

impl TransactionMetadata {
    /// A new id's first state.
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        Self {
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            update_ms: now_ms,
            prev_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
        }
    }

    fn is_v2(&self) -> bool {
        self.client_transaction_version >= 2
    }

    /// The epoch bump that fences the producer of an open transaction: one, or two for a
    /// transactions-version-2 client (its abort bumps once more, as Kafka's epoch fence then
    /// abort, so a retried EndTxn of the fenced epoch is not taken for a retry).
    fn fencing_bump(&self) -> i16 {
        if self.is_v2() && self.producer_epoch < MAX_EPOCH - 1 {
            2
        } else {
            1
        }
    }

    fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Option<Decision> {
        if producer_id != self.producer_id {
            return Some(error(ResponseError::InvalidProducerIdMapping));
        }
        if producer_epoch != self.producer_epoch {
            return Some(error(ResponseError::ProducerFenced));
        }
        None
    }

    /// InitProducerId for an existing id ([`Decision::NewProducerId`] when the epoch is
    /// exhausted). An open
    /// transaction is aborted with a bumped epoch first (the client retries on
    /// CONCURRENT_TRANSACTIONS until the abort completes).
    pub fn init_producer(
        &self,
        expected: Option<(i64, i16)>,
        timeout_ms: i32,
        now_ms: i64,
    ) -> Decision {
        if self.state.is_preparing() {
            return error(ResponseError::ConcurrentTransactions);
        }
        if let Some((id, epoch)) = expected {
            // KIP-360: a producer re-initialising after an error must still be the current one.
            if id != self.producer_id || epoch != self.producer_epoch {
                return error(ResponseError::ProducerFenced);
            }
        }
        if self.producer_epoch >= MAX_EPOCH {
            return Decision::NewProducerId;
        }
        let mut next = self.clone();
        next.producer_epoch += 1;
        next.update_ms = now_ms;
        if self.state == TxnState::Ongoing {
            next.producer_epoch = self.producer_epoch + self.fencing_bump();
            next.state = TxnState::PrepareAbort;
            return Decision::Write(next);
        }
        next.timeout_ms = timeout_ms;
        next.state = TxnState::Empty;
        next.partitions.clear();
        next.start_ms = -1;
        Decision::Write(next)
    }

    /// The same id with a new producer id at epoch 0 (epoch exhausted).
    pub fn rotate_producer(&self, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Decision {
        Decision::Write(Self::new(producer_id, timeout_ms, now_ms))
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn, and (`ClientVersion::V2`) the implicit adds of a
    /// partition leader or the group coordinator for a transactions-version-2 client.
    pub fn add_partitions(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
        client: ClientVersion,
    ) -> Decision {
        if self.state.is_preparing() && producer_id == self.next_producer_id {
            // The producer's next id is being rolled to while the last transaction ends.
            return error(ResponseError::ConcurrentTransactions);
        }
        if let Some(refused) = self.check_producer(producer_id, producer_epoch) {
            return refused;
        }
        if self.state.is_preparing() {
            return error(ResponseError::ConcurrentTransactions);
        }
        if self.state == TxnState::Dead {
            return error(ResponseError::InvalidTxnState);
        }
        if self.state == TxnState::Ongoing && partitions.iter().all(|p| self.partitions.contains(p))
        {
            return Decision::Reply(0);
        }
        let mut next = self.clone();
        if self.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
            next.client_transaction_version = match client {
                ClientVersion::V1 => 0,
                ClientVersion::V2 => 2,
            };
        } else if client == ClientVersion::V2 {
            next.client_transaction_version = 2;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.update_ms = now_ms;
        Decision::Write(next)
    }

    /// EndTxn v5 (transactions version 2): the end bumps the epoch, so the markers fence
    /// every batch of the ended transaction and the client's next transaction runs at the
    /// new epoch (a new producer id at epoch 0 once the epoch is exhausted:
    /// [`Decision::NewProducerId`], then again with `next_producer_id`). A retry carries the
    /// epoch before the bump (or the old id before a roll-over) and is answered as the first
    /// was; an abort with nothing open bumps the epoch too. Kafka's table:
    ///
    /// ```text
    ///                  abort: retry  current   commit: retry  current
    ///   Empty                 FENCED bump              FENCED INVALID_TXN_STATE
    ///   CompleteAbort         ok     bump              INVALID_TXN_STATE
    ///   CompleteCommit        INVALID_TXN_STATE bump   ok     INVALID_TXN_STATE
    ///   Prepare* (same end)   CONCURRENT_TRANSACTIONS
    ///   Prepare*, the new epoch: CONCURRENT_TRANSACTIONS (Kafka: PRODUCER_FENCED)
    /// ```
    pub fn end_v2(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
        next_producer_id: Option<i64>,
    ) -> Decision {
        let retry_on_bump = i32::from(self.producer_epoch) == i32::from(producer_epoch) + 1;
        let retry_on_overflow = self.prev_producer_id == producer_id
            && producer_id != self.producer_id
            && producer_epoch >= MAX_EPOCH
            && self.producer_epoch == 0;
        if producer_id != self.producer_id && !retry_on_overflow {
            return error(ResponseError::InvalidProducerIdMapping);
        }
        let current = producer_epoch == self.producer_epoch && producer_id == self.producer_id;
        if self.state.is_preparing() && current {
            // The client already holds the epoch of the end being written and ends its next
            // transaction (an abort of one that never got a partition in): it retries once
            // the markers are written. Kafka answers PRODUCER_FENCED here, fatal to a client
            // that did nothing wrong (franz-go's transact sessions do this after a rebalance).
            return error(ResponseError::ConcurrentTransactions);
        }
        let valid = match self.state {
            TxnState::Ongoing | TxnState::Empty | TxnState::Dead | TxnState::PrepareEpochFence => {
                current
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                retry_on_bump || retry_on_overflow || current
            }
        };
        if !valid {
            return error(ResponseError::ProducerFenced);
        }
        let retry = retry_on_bump || retry_on_overflow;
        let prepare = |nothing_added: bool| {
            if self.producer_epoch >= MAX_EPOCH && next_producer_id.is_none() {
                return Decision::NewProducerId;
            }
            let mut next = self.clone();
            next.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            next.producer_epoch = self.producer_epoch + 1;
            next.next_producer_id = next_producer_id
                .filter(|_| self.producer_epoch >= MAX_EPOCH)
                .unwrap_or(-1);
            next.client_transaction_version = 2;
            next.update_ms = now_ms;
            if nothing_added {
                next.partitions.clear();
                next.start_ms = now_ms;
            }
            Decision::Write(next)
        };
        let invalid = || error(ResponseError::InvalidTxnState);
        match (self.state, commit) {
            (TxnState::Ongoing, _) => prepare(false),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if retry => {
                Decision::Reply(0)
            }
            (TxnState::CompleteCommit, true) => invalid(),
            (TxnState::CompleteCommit, false) if retry => invalid(),
            (TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Empty, false) => {
                prepare(true)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                error(ResponseError::ConcurrentTransactions)
            }
            _ => invalid(),
        }
    }

    /// The producer id and epoch a client continues with after this state: the next id at
    /// epoch 0 while an end rolls the id over.
    pub fn client_producer(&self) -> (i64, i16) {
        if self.next_producer_id >= 0 {
            (self.next_producer_id, 0)
        } else {
            (self.producer_id, self.producer_epoch)
        }
    }

    /// EndTxn up to v4 (transactions version 1). A retry of an end already decided answers
    /// success (or CONCURRENT_TRANSACTIONS while its markers are still being written).
    pub fn end(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Decision {
        if let Some(refused) = self.check_producer(producer_id, producer_epoch) {
            return refused;
        }
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = self.clone();
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.update_ms = now_ms;
                Decision::Write(next)
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Decision::Reply(0)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                error(ResponseError::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence, _) => error(ResponseError::ConcurrentTransactions),
            _ => error(ResponseError::InvalidTxnState),
        }
    }

    /// The coordinator aborts an open transaction past its timeout, bumping the epoch so the
    /// producer is fenced (its next request is refused with PRODUCER_FENCED).
    pub fn expire(&self, now_ms: i64) -> Option<TransactionMetadata> {
        let timed_out = self.state == TxnState::Ongoing
            && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms);
        if !timed_out || self.producer_epoch >= MAX_EPOCH {
            return None;
        }
        let mut next = self.clone();
        next.producer_epoch += self.fencing_bump();
        next.state = TxnState::PrepareAbort;
        next.update_ms = now_ms;
        Some(next)
    }

    /// The state once every marker of a Prepare* state is written.
    pub fn complete(&self, now_ms: i64) -> Option<TransactionMetadata> {
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        let mut next = self.clone();
        next.state = state;
        next.partitions.clear();
        next.start_ms = -1;
        next.update_ms = now_ms;
        if self.next_producer_id >= 0 {
            // The end rolled the producer id over: the client continues with the new one.
            next.prev_producer_id = self.producer_id;
            next.producer_id = self.next_producer_id;
            next.producer_epoch = 0;
            next.next_producer_id = -1;
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, p: i32) -> TopicPartition {
        (topic.to_string(), p)
    }

    fn written(d: Decision) -> TransactionMetadata {
        match d {
            Decision::Write(m) => m,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn a_transaction_goes_from_empty_through_ongoing_to_complete() {
        let m = TransactionMetadata::new(7, 60_000, 0);
        let m = written(m.add_partitions(7, 0, &[tp("a", 0)], 10, ClientVersion::V1));
        assert_eq!((m.state, m.start_ms), (TxnState::Ongoing, 10));
        assert_eq!(
            m.add_partitions(7, 0, &[tp("a", 0)], 11, ClientVersion::V1),
            Decision::Reply(0)
        );
        let m = written(m.add_partitions(7, 0, &[tp("b", 1)], 12, ClientVersion::V1));
        assert_eq!(m.partitions.len(), 2);
        let m = written(m.end(7, 0, true, 13));
        assert_eq!(m.state, TxnState::PrepareCommit);
        assert_eq!(
            m.add_partitions(7, 0, &[tp("c", 0)], 14, ClientVersion::V1),
            Decision::Reply(ResponseError::ConcurrentTransactions.code())
        );
        let m = m.complete(15).unwrap();
        assert_eq!(m.state, TxnState::CompleteCommit);
        assert!(m.partitions.is_empty());
        assert_eq!(
            m.end(7, 0, true, 16),
            Decision::Reply(0),
            "a retried commit"
        );
        assert_eq!(
            m.end(7, 0, false, 16),
            Decision::Reply(ResponseError::InvalidTxnState.code())
        );
        let m = written(m.add_partitions(7, 0, &[tp("c", 0)], 17, ClientVersion::V1));
        assert_eq!(
            (m.state, m.start_ms, m.partitions.len()),
            (TxnState::Ongoing, 17, 1)
        );
    }

    #[test]
    fn a_new_producer_fences_the_old_epoch_and_aborts_its_open_transaction() {
        let m = TransactionMetadata::new(7, 60_000, 0);
        let m = written(m.add_partitions(7, 0, &[tp("a", 0)], 1, ClientVersion::V1));
        let fenced = written(m.init_producer(None, 60_000, 2));
        assert_eq!(
            (fenced.state, fenced.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert_eq!(
            fenced.init_producer(None, 60_000, 3),
            Decision::Reply(ResponseError::ConcurrentTransactions.code())
        );
        let done = fenced.complete(4).unwrap();
        let next = written(done.init_producer(None, 30_000, 5));
        assert_eq!(
            (next.state, next.producer_epoch, next.timeout_ms),
            (TxnState::Empty, 2, 30_000)
        );
        assert_eq!(
            next.add_partitions(7, 0, &[tp("a", 0)], 6, ClientVersion::V1),
            Decision::Reply(ResponseError::ProducerFenced.code()),
            "the zombie's epoch"
        );
        assert_eq!(
            next.end(8, 2, true, 6),
            Decision::Reply(ResponseError::InvalidProducerIdMapping.code())
        );
        assert_eq!(
            next.init_producer(Some((7, 1)), 60_000, 7),
            Decision::Reply(ResponseError::ProducerFenced.code())
        );
    }

    #[test]
    fn timeouts_abort_with_a_bumped_epoch_and_exhausted_epochs_rotate_the_id() {
        let m = TransactionMetadata::new(7, 1_000, 0);
        let m = written(m.add_partitions(7, 0, &[tp("a", 0)], 100, ClientVersion::V1));
        assert!(m.expire(1_100).is_none());
        let aborted = m.expire(1_101).unwrap();
        assert_eq!(
            (aborted.state, aborted.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        let mut old = TransactionMetadata::new(7, 1_000, 0);
        old.producer_epoch = MAX_EPOCH;
        assert_eq!(old.init_producer(None, 1_000, 1), Decision::NewProducerId);
        let rotated = written(old.rotate_producer(9, 1_000, 1));
        assert_eq!((rotated.producer_id, rotated.producer_epoch), (9, 0));
        for id in 0..8 {
            assert_eq!(TxnState::from_id(id).unwrap().id(), id);
        }
    }

    #[test]
    fn version_2_ends_bump_the_epoch_and_retries_of_the_old_epoch_are_answered_alike() {
        let m = TransactionMetadata::new(7, 60_000, 0);
        let m = written(m.add_partitions(7, 0, &[tp("a", 0)], 1, ClientVersion::V2));
        assert_eq!(m.client_transaction_version, 2);
        let m = written(m.end_v2(7, 0, true, 2, None));
        assert_eq!((m.state, m.producer_epoch), (TxnState::PrepareCommit, 1));
        assert_eq!(m.client_producer(), (7, 1), "what EndTxn v5 answers");
        let concurrent = Decision::Reply(ResponseError::ConcurrentTransactions.code());
        assert_eq!(
            m.end_v2(7, 0, true, 3, None),
            concurrent,
            "a retry meanwhile"
        );
        assert_eq!(
            m.end_v2(7, 1, false, 3, None),
            concurrent,
            "the next transaction's end waits for the markers"
        );
        assert_eq!(
            m.add_partitions(7, 1, &[tp("a", 0)], 3, ClientVersion::V2),
            concurrent,
            "the next transaction waits for the markers"
        );
        let m = m.complete(4).unwrap();
        assert_eq!((m.state, m.producer_epoch), (TxnState::CompleteCommit, 1));
        assert_eq!(m.end_v2(7, 0, true, 5, None), Decision::Reply(0), "a retry");
        let invalid = Decision::Reply(ResponseError::InvalidTxnState.code());
        assert_eq!(m.end_v2(7, 0, false, 5, None), invalid);
        assert_eq!(
            m.end_v2(7, 1, true, 5, None),
            invalid,
            "a commit of nothing"
        );
        assert_eq!(
            m.add_partitions(7, 0, &[tp("a", 0)], 5, ClientVersion::V2),
            Decision::Reply(ResponseError::ProducerFenced.code()),
            "a batch of the ended transaction's epoch"
        );
        // An abort with nothing open bumps the epoch too, and writes no marker.
        let aborted = written(m.end_v2(7, 1, false, 6, None));
        assert_eq!(
            (
                aborted.state,
                aborted.producer_epoch,
                aborted.partitions.len()
            ),
            (TxnState::PrepareAbort, 2, 0)
        );
        // The next transaction runs at the bumped epoch.
        let next = written(m.add_partitions(7, 1, &[tp("b", 0)], 7, ClientVersion::V2));
        assert_eq!((next.state, next.start_ms), (TxnState::Ongoing, 7));
        assert_eq!(
            next.end_v2(7, 0, true, 8, None),
            Decision::Reply(ResponseError::ProducerFenced.code())
        );
    }

    #[test]
    fn an_exhausted_epoch_rolls_to_the_next_producer_id_at_the_end() {
        let mut m = TransactionMetadata::new(7, 60_000, 0);
        m.producer_epoch = MAX_EPOCH;
        let m = written(m.add_partitions(7, MAX_EPOCH, &[tp("a", 0)], 1, ClientVersion::V2));
        assert_eq!(
            m.end_v2(7, MAX_EPOCH, true, 2, None),
            Decision::NewProducerId
        );
        let m = written(m.end_v2(7, MAX_EPOCH, true, 2, Some(9)));
        // The markers carry the old id at the last epoch; the client continues with the new.
        assert_eq!((m.producer_id, m.producer_epoch), (7, i16::MAX));
        assert_eq!(m.client_producer(), (9, 0));
        assert_eq!(
            m.add_partitions(9, 0, &[tp("a", 0)], 3, ClientVersion::V2),
            Decision::Reply(ResponseError::ConcurrentTransactions.code())
        );
        let m = m.complete(4).unwrap();
        assert_eq!(
            (
                m.producer_id,
                m.producer_epoch,
                m.prev_producer_id,
                m.next_producer_id
            ),
            (9, 0, 7, -1)
        );
        assert_eq!(
            m.end_v2(7, MAX_EPOCH, true, 5, None),
            Decision::Reply(0),
            "a retry"
        );
        assert_eq!(m.client_producer(), (9, 0));
        assert_eq!(
            m.end_v2(8, 0, true, 5, None),
            Decision::Reply(ResponseError::InvalidProducerIdMapping.code())
        );
    }

    #[test]
    fn fencing_a_version_2_transaction_bumps_the_epoch_past_a_retry() {
        let m = TransactionMetadata::new(7, 1_000, 0);
        let m = written(m.add_partitions(7, 0, &[tp("a", 0)], 1, ClientVersion::V2));
        let timed_out = m.expire(2_000).unwrap();
        assert_eq!(timed_out.producer_epoch, 2);
        let done = timed_out.complete(3).unwrap();
        assert_eq!(
            done.end_v2(7, 0, false, 4, None),
            Decision::Reply(ResponseError::ProducerFenced.code()),
            "the late producer's abort is no retry"
        );
        let fenced = written(m.init_producer(None, 1_000, 5));
        assert_eq!(
            (fenced.state, fenced.producer_epoch),
            (TxnState::PrepareAbort, 2)
        );
        let v1 = TransactionMetadata::new(7, 1_000, 0);
        let v1 = written(v1.add_partitions(7, 0, &[tp("a", 0)], 1, ClientVersion::V1));
        assert_eq!(v1.expire(2_000).unwrap().producer_epoch, 1);
    }
}
