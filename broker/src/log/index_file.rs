//! An append-only file of fixed-size entries, shared by [`super::OffsetIndex`] and
//! [`super::TimeIndex`].
//!
//! Without mmap (unsafe is forbidden) the entries live in memory; this type only keeps the file
//! in step: entries are appended with positional writes, truncation shrinks the file, and the
//! file is exactly `entries * entry size` long (never preallocated), so a length that is not a
//! multiple of the entry size means a torn write.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::LogError;

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
