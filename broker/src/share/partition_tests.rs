//! Scenarios of the share-partition state machine: acquisition, acknowledgement, lock expiry,
//! the delivery count limit, SPSO advance, gaps and persistence.

use super::partition::{
    AcknowledgeType, AcquiredRecords, DeliveryState, SharePartition, SharePartitionConfig,
    SharePartitionError, StateBatch,
};

const A: &str = "member-a";
const B: &str = "member-b";

fn config() -> SharePartitionConfig {
    SharePartitionConfig {
        record_lock_duration_ms: 1_000,
        delivery_count_limit: 3,
        max_record_locks: 10,
    }
}

fn run(first_offset: i64, last_offset: i64, delivery_count: i16) -> AcquiredRecords {
    AcquiredRecords {
        first_offset,
        last_offset,
        delivery_count,
    }
}

#[test]
fn acquire_hands_each_record_to_one_member() {
    let mut sp = SharePartition::new(config(), 100);
    assert_eq!(sp.fetch_offset(), Some(100));
    assert_eq!(sp.acquire(A, 100, 104, 3, 0), vec![run(100, 102, 1)]);
    // B reads from where it may acquire and gets the rest; nothing twice.
    assert_eq!(sp.fetch_offset(), Some(103));
    assert_eq!(sp.acquire(B, 100, 104, 10, 0), vec![run(103, 104, 1)]);
    assert_eq!(sp.acquire(B, 100, 104, 10, 0), vec![]);
    assert_eq!(sp.acquired_count(), 5);
    assert_eq!((sp.start_offset(), sp.end_offset()), (100, 104));
}

#[test]
fn accept_advances_the_start_offset_over_leading_acknowledged_records() {
    let mut sp = SharePartition::new(config(), 0);
    sp.acquire(A, 0, 1, 10, 0);
    sp.acquire(B, 2, 3, 10, 0);
    // B finishes first: SPSO stays, offset 0 is still in flight.
    assert_eq!(
        sp.acknowledge(B, 2, 3, &[AcknowledgeType::Accept], 0),
        Ok(false)
    );
    assert_eq!(sp.start_offset(), 0);
    assert_eq!(
        sp.acknowledge(A, 0, 1, &[AcknowledgeType::Accept], 0),
        Ok(true)
    );
    assert_eq!(sp.start_offset(), 4);
    assert_eq!(sp.state_of(2), Some((DeliveryState::Acknowledged, 0)));
    assert_eq!(sp.state_batches(), vec![]);
}

#[test]
fn acknowledging_what_the_member_does_not_hold_changes_nothing() {
    let mut sp = SharePartition::new(config(), 0);
    sp.acquire(A, 0, 2, 10, 0);
    let err = sp
        .acknowledge(B, 0, 2, &[AcknowledgeType::Accept], 0)
        .unwrap_err();
    assert!(matches!(
        err,
        SharePartitionError::InvalidRecordState { offset: 0, .. }
    ));
    assert_eq!(err.code(), 121);
    // Partly outside what A holds: all or nothing.
    assert!(sp
        .acknowledge(A, 1, 3, &[AcknowledgeType::Accept], 0)
        .is_err());
    assert_eq!(sp.state_of(1), Some((DeliveryState::Acquired, 1)));
    // Acknowledged once, not twice.
    sp.acknowledge(A, 0, 2, &[AcknowledgeType::Accept], 0)
        .unwrap();
    assert!(sp
        .acknowledge(A, 0, 0, &[AcknowledgeType::Accept], 0)
        .is_err());
}

#[test]
fn malformed_acknowledgement_batches_are_invalid_requests() {
    let mut sp = SharePartition::new(config(), 0);
    sp.acquire(A, 0, 2, 10, 0);
    let reversed = sp.acknowledge(A, 2, 0, &[AcknowledgeType::Accept], 0);
    assert_eq!(reversed.unwrap_err().code(), 42);
    let two_types_three_offsets = sp.acknowledge(
        A,
        0,
        2,
        &[AcknowledgeType::Accept, AcknowledgeType::Accept],
        0,
    );
    assert_eq!(two_types_three_offsets.unwrap_err().code(), 42);
}

#[test]
fn released_records_are_redelivered_with_a_growing_count_then_archived() {
    let mut sp = SharePartition::new(config(), 0);
    for delivery in 1..=3 {
        assert_eq!(sp.acquire(A, 0, 0, 10, 0), vec![run(0, 0, delivery)]);
        sp.acknowledge(A, 0, 0, &[AcknowledgeType::Release], 0)
            .unwrap();
    }
    // The third release used the last delivery (limit 3): archived, SPSO moves on.
    assert_eq!(sp.start_offset(), 1);
    assert_eq!(sp.acquire(A, 0, 0, 10, 0), vec![]);
    assert_eq!(sp.stats().redeliveries, 2);
    assert_eq!(sp.stats().archived, 1);
}

#[test]
fn an_expired_lock_makes_the_record_available_again() {
    let mut sp = SharePartition::new(config(), 0);
    sp.acquire(A, 0, 1, 10, 5_000);
    assert_eq!(sp.next_lock_expiry(), Some(6_000));
    assert_eq!(sp.expire_locks(5_999), 0);
    assert_eq!(sp.expire_locks(6_000), 2);
    assert_eq!(sp.stats().lock_timeouts, 2);
    // A's late acknowledgement is refused; B gets the records, delivered a second time.
    assert!(sp
        .acknowledge(A, 0, 1, &[AcknowledgeType::Accept], 6_001)
        .is_err());
    assert_eq!(sp.acquire(B, 0, 1, 10, 6_001), vec![run(0, 1, 2)]);
}

#[test]
fn lock_expiry_archives_records_out_of_deliveries() {
    let mut sp = SharePartition::new(config(), 0);
    let mut now = 0;
    for _ in 0..3 {
        sp.acquire(A, 0, 0, 10, now);
        now += 1_000;
        sp.expire_locks(now);
    }
    assert_eq!(sp.start_offset(), 1);
    assert_eq!(sp.stats().archived, 1);
}

#[test]
fn renew_extends_the_lock() {
    let mut sp = SharePartition::new(config(), 0);
    sp.acquire(A, 0, 0, 10, 0);
    sp.acknowledge(A, 0, 0, &[AcknowledgeType::Renew], 900)
        .unwrap();
    assert_eq!(sp.expire_locks(1_000), 0);
    assert_eq!(sp.next_lock_expiry(), Some(1_900));
}

#[test]
fn a_renewed_record_stays_with_its_member_with_the_same_delivery_count() {
    let mut sp = SharePartition::new(config(), 0);
    assert_eq!(sp.acquire(A, 0, 4, 10, 0), vec![run(0, 4, 1)]);
    // Renewed at 800: the lock that would run out at 1_000 now runs to 1_800.
    assert_eq!(
        sp.acknowledge(A, 0, 4, &[AcknowledgeType::Renew], 800),
        Ok(false)
    );
    assert_eq!(sp.expire_locks(1_500), 0);
    assert_eq!(sp.state_of(2), Some((DeliveryState::Acquired, 1)));
    // Nobody else gets them, and nothing is redelivered.
    assert_eq!(sp.acquire(B, 0, 4, 10, 1_500), vec![]);
    assert_eq!(sp.stats().redeliveries, 0);
    // Still the member's to acknowledge; a renewal is not persisted state.
    let before = sp.state_batches();
    sp.acknowledge(A, 0, 0, &[AcknowledgeType::Renew], 1_600)
        .unwrap();
    assert_eq!(sp.state_batches(), before);
    assert_eq!(
        sp.acknowledge(A, 0, 4, &[AcknowledgeType::Accept], 1_700),
        Ok(true)
    );
    assert_eq!(sp.start_offset(), 5);
}

#[test]
fn renew_mixes_with_other_types_per_offset_and_needs_the_lock() {
    let mut sp = SharePartition::new(config(), 0);
    sp.acquire(A, 0, 2, 10, 0);
    let types = [
        AcknowledgeType::Accept,
        AcknowledgeType::Renew,
        AcknowledgeType::Release,
    ];
    assert_eq!(sp.acknowledge(A, 0, 2, &types, 500), Ok(true));
    assert_eq!(sp.state_of(1), Some((DeliveryState::Acquired, 1)));
    assert_eq!(sp.state_of(2), Some((DeliveryState::Available, 1)));
    assert_eq!(sp.next_lock_expiry(), Some(1_500));
    // Another member cannot renew it; once the lock ran out, neither can its holder.
    assert!(matches!(
        sp.acknowledge(B, 1, 1, &[AcknowledgeType::Renew], 600),
        Err(SharePartitionError::InvalidRecordState { offset: 1, .. })
    ));
    assert_eq!(sp.expire_locks(1_500), 1);
    assert!(matches!(
        sp.acknowledge(A, 1, 1, &[AcknowledgeType::Renew], 1_600),
        Err(SharePartitionError::InvalidRecordState { offset: 1, .. })
    ));
    assert_eq!(sp.state_of(1), Some((DeliveryState::Available, 1)));
}

#[test]
fn reject_and_gaps_archive_and_per_offset_types_apply_one_by_one() {
    let mut sp = SharePartition::new(config(), 0);
    sp.acquire(A, 0, 3, 10, 0);
    let types = [
        AcknowledgeType::Accept,
        AcknowledgeType::Gap,
        AcknowledgeType::Release,
        AcknowledgeType::Reject,
    ];
    assert_eq!(sp.acknowledge(A, 0, 3, &types, 0), Ok(true));
    assert_eq!(sp.start_offset(), 2);
    assert_eq!(sp.state_of(2), Some((DeliveryState::Available, 1)));
    assert_eq!(sp.state_of(3), Some((DeliveryState::Archived, 1)));
    assert_eq!(sp.stats().archived, 2);
    // Only offset 2 is left to deliver.
    assert_eq!(sp.fetch_offset(), Some(2));
    assert_eq!(sp.acquire(B, 2, 3, 10, 0), vec![run(2, 2, 2)]);
}

#[test]
fn offsets_missing_from_the_log_are_archived() {
    let mut sp = SharePartition::new(config(), 0);
    // The log's first batch after offset 0 starts at 5 (compacted away below).
    assert_eq!(sp.acquire(A, 5, 6, 10, 0), vec![run(5, 6, 1)]);
    assert_eq!(sp.start_offset(), 5);
}

#[test]
fn the_window_is_bounded_by_max_record_locks() {
    let mut sp = SharePartition::new(config(), 0);
    assert_eq!(sp.acquire(A, 0, 99, 100, 0), vec![run(0, 9, 1)]);
    assert_eq!(sp.fetch_offset(), None);
    sp.acknowledge(A, 0, 3, &[AcknowledgeType::Accept], 0)
        .unwrap();
    assert_eq!(sp.fetch_offset(), Some(10));
    assert_eq!(sp.acquire(B, 10, 99, 100, 0), vec![run(10, 13, 1)]);
}

#[test]
fn a_member_that_leaves_gives_its_records_back() {
    let mut sp = SharePartition::new(config(), 0);
    sp.acquire(A, 0, 1, 10, 0);
    sp.acquire(B, 2, 2, 10, 0);
    assert_eq!(sp.release_member(A), 2);
    // Not a delivery: the member never handed them to an application (Kafka's DECREASE).
    assert_eq!(sp.state_of(0), Some((DeliveryState::Available, 0)));
    assert_eq!(sp.state_of(2), Some((DeliveryState::Acquired, 1)));
}

/// Consumers that prefetch and leave do not use up a record's deliveries: released at the end
/// of their sessions, records stay deliverable however often that happens, and the next real
/// delivery counts from 1. Records whose lock ran out, or that were released by an
/// acknowledgement, did count, and reach the limit.
#[test]
fn a_leaving_members_acquisitions_do_not_use_up_deliveries() {
    let mut sp = SharePartition::new(config(), 0); // delivery limit 3
    for _ in 0..5 {
        assert_eq!(sp.acquire(A, 0, 0, 10, 0), vec![run(0, 0, 1)]);
        sp.release_member(A);
    }
    assert_eq!(sp.state_of(0), Some((DeliveryState::Available, 0)));
    // Lock expiries count: the third archives it.
    for now in [1_000, 2_000] {
        sp.acquire(B, 0, 0, 10, now - 1_000);
        assert_eq!(sp.expire_locks(now), 1);
    }
    assert_eq!(sp.acquire(B, 0, 0, 10, 2_000), vec![run(0, 0, 3)]);
    assert_eq!(sp.expire_locks(3_000), 1);
    assert_eq!(
        sp.fetch_offset(),
        Some(1),
        "archived after its third delivery"
    );
}

#[test]
fn state_batches_round_trip_and_acquired_records_come_back_available() {
    let mut sp = SharePartition::new(config(), 10);
    sp.acquire(A, 10, 15, 10, 0);
    sp.acknowledge(A, 11, 12, &[AcknowledgeType::Accept], 0)
        .unwrap();
    sp.acknowledge(A, 13, 13, &[AcknowledgeType::Release], 0)
        .unwrap();
    sp.acquire(B, 13, 13, 10, 0);
    let batches = sp.state_batches();
    assert_eq!(
        batches,
        vec![
            StateBatch {
                first_offset: 10,
                last_offset: 10,
                delivery_state: 0,
                delivery_count: 1
            },
            StateBatch {
                first_offset: 11,
                last_offset: 12,
                delivery_state: 2,
                delivery_count: 1
            },
            StateBatch {
                first_offset: 13,
                last_offset: 13,
                delivery_state: 0,
                delivery_count: 2
            },
            StateBatch {
                first_offset: 14,
                last_offset: 15,
                delivery_state: 0,
                delivery_count: 1
            },
        ]
    );
    // A new leader loads it: what was in flight is redelivered with its count, what was
    // acknowledged never again.
    let mut loaded = SharePartition::from_state(config(), sp.start_offset(), &batches);
    assert_eq!(loaded.fetch_offset(), Some(10));
    assert_eq!(
        loaded.acquire(A, 10, 15, 10, 0),
        vec![run(10, 10, 2), run(13, 13, 3), run(14, 15, 2)]
    );
    assert_eq!(loaded.end_offset(), 15);
}

#[test]
fn reset_start_offset_drops_the_window_below() {
    let mut sp = SharePartition::new(config(), 0);
    sp.acquire(A, 0, 5, 10, 0);
    sp.reset_start_offset(3);
    assert_eq!(sp.start_offset(), 3);
    assert_eq!(sp.acquired_count(), 3);
    sp.reset_start_offset(100);
    assert_eq!((sp.start_offset(), sp.fetch_offset()), (100, Some(100)));
}

#[test]
fn control_batches_are_archived_not_delivered() {
    let mut sp = SharePartition::new(config(), 0);
    sp.acquire(A, 0, 1, 10, 0);
    sp.archive_range(2, 2);
    assert_eq!(sp.state_of(2), Some((DeliveryState::Archived, 0)));
    sp.acknowledge(A, 0, 1, &[AcknowledgeType::Accept], 0)
        .unwrap();
    assert_eq!(sp.start_offset(), 3);
}

/// A read longer than the window has room for: the batches after the one that filled it are
/// in the log, not a gap, and must wait for room rather than be archived (found by franz-go's
/// share ETL: records lost at the second level, archived without ever being delivered).
#[test]
fn batches_past_a_full_window_wait_for_room_and_are_not_archived() {
    let mut sp = SharePartition::new(config(), 0); // a window of 10
    assert_eq!(sp.acquire(A, 0, 7, 100, 0), vec![run(0, 7, 1)]);
    assert_eq!(sp.acquire(A, 8, 15, 100, 0), vec![run(8, 9, 1)]);
    assert_eq!(sp.acquire(A, 16, 23, 100, 0), vec![]);
    assert_eq!(sp.end_offset(), 9);
    sp.acknowledge(A, 0, 9, &[AcknowledgeType::Accept], 0)
        .unwrap();
    // 10..23 come next, none archived.
    assert_eq!(sp.fetch_offset(), Some(10));
    assert_eq!(sp.acquire(B, 8, 15, 100, 0), vec![run(10, 15, 1)]);
    assert_eq!(sp.acquire(B, 16, 23, 100, 0), vec![run(16, 19, 1)]);
    for offset in 10..=19 {
        assert_eq!(
            sp.state_of(offset),
            Some((DeliveryState::Acquired, 1)),
            "offset {offset}"
        );
    }
}
