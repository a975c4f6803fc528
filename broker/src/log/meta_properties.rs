//! The identity of a data directory: Kafka's `meta.properties` (`cluster.id`, `node.id`,
//! `directory.id`), written once when the directory is first used, so a directory cannot be
//! mistaken for another node's. Written atomically (temp file, fsync, rename, fsync of the
//! directory).
//!
//! `directory.id` is a random UUID that names this copy of the node's storage (KIP-853): an
//! emptied or replaced directory gets a new one, so the metadata quorum can tell a voter that
//! lost its disk from the voter that acknowledged its log (see `controller`).

use std::fs;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::{write_atomically, LogError};

const FILE_NAME: &str = "meta.properties";

/// Why `meta.properties` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    /// Reading the file failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing the file failed.
    #[error(transparent)]
    Write(#[from] LogError),
    /// The file exists but is not what Weir wrote.
    #[error("{path} is not a valid Weir metadata file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data directory belongs to another node.
    #[error("data directory {path} belongs to node {found}, not node {expected}")]
    NodeIdMismatch {
        /// `meta.properties`.
        path: PathBuf,
        /// The node id in the file.
        found: i32,
        /// This broker's node id.
        expected: i32,
    },
}

/// The identity of a data directory.
#[derive(Debug, Clone)]
pub struct MetaProperties {
    /// The cluster id, generated when the directory is first used.
    pub cluster_id: String,
    /// The node that owns the directory.
    pub node_id: i32,
    /// This storage's identity; never the same for two directories, nor for a directory
    /// before and after it was emptied.
    pub directory_id: Uuid,
}

impl MetaProperties {
    /// Reads `<dir>/meta.properties`, creating it for `node_id` with a fresh cluster id when
    /// absent; fails if it names another node.
    pub fn load_or_create(dir: &Path, node_id: i32) -> Result<Self, MetaPropertiesError> {
        let path = dir.join(FILE_NAME);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let meta = Self {
                    cluster_id: new_cluster_id(),
                    node_id,
                    directory_id: Uuid::new_v4(),
                };
                meta.store(dir)?;
                return Ok(meta);
            }
            Err(source) => return Err(MetaPropertiesError::Read { path, source }),
        };
        let mut cluster_id = None;
        let mut found = None;
        let mut directory_id = None;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("cluster.id=") {
                cluster_id = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("node.id=") {
                found = v.trim().parse::<i32>().ok();
            } else if let Some(v) = line.strip_prefix("directory.id=") {
                directory_id = Some(v.trim().to_string());
            }
        }
        let corrupt = |reason: &str| MetaPropertiesError::Corrupt {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let cluster_id = cluster_id.ok_or_else(|| corrupt("no cluster.id"))?;
        let found = found.ok_or_else(|| corrupt("no valid node.id"))?;
        if found != node_id {
            return Err(MetaPropertiesError::NodeIdMismatch {
                path,
                found,
                expected: node_id,
            });
        }
        let meta = match directory_id {
            Some(text) => Self {
                cluster_id,
                node_id,
                directory_id: Uuid::parse_str(&text)
                    .map_err(|e| corrupt(&format!("directory.id `{text}`: {e}")))?,
            },
            // Written before directory ids existed: the directory gets one now.
            None => {
                let meta = Self {
                    cluster_id,
                    node_id,
                    directory_id: Uuid::new_v4(),
                };
                meta.store(dir)?;
                meta
            }
        };
        Ok(meta)
    }

    /// Gives the directory a new `directory.id` and stores it. The broker does this when its
    /// metadata log is empty: storage that remembers nothing must not pass for the storage
    /// that acknowledged the log, even if `meta.properties` survived.
    pub fn renew_directory_id(&mut self, dir: &Path) -> Result<(), MetaPropertiesError> {
        self.directory_id = Uuid::new_v4();
        self.store(dir)
    }

    /// Writes `<dir>/meta.properties` (also when a fresh directory adopts the quorum's
    /// cluster id).
    pub fn store(&self, dir: &Path) -> Result<(), MetaPropertiesError> {
        let text = format!(
            "# Written by weir-broker; identifies this data directory.\nversion=1\ncluster.id={}\nnode.id={}\ndirectory.id={}\n",
            self.cluster_id, self.node_id, self.directory_id
        );
        Ok(write_atomically(&dir.join(FILE_NAME), text.as_bytes())?)
    }
}

/// Kafka cluster ids are 22-character URL-safe base64 of a UUID; any unique string works for
/// clients, so use the UUID's simple form, which is also URL-safe.
fn new_cluster_id() -> String {
    Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_properties_pin_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let first = MetaProperties::load_or_create(dir.path(), 3).unwrap();
        let again = MetaProperties::load_or_create(dir.path(), 3).unwrap();
        assert_eq!(first.cluster_id, again.cluster_id);
        assert_eq!(first.directory_id, again.directory_id);
        assert!(matches!(
            MetaProperties::load_or_create(dir.path(), 4),
            Err(MetaPropertiesError::NodeIdMismatch {
                found: 3,
                expected: 4,
                ..
            })
        ));
    }

    #[test]
    fn an_emptied_directory_gets_a_new_directory_id() {
        let dir = tempfile::tempdir().unwrap();
        let first = MetaProperties::load_or_create(dir.path(), 1).unwrap();
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        let second = MetaProperties::load_or_create(dir.path(), 1).unwrap();
        assert_ne!(first.directory_id, second.directory_id);
    }

    #[test]
    fn a_renewed_directory_id_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut meta = MetaProperties::load_or_create(dir.path(), 1).unwrap();
        let old = meta.directory_id;
        meta.renew_directory_id(dir.path()).unwrap();
        assert_ne!(meta.directory_id, old);
        let again = MetaProperties::load_or_create(dir.path(), 1).unwrap();
        assert_eq!(again.directory_id, meta.directory_id);
    }

    #[test]
    fn a_file_from_before_directory_ids_gets_one_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "version=1\ncluster.id=abc\nnode.id=2\n",
        )
        .unwrap();
        let first = MetaProperties::load_or_create(dir.path(), 2).unwrap();
        assert_eq!(first.cluster_id, "abc");
        let again = MetaProperties::load_or_create(dir.path(), 2).unwrap();
        assert_eq!(first.directory_id, again.directory_id);
    }
}
