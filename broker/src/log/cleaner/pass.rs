//! One cleaning pass over one log (Kafka's `Cleaner.doClean`): build the offset map over the
//! dirty part, then rewrite the segments below it in size-bounded groups and swap each group
//! in. Only the swap takes the log's write lock; the rest reads a snapshot of segment files
//! that are never written again.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::RwLock;

use super::log_to_clean::{read_cleaner_checkpoint, write_cleaner_checkpoint, LogToClean};
use super::offset_map::{key_hash, OffsetMap};
use super::records::{self, delete_horizon, rebuild_batch, Rewrite};
use super::throttler::Throttler;
use crate::log::batch::{RecordBatchHeader, HEADER_SIZE};
use crate::log::index_file::remove_if_exists;
use crate::log::segment::{
    cleaned_file, INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX,
};
use crate::log::{AbortedTxn, Log, LogConfig, LogError, LogSegment};

/// A segment below the active one as the cleaner saw it: its files never change while it is
/// in the log, so the cleaner reads it through this handle without the log's lock.
#[derive(Debug, Clone)]
pub(crate) struct SegmentSnapshot {
    pub(crate) base_offset: i64,
    pub(crate) next_offset: i64,
    pub(crate) size: u64,
    pub(crate) log_path: PathBuf,
    file: Arc<File>,
    /// The transactions aborted in this segment (its `.txnindex`), carried into the cleaned
    /// segment that replaces it.
    aborted: Vec<AbortedTxn>,
}

impl SegmentSnapshot {
    fn of(segment: &LogSegment) -> Self {
        Self {
            base_offset: segment.base_offset(),
            next_offset: segment.next_offset(),
            size: segment.size(),
            log_path: segment.log_path().to_path_buf(),
            file: segment.shared_log_file(),
            aborted: segment.txn_index().entries().to_vec(),
        }
    }

    #[cfg(test)]
    pub(crate) fn of_for_tests(segment: &LogSegment) -> Self {
        Self::of(segment)
    }

    fn index_bytes(&self, index_interval_bytes: u32) -> u64 {
        // An upper bound on the entries a rewritten copy can need: one per interval.
        (self.size / u64::from(index_interval_bytes.max(1)) + 1) * 8
    }

    /// Every whole batch of the segment, read `chunk` bytes at a time.
    fn batches(&self, chunk: usize) -> SegmentBatches<'_> {
        SegmentBatches {
            segment: self,
            position: 0,
            buffer: Bytes::new(),
            chunk: chunk.max(HEADER_SIZE),
        }
    }
}

/// Reads a segment's batches in chunks, yielding each whole batch as a cheap slice.
struct SegmentBatches<'a> {
    segment: &'a SegmentSnapshot,
    position: u64,
    buffer: Bytes,
    chunk: usize,
}

impl SegmentBatches<'_> {
    fn fill(&mut self, at_least: usize) -> Result<(), LogError> {
        let left = self.segment.size - self.position;
        let want = (self.chunk.max(at_least) as u64).min(left) as usize;
        let mut buf = vec![0u8; want];
        self.segment
            .file
            .read_exact_at(&mut buf, self.position)
            .map_err(LogError::io(
                "read segment to clean",
                &self.segment.log_path,
            ))?;
        self.buffer = Bytes::from(buf);
        Ok(())
    }
}

impl Iterator for SegmentBatches<'_> {
    type Item = Result<Bytes, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.position >= self.segment.size {
            return None;
        }
        let mut step = || -> Result<Bytes, LogError> {
            if self.buffer.len() < HEADER_SIZE {
                self.fill(HEADER_SIZE)?;
            }
            let mut size = RecordBatchHeader::parse(&self.buffer, self.position)?.total_size();
            if self.buffer.len() < size {
                self.fill(size)?;
                size = RecordBatchHeader::parse(&self.buffer, self.position)?.total_size();
            }
            let batch = self.buffer.split_to(size);
            self.position += size as u64;
            Ok(batch)
        };
        Some(step())
    }
}

/// What the cleaner needs of a log, taken under its read lock.
#[derive(Debug)]
struct LogSnapshot {
    dir: PathBuf,
    config: LogConfig,
    now_ms: i64,
    /// The segments below the first uncleanable offset, oldest first.
    segments: Vec<SegmentSnapshot>,
    /// Producer id → last offset of its last batch.
    producer_last_offsets: HashMap<i64, i64>,
    /// Every aborted transaction that began below the first uncleanable offset, wherever
    /// its marker is (possibly in a segment not being cleaned).
    aborted: Vec<AbortedTxn>,
}

impl LogSnapshot {
    /// Whether `header` is a data batch of a transaction that was aborted (its records go,
    /// and never supersede a committed record of the same key).
    fn is_aborted(&self, header: &RecordBatchHeader<'_>) -> bool {
        header.is_transactional()
            && !header.is_control()
            && self.aborted.iter().any(|t| {
                t.producer_id == header.producer_id()
                    && (t.first_offset..=t.last_offset).contains(&header.base_offset())
            })
    }
}

/// What one pass has seen of each producer's transactions, in offset order from the log
/// start (Kafka's `CleanedTransactionMetadata`): a transaction's marker may go only once none
/// of its data batches is left.
#[derive(Debug, Default)]
struct TxnTracker {
    /// Producers whose current transaction has a data batch left in the cleaned log.
    with_data: HashSet<i64>,
    /// Offsets of the markers this pass removed (their aborted-transaction index entries go
    /// with them).
    removed_markers: HashSet<i64>,
}

impl TxnTracker {
    /// A transactional data batch of `producer_id` stays (in whole or in part, or empty).
    fn data_kept(&mut self, producer_id: i64) {
        self.with_data.insert(producer_id);
    }

    /// A marker of `producer_id`: whether its transaction still has data left.
    fn marker(&mut self, producer_id: i64) -> bool {
        self.with_data.remove(&producer_id)
    }
}

/// The cleaner's settings (the broker's `log.cleaner.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size` / `log.cleaner.threads`: offset map memory per thread.
    pub dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.load.factor`.
    pub dedupe_load_factor: f64,
    /// `log.cleaner.io.buffer.size`: read and write buffer size.
    pub io_buffer_bytes: usize,
    /// `log.cleaner.io.max.bytes.per.second`: read plus write rate of one thread.
    pub max_io_bytes_per_second: f64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        Self {
            dedupe_buffer_bytes: 128 << 20,
            dedupe_load_factor: 0.9,
            io_buffer_bytes: 512 << 10,
            max_io_bytes_per_second: f64::MAX,
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanerStats {
    /// Bytes of segments read (map building and rewriting).
    pub bytes_read: u64,
    /// Bytes of the rewritten segments.
    pub bytes_written: u64,
    /// Records kept and removed by the rewrite.
    pub records_retained: u64,
    /// Records removed (older values, expired tombstones, keyless records).
    pub records_removed: u64,
    /// Segments before and after grouping.
    pub segments_in: usize,
    /// Segments written.
    pub segments_out: usize,
    /// The offset the log is now clean up to (the new checkpoint).
    pub cleaned_to: i64,
    /// The earliest delete horizon of a tombstone left in the log, if any: the log needs
    /// another pass then even if nothing else is dirty.
    pub earliest_delete_horizon: Option<i64>,
    /// A group could not be swapped in because the log changed under the pass (retention,
    /// truncation, close); the checkpoint was not moved.
    pub aborted: bool,
    /// Wall time of the pass.
    pub elapsed_ms: u64,
    /// Of which slept by the I/O throttle.
    pub throttled_ms: u64,
}

/// One cleaner thread's tools: its offset map and I/O throttle (Kafka's `Cleaner`). Not
/// shared between threads.
#[derive(Debug)]
pub struct Cleaner {
    config: CleanerConfig,
    map: OffsetMap,
    throttler: Throttler,
}

impl Cleaner {
    /// A cleaner with an empty offset map sized by `config`.
    pub fn new(config: CleanerConfig) -> Self {
        Self {
            map: OffsetMap::with_memory(config.dedupe_buffer_bytes, config.dedupe_load_factor),
            throttler: Throttler::new(config.max_io_bytes_per_second),
            config,
        }
    }

    /// Cleans `log` once: what [`Log::log_to_clean`] allows at this moment, whatever the
    /// dirty ratio (choosing logs is the caller's part). Appends and reads go on meanwhile:
    /// the write lock is taken only to swap each rewritten group of segments in.
    pub fn clean(&mut self, log: &RwLock<Log>) -> Result<CleanerStats, LogError> {
        let started = Instant::now();
        let slept_before = self.throttler.slept();
        let (snapshot, to_clean) = {
            let log = log.read();
            log.ensure_open()?;
            let checkpoint = read_cleaner_checkpoint(log.dir())?;
            let now_ms = log.clock.now_ms();
            let to_clean = log.log_to_clean(checkpoint, now_ms);
            let segments = log
                .segments
                .iter()
                .take(log.segments.len() - 1)
                .filter(|s| s.base_offset() < to_clean.first_uncleanable_offset)
                .map(SegmentSnapshot::of)
                .collect();
            let snapshot = LogSnapshot {
                dir: log.dir().to_path_buf(),
                config: log.config().clone(),
                now_ms,
                segments,
                producer_last_offsets: log.producer_state.last_batch_offsets(),
                aborted: log.collect_aborted_txns(
                    to_clean.log_start_offset,
                    to_clean.first_uncleanable_offset,
                ),
            };
            (snapshot, to_clean)
        };
        let mut stats = CleanerStats {
            cleaned_to: to_clean.first_dirty_offset,
            ..CleanerStats::default()
        };
        let map_end = self.build_offset_map(&snapshot, &to_clean, &mut stats)?;
        let groups = group_segments_by_size(
            snapshot
                .segments
                .iter()
                .filter(|s| s.base_offset < map_end)
                .cloned()
                .collect(),
            snapshot.config.segment_bytes,
            snapshot.config.segment_index_bytes,
            snapshot.config.index_interval_bytes,
        );
        stats.segments_in = groups.iter().map(Vec::len).sum();
        let mut txns = TxnTracker::default();
        for group in &groups {
            self.clean_group(&snapshot, group, map_end, &mut txns, &mut stats)?;
            let swapped = log.write().replace_segments(group)?;
            if !swapped {
                stats.aborted = true;
                remove_cleaned_files(&snapshot.dir, group[0].base_offset)?;
                break;
            }
            stats.segments_out += 1;
        }
        if !stats.aborted && map_end > to_clean.first_dirty_offset {
            write_cleaner_checkpoint(&snapshot.dir, map_end)?;
            stats.cleaned_to = map_end;
        }
        self.map.clear();
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        stats.throttled_ms = (self.throttler.slept() - slept_before).as_millis() as u64;
        Ok(stats)
    }

    /// Puts every keyed record of the dirty part in the map, batch by batch, until the map is
    /// full or the first uncleanable offset; returns the offset the map covers up to.
    fn build_offset_map(
        &mut self,
        snapshot: &LogSnapshot,
        to_clean: &LogToClean,
        stats: &mut CleanerStats,
    ) -> Result<i64, LogError> {
        self.map.clear();
        let start = to_clean.first_dirty_offset;
        let end = to_clean.first_uncleanable_offset;
        let mut covered_to = start;
        for segment in snapshot
            .segments
            .iter()
            .filter(|s| s.next_offset > start && s.base_offset < end)
        {
            for batch in segment.batches(self.config.io_buffer_bytes) {
                let batch = batch?;
                stats.bytes_read += batch.len() as u64;
                self.throttler.maybe_throttle(batch.len() as u64);
                let header = RecordBatchHeader::parse(&batch, 0)?;
                if header.last_offset() < start {
                    continue;
                }
                if header.next_offset() > end {
                    return Ok(covered_to);
                }
                if !header.is_control() && !snapshot.is_aborted(&header) {
                    if !self
                        .map
                        .has_room_for(header.records_count().max(0) as usize)
                    {
                        if covered_to == start {
                            return Err(LogError::DecodeBatch {
                                base_offset: header.base_offset(),
                                reason: format!(
                                    "log.cleaner.dedupe.buffer.size holds {} keys, too few for one batch of {} records",
                                    self.map.capacity(),
                                    header.records_count()
                                ),
                            });
                        }
                        return Ok(covered_to);
                    }
                    let decoded = records::decode_batch(&batch)?;
                    for record in records::records(&header, &decoded.records)? {
                        if let Some(key) = record.key {
                            self.map.put(key_hash(key), record.offset);
                        }
                    }
                }
                covered_to = header.next_offset();
            }
        }
        Ok(covered_to.max(start))
    }

    /// Writes the retained batches of `group` into `.cleaned` files at the group's base
    /// offset, fsynced.
    fn clean_group(
        &mut self,
        snapshot: &LogSnapshot,
        group: &[SegmentSnapshot],
        map_end: i64,
        txns: &mut TxnTracker,
        stats: &mut CleanerStats,
    ) -> Result<(), LogError> {
        let config = &snapshot.config;
        let mut cleaned = LogSegment::create_cleaned(
            &snapshot.dir,
            group[0].base_offset,
            config.segment_index_bytes,
        )?;
        let mut pending: Vec<u8> = Vec::with_capacity(self.config.io_buffer_bytes);
        for segment in group {
            for batch in segment.batches(self.config.io_buffer_bytes) {
                let batch = batch?;
                stats.bytes_read += batch.len() as u64;
                self.throttler.maybe_throttle(batch.len() as u64);
                match self.filter_batch(snapshot, &batch, map_end, txns, stats)? {
                    Filtered::Keep => pending.extend_from_slice(&batch),
                    Filtered::Rewritten(bytes) => pending.extend_from_slice(&bytes),
                    Filtered::Drop => {}
                }
                if pending.len() >= self.config.io_buffer_bytes {
                    self.flush_pending(&mut cleaned, &mut pending, config, stats)?;
                }
            }
        }
        self.flush_pending(&mut cleaned, &mut pending, config, stats)?;
        // An aborted transaction stays indexed as long as its marker is there (a consumer of a
        // cleaned range must still learn to drop what an abort left of it); a marker removed
        // had nothing of its transaction left, and its entry goes with it.
        for entry in group.iter().flat_map(|s| &s.aborted) {
            if !txns.removed_markers.contains(&entry.last_offset) {
                cleaned.txn_index_mut().append(*entry)?;
            }
        }
        if group.iter().any(|s| !s.aborted.is_empty()) && cleaned.txn_index().entries().is_empty() {
            // Every entry went with its marker: an empty index must still replace the old one
            // of the group's base offset in the swap.
            cleaned.txn_index_mut().write_even_if_empty()?;
        }
        cleaned.flush()
    }

    fn flush_pending(
        &mut self,
        cleaned: &mut LogSegment,
        pending: &mut Vec<u8>,
        config: &LogConfig,
        stats: &mut CleanerStats,
    ) -> Result<(), LogError> {
        if pending.is_empty() {
            return Ok(());
        }
        cleaned.append(pending, config.index_interval_bytes, 0)?;
        stats.bytes_written += pending.len() as u64;
        self.throttler.maybe_throttle(pending.len() as u64);
        pending.clear();
        Ok(())
    }

    /// Kafka's retention rule per record: a record goes if a later record has its key (up to
    /// `map_end`), if it has no key, or if it is a tombstone past its delete horizon. Batches
    /// at or above `map_end` stay as they are; markers as [`Cleaner::filter_marker`] says.
    fn filter_batch(
        &self,
        snapshot: &LogSnapshot,
        batch: &Bytes,
        map_end: i64,
        txns: &mut TxnTracker,
        stats: &mut CleanerStats,
    ) -> Result<Filtered, LogError> {
        let header = RecordBatchHeader::parse(batch, 0)?;
        let filtered = if header.is_control() {
            Self::filter_marker(snapshot, batch, &header, map_end, txns, stats)?
        } else if header.base_offset() >= map_end {
            Filtered::Keep
        } else {
            self.filter_records(snapshot, batch, map_end, stats)?
        };
        if header.is_transactional() && !header.is_control() && !matches!(filtered, Filtered::Drop)
        {
            txns.data_kept(header.producer_id());
        }
        Ok(filtered)
    }

    /// A transaction marker goes, as in Kafka, once nothing of its transaction is left before
    /// it and `delete.retention.ms` has passed since a pass first found it so (that pass
    /// stamps the delete horizon on it, so `read_committed` consumers that read the
    /// transaction's data before it went still see its marker). The last batch of its
    /// producer stays (the producer's state), and so does a marker at or above `map_end`.
    fn filter_marker(
        snapshot: &LogSnapshot,
        batch: &Bytes,
        header: &RecordBatchHeader<'_>,
        map_end: i64,
        txns: &mut TxnTracker,
        stats: &mut CleanerStats,
    ) -> Result<Filtered, LogError> {
        let has_data = txns.marker(header.producer_id());
        let last_of_producer = snapshot.producer_last_offsets.get(&header.producer_id())
            == Some(&header.last_offset());
        if has_data || last_of_producer || header.base_offset() >= map_end {
            return Ok(Filtered::Keep);
        }
        let horizon = match delete_horizon(header) {
            Some(h) if snapshot.now_ms >= h => {
                txns.removed_markers.insert(header.base_offset());
                stats.records_removed += header.records_count().max(0) as u64;
                return Ok(Filtered::Drop);
            }
            Some(h) => h,
            None => snapshot
                .now_ms
                .saturating_add(snapshot.config.delete_retention_ms),
        };
        stats.earliest_delete_horizon = Some(
            stats
                .earliest_delete_horizon
                .map_or(horizon, |e| e.min(horizon)),
        );
        if delete_horizon(header).is_some() {
            return Ok(Filtered::Keep);
        }
        let decoded = records::decode_batch(batch)?;
        let all = records::records(header, &decoded.records)?;
        let rewrite = Rewrite {
            new_delete_horizon: Some(horizon),
        };
        Ok(Filtered::Rewritten(rebuild_batch(
            batch,
            decoded.compression,
            &all,
            rewrite,
        )?))
    }

    /// [`Cleaner::filter_batch`] for a data batch below `map_end`.
    fn filter_records(
        &self,
        snapshot: &LogSnapshot,
        batch: &Bytes,
        map_end: i64,
        stats: &mut CleanerStats,
    ) -> Result<Filtered, LogError> {
        let header = RecordBatchHeader::parse(batch, 0)?;
        let aborted = snapshot.is_aborted(&header);
        let horizon = delete_horizon(&header);
        let tombstones_expired = horizon.is_some_and(|h| snapshot.now_ms >= h);
        let decoded = records::decode_batch(batch)?;
        let all = records::records(&header, &decoded.records)?;
        let total = all.len();
        let retained: Vec<_> = all
            .into_iter()
            .filter(|r| {
                if aborted {
                    return false;
                }
                if r.offset >= map_end {
                    return true;
                }
                let Some(key) = r.key else {
                    return false;
                };
                let superseded = self.map.get(key_hash(key)).is_some_and(|o| o > r.offset);
                let expired_tombstone = r.is_tombstone && tombstones_expired;
                !(superseded || expired_tombstone)
            })
            .collect();
        stats.records_retained += retained.len() as u64;
        stats.records_removed += (total - retained.len()) as u64;
        let has_tombstone = retained.iter().any(|r| r.is_tombstone);
        let new_horizon = (has_tombstone && horizon.is_none()).then(|| {
            snapshot
                .now_ms
                .saturating_add(snapshot.config.delete_retention_ms)
        });
        if let Some(h) = new_horizon.or(horizon.filter(|_| has_tombstone)) {
            stats.earliest_delete_horizon =
                Some(stats.earliest_delete_horizon.map_or(h, |e| e.min(h)));
        }
        if retained.len() == total && new_horizon.is_none() {
            return Ok(Filtered::Keep);
        }
        let last_of_producer = header.producer_id() >= 0
            && snapshot.producer_last_offsets.get(&header.producer_id())
                == Some(&header.last_offset());
        if retained.is_empty() && !last_of_producer {
            return Ok(Filtered::Drop);
        }
        let rewrite = Rewrite {
            new_delete_horizon: new_horizon,
        };
        Ok(Filtered::Rewritten(rebuild_batch(
            batch,
            decoded.compression,
            &retained,
            rewrite,
        )?))
    }
}

enum Filtered {
    Keep,
    Rewritten(Vec<u8>),
    Drop,
}

/// Kafka's `groupSegmentsBySize`: consecutive segments go into one cleaned segment while their
/// sizes add up to at most `max_size`, their index sizes to at most `max_index_size`, and
/// their offsets fit relative offsets of the first; each group holds at least one segment.
pub(crate) fn group_segments_by_size(
    segments: Vec<SegmentSnapshot>,
    max_size: u64,
    max_index_size: u32,
    index_interval_bytes: u32,
) -> Vec<Vec<SegmentSnapshot>> {
    let mut groups: Vec<Vec<SegmentSnapshot>> = Vec::new();
    let mut current: Vec<SegmentSnapshot> = Vec::new();
    let (mut size, mut index_size) = (0u64, 0u64);
    for segment in segments {
        let fits = current.first().is_some_and(|first| {
            size + segment.size <= max_size
                && index_size + segment.index_bytes(index_interval_bytes)
                    <= u64::from(max_index_size)
                && segment.next_offset - 1 - first.base_offset <= i64::from(i32::MAX)
        });
        if !fits && !current.is_empty() {
            groups.push(std::mem::take(&mut current));
            size = 0;
            index_size = 0;
        }
        size += segment.size;
        index_size += segment.index_bytes(index_interval_bytes);
        current.push(segment);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// Deletes the `.cleaned` files of a group that will not be swapped in.
pub(crate) fn remove_cleaned_files(dir: &Path, base_offset: i64) -> Result<(), LogError> {
    for suffix in [LOG_FILE_SUFFIX, INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX] {
        remove_if_exists(&cleaned_file(dir, base_offset, suffix))?;
    }
    Ok(())
}
