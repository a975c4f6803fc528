//! A segment's index: an append-only file of fixed-size entries, [`Index`], generic over its
//! entry format ([`IndexEntry`]), as Kafka's `AbstractIndex`. The offset index
//! ([`super::OffsetIndex`]) and the time index ([`super::TimeIndex`]) share the file
//! lifecycle here (open and check, hold in memory, release and reload, append, truncate,
//! flush, delete) and keep only their entry format, lookup and append rules.
//!
//! Without mmap (unsafe is forbidden) the entries live in memory; [`IndexFile`] only keeps the
//! file in step: entries are appended with positional writes, truncation shrinks the file, and
//! the file is exactly `entries * entry size` long (never preallocated), so a length that is
//! not a multiple of the entry size means a torn write.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

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
/// Invariants: the entries obey `E::follows` one after the other, and the file holds exactly
/// the entries (`len * E::SIZE` bytes). Thread safety: lookups take `&self`, mutations
/// `&mut self`; the owning [`super::LogSegment`] decides who may call what (no interior
/// locking).
#[derive(Debug)]
pub struct Index<E: IndexEntry> {
    file: IndexFile,
    base_offset: i64,
    entries: CachedEntries<E>,
    max_entries: usize,
}

impl<E: IndexEntry> Index<E> {
    /// Opens or creates the index at `path` for a segment starting at `base_offset`, holding at
    /// most `max_index_bytes / E::SIZE` entries. Returns the index and whether the file content
    /// was intact; a torn or out-of-order file is emptied (and the caller must rebuild it).
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
            max_entries: (max_index_bytes as usize / E::SIZE).max(1),
        };
        match decode_entries::<E>(&content) {
            Some(entries) => {
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

    /// Appends `entry` to the file and the entries; the caller checked the index's rules.
    pub(crate) fn push(&mut self, entry: E) -> Result<(), LogError> {
        // Entries are at most 16 bytes: no allocation per append.
        let mut bytes = [0u8; 16];
        let bytes = &mut bytes[..E::SIZE];
        entry.encode(bytes);
        self.file.append(bytes)?;
        self.entries.get_mut(&self.file).push(entry);
        Ok(())
    }

    /// Keeps the first `keep` entries.
    pub(crate) fn truncate_entries(&mut self, keep: usize) -> Result<(), LogError> {
        if keep < self.entries().len() {
            self.entries.get_mut(&self.file).truncate(keep);
            self.file.truncate((keep * E::SIZE) as u64)?;
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

    /// Drops the in-memory entries of an index that is no longer appended to; they are read
    /// back from the file on the next lookup. Keeps memory proportional to the segments in use.
    pub fn release_memory(&mut self) {
        self.entries.release();
    }

    /// Whether the entries are in memory.
    pub fn is_loaded(&self) -> bool {
        self.entries.is_loaded()
    }

    /// Removes every entry.
    pub fn reset(&mut self) -> Result<(), LogError> {
        self.entries.set(Vec::new());
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

    /// The path and a shared handle of the file, for an fsync off the log lock.
    pub(crate) fn shared_file(&self) -> (PathBuf, Arc<File>) {
        self.file.shared()
    }

    /// fsyncs the file.
    pub fn flush(&self) -> Result<(), LogError> {
        self.file.flush()
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

/// The file backing one index. Its owner serialises access; the handle is shared only with
/// background flushes ([`IndexFile::shared`]), which just fsync it.
#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    file: Arc<File>,
    len: u64,
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
            file: Arc::new(file),
            len,
        };
        Ok((index, content))
    }

    /// Reads the whole file (to reload entries that were released from memory).
    pub(crate) fn read_all(&self) -> Result<Vec<u8>, LogError> {
        let mut content = vec![0u8; self.len as usize];
        self.file
            .read_exact_at(&mut content, 0)
            .map_err(LogError::io("read index", &self.path))?;
        Ok(content)
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one encoded entry.
    pub(crate) fn append(&mut self, entry: &[u8]) -> Result<(), LogError> {
        self.file
            .write_all_at(entry, self.len)
            .map_err(LogError::io("append to index", &self.path))?;
        self.len += entry.len() as u64;
        Ok(())
    }

    /// Shrinks the file to `len` bytes.
    pub(crate) fn truncate(&mut self, len: u64) -> Result<(), LogError> {
        self.file
            .set_len(len)
            .map_err(LogError::io("truncate index", &self.path))?;
        self.len = len;
        Ok(())
    }

    /// The path and a shared handle, for an fsync off the log lock.
    pub(crate) fn shared(&self) -> (PathBuf, Arc<File>) {
        (self.path.clone(), self.file.clone())
    }

    /// fsyncs the file.
    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(LogError::io("fsync index", &self.path))
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
