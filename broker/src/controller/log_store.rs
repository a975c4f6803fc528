//! The metadata quorum's Raft log on disk: `<data-dir>/__cluster_metadata/`.
//!
//! Files:
//! - `raft.log`: a sequence of frames `[u32 length][u32 crc32c][JSON of LogOp]`, each one an
//!   append of entries, a truncation of the tail, or a purge of the head. Replaying the frames
//!   in order gives the log. A torn or corrupt last frame (crash mid-write) is cut off on open;
//!   nothing after it was acknowledged, because every write is fsynced before openraft is told
//!   it is durable.
//! - `vote.json`, `committed.json`: the last vote and committed log id, replaced atomically.
//!
//! The metadata log is small and written rarely (topic and partition changes, broker
//! registrations), so entries are also kept in memory and files are rewritten from memory when
//! purges have made most of `raft.log` dead weight.
//!
//! Thread-safety: openraft serialises calls on the store; readers get a clone of the shared
//! in-memory state behind a mutex.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::types::{NodeId, TypeConfig};
use crate::log::write_atomically as write_atomically_bytes;

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
/// Rewrite `raft.log` when it holds this many more frames than live entries.
const REWRITE_SLACK: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
enum LogOp {
    Append(Vec<Entry<TypeConfig>>),
    Truncate(u64),
    Purge(LogId<NodeId>),
}

#[derive(Debug, Default)]
struct LogData {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
}

/// The Raft log storage. Cloning shares the same log.
#[derive(Debug, Clone)]
pub struct LogStore {
    dir: PathBuf,
    data: Arc<Mutex<LogData>>,
    file: Arc<Mutex<LogFile>>,
    vote: Arc<Mutex<Option<Vote<NodeId>>>>,
    committed: Arc<Mutex<Option<LogId<NodeId>>>>,
}

#[derive(Debug)]
struct LogFile {
    file: File,
    frames: usize,
}

fn io_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, replaying it and cutting off a torn tail.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let (data, frames, valid_len) = replay(&path)?;
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if file.metadata()?.len() > valid_len {
            tracing::warn!(path = %path.display(), valid_len, "cutting a torn tail off the metadata log");
            file.set_len(valid_len)?;
            file.sync_all()?;
        }
        let vote = read_json(&dir.join(VOTE_FILE))?;
        let committed = read_json(&dir.join(COMMITTED_FILE))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            data: Arc::new(Mutex::new(data)),
            file: Arc::new(Mutex::new(LogFile { file, frames })),
            vote: Arc::new(Mutex::new(vote)),
            committed: Arc::new(Mutex::new(committed)),
        })
    }

    /// Whether nothing was ever written (a node that still has to be initialised).
    pub fn is_pristine(&self) -> bool {
        let data = self.data.lock();
        data.entries.is_empty() && data.last_purged.is_none() && self.vote.lock().is_none()
    }

    fn write_op(&self, op: &LogOp) -> std::io::Result<()> {
        let mut frame = Vec::new();
        push_frame(&mut frame, op)?;
        let mut file = self.file.lock();
        file.file.write_all(&frame)?;
        file.file.sync_data()?;
        file.frames += 1;
        Ok(())
    }

    /// Rewrites `raft.log` with only the live entries once purges left it mostly dead.
    fn maybe_rewrite(&self) -> std::io::Result<()> {
        let data = self.data.lock();
        let mut file = self.file.lock();
        if file.frames < data.entries.len() + REWRITE_SLACK {
            return Ok(());
        }
        let mut bytes = Vec::new();
        let mut frames = 0;
        if let Some(purged) = data.last_purged {
            push_frame(&mut bytes, &LogOp::Purge(purged))?;
            frames += 1;
        }
        if !data.entries.is_empty() {
            let entries = data.entries.values().cloned().collect();
            push_frame(&mut bytes, &LogOp::Append(entries))?;
            frames += 1;
        }
        let path = self.dir.join(LOG_FILE);
        write_atomically_bytes(&path, &bytes).map_err(std::io::Error::other)?;
        file.file = OpenOptions::new().append(true).open(&path)?;
        file.frames = frames;
        Ok(())
    }
}

/// Appends one `[length][crc32c][JSON]` frame to `buf`.
fn push_frame(buf: &mut Vec<u8>, op: &LogOp) -> std::io::Result<()> {
    let json = serde_json::to_vec(op)?;
    buf.extend_from_slice(&(json.len() as u32).to_be_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
    buf.extend_from_slice(&json);
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replays `raft.log`; returns the log, the number of frames and the length of the valid prefix.
fn replay(path: &Path) -> std::io::Result<(LogData, usize, u64)> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut data = LogData::default();
    let mut pos = 0usize;
    let mut frames = 0;
    while bytes.len() - pos >= 8 {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let Some(json) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(json) != crc {
            break;
        }
        let Ok(op) = serde_json::from_slice::<LogOp>(json) else {
            break;
        };
        match op {
            LogOp::Append(entries) => {
                for e in entries {
                    data.entries.insert(e.log_id.index, e);
                }
            }
            LogOp::Truncate(since) => {
                data.entries.split_off(&since);
            }
            LogOp::Purge(upto) => {
                data.entries = data.entries.split_off(&(upto.index + 1));
                data.last_purged = Some(upto);
            }
        }
        pos += 8 + len;
        frames += 1;
    }
    Ok((data, frames, pos as u64))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let data = self.data.lock();
        Ok(data.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let data = self.data.lock();
        let last = data
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(data.last_purged);
        Ok(LogState {
            last_purged_log_id: data.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let json = serde_json::to_vec(vote).map_err(io_err)?;
        write_atomically_bytes(&self.dir.join(VOTE_FILE), &json)
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        *self.vote.lock() = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(*self.vote.lock())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        let json = serde_json::to_vec(&committed).map_err(io_err)?;
        write_atomically_bytes(&self.dir.join(COMMITTED_FILE), &json).map_err(io_err)?;
        *self.committed.lock() = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(*self.committed.lock())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        if !entries.is_empty() {
            self.write_op(&LogOp::Append(entries.clone()))
                .map_err(io_err)?;
            let mut data = self.data.lock();
            for e in entries {
                data.entries.insert(e.log_id.index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_op(&LogOp::Truncate(log_id.index))
            .map_err(io_err)?;
        self.data.lock().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_op(&LogOp::Purge(log_id)).map_err(io_err)?;
        {
            let mut data = self.data.lock();
            data.entries = data.entries.split_off(&(log_id.index + 1));
            data.last_purged = Some(log_id);
        }
        self.maybe_rewrite().map_err(io_err)
    }
}
