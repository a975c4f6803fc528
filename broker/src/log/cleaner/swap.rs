//! Swapping cleaned segments in, crash-safely (Kafka's `.cleaned` → `.swap` → rename, with an
//! explicit list of the replaced segments).
//!
//! A pass writes the new segment as `<base>.log.cleaned`, `.index.cleaned` and
//! `.timeindex.cleaned` and fsyncs them. Under the log's write lock it then writes the *swap
//! manifest* `<base>.swap` (atomically: a `.tmp` file fsynced and renamed, the directory
//! fsynced), which lists the base offsets of the segments being replaced. That write is the
//! commit point. After it, the replaced segments' files are deleted, the `.cleaned` files are
//! renamed over `<base>.log/.index/.timeindex`, the directory is fsynced and the manifest is
//! deleted.
//!
//! A crash before the manifest leaves the old segments untouched and `.cleaned` files that
//! [`Log::open`] deletes as strays. A crash after it is completed by [`complete_swaps`] at the
//! next open: every listed segment other than `<base>` is deleted and every remaining
//! `.cleaned` file is renamed into place; each step is idempotent, so a crash during recovery
//! is completed the same way. Either way the log holds the old segments or the cleaned one,
//! never a mix of a record and its older value.

use std::path::{Path, PathBuf};

use super::pass::SegmentSnapshot;
use crate::log::checkpoint::{sync_dir, write_atomically};
use crate::log::index_file::remove_if_exists;
use crate::log::segment::{
    cleaned_file, segment_file, INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, SEGMENT_FILE_SUFFIXES,
    TIME_INDEX_FILE_SUFFIX, TXN_INDEX_FILE_SUFFIX,
};
use crate::log::{Log, LogError, LogSegment};

/// Extension of a swap manifest (`<base>.swap`).
pub const SWAP_SUFFIX: &str = "swap";

fn manifest_path(dir: &Path, base_offset: i64) -> PathBuf {
    segment_file(dir, base_offset, SWAP_SUFFIX)
}

/// Deletes the replaced segments (all but `base`) and renames the `.cleaned` files into
/// place, then fsyncs the directory. Idempotent.
fn finish_swap(dir: &Path, base_offset: i64, replaced: &[i64]) -> Result<(), LogError> {
    for &old in replaced.iter().filter(|&&b| b != base_offset) {
        for suffix in SEGMENT_FILE_SUFFIXES {
            remove_if_exists(&segment_file(dir, old, suffix))?;
        }
    }
    // The indexes first and the log last: until the log is renamed, `<base>.log.cleaned`
    // still says this swap has work left.
    for suffix in [
        INDEX_FILE_SUFFIX,
        TIME_INDEX_FILE_SUFFIX,
        TXN_INDEX_FILE_SUFFIX,
        LOG_FILE_SUFFIX,
    ] {
        let cleaned = cleaned_file(dir, base_offset, suffix);
        if cleaned.exists() {
            let target = segment_file(dir, base_offset, suffix);
            std::fs::rename(&cleaned, &target)
                .map_err(LogError::io("rename cleaned segment into place", &target))?;
        }
    }
    sync_dir(dir)
}

/// Completes every swap whose manifest survived a crash (see the module doc). Runs on
/// [`Log::open`] before stray `.cleaned` files are deleted.
pub(crate) fn complete_swaps(dir: &Path) -> Result<(), LogError> {
    let entries = std::fs::read_dir(dir).map_err(LogError::io("list log directory", dir))?;
    let mut manifests = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(LogError::io("list log directory", dir))?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some(SWAP_SUFFIX) {
            continue;
        }
        let base = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| s.len() == 20)
            .and_then(|s| s.parse::<i64>().ok());
        if let Some(base) = base {
            manifests.push((base, path));
        }
    }
    for (base, path) in manifests {
        let text =
            std::fs::read_to_string(&path).map_err(LogError::io("read swap manifest", &path))?;
        let replaced: Result<Vec<i64>, _> = text.split_whitespace().map(str::parse).collect();
        let replaced = replaced.map_err(|e| LogError::CorruptFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        tracing::info!(path = %path.display(), segments = replaced.len(), "completing an interrupted cleaner swap");
        finish_swap(dir, base, &replaced)?;
        remove_if_exists(&path)?;
        sync_dir(dir)?;
    }
    Ok(())
}

impl Log {
    /// Replaces the segments of `group` (as the cleaner saw them) with the cleaned segment
    /// written at the group's base offset. Returns `false`, changing nothing, if the log no
    /// longer holds exactly those segments below its active one (retention, truncation or a
    /// close got there first); the caller then deletes the `.cleaned` files.
    pub(crate) fn replace_segments(&mut self, group: &[SegmentSnapshot]) -> Result<bool, LogError> {
        if self.closed || group.is_empty() {
            return Ok(false);
        }
        let base = group[0].base_offset;
        let Some(first) = self.segments.iter().position(|s| s.base_offset() == base) else {
            return Ok(false);
        };
        let end = first + group.len();
        let unchanged = end < self.segments.len()
            && self.segments[first..end].iter().zip(group).all(|(s, g)| {
                s.base_offset() == g.base_offset && s.size() == g.size && s.log_path() == g.log_path
            });
        if !unchanged {
            return Ok(false);
        }
        let replaced: Vec<String> = group.iter().map(|g| g.base_offset.to_string()).collect();
        let manifest = manifest_path(&self.dir, base);
        write_atomically(&manifest, replaced.join("\n").as_bytes())?;
        let bases: Vec<i64> = group.iter().map(|g| g.base_offset).collect();
        finish_swap(&self.dir, base, &bases)?;
        let (mut segment, needs_recovery) = LogSegment::open(
            &self.dir,
            base,
            self.config.segment_index_bytes,
            self.clock.now_ms(),
        )?;
        if needs_recovery {
            segment.recover(self.config.index_interval_bytes)?;
        }
        segment.release_index_memory()?;
        // The old segments' handles still read their (now unlinked) files until dropped here.
        self.segments.splice(first..end, std::iter::once(segment));
        remove_if_exists(&manifest)?;
        sync_dir(&self.dir)?;
        Ok(true)
    }
}
