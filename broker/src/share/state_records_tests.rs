//! `__share_group_state` records: their encoding, and that replaying a snapshot and the
//! updates after it gives back the share partition that wrote them.

use uuid::Uuid;

use super::partition::{
    AcknowledgeType, DeliveryState, SharePartition, SharePartitionConfig, StateBatch,
};
use super::state_records::{
    decode, encode_key, encode_snapshot, encode_update, SharePartitionKey, ShareState, ShareUpdate,
    StateRecord,
};

/// One change to a share partition at a time.
type Step = dyn FnMut(&mut SharePartition, i64);

fn key() -> SharePartitionKey {
    SharePartitionKey {
        group_id: "orders-workers".to_string(),
        topic_id: Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
        partition: 3,
    }
}

fn batch(first: i64, last: i64, state: DeliveryState, count: i16) -> StateBatch {
    StateBatch {
        first_offset: first,
        last_offset: last,
        delivery_state: state.code(),
        delivery_count: count,
    }
}

/// What the share-partition leader sends: its whole window.
fn update_of(sp: &SharePartition) -> ShareUpdate {
    ShareUpdate {
        snapshot_epoch: 0,
        leader_epoch: sp.leader_epoch,
        start_offset: sp.start_offset(),
        batches: sp.state_batches(),
    }
}

/// Encodes `record` with its key and decodes it back, as a load reads it.
fn through_the_log(record: &StateRecord) -> StateRecord {
    let (k, v) = match record {
        StateRecord::Snapshot(s) => (encode_key(&key(), true), encode_snapshot(s)),
        StateRecord::Update(u) => (encode_key(&key(), false), encode_update(u)),
    };
    let (decoded_key, decoded) = decode(&k, Some(&v)).unwrap();
    assert_eq!(decoded_key, key());
    decoded.unwrap()
}

#[test]
fn snapshot_and_update_round_trip() {
    let snapshot = ShareState {
        snapshot_epoch: 4,
        state_epoch: 2,
        leader_epoch: 7,
        start_offset: 100,
        write_timestamp: 1_700_000_000_000,
        batches: vec![
            batch(100, 104, DeliveryState::Available, 1),
            batch(105, 105, DeliveryState::Acknowledged, 1),
            batch(106, 300, DeliveryState::Archived, 5),
        ],
    };
    let record = StateRecord::Snapshot(snapshot);
    assert_eq!(through_the_log(&record), record);
    let update = StateRecord::Update(ShareUpdate {
        snapshot_epoch: 4,
        leader_epoch: 8,
        start_offset: -1,
        batches: vec![batch(101, 101, DeliveryState::Acknowledged, 2)],
    });
    assert_eq!(through_the_log(&update), update);
}

#[test]
fn a_tombstone_decodes_as_a_deletion() {
    let (k, record) = decode(&encode_key(&key(), true), None).unwrap();
    assert_eq!(k, key());
    assert_eq!(record, None);
}

#[test]
fn truncated_and_unknown_records_are_errors_not_panics() {
    let k = encode_key(&key(), false);
    let v = encode_update(&ShareUpdate {
        snapshot_epoch: 1,
        leader_epoch: 1,
        start_offset: 5,
        batches: vec![batch(5, 9, DeliveryState::Available, 1)],
    });
    for cut in 0..v.len() {
        assert!(decode(&k, Some(&v[..cut])).is_err(), "value cut at {cut}");
    }
    for cut in 0..k.len() {
        assert!(decode(&k[..cut], Some(&v)).is_err(), "key cut at {cut}");
    }
    let mut other_type = k.to_vec();
    other_type[1] = 9;
    assert!(decode(&other_type, Some(&v)).is_err());
}

#[test]
fn an_update_overlays_the_batches_it_covers_and_drops_what_is_below_the_start() {
    let mut state = ShareState {
        start_offset: 10,
        batches: vec![batch(10, 19, DeliveryState::Available, 1)],
        ..ShareState::default()
    };
    state.apply_update(&ShareUpdate {
        snapshot_epoch: 0,
        leader_epoch: 3,
        start_offset: 12,
        batches: vec![batch(14, 15, DeliveryState::Acknowledged, 1)],
    });
    assert_eq!(state.start_offset, 12);
    assert_eq!(state.leader_epoch, 3);
    assert_eq!(
        state.batches,
        vec![
            batch(12, 13, DeliveryState::Available, 1),
            batch(14, 15, DeliveryState::Acknowledged, 1),
            batch(16, 19, DeliveryState::Available, 1),
        ]
    );
    // -1 leaves the start offset where it is.
    state.apply_update(&ShareUpdate {
        snapshot_epoch: 0,
        leader_epoch: 3,
        start_offset: -1,
        batches: vec![],
    });
    assert_eq!(state.start_offset, 12);
}

#[test]
fn replaying_a_snapshot_and_updates_gives_back_the_share_partition() {
    let config = SharePartitionConfig {
        record_lock_duration_ms: 1_000,
        delivery_count_limit: 3,
        max_record_locks: 100,
    };
    let mut sp = SharePartition::new(config.clone(), 0);
    sp.leader_epoch = 5;
    let mut log = Vec::new();
    let mut now = 0;
    // Each step changes the state and is written as the leader writes it: the first write a
    // snapshot (what the coordinator writes for a new key), the rest updates.
    let mut steps: Vec<Box<Step>> = vec![
        Box::new(|sp, now| {
            sp.acquire("a", 0, 9, 10, now);
        }),
        Box::new(|sp, now| {
            sp.acknowledge("a", 0, 3, &[AcknowledgeType::Accept], now)
                .unwrap();
        }),
        Box::new(|sp, now| {
            let types = [
                AcknowledgeType::Release,
                AcknowledgeType::Reject,
                AcknowledgeType::Accept,
            ];
            sp.acknowledge("a", 4, 6, &types, now).unwrap();
        }),
        Box::new(|sp, now| {
            sp.acquire("b", 4, 14, 5, now);
        }),
        Box::new(|sp, now| {
            sp.expire_locks(now + 5_000);
        }),
        Box::new(|sp, now| {
            sp.acquire("c", 4, 20, 20, now);
        }),
    ];
    for (i, step) in steps.iter_mut().enumerate() {
        now += 10;
        step(&mut sp, now);
        let update = update_of(&sp);
        let record = if i == 0 {
            StateRecord::Snapshot(ShareState {
                leader_epoch: sp.leader_epoch,
                start_offset: update.start_offset,
                batches: update.batches,
                ..ShareState::default()
            })
        } else {
            StateRecord::Update(update)
        };
        log.push(through_the_log(&record));
    }
    let mut replayed = ShareState::default();
    for record in log {
        match record {
            StateRecord::Snapshot(s) => replayed = s,
            StateRecord::Update(u) => replayed.apply_update(&u),
        }
    }
    let loaded = SharePartition::from_state(config, replayed.start_offset, &replayed.batches);
    assert_eq!(loaded.start_offset(), sp.start_offset());
    assert_eq!(loaded.end_offset(), sp.end_offset());
    assert_eq!(loaded.state_batches(), sp.state_batches());
    // What was in flight is available again, with the deliveries it had.
    for offset in sp.start_offset()..=sp.end_offset() {
        let (before, count) = sp.state_of(offset).unwrap();
        let (after, loaded_count) = loaded.state_of(offset).unwrap();
        assert_eq!(loaded_count, count, "offset {offset}");
        let expected = match before {
            DeliveryState::Acquired => DeliveryState::Available,
            other => other,
        };
        assert_eq!(after, expected, "offset {offset}");
    }
    assert!(
        sp.acquired_count() > 0,
        "the scenario leaves records in flight"
    );
    assert_eq!(loaded.acquired_count(), 0);
}

#[test]
fn the_delivery_complete_count_is_what_the_window_finished_and_lag_leaves_it_out() {
    use super::coordinator::{delivery_complete_count, share_lag};

    // A member holds 0..=4 while 5..=9 were accepted and 10 rejected.
    let mut sp = SharePartition::new(SharePartitionConfig::default(), 0);
    sp.acquire("a", 0, 10, 100, 0);
    sp.acknowledge("a", 5, 9, &[AcknowledgeType::Accept], 0)
        .unwrap();
    sp.acknowledge("a", 10, 10, &[AcknowledgeType::Reject], 0)
        .unwrap();
    let state = ShareState {
        start_offset: sp.start_offset(),
        batches: sp.state_batches(),
        ..ShareState::default()
    };
    assert_eq!(delivery_complete_count(&state), 6);
    // 15 produced: 0..=4 in flight and 11..=14 never delivered are the lag.
    assert_eq!(share_lag(15, state.start_offset, 6), 9);
    // Batches below the start offset (an update moved it) do not count.
    let moved = ShareState {
        start_offset: 7,
        ..state.clone()
    };
    assert_eq!(delivery_complete_count(&moved), 4);
    // No state: unknown.
    let none = ShareState {
        start_offset: -1,
        ..ShareState::default()
    };
    assert_eq!(delivery_complete_count(&none), -1);
    // Everything finished: no lag, never negative.
    assert_eq!(share_lag(10, 10, 0), 0);
    assert_eq!(share_lag(10, 12, 0), 0);
}
