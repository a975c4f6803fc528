//! Producer ids for InitProducerId, unique across restarts of this broker.
//!
//! Ids are handed out from blocks of [`BLOCK_SIZE`]; the end of the current block is persisted
//! in `<data-dir>/producer-id-block` before any id of it is used, so after a crash the broker
//! starts from the next block and never hands out an id twice (it may skip some, as Kafka does).

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::metadata::{write_atomically, MetadataError};

/// Ids reserved on disk per write.
pub const BLOCK_SIZE: i64 = 1000;

/// Allocates producer ids. Thread-safe.
#[derive(Debug)]
pub struct ProducerIdManager {
    path: PathBuf,
    /// (next id to hand out, end of the reserved block, exclusive)
    state: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    /// Opens the allocator for a data directory.
    pub fn open(dir: &Path) -> Result<Self, MetadataError> {
        let path = dir.join("producer-id-block");
        let next = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|e| MetadataError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(MetadataError::Io {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        Ok(Self {
            path,
            state: Mutex::new((next, next)),
        })
    }

    /// The next unused producer id.
    pub fn next_id(&self) -> Result<i64, MetadataError> {
        let mut state = self.state.lock();
        if state.0 >= state.1 {
            let end = state.1 + BLOCK_SIZE;
            write_atomically(&self.path, end.to_string().as_bytes())?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let m = ProducerIdManager::open(dir.path()).unwrap();
        let a: Vec<i64> = (0..3).map(|_| m.next_id().unwrap()).collect();
        assert_eq!(a, vec![0, 1, 2]);
        drop(m);
        let m = ProducerIdManager::open(dir.path()).unwrap();
        let b = m.next_id().unwrap();
        assert!(b >= BLOCK_SIZE, "reopened allocator reused an id: {b}");
    }
}
