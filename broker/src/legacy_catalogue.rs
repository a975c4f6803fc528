//! The topic catalogue of the single-node broker that came before the metadata quorum:
//! `<data-dir>/topics.json`, with each topic's name, id, partition count and config overrides.
//!
//! Read-only, and only for the one-time move of an old data directory into the metadata log:
//! `app` writes its topics into the log once and renames the file, and the replica manager
//! takes from it the topic ids of partition directories written before `partition.metadata`
//! existed.
//!
//! REMOVE: this module, `app::migrate_legacy_catalogue` and the fallback in
//! `replica_manager::local::open_existing`, once no data directory from before the metadata
//! quorum is in use.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A topic as the catalogue recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyTopic {
    /// Topic name.
    pub name: String,
    /// Topic id (Kafka's topic UUID).
    pub id: Uuid,
    /// Number of partitions; partitions are `0..partitions`.
    pub partitions: i32,
    /// Replication factor (1: the catalogue was a single node's).
    pub replication_factor: i16,
    /// Topic-level config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
}

/// Why the catalogue could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// Reading the file failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not what Weir wrote.
    #[error("{path} is not a valid Weir metadata file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
struct CatalogueFile {
    topics: Vec<LegacyTopic>,
}

/// The file's path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("topics.json")
}

/// The topics of `<dir>/topics.json`; none when it does not exist.
pub fn load(dir: &Path) -> Result<Vec<LegacyTopic>, CatalogueError> {
    let path = path(dir);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<CatalogueFile>(&bytes)
            .map(|file| file.topics)
            .map_err(|e| CatalogueError::Corrupt {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CatalogueError::Read { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_read_as_the_single_node_broker_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let t = LegacyTopic {
            name: "a".into(),
            id: Uuid::new_v4(),
            partitions: 3,
            replication_factor: 1,
            configs: [("retention.ms".to_string(), "5".to_string())].into(),
        };
        let written = serde_json::json!({ "version": 1, "topics": [t] });
        std::fs::write(
            path(dir.path()),
            serde_json::to_vec_pretty(&written).unwrap(),
        )
        .unwrap();
        assert_eq!(load(dir.path()).unwrap(), vec![t]);
        std::fs::write(path(dir.path()), b"{").unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(CatalogueError::Corrupt { .. })
        ));
    }
}
