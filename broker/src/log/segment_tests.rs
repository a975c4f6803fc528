use super::*;
use crate::log::batch::RecordBatchHeader;
use crate::log::test_util::batch_at;
use proptest::prelude::*;

const INTERVAL: u32 = 100;

/// Appends batches of the given record counts from offset `base`; returns the batches.
fn fill(segment: &mut LogSegment, base: i64, counts: &[usize]) -> Vec<Bytes> {
    let mut offset = base;
    let mut batches = Vec::new();
    for (i, &count) in counts.iter().enumerate() {
        let batch = batch_at(offset, count, 40, 1_000 + i as i64 * 10);
        segment.append(&batch, INTERVAL, 0).unwrap();
        offset += count as i64;
        batches.push(batch);
    }
    batches
}

fn concat(batches: &[Bytes]) -> Vec<u8> {
    batches.iter().flat_map(|b| b.iter().copied()).collect()
}

#[test]
fn append_then_read_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = LogSegment::create(dir.path(), 100, 1024).unwrap();
    let batches = fill(&mut segment, 100, &[3, 1, 4, 2]);
    assert_eq!(segment.next_offset(), 110);
    assert_eq!(segment.size(), concat(&batches).len() as u64);
    assert!(
        !segment.offset_index().is_empty(),
        "interval {INTERVAL} should index"
    );
    assert_eq!(
        segment_file(dir.path(), 100, "log").file_name().unwrap(),
        "00000000000000000100.log"
    );

    let all = segment
        .read(100, 1 << 20, i64::MAX, false)
        .unwrap()
        .unwrap();
    assert_eq!(all.position, 0);
    assert_eq!(&all.records[..], &concat(&batches)[..]);

    // An offset inside the third batch returns from the third batch on.
    let mid = segment
        .read(105, 1 << 20, i64::MAX, false)
        .unwrap()
        .unwrap();
    assert_eq!(&mid.records[..], &concat(&batches[2..])[..]);

    // max_bytes cutting a batch keeps whole batches only.
    let two = batches[0].len() + batches[1].len();
    let cut = segment
        .read(100, two + 5, i64::MAX, false)
        .unwrap()
        .unwrap();
    assert_eq!(&cut.records[..], &concat(&batches[..2])[..]);

    // A first batch larger than max_bytes: whole with min_one_message, else nothing.
    let one = segment.read(100, 10, i64::MAX, true).unwrap().unwrap();
    assert_eq!(one.records, batches[0]);
    assert!(segment
        .read(100, 10, i64::MAX, false)
        .unwrap()
        .unwrap()
        .records
        .is_empty());

    // The high watermark excludes batches not entirely below it.
    let below_hw = segment.read(100, 1 << 20, 106, false).unwrap().unwrap();
    assert_eq!(&below_hw.records[..], &concat(&batches[..2])[..]);
    let at_hw = segment.read(104, 1 << 20, 104, true).unwrap().unwrap();
    assert!(at_hw.records.is_empty());

    assert!(segment
        .read(110, 1 << 20, i64::MAX, false)
        .unwrap()
        .is_none());
}

#[test]
fn reopen_loads_indexes_and_tail_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = LogSegment::create(dir.path(), 0, 1024).unwrap();
    fill(&mut segment, 0, &[2; 20]);
    let (entries, max_ts, max_off) = (
        segment.offset_index().len(),
        segment.max_timestamp(),
        segment.offset_of_max_timestamp(),
    );
    segment.flush().unwrap();
    drop(segment);

    let (segment, needs_recovery) = LogSegment::open(dir.path(), 0, 1024, 7).unwrap();
    assert!(!needs_recovery);
    assert_eq!(segment.next_offset(), 40);
    assert_eq!(segment.offset_index().len(), entries);
    assert_eq!(
        (segment.max_timestamp(), segment.offset_of_max_timestamp()),
        (max_ts, max_off)
    );
    assert_eq!(
        segment.roll_base_ms(),
        Some(1_001),
        "first batch's max timestamp"
    );
}

#[test]
fn released_indexes_reload_on_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = LogSegment::create(dir.path(), 0, 1024).unwrap();
    fill(&mut segment, 0, &[1; 30]);
    let offsets: Vec<_> = (0..30).map(|o| segment.offset_index().lookup(o)).collect();
    let times: Vec<_> = (1_000..1_300)
        .map(|t| segment.time_index().lookup(t))
        .collect();
    segment.release_index_memory().unwrap();
    assert!(!segment.offset_index().is_loaded() && !segment.time_index().is_loaded());
    assert_eq!(
        (0..30)
            .map(|o| segment.offset_index().lookup(o))
            .collect::<Vec<_>>(),
        offsets
    );
    assert_eq!(
        (1_000..1_300)
            .map(|t| segment.time_index().lookup(t))
            .collect::<Vec<_>>(),
        times
    );
    assert!(segment.offset_index().is_loaded());
}

#[test]
fn missing_or_corrupt_index_is_rebuilt_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = LogSegment::create(dir.path(), 0, 1024).unwrap();
    fill(&mut segment, 0, &[1; 30]);
    let lookups: Vec<_> = (0..30).map(|o| segment.offset_index().lookup(o)).collect();
    let time_entries = segment.time_index().len();
    drop(segment);

    std::fs::remove_file(segment_file(dir.path(), 0, INDEX_FILE_SUFFIX)).unwrap();
    let (mut segment, needs_recovery) = LogSegment::open(dir.path(), 0, 1024, 0).unwrap();
    assert!(needs_recovery);
    assert_eq!(segment.recover(INTERVAL).unwrap(), 0);
    assert_eq!(
        (0..30)
            .map(|o| segment.offset_index().lookup(o))
            .collect::<Vec<_>>(),
        lookups
    );
    assert_eq!(segment.time_index().len(), time_entries);
    drop(segment);

    let time_path = segment_file(dir.path(), 0, TIME_INDEX_FILE_SUFFIX);
    let mut bytes = std::fs::read(&time_path).unwrap();
    bytes.push(0);
    std::fs::write(&time_path, bytes).unwrap();
    let (_, needs_recovery) = LogSegment::open(dir.path(), 0, 1024, 0).unwrap();
    assert!(needs_recovery);
}

#[test]
fn truncate_to_removes_the_batch_holding_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = LogSegment::create(dir.path(), 0, 1024).unwrap();
    let batches = fill(&mut segment, 0, &[3; 10]);
    let removed = segment.truncate_to(13).unwrap();
    assert_eq!(segment.next_offset(), 12);
    assert_eq!(segment.size(), concat(&batches[..4]).len() as u64);
    assert_eq!(removed, concat(&batches[4..]).len() as u64);
    assert_eq!(
        segment.max_timestamp(),
        1_032,
        "batch 3's records end at +2"
    );
    assert!(segment
        .offset_index()
        .last_entry()
        .is_none_or(|e| e.offset < 12));
    let read = segment.read(0, 1 << 20, i64::MAX, false).unwrap().unwrap();
    assert_eq!(&read.records[..], &concat(&batches[..4])[..]);
    // Appending after truncation continues at the new end.
    segment
        .append(&batch_at(12, 1, 10, 5_000), INTERVAL, 0)
        .unwrap();
    assert_eq!(segment.next_offset(), 13);
    assert_eq!(segment.max_timestamp(), 5_000);
}

#[test]
fn finds_first_batch_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = LogSegment::create(dir.path(), 0, 1024).unwrap();
    fill(&mut segment, 0, &[2; 30]); // batch i: timestamps 1000+10i, 1000+10i+1
    let found = segment.find_batch_by_timestamp(1_105, 0).unwrap().unwrap();
    assert_eq!(found.header().base_offset(), 22, "batch 11 has 1110..1111");
    let found = segment.find_batch_by_timestamp(1_101, 0).unwrap().unwrap();
    assert_eq!(found.header().base_offset(), 20);
    let found = segment.find_batch_by_timestamp(0, 30).unwrap().unwrap();
    assert_eq!(
        found.header().base_offset(),
        30,
        "respects the minimum offset"
    );
    assert!(segment.find_batch_by_timestamp(5_000, 0).unwrap().is_none());
}

#[test]
fn recovery_cuts_a_batch_with_out_of_order_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = LogSegment::create(dir.path(), 0, 1024).unwrap();
    let batches = fill(&mut segment, 0, &[2, 2]);
    drop(segment);
    // A valid batch whose offsets go backwards is not a valid continuation.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(segment_file(dir.path(), 0, LOG_FILE_SUFFIX))
        .unwrap();
    std::io::Write::write_all(&mut file, &batch_at(1, 1, 10, 0)).unwrap();
    let (mut segment, _) = LogSegment::open(dir.path(), 0, 1024, 0).unwrap();
    let truncated = segment.recover(INTERVAL).unwrap();
    assert_eq!(segment.size(), concat(&batches).len() as u64);
    assert!(truncated > 0);
    assert_eq!(segment.next_offset(), 4);
}

/// Record counts of up to 40 batches.
fn batch_counts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1usize..5, 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn recovery_keeps_exactly_the_complete_prefix(counts in batch_counts(), cut in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = LogSegment::create(dir.path(), 0, 1024).unwrap();
        let batches = fill(&mut segment, 0, &counts);
        let total = segment.size();
        let cut_at = cut.index(total as usize + 1) as u64;
        drop(segment);
        let file = std::fs::OpenOptions::new().write(true).open(segment_file(dir.path(), 0, "log")).unwrap();
        file.set_len(cut_at).unwrap();

        let (mut segment, _) = LogSegment::open(dir.path(), 0, 1024, 0).unwrap();
        let truncated = segment.recover(INTERVAL).unwrap();
        let mut expected_len = 0u64;
        let mut expected_next = 0i64;
        for (batch, &count) in batches.iter().zip(&counts) {
            if expected_len + batch.len() as u64 > cut_at { break; }
            expected_len += batch.len() as u64;
            expected_next += count as i64;
        }
        prop_assert_eq!(segment.size(), expected_len);
        prop_assert_eq!(truncated, cut_at - expected_len);
        prop_assert_eq!(segment.next_offset(), expected_next);
        let data = std::fs::read(segment_file(dir.path(), 0, "log")).unwrap();
        prop_assert_eq!(&data[..], &concat(&batches)[..expected_len as usize]);
    }

    #[test]
    fn a_corrupt_byte_in_the_last_batch_drops_only_it(counts in batch_counts(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = LogSegment::create(dir.path(), 0, 1024).unwrap();
        let batches = fill(&mut segment, 0, &counts);
        let last = batches.last().unwrap();
        let last_start = segment.size() - last.len() as u64;
        drop(segment);
        let path = segment_file(dir.path(), 0, "log");
        let mut data = std::fs::read(&path).unwrap();
        // Base offset and leader epoch (bytes 0..16) are outside the CRC, as in Kafka; any
        // byte from the magic on must be caught.
        let offset_in_batch = 16 + at.index(last.len() - 16);
        data[last_start as usize + offset_in_batch] ^= flip;
        std::fs::write(&path, &data).unwrap();

        let (mut segment, _) = LogSegment::open(dir.path(), 0, 1024, 0).unwrap();
        let truncated = segment.recover(INTERVAL).unwrap();
        prop_assert_eq!(truncated, last.len() as u64);
        prop_assert_eq!(segment.size(), last_start);
        let kept = std::fs::read(&path).unwrap();
        prop_assert_eq!(&kept[..], &concat(&batches[..batches.len() - 1])[..]);
    }

    #[test]
    fn index_lookup_matches_a_linear_scan(counts in batch_counts(), target in 0i64..200) {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = LogSegment::create(dir.path(), 0, 1024).unwrap();
        let batches = fill(&mut segment, 0, &counts);
        let mut position = 0u64;
        let mut linear = None;
        for batch in &batches {
            let header = RecordBatchHeader::parse(batch, 0).unwrap();
            if header.last_offset() >= target {
                linear = Some(position);
                break;
            }
            position += batch.len() as u64;
        }
        let found = segment.find_batch(target).unwrap().map(|b| b.position);
        prop_assert_eq!(found, linear);
        let hint = segment.offset_index().lookup(target);
        prop_assert!(linear.is_none_or(|p| u64::from(hint.position) <= p));
    }

    /// A range read gives exactly the bytes a read gives, with their record count and the
    /// offset after them, whatever the limits.
    #[test]
    fn a_file_range_holds_what_a_read_returns(
        counts in batch_counts(),
        start in 0i64..120,
        max_bytes in 1usize..3000,
        max_offset in 0i64..130,
        min_one_message in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = LogSegment::create(dir.path(), 0, 1024).unwrap();
        fill(&mut segment, 0, &counts);
        let read = segment.read(start, max_bytes, max_offset, min_one_message).unwrap();
        let range = segment
            .read_file_range(start, max_bytes, max_offset, min_one_message, 0)
            .unwrap();
        match (read, range) {
            (None, None) => {}
            (Some(read), Some(RangeRead::Bytes(got))) => {
                prop_assert!(read.records.is_empty());
                prop_assert!(got.records.is_empty());
            }
            (Some(read), Some(RangeRead::File(file))) => {
                prop_assert_eq!(file.slice.position(), read.position);
                prop_assert_eq!(&file.slice.read().unwrap()[..], &read.records[..]);
                let batches: Vec<_> = crate::log::batch::RecordBatchIter::new(&read.records)
                    .map(|b| b.unwrap().0)
                    .collect();
                let records: i64 = batches.iter().map(|h| i64::from(h.records_count())).sum();
                prop_assert_eq!(file.records as i64, records);
                prop_assert_eq!(file.next_offset, batches.last().unwrap().next_offset());
            }
            (read, range) => prop_assert!(false, "read {:?} but range {:?}", read, range),
        }
        // Below `file_from` the range comes back as the read's bytes.
        let small = segment
            .read_file_range(start, max_bytes, max_offset, min_one_message, usize::MAX)
            .unwrap();
        let read = segment.read(start, max_bytes, max_offset, min_one_message).unwrap();
        match (read, small) {
            (None, None) => {}
            (Some(read), Some(RangeRead::Bytes(got))) => {
                prop_assert_eq!(got.position, read.position);
                prop_assert_eq!(got.records, read.records);
            }
            (read, small) => prop_assert!(false, "read {:?} but range {:?}", read, small),
        }
    }
}
