use proptest::prelude::*;

use super::*;

fn entry(epoch: i32, start_offset: i64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

/// A cache in a fresh directory holding `entries`, assigned in order.
fn cache_with(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochFileCache) {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = LeaderEpochFileCache::empty(dir.path());
    for &(epoch, offset) in entries {
        cache.assign(epoch, offset).unwrap();
    }
    (dir, cache)
}

fn pairs(cache: &LeaderEpochFileCache) -> Vec<(i32, i64)> {
    cache
        .entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

fn reloaded(dir: &tempfile::TempDir) -> Vec<(i32, i64)> {
    pairs(
        &LeaderEpochFileCache::load(dir.path())
            .unwrap()
            .expect("file exists"),
    )
}

const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);

#[test]
fn the_latest_epoch_ends_at_the_log_end() {
    let (_dir, cache) = cache_with(&[(2, 10)]);
    assert_eq!(cache.latest_epoch(), Some(2));
    assert_eq!(cache.end_offset_for(2, 11), (2, 11));
    let (_dir, cache) = cache_with(&[(2, 5), (3, 6), (4, 7)]);
    assert_eq!(cache.end_offset_for(4, 30), (4, 30));
}

#[test]
fn an_undefined_or_unknown_newer_epoch_has_no_end_offset() {
    let (_dir, cache) = cache_with(&[(2, 100)]);
    assert_eq!(cache.end_offset_for(UNDEFINED_EPOCH, 120), UNDEFINED);
    assert_eq!(cache.end_offset_for(3, 120), UNDEFINED);
    let (_dir, empty) = cache_with(&[]);
    assert_eq!(empty.latest_epoch(), None);
    assert_eq!(empty.end_offset_for(7, 0), UNDEFINED);
    assert_eq!(empty.end_offset_for(0, 0), UNDEFINED);
}

#[test]
fn an_epoch_older_than_all_known_ends_where_the_first_known_starts() {
    let (_dir, cache) = cache_with(&[(5, 11), (6, 12)]);
    assert_eq!(cache.end_offset_for(4, 20), (4, 11));
    assert_eq!(cache.end_offset_for(0, 20), (0, 11));
}

#[test]
fn a_previous_epoch_ends_where_the_next_one_starts() {
    let (_dir, cache) = cache_with(&[(1, 5), (1, 6), (1, 7), (2, 8), (2, 9)]);
    assert_eq!(pairs(&cache), vec![(1, 5), (2, 8)]);
    assert_eq!(cache.end_offset_for(1, 10), (1, 8));
}

#[test]
fn a_gap_answers_the_largest_epoch_below_and_the_next_start() {
    let (_dir, cache) = cache_with(&[(0, 10), (2, 13), (4, 17)]);
    assert_eq!(cache.end_offset_for(0, 20), (0, 13));
    assert_eq!(cache.end_offset_for(1, 20), (0, 13));
    assert_eq!(cache.end_offset_for(2, 20), (2, 17));
    assert_eq!(cache.end_offset_for(3, 20), (2, 17));
    assert_eq!(cache.end_offset_for(4, 20), (4, 20));
    assert_eq!(cache.end_offset_for(5, 20), UNDEFINED);
}

#[test]
fn an_assigned_epoch_keeps_its_first_offset() {
    let (dir, mut cache) = cache_with(&[(2, 6)]);
    std::fs::remove_file(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
    assert!(!cache.assign(2, 7).unwrap());
    assert_eq!(pairs(&cache), vec![(2, 6)]);
    assert!(
        !dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE).exists(),
        "an assign that changes nothing writes nothing"
    );
}

#[test]
fn the_same_epoch_at_an_earlier_offset_replaces_it() {
    let (_dir, mut cache) = cache_with(&[(5, 11)]);
    assert!(cache.assign(5, 10).unwrap());
    assert_eq!(pairs(&cache), vec![(5, 10)]);
}

#[test]
fn non_monotonic_assigns_drop_the_conflicting_newer_entries() {
    // A newer epoch starting before the latest entry: the later entry goes.
    let (dir, mut cache) = cache_with(&[(2, 6)]);
    assert!(cache.assign(3, 5).unwrap());
    assert_eq!(pairs(&cache), vec![(3, 5)]);
    assert_eq!(cache.end_offset_for(2, 10), (2, 5));
    assert_eq!(reloaded(&dir), vec![(3, 5)]);

    // An older epoch after newer ones: every entry of that epoch or above, or at or after
    // the offset, goes.
    let (_dir, mut cache) = cache_with(&[(1, 5), (2, 6)]);
    assert!(cache.assign(1, 7).unwrap());
    assert_eq!(pairs(&cache), vec![(1, 7)]);
    assert_eq!(cache.latest_epoch(), Some(1));
    assert_eq!(cache.end_offset_for(1, 8), (1, 8));
    assert_eq!(cache.end_offset_for(2, 8), UNDEFINED);

    let (_dir, mut cache) = cache_with(&[(0, 0), (1, 5), (3, 9)]);
    assert!(cache.assign(2, 9).unwrap());
    assert_eq!(pairs(&cache), vec![(0, 0), (1, 5), (2, 9)]);
}

#[test]
fn negative_entries_are_rejected() {
    let (_dir, mut cache) = cache_with(&[(1, 5)]);
    for (epoch, offset) in [(-1, 10), (2, -1)] {
        assert!(matches!(
            cache.assign(epoch, offset),
            Err(LogError::InvalidEpochEntry { .. })
        ));
    }
    assert_eq!(pairs(&cache), vec![(1, 5)]);
}

#[test]
fn truncate_from_end_drops_entries_at_or_after_the_offset() {
    let history = [(2, 6), (3, 8), (4, 11)];
    let cases: [(i64, &[(i32, i64)]); 6] = [
        (12, &[(2, 6), (3, 8), (4, 11)]),
        (11, &[(2, 6), (3, 8)]),
        (9, &[(2, 6), (3, 8)]),
        (8, &[(2, 6)]),
        (0, &[]),
        (UNDEFINED_EPOCH_OFFSET, &[(2, 6), (3, 8), (4, 11)]),
    ];
    for (end_offset, expected) in cases {
        let (dir, mut cache) = cache_with(&history);
        cache.truncate_from_end(end_offset).unwrap();
        assert_eq!(pairs(&cache), expected, "truncate_from_end({end_offset})");
        assert_eq!(reloaded(&dir), expected, "persisted");
    }
}

#[test]
fn truncate_from_start_moves_the_first_epoch_up_to_the_log_start() {
    let history = [(2, 6), (3, 8), (4, 11)];
    let cases: [(i64, &[(i32, i64)]); 8] = [
        (UNDEFINED_EPOCH_OFFSET, &[(2, 6), (3, 8), (4, 11)]),
        (1, &[(2, 6), (3, 8), (4, 11)]),
        (6, &[(2, 6), (3, 8), (4, 11)]),
        (7, &[(2, 7), (3, 8), (4, 11)]),
        (8, &[(3, 8), (4, 11)]),
        (9, &[(3, 9), (4, 11)]),
        (11, &[(4, 11)]),
        (15, &[(4, 15)]),
    ];
    for (start_offset, expected) in cases {
        let (dir, mut cache) = cache_with(&history);
        cache.truncate_from_start(start_offset).unwrap();
        assert_eq!(
            pairs(&cache),
            expected,
            "truncate_from_start({start_offset})"
        );
        assert_eq!(reloaded(&dir), expected, "persisted");
    }
}

#[test]
fn truncations_of_an_empty_cache_and_clear() {
    let (_dir, mut cache) = cache_with(&[]);
    cache.truncate_from_start(5).unwrap();
    cache.truncate_from_end(5).unwrap();
    assert!(cache.entries().is_empty());

    let (dir, mut cache) = cache_with(&[(0, 0), (1, 5)]);
    cache.clear_and_flush().unwrap();
    assert!(cache.entries().is_empty());
    assert_eq!(reloaded(&dir), vec![]);
}

#[test]
fn epoch_for_offset_finds_the_epoch_that_wrote_it() {
    let (_dir, cache) = cache_with(&[(1, 5), (2, 10), (4, 15)]);
    let expected = [
        (0, None),
        (4, None),
        (5, Some(1)),
        (9, Some(1)),
        (10, Some(2)),
        (14, Some(2)),
        (15, Some(4)),
        (1_000, Some(4)),
    ];
    for (offset, epoch) in expected {
        assert_eq!(cache.epoch_for_offset(offset), epoch, "offset {offset}");
    }
    assert_eq!(cache.earliest_entry(), Some(entry(1, 5)));
    assert_eq!(cache.latest_entry(), Some(entry(4, 15)));
}

#[test]
fn persists_in_kafkas_format_and_reloads() {
    let (dir, mut cache) = cache_with(&[(0, 0), (3, 1250)]);
    let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "0\n2\n0 0\n3 1250\n"
    );
    assert_eq!(reloaded(&dir), vec![(0, 0), (3, 1250)]);
    cache
        .assign_all([entry(4, 1300), entry(4, 1400), entry(7, 1500)])
        .unwrap();
    assert_eq!(
        reloaded(&dir),
        vec![(0, 0), (3, 1250), (4, 1300), (7, 1500)]
    );

    let empty = tempfile::tempdir().unwrap();
    assert!(LeaderEpochFileCache::load(empty.path()).unwrap().is_none());
}

#[test]
fn unreadable_or_unordered_files_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
    for bad in [
        "0\n2\n0 0\n",
        "0\n1\n0 0 0\n",
        "0\n1\n-1 5\n",
        "0\n2\n3 10\n2 20\n",
        "0\n2\n2 10\n3 10\n",
        "0\n1\nx 10\n",
        "1\n0\n",
    ] {
        std::fs::write(&path, bad).unwrap();
        assert!(
            matches!(
                LeaderEpochFileCache::load(dir.path()),
                Err(LogError::CorruptFile { .. })
            ),
            "{bad:?}"
        );
    }
}

/// One change to a cache, for the property test.
#[derive(Debug, Clone)]
enum Op {
    Assign(i32, i64),
    TruncateFromEnd(i64),
    TruncateFromStart(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i32..12, 0i64..200).prop_map(|(e, o)| Op::Assign(e, o)),
        1 => (-1i64..200).prop_map(Op::TruncateFromEnd),
        1 => (-1i64..200).prop_map(Op::TruncateFromStart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the changes, epochs and start offsets keep increasing, the file matches the
    /// memory, and every known epoch but the latest ends where the next one starts.
    #[test]
    fn any_history_keeps_the_invariants(ops in proptest::collection::vec(op(), 0..40)) {
        let dir = crate::log::test_util::tmpfs_tempdir();
        let mut cache = LeaderEpochFileCache::empty(dir.path());
        for op in ops {
            match op {
                Op::Assign(e, o) => {
                    cache.assign(e, o).unwrap();
                    let latest = cache.latest_entry().unwrap();
                    prop_assert_eq!(latest.epoch, e);
                    prop_assert!(latest.start_offset <= o, "an epoch keeps its first offset");
                }
                Op::TruncateFromEnd(o) => {
                    cache.truncate_from_end(o).unwrap();
                    if o >= 0 {
                        prop_assert!(cache.entries().iter().all(|x| x.start_offset < o));
                    }
                }
                Op::TruncateFromStart(o) => {
                    let before = cache.epoch_for_offset(o);
                    cache.truncate_from_start(o).unwrap();
                    prop_assert!(cache.entries().iter().all(|x| x.start_offset >= o));
                    prop_assert_eq!(cache.epoch_for_offset(o), before, "the epoch at the new start stays");
                }
            }
            let entries = cache.entries();
            prop_assert!(entries.windows(2).all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset));
            for w in entries.windows(2) {
                prop_assert_eq!(cache.end_offset_for(w[0].epoch, 1_000), (w[0].epoch, w[1].start_offset));
            }
            if dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE).exists() {
                prop_assert_eq!(reloaded(&dir), pairs(&cache));
            }
        }
    }
}
