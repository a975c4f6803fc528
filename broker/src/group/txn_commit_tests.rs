//! Transactional offset commits over a real `__consumer_offsets` log: pending until the
//! marker, committed or dropped by [`GroupCoordinator::complete_transaction`], and the same
//! state rebuilt by a load after a failover, open transactions included.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use super::classic::TopicPartition;
use super::commit::{FetchedOffset, OffsetCommit};
use super::coordinator::{GroupCoordinator, OFFSETS_TOPIC};
use super::coordinator_tests::{commit, coordinator, join_request, loaded};
use super::txn_commit::TxnCommitter;
use crate::clock::ManualClock;
use crate::log::{ControlRecordType, TxnMarker};

fn producer(producer_id: i64, producer_epoch: i16) -> TxnCommitter {
    TxnCommitter {
        producer_id,
        producer_epoch,
        generation: -1,
        member_id: String::new(),
        instance_id: None,
        verification: None,
    }
}

fn tp(partition: i32) -> TopicPartition {
    ("t".to_string(), partition)
}

/// Commits `offsets` in the transaction of `producer_id` (epoch 0); the code of each partition.
async fn txn_commit(
    c: &GroupCoordinator,
    group: &str,
    producer_id: i64,
    offsets: Vec<OffsetCommit>,
) -> Vec<(TopicPartition, i16)> {
    c.commit_txn_offsets(group, &producer(producer_id, 0), offsets)
        .await
        .unwrap()
}

/// What WriteTxnMarkers does for the group's partition: append the marker, then call the hook.
fn end_transaction(c: &GroupCoordinator, group: &str, producer_id: i64, commit: bool) {
    let partition = c.partition_for(group);
    let log = c.replicas.partition(OFFSETS_TOPIC, partition).unwrap();
    log.append_txn_marker(&TxnMarker {
        producer_id,
        producer_epoch: 0,
        coordinator_epoch: 0,
        kind: if commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        },
    })
    .unwrap();
    c.complete_transaction(partition, producer_id, commit);
}

/// The offset of `partition`, as OffsetFetch answers it with and without `require_stable`.
fn fetched(c: &GroupCoordinator, group: &str, partition: i32) -> (FetchedOffset, FetchedOffset) {
    let one = |stable| {
        c.fetch_offsets(group, Some(vec![tp(partition)]), stable)
            .unwrap()
            .remove(0)
            .1
    };
    (one(false), one(true))
}

fn offset_of(f: &FetchedOffset) -> Option<i64> {
    match f {
        FetchedOffset::Committed(v) => Some(v.offset),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transaction_makes_its_offsets_visible_and_survives_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let f = coordinator(dir.path(), Arc::new(ManualClock::new(1_000_000))).await;
    let c = &f.c;
    c.ensure_offsets_topic().await.unwrap();
    loaded(c, "g").await;
    c.commit_offsets("g", -1, "", None, vec![commit(1, 0)])
        .await
        .unwrap();
    let mut codes = txn_commit(c, "g", 7, vec![commit(5, 0), commit(6, 1), commit(3, 9)]).await;
    codes.sort();
    assert_eq!(
        codes,
        vec![
            (tp(0), 0),
            (tp(1), 0),
            (tp(9), ResponseError::UnknownTopicOrPartition.code())
        ]
    );
    // Pending: the last committed value, or UNSTABLE_OFFSET_COMMIT when stable is required.
    let (plain, stable) = fetched(c, "g", 0);
    assert_eq!(
        (offset_of(&plain), stable),
        (Some(1), FetchedOffset::Unstable)
    );
    assert_eq!(
        fetched(c, "g", 1),
        (FetchedOffset::None, FetchedOffset::Unstable)
    );
    assert_eq!(c.fetch_offsets("g", None, false).unwrap().len(), 1);

    end_transaction(c, "g", 7, true);
    for partition in [0, 1] {
        let (plain, stable) = fetched(c, "g", partition);
        assert_eq!(plain, stable, "t-{partition} is stable once committed");
    }
    assert_eq!(offset_of(&fetched(c, "g", 0).0), Some(5));
    assert_eq!(offset_of(&fetched(c, "g", 1).0), Some(6));
    // The marker is handled once: a second call changes nothing.
    c.complete_transaction(c.partition_for("g"), 7, false);
    assert_eq!(offset_of(&fetched(c, "g", 1).0), Some(6));

    let partition = c.partition_for("g");
    c.on_resign(partition);
    c.on_become_leader(partition, 1);
    assert_eq!(offset_of(&fetched(c, "g", 0).1), Some(5), "replayed");
    assert_eq!(offset_of(&fetched(c, "g", 1).1), Some(6), "replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_transaction_is_dropped_and_an_open_one_stays_pending_across_a_failover() {
    let dir = tempfile::tempdir().unwrap();
    let f = coordinator(dir.path(), Arc::new(ManualClock::new(1_000_000))).await;
    let c = &f.c;
    c.ensure_offsets_topic().await.unwrap();
    loaded(c, "g").await;
    txn_commit(c, "g", 8, vec![commit(9, 0)]).await;
    end_transaction(c, "g", 8, false);
    assert_eq!(
        fetched(c, "g", 0),
        (FetchedOffset::None, FetchedOffset::None)
    );

    txn_commit(c, "g", 9, vec![commit(20, 1)]).await;
    let partition = c.partition_for("g");
    c.on_resign(partition);
    c.on_become_leader(partition, 1);
    assert_eq!(
        fetched(c, "g", 1),
        (FetchedOffset::None, FetchedOffset::Unstable),
        "still open after the reload"
    );
    // A marker of another __consumer_offsets partition leaves this group alone.
    c.complete_transaction((partition + 1) % 4, 9, true);
    assert_eq!(fetched(c, "g", 1).1, FetchedOffset::Unstable);
    end_transaction(c, "g", 9, true);
    assert_eq!(offset_of(&fetched(c, "g", 1).1), Some(20));
    // And the aborted one stays dropped on the next reload.
    c.on_resign(partition);
    c.on_become_leader(partition, 2);
    assert_eq!(
        fetched(c, "g", 0),
        (FetchedOffset::None, FetchedOffset::None)
    );
    assert_eq!(offset_of(&fetched(c, "g", 1).1), Some(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_txn_commit_is_fenced_by_an_older_producer_epoch_and_validates_members() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let f = coordinator(dir.path(), clock.clone()).await;
    let c = f.c.clone();
    c.ensure_offsets_topic().await.unwrap();
    loaded(&c, "g").await;
    let ok = c
        .commit_txn_offsets("g", &producer(7, 2), vec![commit(1, 0)])
        .await
        .unwrap();
    assert_eq!(ok, vec![(tp(0), 0)]);
    let fenced = c
        .commit_txn_offsets("g", &producer(7, 1), vec![commit(2, 0)])
        .await
        .unwrap();
    assert_eq!(
        fenced,
        vec![(tp(0), ResponseError::InvalidProducerEpoch.code())]
    );
    assert_eq!(
        c.commit_txn_offsets("", &producer(7, 2), vec![commit(2, 0)])
            .await
            .unwrap_err(),
        ResponseError::InvalidGroupId.code()
    );

    // A group with member A in generation 1.
    loaded(&c, "m").await;
    let join = {
        let c = c.clone();
        tokio::spawn(async move { c.join("m", join_request("")).await })
    };
    let a = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !join.is_finished() {
            clock.advance(1_000);
            c.tick();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        join.await.unwrap()
    })
    .await
    .expect("A's join is answered");
    assert_eq!((a.error, a.generation), (0, 1));
    let as_member = |generation: i32, member_id: &str| TxnCommitter {
        generation,
        member_id: member_id.to_string(),
        ..producer(11, 0)
    };
    for (committer, expected) in [
        (as_member(1, &a.member_id), Ok(0)),
        (
            as_member(2, &a.member_id),
            Err(ResponseError::IllegalGeneration),
        ),
        (
            as_member(1, "stranger"),
            Err(ResponseError::UnknownMemberId),
        ),
        // Before v3 the request names no member: accepted whatever the group's state.
        (producer(11, 0), Ok(0)),
    ] {
        let got = c
            .commit_txn_offsets("m", &committer, vec![commit(4, 0)])
            .await
            .map(|codes| codes[0].1);
        assert_eq!(got, expected.map_err(|e| e.code()), "{committer:?}");
    }
}

/// The marker of a transaction can reach a partition while its new coordinator replays it:
/// before or after the replay's read. Either way the load ends with the transaction complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_written_while_the_partition_loads_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let f = coordinator(dir.path(), Arc::new(ManualClock::new(1_000_000))).await;
    let c = &f.c;
    c.ensure_offsets_topic().await.unwrap();
    loaded(c, "g").await;
    txn_commit(c, "g", 5, vec![commit(3, 0)]).await;
    txn_commit(c, "g", 6, vec![commit(4, 1)]).await;
    let partition = c.partition_for("g");
    c.on_resign(partition);
    assert!(c.start_loading(partition, 1));
    assert_eq!(
        c.fetch_offsets("g", None, false).unwrap_err(),
        ResponseError::CoordinatorLoadInProgress.code()
    );
    // 5's marker lands before the replay reads the log, 6's after it (the hook is called
    // while loading; the marker itself is appended past what the replay read).
    end_transaction(c, "g", 5, true);
    c.complete_transaction(partition, 6, true);
    c.load(partition, 1);
    assert_eq!(offset_of(&fetched(c, "g", 0).1), Some(3));
    assert_eq!(offset_of(&fetched(c, "g", 1).1), Some(4));
}

/// OffsetDelete and DeleteGroups while a transaction holds offsets of the group: the deletion
/// is newer than the transaction's records, so its COMMIT marker brings nothing back, neither
/// in memory nor when the partition is loaded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_is_not_undone_by_a_transaction_committed_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let f = coordinator(dir.path(), Arc::new(ManualClock::new(1_000_000))).await;
    let c = &f.c;
    c.ensure_offsets_topic().await.unwrap();
    loaded(c, "g").await;
    loaded(c, "h").await;
    txn_commit(c, "g", 5, vec![commit(3, 0), commit(4, 1)]).await;
    let deleted = c.delete_offsets("g", vec![tp(0)]).unwrap();
    assert_eq!(deleted, vec![(tp(0), 0)]);
    end_transaction(c, "g", 5, true);
    assert_eq!(
        fetched(c, "g", 0),
        (FetchedOffset::None, FetchedOffset::None)
    );
    assert_eq!(offset_of(&fetched(c, "g", 1).1), Some(4));

    txn_commit(c, "h", 6, vec![commit(7, 0)]).await;
    assert_eq!(c.delete_group("h"), 0);
    end_transaction(c, "h", 6, true);
    assert!(c.fetch_offsets("h", None, false).unwrap().is_empty());

    for group in ["g", "h"] {
        let partition = c.partition_for(group);
        c.on_resign(partition);
        c.on_become_leader(partition, 1);
    }
    assert_eq!(
        fetched(c, "g", 0),
        (FetchedOffset::None, FetchedOffset::None)
    );
    assert_eq!(offset_of(&fetched(c, "g", 1).1), Some(4));
    assert!(c.fetch_offsets("h", None, false).unwrap().is_empty());
}

/// KIP-890 at the group coordinator: a TxnOffsetCommit that arrives after its transaction's
/// ABORT marker (held up in a paused broker) must not leave offsets pending that the
/// producer's next COMMIT would make the group's. Under verification the append needs the
/// producer's transaction open in the partition or a guard that no marker has closed since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_commit_after_its_abort_marker_is_refused_under_verification() {
    let dir = tempfile::tempdir().unwrap();
    let f = coordinator(dir.path(), Arc::new(ManualClock::new(1_000_000))).await;
    let c = &f.c;
    c.ensure_offsets_topic().await.unwrap();
    loaded(c, "g").await;
    let log = c
        .replicas
        .partition(OFFSETS_TOPIC, c.partition_for("g"))
        .unwrap();
    let verified = |guards: Vec<_>| TxnCommitter {
        verification: Some(guards),
        ..producer(7, 0)
    };

    // The transaction coordinator confirmed the partition: a guard is taken, the append
    // goes through and opens the transaction here.
    let guard = log.start_producer_verification(7, 0).unwrap();
    let codes = c
        .commit_txn_offsets("g", &verified(vec![guard]), vec![commit(5, 0)])
        .await
        .unwrap();
    assert_eq!(codes, vec![(tp(0), 0)]);
    assert!(
        log.start_producer_verification(7, 0).is_none(),
        "a transaction open here needs no question"
    );
    end_transaction(c, "g", 7, false);

    // A guard taken before the ABORT marker is stale after it: the late commit is refused
    // and nothing is pending.
    let stale = log.start_producer_verification(7, 0).unwrap();
    end_transaction(c, "g", 7, false);
    let codes = c
        .commit_txn_offsets("g", &verified(vec![stale]), vec![commit(40, 0)])
        .await
        .unwrap();
    assert_eq!(codes, vec![(tp(0), ResponseError::InvalidTxnState.code())]);
    let codes = c
        .commit_txn_offsets("g", &verified(Vec::new()), vec![commit(40, 0)])
        .await
        .unwrap();
    assert_eq!(
        codes,
        vec![(tp(0), ResponseError::InvalidTxnState.code())],
        "no guard and no open transaction"
    );
    assert_eq!(
        fetched(c, "g", 0),
        (FetchedOffset::None, FetchedOffset::None)
    );

    // The producer's next transaction commits only its own offsets.
    let guard = log.start_producer_verification(7, 0).unwrap();
    c.commit_txn_offsets("g", &verified(vec![guard]), vec![commit(3, 1)])
        .await
        .unwrap();
    end_transaction(c, "g", 7, true);
    assert_eq!(fetched(c, "g", 0).0, FetchedOffset::None);
    assert_eq!(offset_of(&fetched(c, "g", 1).0), Some(3));
}
