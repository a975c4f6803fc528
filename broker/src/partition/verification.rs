//! Transaction verification on the produce path (KIP-890 part 1): before a producer's first
//! transactional batch of a transaction lands in this partition, the leader asks the
//! transaction coordinator whether the transaction includes the partition. A batch arriving
//! after its transaction ended (a late retry, a client bug) would otherwise open a
//! transaction that no marker ever closes: a *hanging transaction* that holds the last
//! stable offset, and every `read_committed` consumer, forever.
//!
//! The question takes a round trip, and a marker may be written meanwhile. So the leader
//! first records a [`VerificationGuard`] for the producer, then asks; the append succeeds
//! only if that guard is still there. A marker for the producer removes it (the answer may
//! be stale now), as does a change of role (a marker may have arrived by replication). The
//! guard names the producer epoch it was taken for; nothing else is remembered, so nothing
//! outlives an epoch. A batch continuing a transaction the partition already has open (same
//! producer, same epoch) needs no guard and no round trip.
//!
//! Thread-safety: the guards sit behind their own mutex, taken after the log lock when
//! both are needed.

use std::collections::HashMap;

use bytes::Bytes;

use crate::log::batch::RecordBatchIter;
use crate::log::Log;

/// Proof that the coordinator was asked about `producer_id` at `producer_epoch` and no
/// marker of that producer reached the partition since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationGuard {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch asked about.
    pub producer_epoch: i16,
    token: u64,
}

/// The open guards of one partition, one per producer at most.
#[derive(Debug, Default)]
pub(super) struct VerificationGuards {
    next_token: u64,
    by_producer: HashMap<i64, VerificationGuard>,
}

impl VerificationGuards {
    /// The producer's guard for `producer_epoch`: the open one (concurrent requests of a
    /// producer share it), or a new one replacing a guard of another epoch.
    pub(super) fn start(&mut self, producer_id: i64, producer_epoch: i16) -> VerificationGuard {
        if let Some(guard) = self.by_producer.get(&producer_id) {
            if guard.producer_epoch == producer_epoch {
                return *guard;
            }
        }
        self.next_token += 1;
        let guard = VerificationGuard {
            producer_id,
            producer_epoch,
            token: self.next_token,
        };
        self.by_producer.insert(producer_id, guard);
        guard
    }

    /// Whether `guard` is still open.
    pub(super) fn holds(&self, guard: &VerificationGuard) -> bool {
        self.by_producer.get(&guard.producer_id) == Some(guard)
    }

    /// Removes `guard` if it is still the producer's (the coordinator said no).
    pub(super) fn discard(&mut self, guard: &VerificationGuard) {
        if self.holds(guard) {
            self.by_producer.remove(&guard.producer_id);
        }
    }

    /// A marker of the producer was written: what its coordinator said may be stale.
    pub(super) fn on_marker(&mut self, producer_id: i64) {
        self.by_producer.remove(&producer_id);
    }

    /// A change of role: markers may have arrived by replication.
    pub(super) fn clear(&mut self) {
        self.by_producer.clear();
    }
}

/// The distinct `(producer id, epoch)` of the transactional data batches in `records`, in
/// order of appearance (a malformed batch ends the list; the append refuses it anyway).
pub fn transactional_producers(records: &Bytes) -> Vec<(i64, i16)> {
    let mut producers: Vec<(i64, i16)> = Vec::new();
    for item in RecordBatchIter::new(records) {
        let Ok((header, _)) = item else { break };
        if !header.is_transactional() || header.is_control() {
            continue;
        }
        let producer = (header.producer_id(), header.producer_epoch());
        if !producers.contains(&producer) {
            producers.push(producer);
        }
    }
    producers
}

/// Whether the partition has the producer's transaction open at `producer_epoch` already.
pub(super) fn has_ongoing_transaction(log: &Log, producer_id: i64, producer_epoch: i16) -> bool {
    log.producer_state()
        .producer(producer_id)
        .is_some_and(|e| e.epoch == producer_epoch && e.current_txn_first_offset.is_some())
}
