//! Idempotent batches the leader refused before appending, so that the batches a producer
//! pipelined behind a refused one are refused the same way rather than as out of sequence.
//!
//! A producer with several requests in flight (`max.in.flight.requests.per.connection` up to
//! 5) sends R1, R2, ... back to back. When R1 is refused before it is appended (the ISR is
//! below `min.insync.replicas`, this replica is not the leader, the disk is full) and R2 reaches
//! a leader that would take it (the ISR grew back in between), R2 does not follow the last
//! appended sequence: Kafka answers OUT_OF_ORDER_SEQUENCE_NUMBER. The Java client retries R2
//! after R1 in that case; librdkafka (2.x) instead bumps the producer's epoch and renumbers
//! every message not yet acknowledged, on every partition, which re-sends under new sequences
//! records another partition's leader may already hold: duplicates, the problem librdkafka
//! issue 4953 describes against Apache Kafka too.
//!
//! Weir answers such an R2 with R1's own retriable error instead: the client retries R1 and
//! R2 in order with their sequences, as after any retriable error, and nothing is renumbered.
//! The rule is narrow: R2 must be of the same producer and epoch, start *after* the sequence
//! the log expects next, and a batch starting exactly at that expected sequence must have been
//! refused here. A gap nothing explains stays OUT_OF_ORDER_SEQUENCE_NUMBER, as does a batch
//! behind the expected sequence.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::log::batch::RecordBatchIter;

/// How long a refusal explains later gaps: longer than any client keeps a request in flight.
const KEEP: Duration = Duration::from_secs(120);
/// The most producers remembered; past it the oldest refusals go first.
const MAX_PRODUCERS: usize = 1024;

/// One refused batch.
#[derive(Debug, Clone)]
pub struct Refusal {
    epoch: i16,
    first_sequence: i32,
    /// The error it was refused with, and why.
    pub error: ResponseError,
    /// The refusal's message.
    pub reason: String,
    at: Instant,
}

/// The last refused batch of each producer (Kafka has no equivalent: see the module doc).
#[derive(Debug, Default)]
pub struct RefusedBatches {
    by_producer: HashMap<i64, Refusal>,
}

impl RefusedBatches {
    /// Remembers that the first idempotent batch of `records` was refused with `error`.
    pub fn record(&mut self, records: &Bytes, error: ResponseError, reason: String, now: Instant) {
        let Some(Ok((header, _))) = RecordBatchIter::new(records).next() else {
            return;
        };
        if header.producer_id() < 0 {
            return;
        }
        if self.by_producer.len() >= MAX_PRODUCERS {
            self.by_producer
                .retain(|_, r| now.duration_since(r.at) < KEEP);
            if self.by_producer.len() >= MAX_PRODUCERS {
                self.by_producer.clear();
            }
        }
        self.by_producer.insert(
            header.producer_id(),
            Refusal {
                epoch: header.producer_epoch(),
                first_sequence: header.base_sequence(),
                error,
                reason,
                at: now,
            },
        );
    }

    /// The refusal that explains why a batch of `producer_id` at `epoch` starting at
    /// `first_sequence` does not follow `last_sequence` (the log's last, -1 for none), if one
    /// does: a batch starting at the expected sequence was refused here, and this one starts
    /// after it.
    pub fn explains(
        &self,
        producer_id: i64,
        epoch: i16,
        first_sequence: i32,
        last_sequence: i32,
        now: Instant,
    ) -> Option<&Refusal> {
        let refusal = self.by_producer.get(&producer_id)?;
        let expected = next_sequence(last_sequence);
        (refusal.epoch == epoch
            && refusal.first_sequence == expected
            && is_after(first_sequence, expected)
            && now.duration_since(refusal.at) < KEEP)
            .then_some(refusal)
    }
}

/// The sequence after `last` (-1: none yet, so 0), wrapping at `i32::MAX` as Kafka's do.
fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

/// Whether `sequence` lies ahead of `expected` (by less than half the sequence space).
fn is_after(sequence: i32, expected: i32) -> bool {
    let distance = (i64::from(sequence) - i64::from(expected)).rem_euclid(1 << 31);
    distance > 0 && distance < 1 << 30
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::{encode_test_batch, TestBatch};

    fn batch(producer_id: i64, epoch: i16, sequence: i32) -> Bytes {
        encode_test_batch(&TestBatch::new(5, 10).idempotent(producer_id, epoch, sequence))
    }

    #[test]
    fn a_refused_batch_explains_a_gap_behind_it_only() {
        let now = Instant::now();
        let mut refused = RefusedBatches::default();
        refused.record(
            &batch(7, 0, 10),
            ResponseError::NotEnoughReplicas,
            "isr".into(),
            now,
        );
        // The log's last sequence is 9: the refused batch (10..14) was next; one at 15 is
        // behind it.
        let r = refused.explains(7, 0, 15, 9, now).expect("explained");
        assert_eq!(r.error, ResponseError::NotEnoughReplicas);
        // Not another producer, epoch, or a gap the refusal does not start.
        assert!(refused.explains(8, 0, 15, 9, now).is_none());
        assert!(refused.explains(7, 1, 15, 9, now).is_none());
        assert!(refused.explains(7, 0, 20, 14, now).is_none());
        // A batch behind the expected sequence is not explained.
        assert!(refused.explains(7, 0, 3, 9, now).is_none());
        // Nor after the refusal has aged out.
        assert!(refused.explains(7, 0, 15, 9, now + KEEP).is_none());
    }

    #[test]
    fn sequences_wrap_and_a_new_epoch_starts_at_zero() {
        let now = Instant::now();
        let mut refused = RefusedBatches::default();
        refused.record(
            &batch(7, 3, 0),
            ResponseError::NotLeaderOrFollower,
            String::new(),
            now,
        );
        assert!(refused.explains(7, 3, 5, -1, now).is_some());
        refused.record(
            &batch(7, 3, 0),
            ResponseError::NotLeaderOrFollower,
            String::new(),
            now,
        );
        assert!(refused.explains(7, 3, 3, i32::MAX, now).is_some());
        assert!(is_after(2, i32::MAX - 2));
        assert!(!is_after(i32::MAX - 2, 2));
    }

    #[test]
    fn non_idempotent_batches_are_not_remembered_and_the_map_stays_bounded() {
        let now = Instant::now();
        let mut refused = RefusedBatches::default();
        let plain = encode_test_batch(&TestBatch::new(1, 10));
        refused.record(&plain, ResponseError::NotEnoughReplicas, String::new(), now);
        assert!(refused.by_producer.is_empty());
        for id in 0..(MAX_PRODUCERS as i64 + 10) {
            refused.record(
                &batch(id, 0, 0),
                ResponseError::NotEnoughReplicas,
                String::new(),
                now,
            );
        }
        assert!(refused.by_producer.len() <= MAX_PRODUCERS);
    }
}
