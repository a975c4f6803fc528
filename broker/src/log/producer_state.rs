//! Idempotent producer state of one partition: last sequences per producer id.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use super::batch::{increment_sequence, RecordBatchHeader};
use super::checkpoint::{write_atomically, write_replacing};
use super::control::ControlRecordType;
use super::index_file::remove_if_exists;
use super::LogError;

/// Batches remembered per producer for duplicate detection (Kafka keeps 5, matching the
/// clients' `max.in.flight.requests.per.connection` limit for idempotence).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
/// Extension of producer state snapshot files.
pub const SNAPSHOT_FILE_SUFFIX: &str = "snapshot";

const SNAPSHOT_MAGIC: &[u8; 4] = b"WPSS";
/// Version 2 added each producer's coordinator epoch and ongoing transaction, version 3 its
/// last timestamp; versions 1 and 2 are read.
const SNAPSHOT_VERSION: u16 = 3;
/// magic + version + crc + producer count.
const SNAPSHOT_HEADER_SIZE: usize = 4 + 2 + 4 + 4;
const SNAPSHOT_CRC_START: usize = 10;
/// producer id + epoch + coordinator epoch + ongoing transaction's first offset + last
/// timestamp + batch count.
const SNAPSHOT_ENTRY_HEADER_SIZE: usize = 8 + 2 + 4 + 8 + 8 + 1;
/// first seq + last seq + first offset + last offset + timestamp.
const SNAPSHOT_BATCH_SIZE: usize = 4 + 4 + 8 + 8 + 8;

/// Where one appended batch of an idempotent producer landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset assigned to the first record.
    pub first_offset: i64,
    /// Offset assigned to the last record.
    pub last_offset: i64,
    /// The batch's maxTimestamp.
    pub timestamp: i64,
}

/// What the log knows about one producer id: its epoch and its last few batches.
///
/// Invariant: `batches` holds at most `NUM_BATCHES_TO_RETAIN` (5) entries, all of `epoch`, in
/// append order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    /// Current epoch.
    pub epoch: i16,
    /// Epoch of the transaction coordinator that wrote this producer's last marker (-1: none).
    pub coordinator_epoch: i32,
    /// First offset of the producer's ongoing transaction in this partition, if one is open.
    pub current_txn_first_offset: Option<i64>,
    /// The max timestamp of the producer's last batch or marker (-1: unknown): what
    /// `producer.id.expiration.ms` is measured from, as in Kafka.
    pub last_timestamp: i64,
    batches: VecDeque<BatchMetadata>,
}

impl ProducerStateEntry {
    fn new(epoch: i16) -> Self {
        Self {
            epoch,
            coordinator_epoch: -1,
            current_txn_first_offset: None,
            last_timestamp: -1,
            batches: VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN),
        }
    }

    /// Sequence of the last record appended in the current epoch.
    pub fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    /// The remembered batches, oldest first.
    pub fn batches(&self) -> impl Iterator<Item = &BatchMetadata> {
        self.batches.iter()
    }

    /// A remembered batch of `epoch` with the same sequence range (Kafka's `findDuplicateBatch`).
    pub fn find_duplicate(
        &self,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }

    fn add_batch(&mut self, epoch: i16, batch: BatchMetadata) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.last_timestamp = batch.timestamp;
        self.batches.push_back(batch);
    }
}

/// Outcome of [`ProducerStateManager::check_batch`] for a batch that may be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerCheck {
    /// The batch follows the producer's last one: append it.
    Append,
    /// The batch was already appended: answer with the original offsets, append nothing.
    Duplicate(BatchMetadata),
}

/// The producer state of one partition (Kafka's `ProducerStateManager`).
///
/// Rules, as Kafka's `ProducerAppendInfo` for client appends: batches with producer id -1 are
/// ignored; an epoch below the current one is [`LogError::InvalidProducerEpoch`]; a higher epoch
/// must start at sequence 0; a batch equal to one of the last 5 of the current epoch is a
/// duplicate; otherwise the first sequence must follow the last one (wrapping at `i32::MAX`),
/// else [`LogError::OutOfOrderSequence`]. An unknown producer may start at any sequence, as in
/// Kafka: its state may have been expired (`producer.id.expiration.ms`) or removed with the
/// segments that held it, and refusing it would be fatal to the client.
///
/// Producers idle for longer than `producer.id.expiration.ms` (measured from the timestamp of
/// their last batch or marker) and without an open transaction are forgotten
/// ([`ProducerStateManager::remove_expired`]), so the state stays bounded however many
/// producer ids have written to the partition.
///
/// State reflects the log up to [`ProducerStateManager::map_end_offset`] (exclusive). It is
/// rebuilt on open from the latest snapshot plus the batch headers after it.
///
/// Snapshot format (`<dir>/<map end offset, 20 digits>.snapshot`, big-endian): `"WPSS"`,
/// version u16 (3), CRC-32C u32 of everything after it, producer count u32, then per producer:
/// id i64, epoch i16, coordinator epoch i32, first offset of the open transaction i64 (-1:
/// none), last timestamp i64, batch count u8, then per batch: first seq i32, last seq i32,
/// first offset i64, last offset i64, timestamp i64. Versions 1 (no coordinator epoch, no
/// transaction) and 2 (no last timestamp: the last batch's is taken) are still read.
///
/// Transactions: a transactional batch opens its producer's transaction at its base offset;
/// a marker closes it. The first offset of the oldest open (or not yet replicated) transaction
/// bounds the partition's last stable offset.
///
/// Thread safety: plain data owned by its [`super::Log`]; `&mut self` to change.
#[derive(Debug)]
pub struct ProducerStateManager {
    dir: PathBuf,
    producers: HashMap<i64, ProducerStateEntry>,
    map_end_offset: i64,
    /// Open transactions: first offset → producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Transactions whose marker is written but not yet below the high watermark: first offset
    /// → marker offset. They stay unstable until then, as in Kafka.
    unreplicated: BTreeMap<i64, i64>,
}

/// A transaction whose marker was just appended (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    /// The transaction's producer id.
    pub producer_id: i64,
    /// Its first offset in this partition.
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    /// Whether the marker said ABORT.
    pub aborted: bool,
    /// The first offset still undecided once this transaction is complete (the marker's
    /// offset + 1 when no other transaction is open).
    pub last_stable_offset: i64,
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq == increment_sequence(last_seq, 1)
}

impl ProducerStateManager {
    /// Empty state for the partition in `dir`, reflecting the log up to `map_end_offset`.
    pub fn new(dir: &Path, map_end_offset: i64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            producers: HashMap::new(),
            map_end_offset,
            ongoing: BTreeMap::new(),
            unreplicated: BTreeMap::new(),
        }
    }

    /// One past the last offset whose batches are reflected here.
    pub fn map_end_offset(&self) -> i64 {
        self.map_end_offset
    }

    /// The state of one producer.
    pub fn producer(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// The last offset of each known producer's last batch (Kafka's
    /// `lastRecordsOfActiveProducers`): the cleaner keeps those batches, empty if need be, so
    /// a producer's sequence survives compaction.
    pub fn last_batch_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(&id, entry)| entry.batches.back().map(|b| (id, b.last_offset)))
            .collect()
    }

    /// Number of known producers.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks an idempotent client batch (producer id >= 0). `pending` is the (epoch, last
    /// sequence) left by earlier batches of the same producer in the same request, if any.
    pub fn check_batch(
        &self,
        header: &RecordBatchHeader<'_>,
        pending: Option<(i16, i32)>,
    ) -> Result<ProducerCheck, LogError> {
        let producer_id = header.producer_id();
        let epoch = header.producer_epoch();
        let first_seq = header.base_sequence();
        let current = self.producers.get(&producer_id);
        if pending.is_none() {
            let duplicate =
                current.and_then(|c| c.find_duplicate(epoch, first_seq, header.last_sequence()));
            if let Some(duplicate) = duplicate {
                return Ok(ProducerCheck::Duplicate(duplicate));
            }
        }
        let (current_epoch, last_seq) = match pending {
            Some((e, s)) => (Some(e), Some(s)),
            None => (
                current.map(|c| c.epoch),
                current.and_then(ProducerStateEntry::last_seq),
            ),
        };
        let out_of_order = |last_sequence: i32| LogError::OutOfOrderSequence {
            producer_id,
            epoch,
            first_sequence: first_seq,
            last_sequence,
        };
        match current_epoch {
            Some(current_epoch) if epoch < current_epoch => Err(LogError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current_epoch,
            }),
            Some(current_epoch) if epoch == current_epoch => match last_seq {
                Some(last) if in_sequence(last, first_seq) => Ok(ProducerCheck::Append),
                None if first_seq == 0 => Ok(ProducerCheck::Append),
                last => Err(out_of_order(last.unwrap_or(-1))),
            },
            // A new epoch: the first batch starts at sequence 0.
            Some(_) if first_seq != 0 => Err(out_of_order(-1)),
            // A new epoch from 0.
            Some(_) => Ok(ProducerCheck::Append),
            // A producer this partition does not know: any sequence.
            None => {
                if first_seq != 0 {
                    tracing::debug!(
                        dir = %self.dir.display(),
                        producer_id,
                        epoch,
                        first_seq,
                        "a producer unknown to this partition starts at a non-zero sequence"
                    );
                }
                Ok(ProducerCheck::Append)
            }
        }
    }

    /// Records an appended batch (offsets assigned); `control` is the marker type of a control
    /// batch (`None` for a data batch or an unknown control record). Non-idempotent batches only move [`ProducerStateManager::map_end_offset`]; a batch
    /// of an older epoch than known (possible only when replaying the log) changes nothing
    /// else. A transactional batch opens its producer's transaction if none is open; a marker
    /// closes it and returns it as completed.
    pub fn update(
        &mut self,
        header: &RecordBatchHeader<'_>,
        control: Option<ControlRecordType>,
    ) -> Option<CompletedTxn> {
        self.map_end_offset = self.map_end_offset.max(header.next_offset());
        let producer_id = header.producer_id();
        if producer_id < 0 {
            return None;
        }
        if header.is_control() && control.is_none() {
            // A control record of a type this broker does not know: ignored, as Kafka does.
            return None;
        }
        let epoch = header.producer_epoch();
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerStateEntry::new(epoch));
        if epoch < entry.epoch {
            return None;
        }
        if let Some(kind) = control {
            if epoch > entry.epoch {
                entry.epoch = epoch;
                entry.batches.clear();
            }
            entry.last_timestamp = header.max_timestamp();
            let first_offset = entry.current_txn_first_offset.take()?;
            self.ongoing.remove(&first_offset);
            let last_offset = header.base_offset();
            self.unreplicated.insert(first_offset, last_offset);
            let last_stable_offset = self
                .ongoing
                .keys()
                .next()
                .copied()
                .unwrap_or(last_offset + 1);
            return Some(CompletedTxn {
                producer_id,
                first_offset,
                last_offset,
                aborted: kind == ControlRecordType::Abort,
                last_stable_offset,
            });
        }
        if header.is_transactional() && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(header.base_offset());
            self.ongoing.insert(header.base_offset(), producer_id);
        }
        entry.add_batch(
            epoch,
            BatchMetadata {
                first_seq: header.base_sequence(),
                last_seq: header.last_sequence(),
                first_offset: header.base_offset(),
                last_offset: header.last_offset(),
                timestamp: header.max_timestamp(),
            },
        );
        None
    }

    /// Records the coordinator epoch of a marker the leader is about to append.
    pub fn set_coordinator_epoch(&mut self, producer_id: i64, coordinator_epoch: i32) {
        if let Some(entry) = self.producers.get_mut(&producer_id) {
            entry.coordinator_epoch = coordinator_epoch;
        }
    }

    /// The first offset of the oldest transaction that is open or whose marker is not yet
    /// replicated: the last stable offset can be no higher.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.keys().next().copied();
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The high watermark moved to `high_watermark`: transactions whose markers are below it
    /// are stable.
    pub fn on_high_watermark(&mut self, high_watermark: i64) {
        if !self.unreplicated.is_empty() {
            self.unreplicated
                .retain(|_, marker| *marker >= high_watermark);
        }
    }

    /// Forgets the producers without an open transaction whose last batch or marker is
    /// `expiration_ms` or more older than `now_ms` (Kafka's `removeExpiredProducers`); returns
    /// how many.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Known producers and their state.
    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerStateEntry)> {
        self.producers.iter().map(|(&id, e)| (id, e))
    }

    /// Forgets every producer and restarts at `map_end_offset`.
    pub fn reset(&mut self, map_end_offset: i64) {
        self.producers.clear();
        self.ongoing.clear();
        self.unreplicated.clear();
        self.map_end_offset = map_end_offset;
    }

    /// Rebuilds the open-transaction map from the producers (after loading a snapshot).
    fn rebuild_ongoing(&mut self) {
        self.unreplicated.clear();
        self.ongoing = self
            .producers
            .iter()
            .filter_map(|(&id, e)| e.current_txn_first_offset.map(|first| (first, id)))
            .collect();
    }

    /// Writes `<map end offset>.snapshot` atomically.
    pub fn take_snapshot(&self) -> Result<(), LogError> {
        let path = snapshot_file(&self.dir, self.map_end_offset);
        write_atomically(&path, &self.encode_snapshot())
    }

    /// Writes `<map end offset>.snapshot` without fsync (`write_replacing`) and returns its
    /// path, for the caller to fsync before relying on it: a power loss may leave it torn,
    /// and [`ProducerStateManager::load_latest_snapshot`] deletes an unreadable snapshot and
    /// falls back to an older one (or the log).
    pub fn take_snapshot_unsynced(&self) -> Result<PathBuf, LogError> {
        let path = snapshot_file(&self.dir, self.map_end_offset);
        write_replacing(&path, &self.encode_snapshot())?;
        Ok(path)
    }

    fn encode_snapshot(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(
            SNAPSHOT_HEADER_SIZE
                + self.producers.len()
                    * (SNAPSHOT_ENTRY_HEADER_SIZE + NUM_BATCHES_TO_RETAIN * SNAPSHOT_BATCH_SIZE),
        );
        buf.extend_from_slice(SNAPSHOT_MAGIC);
        buf.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let entry = &self.producers[&id];
            buf.extend_from_slice(&id.to_be_bytes());
            buf.extend_from_slice(&entry.epoch.to_be_bytes());
            buf.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
            buf.extend_from_slice(&entry.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
            buf.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            buf.push(entry.batches.len() as u8);
            for b in &entry.batches {
                buf.extend_from_slice(&b.first_seq.to_be_bytes());
                buf.extend_from_slice(&b.last_seq.to_be_bytes());
                buf.extend_from_slice(&b.first_offset.to_be_bytes());
                buf.extend_from_slice(&b.last_offset.to_be_bytes());
                buf.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&buf[SNAPSHOT_CRC_START..]);
        buf[6..10].copy_from_slice(&crc.to_be_bytes());
        buf
    }

    /// Replaces the state with the newest readable snapshot at or below `max_offset`, deleting
    /// snapshots above it and unreadable ones. Returns the snapshot's offset, `None` (state
    /// reset to `log_start_offset`) if there is none.
    pub fn load_latest_snapshot(
        &mut self,
        max_offset: i64,
        log_start_offset: i64,
    ) -> Result<Option<i64>, LogError> {
        let snapshots = list_snapshots(&self.dir)?;
        for (offset, path) in snapshots.iter().rev() {
            if *offset > max_offset {
                remove_if_exists(path)?;
                continue;
            }
            let bytes = std::fs::read(path).map_err(LogError::io("read snapshot", path))?;
            match decode_snapshot(&bytes) {
                Ok(producers) => {
                    self.producers = producers;
                    self.rebuild_ongoing();
                    self.map_end_offset = *offset;
                    return Ok(Some(*offset));
                }
                Err(reason) => {
                    tracing::warn!(path = %path.display(), reason, "deleting unreadable producer snapshot");
                    remove_if_exists(path)?;
                }
            }
        }
        self.reset(log_start_offset);
        Ok(None)
    }

    /// Deletes snapshots above `offset` (after a log truncation).
    pub fn delete_snapshots_after(&self, offset: i64) -> Result<(), LogError> {
        for (snapshot_offset, path) in list_snapshots(&self.dir)? {
            if snapshot_offset > offset {
                remove_if_exists(&path)?;
            }
        }
        Ok(())
    }

    /// Keeps only the newest `keep` snapshots.
    pub fn retain_latest_snapshots(&self, keep: usize) -> Result<(), LogError> {
        let snapshots = list_snapshots(&self.dir)?;
        let excess = snapshots.len().saturating_sub(keep);
        for (_, path) in &snapshots[..excess] {
            remove_if_exists(path)?;
        }
        Ok(())
    }
}

/// `<dir>/<offset, 20 digits>.snapshot`.
pub fn snapshot_file(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_FILE_SUFFIX}"))
}

/// Snapshot files in `dir`, by increasing offset.
pub fn list_snapshots(dir: &Path) -> Result<Vec<(i64, PathBuf)>, LogError> {
    let mut snapshots = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(LogError::io("list", dir))? {
        let path = entry.map_err(LogError::io("list", dir))?.path();
        let is_snapshot = path.extension().is_some_and(|e| e == SNAPSHOT_FILE_SUFFIX);
        let offset = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<i64>().ok());
        if let (true, Some(offset)) = (is_snapshot, offset) {
            snapshots.push((offset, path));
        }
    }
    snapshots.sort_unstable_by_key(|(offset, _)| *offset);
    Ok(snapshots)
}

/// A cursor over snapshot bytes that reports a short read as an error message.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        if self.0.len() < N {
            return Err("snapshot is truncated");
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("N bytes"))
    }
}

fn decode_snapshot(bytes: &[u8]) -> Result<HashMap<i64, ProducerStateEntry>, &'static str> {
    let mut r = Reader(bytes);
    if &r.take::<4>()? != SNAPSHOT_MAGIC {
        return Err("bad magic");
    }
    let version = u16::from_be_bytes(r.take()?);
    if !(1..=SNAPSHOT_VERSION).contains(&version) {
        return Err("unknown version");
    }
    let stored_crc = u32::from_be_bytes(r.take()?);
    if crc32c::crc32c(&bytes[SNAPSHOT_CRC_START..]) != stored_crc {
        return Err("CRC mismatch");
    }
    let count = u32::from_be_bytes(r.take()?);
    let mut producers = HashMap::with_capacity(count as usize);
    for _ in 0..count {
        let id = i64::from_be_bytes(r.take()?);
        let epoch = i16::from_be_bytes(r.take()?);
        let mut entry = ProducerStateEntry::new(epoch);
        if version >= 2 {
            entry.coordinator_epoch = i32::from_be_bytes(r.take()?);
            let first = i64::from_be_bytes(r.take()?);
            entry.current_txn_first_offset = (first >= 0).then_some(first);
        }
        if version >= 3 {
            entry.last_timestamp = i64::from_be_bytes(r.take()?);
        }
        let [batch_count] = r.take::<1>()?;
        if batch_count as usize > NUM_BATCHES_TO_RETAIN {
            return Err("too many batches for one producer");
        }
        for _ in 0..batch_count {
            entry.batches.push_back(BatchMetadata {
                first_seq: i32::from_be_bytes(r.take()?),
                last_seq: i32::from_be_bytes(r.take()?),
                first_offset: i64::from_be_bytes(r.take()?),
                last_offset: i64::from_be_bytes(r.take()?),
                timestamp: i64::from_be_bytes(r.take()?),
            });
        }
        if version < 3 {
            entry.last_timestamp = entry.batches.back().map_or(-1, |b| b.timestamp);
        }
        producers.insert(id, entry);
    }
    if !r.0.is_empty() {
        return Err("trailing bytes");
    }
    Ok(producers)
}

#[cfg(test)]
#[path = "producer_state_tests.rs"]
mod tests;
