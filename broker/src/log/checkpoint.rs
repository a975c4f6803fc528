//! Small files written atomically: offset checkpoints and whole-file snapshots.
//!
//! A write goes to `<name>.tmp`, is fsynced, renamed over `<name>`, and the directory is
//! fsynced, so a crash leaves either the old or the new content, never a mix. Stray `.tmp`
//! files are deleted when a [`super::Log`] opens.
//!
//! Offset checkpoint format (text, like Kafka's checkpoint files with a single value):
//!
//! ```text
//! 0          <- format version
//! 12345      <- the offset
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::LogError;

const CHECKPOINT_VERSION: &str = "0";

/// `<path>.tmp`: where [`write_atomically`] stages content.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces `path` with `content` atomically and durably.
pub fn write_atomically(path: &Path, content: &[u8]) -> Result<(), LogError> {
    let tmp = tmp_path(path);
    let mut file = File::create(&tmp).map_err(LogError::io("create", &tmp))?;
    file.write_all(content)
        .map_err(LogError::io("write", &tmp))?;
    file.sync_all().map_err(LogError::io("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(LogError::io("rename into place", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsyncs a directory so renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io("fsync directory", dir))
}

/// Writes a single-offset checkpoint file atomically.
pub fn write_offset_checkpoint(path: &Path, offset: i64) -> Result<(), LogError> {
    write_atomically(path, format!("{CHECKPOINT_VERSION}\n{offset}\n").as_bytes())
}

/// Reads a single-offset checkpoint; `Ok(None)` if the file does not exist.
pub fn read_offset_checkpoint(path: &Path) -> Result<Option<i64>, LogError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io("read checkpoint", path)(e)),
    };
    let corrupt = |reason: String| LogError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    match lines.next() {
        Some(CHECKPOINT_VERSION) => {}
        other => return Err(corrupt(format!("unknown checkpoint version {other:?}"))),
    }
    let value = lines
        .next()
        .ok_or_else(|| corrupt("missing offset line".to_string()))?;
    let offset = value
        .trim()
        .parse::<i64>()
        .map_err(|e| corrupt(format!("bad offset {value:?}: {e}")))?;
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(corrupt("trailing content".to_string()));
    }
    Ok(Some(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point");
        assert_eq!(read_offset_checkpoint(&path).unwrap(), None);
        write_offset_checkpoint(&path, 42).unwrap();
        write_offset_checkpoint(&path, 1234).unwrap();
        assert_eq!(read_offset_checkpoint(&path).unwrap(), Some(1234));
        assert!(!tmp_path(&path).exists());

        std::fs::write(&path, "0\nforty-two\n").unwrap();
        assert!(matches!(
            read_offset_checkpoint(&path),
            Err(LogError::CorruptFile { .. })
        ));
        std::fs::write(&path, "7\n42\n").unwrap();
        assert!(matches!(
            read_offset_checkpoint(&path),
            Err(LogError::CorruptFile { .. })
        ));
    }
}
