//! Small files written atomically: offset checkpoints and whole-file snapshots.
//!
//! A write goes to `<name>.tmp`, is fsynced, renamed over `<name>`, and the directory is
//! fsynced, so a crash leaves either the old or the new content, never a mix. Stray `.tmp`
//! files are deleted when a [`super::Log`] opens.
//!
//! Files whose loss a reader repairs from the log itself (the leader epoch checkpoint, a
//! producer snapshot, a new partition's `partition.metadata`) may instead be written with
//! [`write_replacing`]: the same rename, no fsync, on the hot path (a roll under the partition's
//! lock, a new leadership, thousands of partitions created at once); whoever moves the recovery
//! point past what they describe fsyncs them first ([`sync_file`], [`sync_dir`]). A process
//! crash loses nothing (the page cache survives it); a power loss can leave the old content, a
//! missing file, or an empty or torn one, which their readers treat as missing.
//!
//! Offset checkpoint format (text, like Kafka's checkpoint files with a single value):
//!
//! ```text
//! 0          <- format version
//! 12345      <- the offset
//! ```
//!
//! Entry checkpoint format (Kafka's `CheckpointFile`, used by `leader-epoch-checkpoint`):
//!
//! ```text
//! 0          <- format version
//! 2          <- number of entries
//! 0 0        <- one entry per line, fields separated by a space
//! 3 1250
//! ```

use std::fmt::Display;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::{FromStr, Lines};

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

/// Replaces `path` with `content` by a rename, without fsyncing anything: the caller fsyncs
/// it ([`sync_file`], then [`sync_dir`] for the rename) before relying on it after a power
/// loss (see the module docs).
pub fn write_replacing(path: &Path, content: &[u8]) -> Result<(), LogError> {
    let tmp = tmp_path(path);
    let mut file = File::create(&tmp).map_err(LogError::io("create", &tmp))?;
    file.write_all(content)
        .map_err(LogError::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(LogError::io("rename into place", path))
}

/// fsyncs the file at `path` through a descriptor opened for it; a missing file (deleted
/// meanwhile) needs nothing.
pub(crate) fn sync_file(path: &Path) -> Result<(), LogError> {
    match File::open(path) {
        Ok(file) => file.sync_data().map_err(LogError::io("fsync", path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("open", path)(e)),
    }
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
    let Some(text) = read_text(path)? else {
        return Ok(None);
    };
    let mut lines = body_lines(&text, path)?;
    let offset = next_number::<i64>(&mut lines, "offset", path)?;
    expect_end(lines, path)?;
    Ok(Some(offset))
}

/// Writes an entry checkpoint atomically: version, entry count, one `Display`ed entry a line.
pub fn write_entries_checkpoint<T: Display>(path: &Path, entries: &[T]) -> Result<(), LogError> {
    write_atomically(path, entries_text(entries).as_bytes())
}

/// [`write_entries_checkpoint`] without the fsyncs ([`write_replacing`]).
pub fn replace_entries_checkpoint<T: Display>(path: &Path, entries: &[T]) -> Result<(), LogError> {
    write_replacing(path, entries_text(entries).as_bytes())
}

fn entries_text<T: Display>(entries: &[T]) -> String {
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for entry in entries {
        text.push_str(&format!("{entry}\n"));
    }
    text
}

/// Reads an entry checkpoint, parsing each entry line with `parse` (which says what is wrong
/// with a bad line); `Ok(None)` if the file does not exist. A wrong version, a count that does
/// not match the lines, or a bad line is [`LogError::CorruptFile`].
pub fn read_entries_checkpoint<T>(
    path: &Path,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<Vec<T>>, LogError> {
    let Some(text) = read_text(path)? else {
        return Ok(None);
    };
    let mut lines = body_lines(&text, path)?;
    let count = next_number::<usize>(&mut lines, "entry count", path)?;
    // The count comes from the file: never trust it for an allocation.
    let mut entries = Vec::new();
    for i in 0..count {
        let line = lines
            .next()
            .ok_or_else(|| corrupt(path, format!("{count} entries announced, {i} found")))?;
        entries.push(parse(line).map_err(|reason| corrupt(path, reason))?);
    }
    expect_end(lines, path)?;
    Ok(Some(entries))
}

fn corrupt(path: &Path, reason: String) -> LogError {
    LogError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    }
}

/// The whole file as text; `Ok(None)` if it does not exist.
fn read_text(path: &Path) -> Result<Option<String>, LogError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(corrupt(path, "not UTF-8 text".to_string()))
        }
        Err(e) => Err(LogError::io("read checkpoint", path)(e)),
    }
}

/// The lines after a known version line.
fn body_lines<'a>(text: &'a str, path: &Path) -> Result<Lines<'a>, LogError> {
    let mut lines = text.lines();
    match lines.next() {
        Some(CHECKPOINT_VERSION) => Ok(lines),
        other => Err(corrupt(
            path,
            format!("unknown checkpoint version {other:?}"),
        )),
    }
}

/// The next line as a number; `what` names it in errors.
fn next_number<T>(lines: &mut Lines<'_>, what: &str, path: &Path) -> Result<T, LogError>
where
    T: FromStr,
    T::Err: Display,
{
    let line = lines
        .next()
        .ok_or_else(|| corrupt(path, format!("missing {what} line")))?;
    line.trim()
        .parse()
        .map_err(|e| corrupt(path, format!("bad {what} {line:?}: {e}")))
}

/// Only blank lines may follow the content.
fn expect_end(mut lines: Lines<'_>, path: &Path) -> Result<(), LogError> {
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(corrupt(path, "trailing content".to_string()));
    }
    Ok(())
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

    fn parse_pair(line: &str) -> Result<(i32, i64), String> {
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (Some(a), Some(b), None) => Ok((
                a.parse().map_err(|_| format!("bad line {line:?}"))?,
                b.parse().map_err(|_| format!("bad line {line:?}"))?,
            )),
            _ => Err(format!("bad line {line:?}")),
        }
    }

    #[test]
    fn entry_checkpoints_use_kafkas_layout() {
        struct Pair(i32, i64);
        impl Display for Pair {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} {}", self.0, self.1)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leader-epoch-checkpoint");
        assert_eq!(read_entries_checkpoint(&path, parse_pair).unwrap(), None);
        write_entries_checkpoint(&path, &[Pair(0, 0), Pair(3, 1250)]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "0\n2\n0 0\n3 1250\n"
        );
        assert_eq!(
            read_entries_checkpoint(&path, parse_pair).unwrap(),
            Some(vec![(0, 0), (3, 1250)])
        );
        write_entries_checkpoint::<Pair>(&path, &[]).unwrap();
        assert_eq!(
            read_entries_checkpoint(&path, parse_pair).unwrap(),
            Some(vec![])
        );

        for bad in [
            "0\n2\n0 0\n",
            "0\n1\n0 0\n1 5\n",
            "0\n1\n0\n",
            "0\nmany\n",
            "1\n0\n",
            "",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                matches!(
                    read_entries_checkpoint(&path, parse_pair),
                    Err(LogError::CorruptFile { .. })
                ),
                "{bad:?}"
            );
        }
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(
            read_entries_checkpoint(&path, parse_pair),
            Err(LogError::CorruptFile { .. })
        ));
    }
}
