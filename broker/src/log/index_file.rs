//! A segment's index: an append-only file of fixed-size entries, [`Index`], generic over its
//! entry format ([`IndexEntry`]), as Kafka's `AbstractIndex`. The offset index
//! ([`super::OffsetIndex`]) and the time index ([`super::TimeIndex`]) share the file
//! lifecycle here (open and check, hold in memory, release and reload, append, truncate,
//! flush, delete) and keep only their entry format, lookup and append rules.
//!
//! Without mmap (unsafe is forbidden) the entries live in memory and are the index; the file is
//! their durable copy, brought up to date only when it must be: at a flush (the periodic or
//! `flush.messages` one, a roll's, a clean shutdown's) and before the entries are released
//! from memory (a rolled segment). No descriptor is held between those writes: each opens the
//! file, writes the entries it lacks with one positional write, fsyncs if asked, and closes it.
//! Kafka holds one descriptor per partition (the active `.log`; its indexes are memory-mapped
//! and their descriptors closed); holding the two index files open as well tripled Weir's, so
//! 20,000 open files stopped a broker at ~6,660 partitions. The append path writes nothing
//! here either: an entry every `index.interval.bytes` is a push onto a `Vec`.
//!
//! Crash safety: the file may lag the entries (after SIGKILL, those added since the last
//! flush are missing) but never holds an entry the log does not: truncations shrink the file
//! at once. A segment whose file may lag is past the recovery point, because every flush that
//! moves the recovery point writes the indexes of the segments it covers first; recovery
//! rebuilds the indexes of exactly those segments ([`super::Log::open`]). The file is exactly
//! `written entries * entry size` long (never preallocated), so a length that is not a
//! multiple of the entry size means a torn write.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::LogError;

/// The on-disk format of one index's entries.
pub trait IndexEntry: Copy + std::fmt::Debug {
    /// Bytes per entry on disk.
    const SIZE: usize;
    /// What the index is called in log messages ("offset index").
    const NAME: &'static str;
    /// Writes the entry into `out` (`SIZE` bytes).
    fn encode(&self, out: &mut [u8]);
    /// Reads an entry from `bytes` (`SIZE` bytes).
    fn decode(bytes: &[u8]) -> Self;
    /// Whether `self` may follow `previous` in a file (the index's ordering rule).
    fn follows(&self, previous: &Self) -> bool;
    /// The entry's offset relative to the segment's base offset.
    fn relative_offset(&self) -> u32;
}

/// One segment's index of entries `E` (Kafka's `AbstractIndex`).
///
/// Invariants: the entries obey `E::follows` one after the other; the file holds exactly the
/// first `written` of them (`written * E::SIZE` bytes), and `written <= entries` whenever the
/// entries are in memory (they are released only once `written` caught up). Thread safety:
/// lookups take `&self`, mutations (appends, truncations, writes of the file) `&mut self`; the
/// owning [`super::LogSegment`] decides who may call what (no interior locking).
#[derive(Debug)]
pub struct Index<E: IndexEntry> {
    file: IndexFile,
    base_offset: i64,
    entries: CachedEntries<E>,
    written: usize,
    max_entries: usize,
}

impl<E: IndexEntry> Index<E> {
    /// Opens or creates the index at `path` for a segment starting at `base_offset`, holding at
    /// most `max_index_bytes / E::SIZE` entries. Returns the index and whether the file content
    /// was intact; a torn or out-of-order file is emptied (and the caller must rebuild it).
    /// The file is read and closed: nothing stays open.
    pub fn open(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u32,
    ) -> Result<(Self, bool), LogError> {
        let (file, content) = IndexFile::open(path)?;
        let mut index = Self {
            file,
            base_offset,
            entries: CachedEntries::new(decode_entries::<E>),
            written: 0,
            max_entries: (max_index_bytes as usize / E::SIZE).max(1),
        };
        match decode_entries::<E>(&content) {
            Some(entries) => {
                index.written = entries.len();
                index.entries.set(entries);
                Ok((index, true))
            }
            None => {
                tracing::warn!(path = %path.display(), "corrupt {}, rebuilding", E::NAME);
                index.reset()?;
                Ok((index, false))
            }
        }
    }

    /// The base offset of the segment.
    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// The entries, reloaded from the file if they were released.
    pub(crate) fn entries(&self) -> &[E] {
        self.entries.get(&self.file)
    }

    /// Adds `entry` in memory only (the hot append path makes no system call here); the file
    /// gets it at the next [`Index::flush`] or [`Index::release_memory`]. The caller checked
    /// the index's rules.
    pub(crate) fn push(&mut self, entry: E) {
        self.entries.get_mut(&self.file).push(entry);
    }

    /// Keeps the first `keep` entries. The file is cut at once if it held more: it must never
    /// name a batch the log no longer has.
    pub(crate) fn truncate_entries(&mut self, keep: usize) -> Result<(), LogError> {
        if keep < self.entries().len() {
            self.entries.get_mut(&self.file).truncate(keep);
        }
        if keep < self.written {
            self.file.truncate((keep * E::SIZE) as u64)?;
            self.written = keep;
        }
        Ok(())
    }

    /// Removes the entries for offsets `>= offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let base = self.base_offset;
        let keep = self
            .entries()
            .partition_point(|e| base + i64::from(e.relative_offset()) < offset);
        self.truncate_entries(keep)
    }

    /// Writes the entries the file lacks (no fsync), keeping them in memory.
    pub fn write_unwritten(&mut self) -> Result<(), LogError> {
        self.write_pending(false)
    }

    /// Writes the entries the file lacks, then drops the in-memory entries of an index that is
    /// no longer appended to; they are read back from the file on the next lookup. Keeps
    /// memory proportional to the segments in use.
    pub fn release_memory(&mut self) -> Result<(), LogError> {
        self.write_pending(false)?;
        self.entries.release();
        Ok(())
    }

    /// Whether the entries are in memory.
    pub fn is_loaded(&self) -> bool {
        self.entries.is_loaded()
    }

    /// Removes every entry.
    pub fn reset(&mut self) -> Result<(), LogError> {
        self.entries.set(Vec::new());
        self.written = 0;
        self.file.truncate(0)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// Whether the index reached `segment.index.bytes` (the segment must roll).
    pub fn is_full(&self) -> bool {
        self.entries().len() >= self.max_entries
    }

    /// Entries in memory that the file does not hold yet.
    pub fn unwritten(&self) -> usize {
        if self.entries.is_loaded() {
            // Saturating: a reload that failed leaves fewer entries than the file holds.
            self.entries().len().saturating_sub(self.written)
        } else {
            0
        }
    }

    /// Writes the entries the file lacks and fsyncs it, through a descriptor opened for it.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.write_pending(true)
    }

    /// Writes the entries the file lacks (one positional write of all of them) and, with
    /// `sync`, fsyncs the file. Opens no file when there is nothing to write or sync.
    fn write_pending(&mut self, sync: bool) -> Result<(), LogError> {
        let pending = self.unwritten();
        let mut bytes = vec![0u8; pending * E::SIZE];
        if pending > 0 {
            let entries = &self.entries()[self.written..];
            for (entry, out) in entries.iter().zip(bytes.chunks_exact_mut(E::SIZE)) {
                entry.encode(out);
            }
        }
        self.file
            .write_at((self.written * E::SIZE) as u64, &bytes, sync)?;
        self.written += pending;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Deletes the file.
    pub fn delete(self) -> Result<(), LogError> {
        self.file.delete()
    }
}

/// Decodes and checks entries; `None` if the content is torn or out of order.
fn decode_entries<E: IndexEntry>(content: &[u8]) -> Option<Vec<E>> {
    let chunks = content.chunks_exact(E::SIZE);
    if !chunks.remainder().is_empty() {
        return None;
    }
    let entries: Vec<E> = chunks.map(E::decode).collect();
    let ordered = entries.windows(2).all(|w| w[1].follows(&w[0]));
    ordered.then_some(entries)
}

/// The file backing one index, by path: every operation opens it, does its work and closes
/// it, so an index holds no descriptor. Its owner serialises access.
#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    /// The file's length as this process left it.
    len: u64,
    /// Whether this process changed the file since it last fsynced it.
    unsynced: bool,
}

impl IndexFile {
    /// Opens (creating if missing) the file and returns it with its current content.
    pub(crate) fn open(path: &Path) -> Result<(Self, Vec<u8>), LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(LogError::io("open index", path))?;
        let len = file
            .metadata()
            .map_err(LogError::io("stat index", path))?
            .len();
        let mut content = vec![0u8; len as usize];
        file.read_exact_at(&mut content, 0)
            .map_err(LogError::io("read index", path))?;
        let index = Self {
            path: path.to_path_buf(),
            len,
            unsynced: false,
        };
        Ok((index, content))
    }

    /// Reads the whole file (to reload entries that were released from memory).
    pub(crate) fn read_all(&self) -> Result<Vec<u8>, LogError> {
        let file = File::open(&self.path).map_err(LogError::io("open index", &self.path))?;
        let mut content = vec![0u8; self.len as usize];
        file.read_exact_at(&mut content, 0)
            .map_err(LogError::io("read index", &self.path))?;
        Ok(content)
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn open_for_write(&self) -> Result<File, LogError> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(LogError::io("open index", &self.path))
    }

    /// Writes `bytes` at `at` (the end of what the file holds) and, with `sync`, fsyncs the
    /// file if this process changed it since its last fsync. Opens the file only if there is
    /// something to do, and closes it before returning.
    pub(crate) fn write_at(&mut self, at: u64, bytes: &[u8], sync: bool) -> Result<(), LogError> {
        let sync = sync && (self.unsynced || !bytes.is_empty());
        if bytes.is_empty() && !sync {
            return Ok(());
        }
        let file = self.open_for_write()?;
        if !bytes.is_empty() {
            file.write_all_at(bytes, at)
                .map_err(LogError::io("write index", &self.path))?;
            self.len = at + bytes.len() as u64;
            self.unsynced = true;
        }
        if sync {
            file.sync_data()
                .map_err(LogError::io("fsync index", &self.path))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Shrinks the file to `len` bytes (nothing to do if it is not longer).
    pub(crate) fn truncate(&mut self, len: u64) -> Result<(), LogError> {
        if len >= self.len {
            return Ok(());
        }
        self.open_for_write()?
            .set_len(len)
            .map_err(LogError::io("truncate index", &self.path))?;
        self.len = len;
        self.unsynced = true;
        Ok(())
    }

    /// Removes the file; a missing file is not an error.
    pub(crate) fn delete(self) -> Result<(), LogError> {
        remove_if_exists(&self.path)
    }
}

/// Removes a file, treating "not found" as success.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("delete", path)(e)),
    }
}

/// An index's entries held in memory. Released for segments no longer appended to, and read
/// back from the file on the next lookup, so memory follows the segments in use. The index is
/// only a hint (a lookup without entries scans the segment from its start), so a reload that
/// fails is logged and yields no entries rather than an error.
#[derive(Debug)]
pub(crate) struct CachedEntries<E> {
    entries: OnceLock<Vec<E>>,
    decode: fn(&[u8]) -> Option<Vec<E>>,
}

impl<E> CachedEntries<E> {
    /// No entries loaded; `decode` turns file content into entries (`None`: corrupt).
    pub(crate) fn new(decode: fn(&[u8]) -> Option<Vec<E>>) -> Self {
        Self {
            entries: OnceLock::new(),
            decode,
        }
    }

    /// Replaces the entries.
    pub(crate) fn set(&mut self, entries: Vec<E>) {
        self.entries = OnceLock::from(entries);
    }

    /// The entries, reloaded from `file` if they were released.
    pub(crate) fn get(&self, file: &IndexFile) -> &Vec<E> {
        self.entries.get_or_init(|| self.load(file))
    }

    /// The entries for changing, reloaded from `file` if they were released.
    pub(crate) fn get_mut(&mut self, file: &IndexFile) -> &mut Vec<E> {
        if self.entries.get().is_none() {
            let entries = self.load(file);
            self.entries = OnceLock::from(entries);
        }
        self.entries.get_mut().expect("just initialised")
    }

    /// Drops the entries from memory.
    pub(crate) fn release(&mut self) {
        self.entries = OnceLock::new();
    }

    /// Whether the entries are in memory.
    pub(crate) fn is_loaded(&self) -> bool {
        self.entries.get().is_some()
    }

    fn load(&self, file: &IndexFile) -> Vec<E> {
        match file.read_all().map(|content| (self.decode)(&content)) {
            Ok(Some(entries)) => entries,
            Ok(None) => {
                tracing::warn!(path = %file.path().display(), "index changed under us; using no entries");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(path = %file.path().display(), error = %e, "cannot reload index; using no entries");
                Vec::new()
            }
        }
    }
}
