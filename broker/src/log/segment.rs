//! One segment of a partition log: a `.log` file of batches and its two sparse indexes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::batch::{RecordBatchIter, NO_TIMESTAMP};
use super::index_file::remove_if_exists;
use super::read_buffer::{ReadBufferPool, POOL_FROM};
use super::scanner::{BatchScanner, ScannedBatch};
use super::transaction_index::TransactionIndex;
use super::{LogError, OffsetIndex, TimeIndex};
use crate::protocol::file_slice::FileSlice;

/// Extension of segment data files.
pub const LOG_FILE_SUFFIX: &str = "log";
/// Extension of offset index files.
pub const INDEX_FILE_SUFFIX: &str = "index";
/// Extension of time index files.
pub const TIME_INDEX_FILE_SUFFIX: &str = "timeindex";
/// Extension of a segment's aborted-transaction index.
pub const TXN_INDEX_FILE_SUFFIX: &str = "txnindex";

/// Every file a segment may have.
pub const SEGMENT_FILE_SUFFIXES: [&str; 4] = [
    LOG_FILE_SUFFIX,
    INDEX_FILE_SUFFIX,
    TIME_INDEX_FILE_SUFFIX,
    TXN_INDEX_FILE_SUFFIX,
];

/// Buffer for scans that touch a few batches (lookups): one index interval and then some.
const LOOKUP_SCAN_BUFFER: usize = 16 * 1024;
/// Buffer for whole-segment scans (recovery).
const RECOVERY_SCAN_BUFFER: usize = 1024 * 1024;

/// `<dir>/<base offset, 20 digits>.<suffix>`, Kafka's file naming.
pub fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Suffix added to the files of a segment the cleaner is writing (Kafka's `.cleaned`).
pub const CLEANED_SUFFIX: &str = ".cleaned";

/// `<dir>/<base offset>.<suffix>.cleaned`: a file of a segment the cleaner is writing.
pub fn cleaned_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    let mut name = segment_file(dir, base_offset, suffix).into_os_string();
    name.push(CLEANED_SUFFIX);
    PathBuf::from(name)
}

/// What [`LogSegment::read`] found.
#[derive(Debug, Clone)]
pub struct SegmentRead {
    /// Byte position of the first returned batch in the segment file.
    pub position: u64,
    /// Whole batches, possibly none (first batch beyond `max_offset` or `max_bytes`).
    pub records: Bytes,
}

/// Whole batches of a segment as a range of its file, for `sendfile` (see
/// [`LogSegment::read_file_range`]).
#[derive(Debug, Clone)]
pub struct FileRecords {
    /// The segment's log file and the batches' range in it.
    pub slice: FileSlice,
    /// Records in those batches (from their headers).
    pub records: u64,
    /// The offset after the last batch.
    pub next_offset: i64,
}

/// What a range read found: a range of the file, or bytes (a range too short to send from
/// the file, or nothing).
#[derive(Debug, Clone)]
pub enum RangeRead {
    File(FileRecords),
    Bytes(SegmentRead),
}

/// What a segment read covers ([`LogSegment::span`]).
#[derive(Debug)]
enum Span {
    /// No batch: the read answers nothing, from this position.
    Nothing(u64),
    /// The first batch alone, larger than the read's `max_bytes`.
    First(ScannedBatch),
    /// Up to `want` bytes from the first batch (at least all of it).
    Upto { first: ScannedBatch, want: u64 },
}

/// How much of a segment a range read scans per system call to find the batch boundaries
/// (only headers are looked at; a batch larger than this costs one read of this size).
const RANGE_SCAN_BUFFER: usize = 4 * 1024;

/// A contiguous range of a partition's offsets stored in one set of files (Kafka's
/// `LogSegment`).
///
/// On disk: `<base>.log` holds record batch v2 bytes back to back, exactly as appended (offsets
/// assigned, nothing in between); `<base>.index` is an [`OffsetIndex`], `<base>.timeindex` a
/// [`TimeIndex`], both with an entry roughly every `index.interval.bytes` of batches.
///
/// Invariants: `size` is the log file's length and ends on a batch boundary; batch offsets
/// strictly increase from `base_offset`; `next_offset` is one past the last batch's last offset
/// (`base_offset` when empty); relative offsets fit in `u32`.
///
/// Thread safety: reads ([`LogSegment::read`], lookups) take `&self` and use positional reads
/// on a shared `Arc<File>`, so any number may run at once; appends, truncation and recovery
/// take `&mut self`. The owner (a [`super::Log`] behind a lock) keeps the two apart.
#[derive(Debug)]
pub struct LogSegment {
    base_offset: i64,
    log_path: PathBuf,
    log_file: Arc<File>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    txn_index: TransactionIndex,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    bytes_since_last_index_entry: u64,
    roll_base_ms: Option<i64>,
}

impl LogSegment {
    /// Creates an empty segment at `base_offset` in `dir`, replacing files of that name.
    pub fn create(dir: &Path, base_offset: i64, max_index_bytes: u32) -> Result<Self, LogError> {
        for suffix in SEGMENT_FILE_SUFFIXES {
            remove_if_exists(&segment_file(dir, base_offset, suffix))?;
        }
        let (segment, _) = Self::open_files(dir, base_offset, max_index_bytes, "")?;
        Ok(segment)
    }

    /// [`LogSegment::create`] in a directory just created, which holds no files to replace.
    pub(super) fn create_in_new_dir(
        dir: &Path,
        base_offset: i64,
        max_index_bytes: u32,
    ) -> Result<Self, LogError> {
        let (segment, _) = Self::open_files(dir, base_offset, max_index_bytes, "")?;
        Ok(segment)
    }

    /// Creates an empty segment whose files carry the `.cleaned` suffix
    /// (`<base>.log.cleaned`, ...), for the log cleaner to fill before it swaps them in
    /// ([`super::cleaner`]); replaces leftovers of that name.
    pub(super) fn create_cleaned(
        dir: &Path,
        base_offset: i64,
        max_index_bytes: u32,
    ) -> Result<Self, LogError> {
        for suffix in SEGMENT_FILE_SUFFIXES {
            remove_if_exists(&cleaned_file(dir, base_offset, suffix))?;
        }
        let (segment, _) = Self::open_files(dir, base_offset, max_index_bytes, CLEANED_SUFFIX)?;
        Ok(segment)
    }

    /// Opens the existing segment at `base_offset`. Cheap: loads the indexes and scans only the
    /// batches after the last index entries. Returns the segment and whether it needs
    /// [`LogSegment::recover`] because an index was missing, torn or inconsistent with the log,
    /// or the tail does not parse. `now_ms` seeds the time-roll clock when the first batch has no
    /// timestamp.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        max_index_bytes: u32,
        now_ms: i64,
    ) -> Result<(Self, bool), LogError> {
        let indexes_existed = segment_file(dir, base_offset, INDEX_FILE_SUFFIX).exists()
            && segment_file(dir, base_offset, TIME_INDEX_FILE_SUFFIX).exists();
        let (mut segment, intact) = Self::open_files(dir, base_offset, max_index_bytes, "")?;
        let consistent = segment
            .offset_index
            .last_entry()
            .is_none_or(|e| u64::from(e.position) < segment.size);
        let mut needs_recovery = !(intact && consistent && (indexes_existed || segment.size == 0));
        if !needs_recovery {
            if let Err(e) = segment.load_tail() {
                tracing::warn!(path = %segment.log_path.display(), error = %e, "segment tail unreadable");
                needs_recovery = true;
            }
        }
        if segment.size > 0 {
            let first_timestamp = match segment.first_batch() {
                Ok(first) => first.map(|b| b.header().max_timestamp()),
                Err(_) => {
                    needs_recovery = true;
                    None
                }
            };
            segment.roll_base_ms = Some(first_timestamp.filter(|&t| t >= 0).unwrap_or(now_ms));
        }
        Ok((segment, needs_recovery))
    }

    fn open_files(
        dir: &Path,
        base_offset: i64,
        max_index_bytes: u32,
        extra_suffix: &str,
    ) -> Result<(Self, bool), LogError> {
        let path = |suffix: &str| {
            let mut name = segment_file(dir, base_offset, suffix).into_os_string();
            name.push(extra_suffix);
            PathBuf::from(name)
        };
        let log_path = path(LOG_FILE_SUFFIX);
        let log_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .map_err(LogError::io("open segment", &log_path))?;
        let size = log_file
            .metadata()
            .map_err(LogError::io("stat segment", &log_path))?
            .len();
        let index_path = path(INDEX_FILE_SUFFIX);
        let (offset_index, offsets_intact) =
            OffsetIndex::open(&index_path, base_offset, max_index_bytes)?;
        let time_path = path(TIME_INDEX_FILE_SUFFIX);
        let (time_index, times_intact) = TimeIndex::open(&time_path, base_offset, max_index_bytes)?;
        let txn_index = TransactionIndex::open(path(TXN_INDEX_FILE_SUFFIX))?;
        let segment = Self {
            base_offset,
            log_path,
            log_file: Arc::new(log_file),
            size,
            offset_index,
            time_index,
            txn_index,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            bytes_since_last_index_entry: 0,
            roll_base_ms: None,
        };
        Ok((segment, offsets_intact && times_intact))
    }

    /// Derives `next_offset` and the largest timestamp from the last index entries plus a scan
    /// of the batches after them (Kafka's `readNextOffset`).
    fn load_tail(&mut self) -> Result<(), LogError> {
        let (start, max_timestamp, offset_of_max) = match self.time_index.last_entry() {
            Some(e) => (
                self.offset_index.lookup(e.offset).position,
                e.timestamp,
                e.offset,
            ),
            None => (0, NO_TIMESTAMP, -1),
        };
        self.max_timestamp = max_timestamp;
        self.offset_of_max_timestamp = offset_of_max;
        self.next_offset = self.base_offset;
        let scan_from = u64::from(start);
        let scanner = BatchScanner::new(
            &self.log_file,
            &self.log_path,
            scan_from,
            self.size,
            false,
            RECOVERY_SCAN_BUFFER,
        );
        for batch in scanner {
            let batch = batch?;
            let header = batch.header();
            if header.max_timestamp() > self.max_timestamp {
                self.max_timestamp = header.max_timestamp();
                self.offset_of_max_timestamp = header.last_offset();
            }
            self.next_offset = header.next_offset();
        }
        if self.size > 0 && self.next_offset == self.base_offset {
            // An index entry pointed at the very end: the log must have been cut under it.
            return Err(LogError::TruncatedBatch {
                position: scan_from,
                needed: 1,
                available: 0,
            });
        }
        let index_beyond_end = self
            .offset_index
            .last_entry()
            .is_some_and(|e| e.offset >= self.next_offset);
        if index_beyond_end {
            return Err(LogError::CorruptFile {
                path: self.offset_index.path().to_path_buf(),
                reason: format!("entry beyond the log end offset {}", self.next_offset),
            });
        }
        Ok(())
    }

    fn first_batch(&self) -> Result<Option<ScannedBatch>, LogError> {
        BatchScanner::new(
            &self.log_file,
            &self.log_path,
            0,
            self.size,
            false,
            LOOKUP_SCAN_BUFFER,
        )
        .next()
        .transpose()
    }

    /// Offset of the first batch this segment may hold.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    /// Bytes in the log file.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Whether the segment holds no batch.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// One past the last offset held (`base_offset` when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    /// Largest batch maxTimestamp, [`NO_TIMESTAMP`] if none.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    /// Last offset of the first batch that reached [`LogSegment::max_timestamp`], -1 if none.
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    /// When the segment's time-roll clock started: the clock at its first append, or after a
    /// restart its first batch's timestamp; `None` while empty.
    pub fn roll_base_ms(&self) -> Option<i64> {
        self.roll_base_ms
    }
    /// Index entries in memory that the index files do not hold yet (written at the next
    /// [`LogSegment::flush`] or [`LogSegment::release_index_memory`]).
    pub fn unwritten_index_entries(&self) -> usize {
        self.offset_index.unwritten() + self.time_index.unwritten()
    }
    /// Whether an index reached `segment.index.bytes`.
    pub fn is_index_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }
    /// The `.log` file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    /// The offset index.
    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }
    /// The time index.
    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }

    /// Writes the index entries the files lack (no fsync), then drops the in-memory entries
    /// of a segment no longer appended to; lookups reload them from the files when needed.
    pub fn release_index_memory(&mut self) -> Result<(), LogError> {
        self.offset_index.release_memory()?;
        self.time_index.release_memory()
    }

    /// Writes the index entries the files lack (no fsync), keeping them in memory: before a
    /// flush of the segment is queued while it is still appended to.
    pub fn write_index_entries(&mut self) -> Result<(), LogError> {
        self.offset_index.write_unwritten()?;
        self.time_index.write_unwritten()
    }

    /// Appends `batches` (whole v2 batches, offsets already assigned, each above the last) at
    /// the end of the file and indexes them. Walks batch headers only.
    pub fn append(
        &mut self,
        batches: &[u8],
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> Result<(), LogError> {
        self.log_file
            .write_all_at(batches, self.size)
            .map_err(LogError::io("append to segment", &self.log_path))?;
        let mut position = self.size;
        self.size += batches.len() as u64;
        if self.roll_base_ms.is_none() {
            self.roll_base_ms = Some(now_ms);
        }
        for item in RecordBatchIter::new(batches) {
            let (header, range) = item?;
            self.index_batch(
                header.last_offset(),
                header.max_timestamp(),
                position,
                range.len() as u64,
                index_interval_bytes,
            )?;
            position += range.len() as u64;
        }
        Ok(())
    }

    /// Kafka's indexing rule: after more than `index_interval_bytes` since the last entry, index
    /// this batch (its last offset → its start position) and the largest timestamp so far.
    fn index_batch(
        &mut self,
        last_offset: i64,
        max_timestamp: i64,
        position: u64,
        size: u64,
        index_interval_bytes: u32,
    ) -> Result<(), LogError> {
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        if self.bytes_since_last_index_entry > u64::from(index_interval_bytes) {
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            self.offset_index.append(last_offset, position)?;
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += size;
        self.next_offset = last_offset + 1;
        Ok(())
    }

    /// The first batch whose last offset is `>= offset`, found via the index and a short scan.
    pub fn find_batch(&self, offset: i64) -> Result<Option<ScannedBatch>, LogError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let start = u64::from(self.offset_index.lookup(offset).position);
        let mut scanner = BatchScanner::new(
            &self.log_file,
            &self.log_path,
            start,
            self.size,
            false,
            LOOKUP_SCAN_BUFFER,
        );
        scanner
            .find(|b| {
                b.as_ref()
                    .map_or(true, |b| b.header().last_offset() >= offset)
            })
            .transpose()
    }

    /// What a read from `start_offset` covers (see [`LogSegment::read`]): nothing (the first
    /// batch is not wholly below `max_offset`, or is larger than `max_bytes` without
    /// `min_one_message`), the first batch alone (larger than `max_bytes`), or up to `want`
    /// bytes from it, whose last batch `max_bytes` may cut. `Ok(None)`: no batch at or after
    /// `start_offset` here.
    fn span(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_message: bool,
    ) -> Result<Option<Span>, LogError> {
        let Some(first) = self.find_batch(start_offset)? else {
            return Ok(None);
        };
        if first.header().last_offset() >= max_offset {
            return Ok(Some(Span::Nothing(first.position)));
        }
        let end = if max_offset < self.next_offset {
            self.find_batch(max_offset)?
                .map_or(self.size, |b| b.position)
        } else {
            self.size
        };
        let want = (end - first.position).min(max_bytes as u64);
        Ok(Some(if want >= first.size() {
            Span::Upto { first, want }
        } else if min_one_message {
            Span::First(first)
        } else {
            Span::Nothing(first.position)
        }))
    }

    /// Reads whole batches starting with the one holding `start_offset`: at most `max_bytes`,
    /// only batches entirely below `max_offset` (exclusive: the high watermark). If the first
    /// batch is larger than `max_bytes` it is returned whole when `min_one_message` is set
    /// (Kafka's rule), else nothing is. `Ok(None)`: no batch at or after `start_offset` here.
    ///
    /// One positional read into a fresh buffer; no record is decoded.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_message: bool,
    ) -> Result<Option<SegmentRead>, LogError> {
        let Some(span) = self.span(start_offset, max_bytes, max_offset, min_one_message)? else {
            return Ok(None);
        };
        Ok(Some(match span {
            Span::Nothing(position) => SegmentRead {
                position,
                records: Bytes::new(),
            },
            Span::First(first) => SegmentRead {
                position: first.position,
                records: self.read_bytes(first.position, first.size())?,
            },
            Span::Upto { first, want } => {
                let mut buf = self.read_bytes(first.position, want)?;
                // Keep whole batches only: the last one may have been cut by max_bytes.
                let whole = RecordBatchIter::new(&buf)
                    .map_while(Result::ok)
                    .last()
                    .map_or(0, |(_, range)| range.end);
                buf.truncate(whole);
                SegmentRead {
                    position: first.position,
                    records: buf,
                }
            }
        }))
    }

    /// What [`LogSegment::read`] would return, as a range of the log file when it is at least
    /// `file_from` bytes long (read into memory otherwise, as `read` does): whole batches from
    /// the one holding `start_offset`, found from their headers alone. `Ok(None)`: no batch
    /// at or after `start_offset` here.
    pub fn read_file_range(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_message: bool,
        file_from: usize,
    ) -> Result<Option<RangeRead>, LogError> {
        let Some(span) = self.span(start_offset, max_bytes, max_offset, min_one_message)? else {
            return Ok(None);
        };
        let (first, want) = match span {
            Span::Nothing(position) => {
                return Ok(Some(RangeRead::Bytes(SegmentRead {
                    position,
                    records: Bytes::new(),
                })))
            }
            Span::First(first) => (first, None),
            Span::Upto { first, want } => (first, Some(want)),
        };
        let position = first.position;
        let mut len = first.size();
        let mut records = u64::try_from(first.header().records_count()).unwrap_or(0);
        let mut next_offset = first.header().next_offset();
        if let Some(want) = want {
            // Batches wholly inside the range; the scan stops at the one `max_bytes` cut.
            (len, records) = (0, 0);
            let scan = BatchScanner::new(
                &self.log_file,
                &self.log_path,
                position,
                position + want,
                false,
                RANGE_SCAN_BUFFER,
            );
            for batch in scan.map_while(Result::ok) {
                len = batch.end() - position;
                records += u64::try_from(batch.header().records_count()).unwrap_or(0);
                next_offset = batch.header().next_offset();
            }
        }
        if len == 0 || (len as usize) < file_from {
            let records = self.read_bytes(position, len)?;
            return Ok(Some(RangeRead::Bytes(SegmentRead { position, records })));
        }
        Ok(Some(RangeRead::File(FileRecords {
            slice: FileSlice::new(Arc::clone(&self.log_file), position, len as usize),
            records,
            next_offset,
        })))
    }

    /// `len` bytes of the log file from `position`. A small read lands in a fresh buffer's
    /// uninitialised capacity; a large one (a Fetch's megabyte) in a pooled buffer, so it
    /// neither zeroes nor faults in fresh pages first (see `ReadBufferPool`).
    pub fn read_bytes(&self, position: u64, len: u64) -> Result<Bytes, LogError> {
        let len = len as usize;
        let error = || LogError::io("read segment", &self.log_path);
        if len >= POOL_FROM {
            let pool = ReadBufferPool::global();
            let mut buf = pool.take(len);
            self.log_file
                .read_exact_at(&mut buf[..len], position)
                .map_err(error())?;
            return Ok(pool.lend(buf, len));
        }
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let at = position + buf.len() as u64;
            let read =
                rustix::io::pread(&self.log_file, rustix::buffer::spare_capacity(&mut buf), at)
                    .map_err(|e| error()(e.into()))?;
            if read == 0 {
                return Err(error()(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        // The capacity may exceed `len`: bytes read past it are not part of the answer.
        buf.truncate(len);
        Ok(Bytes::from(buf))
    }

    /// The first batch holding a record with timestamp `>= timestamp` and last offset
    /// `>= min_offset`, found via the time index (Kafka's `findOffsetByTimestamp`, batch level).
    pub fn find_batch_by_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<ScannedBatch>, LogError> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let hint = self.time_index.lookup(timestamp).offset.max(min_offset);
        let start = u64::from(self.offset_index.lookup(hint).position);
        let mut scanner = BatchScanner::new(
            &self.log_file,
            &self.log_path,
            start,
            self.size,
            false,
            LOOKUP_SCAN_BUFFER,
        );
        scanner
            .find(|b| {
                b.as_ref().map_or(true, |b| {
                    let h = b.header();
                    h.max_timestamp() >= timestamp && h.last_offset() >= min_offset
                })
            })
            .transpose()
    }

    /// Walks every batch header from `from_offset` on (batches ending before it are skipped).
    pub fn batches_from(
        &self,
        from_offset: i64,
    ) -> impl Iterator<Item = Result<ScannedBatch, LogError>> + '_ {
        let start = u64::from(self.offset_index.lookup(from_offset).position);
        BatchScanner::new(
            &self.log_file,
            &self.log_path,
            start,
            self.size,
            false,
            RECOVERY_SCAN_BUFFER,
        )
        .filter(move |b| {
            b.as_ref()
                .map_or(true, |b| b.header().last_offset() >= from_offset)
        })
    }

    /// Rebuilds both indexes and the segment metadata by validating every batch (structure,
    /// CRC-32C, header fields, increasing offsets); cuts the file at the first bad batch.
    /// Returns how many bytes were cut.
    pub fn recover(&mut self, index_interval_bytes: u32) -> Result<u64, LogError> {
        self.offset_index.reset()?;
        self.time_index.reset()?;
        self.max_timestamp = NO_TIMESTAMP;
        self.offset_of_max_timestamp = -1;
        self.bytes_since_last_index_entry = 0;
        self.next_offset = self.base_offset;
        let file = Arc::clone(&self.log_file);
        let path = self.log_path.clone();
        let mut scanner = BatchScanner::new(&file, &path, 0, self.size, true, RECOVERY_SCAN_BUFFER);
        let mut valid_end = 0;
        let mut problem = None;
        for batch in scanner.by_ref() {
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    problem = Some(e);
                    break;
                }
            };
            let header = batch.header();
            let relative_last = header.last_offset() - self.base_offset;
            if header.base_offset() < self.next_offset || relative_last > i64::from(u32::MAX) {
                problem = Some(LogError::InvalidBatch {
                    position: batch.position,
                    reason: "batch offsets out of order or outside the segment",
                });
                break;
            }
            self.index_batch(
                header.last_offset(),
                header.max_timestamp(),
                batch.position,
                batch.size(),
                index_interval_bytes,
            )?;
            valid_end = batch.end();
        }
        let truncated = self.size - valid_end;
        if truncated > 0 {
            tracing::warn!(
                path = %self.log_path.display(),
                valid_bytes = valid_end,
                truncated_bytes = truncated,
                error = %problem.map_or_else(|| "unknown".to_string(), |e| e.to_string()),
                "truncating torn or corrupt segment tail"
            );
            self.set_log_len(valid_end)?;
        }
        self.txn_index.truncate_to(self.next_offset)?;
        if self.size == 0 {
            self.roll_base_ms = None;
        }
        Ok(truncated)
    }

    fn set_log_len(&mut self, len: u64) -> Result<(), LogError> {
        self.log_file
            .set_len(len)
            .map_err(LogError::io("truncate segment", &self.log_path))?;
        self.size = len;
        Ok(())
    }

    /// Removes the batch holding `offset` and everything after it (Kafka's `truncateTo`: whole
    /// batches, so the new end may be below `offset` if it fell inside a batch). Returns the
    /// bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> Result<u64, LogError> {
        let Some(batch) = self.find_batch(offset)? else {
            return Ok(0);
        };
        let position = batch.position;
        let removed = self.size - position;
        let new_next_offset = batch.header().base_offset();
        self.offset_index
            .truncate_to_position(u32::try_from(position).unwrap_or(u32::MAX))?;
        self.time_index.truncate_to(new_next_offset)?;
        self.txn_index.truncate_to(new_next_offset)?;
        self.set_log_len(position)?;
        self.bytes_since_last_index_entry = 0;
        self.load_tail()?;
        if self.size == 0 {
            self.roll_base_ms = None;
        }
        Ok(removed)
    }

    /// fsyncs the log file, then writes the index entries the index files lack and fsyncs
    /// them (each through a descriptor opened for it: see `super::index_file`).
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.log_file
            .sync_data()
            .map_err(LogError::io("fsync segment", &self.log_path))?;
        self.offset_index.flush()?;
        self.time_index.flush()?;
        self.txn_index.flush()
    }

    /// A shared handle of the `.log` file, for the cleaner to read the segment without the
    /// log's lock (a segment below the active one is never written again; if it is deleted
    /// meanwhile the handle still reads the unlinked file).
    pub(super) fn shared_log_file(&self) -> Arc<File> {
        Arc::clone(&self.log_file)
    }

    /// The segment's files, to fsync them without the segment
    /// ([`super::flush::PendingFlush`]): a shared handle of the `.log` and the paths of the
    /// indexes, whose entries must already be written ([`LogSegment::release_index_memory`]).
    pub(super) fn files(&self) -> super::flush::SegmentFiles {
        debug_assert_eq!(
            self.unwritten_index_entries(),
            0,
            "a queued flush would miss index entries"
        );
        super::flush::SegmentFiles {
            log: (self.log_path.clone(), self.log_file.clone()),
            indexes: vec![
                self.offset_index.path().to_path_buf(),
                self.time_index.path().to_path_buf(),
                self.txn_index.path().to_path_buf(),
            ],
        }
    }

    /// Deletes the segment's files.
    pub fn delete(self) -> Result<(), LogError> {
        remove_if_exists(&self.log_path)?;
        self.offset_index.delete()?;
        self.time_index.delete()?;
        self.txn_index.delete()
    }

    /// The aborted transactions whose markers are in this segment.
    pub fn txn_index(&self) -> &TransactionIndex {
        &self.txn_index
    }

    /// The aborted-transaction index, to append to or rebuild.
    pub(super) fn txn_index_mut(&mut self) -> &mut TransactionIndex {
        &mut self.txn_index
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
