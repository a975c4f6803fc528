//! The identity of a data directory: Kafka's `meta.properties` (`cluster.id`, `node.id`),
//! written once when the directory is first used, so a directory cannot be mistaken for
//! another node's. Written atomically (temp file, fsync, rename, fsync of the directory).

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
                };
                meta.store(dir)?;
                return Ok(meta);
            }
            Err(source) => return Err(MetaPropertiesError::Read { path, source }),
        };
        let mut cluster_id = None;
        let mut found = None;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("cluster.id=") {
                cluster_id = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("node.id=") {
                found = v.trim().parse::<i32>().ok();
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
        Ok(Self {
            cluster_id,
            node_id,
        })
    }

    /// Writes `<dir>/meta.properties` (also when a fresh directory adopts the quorum's
    /// cluster id).
    pub fn store(&self, dir: &Path) -> Result<(), MetaPropertiesError> {
        let text = format!(
            "# Written by weir-broker; identifies this data directory.\nversion=1\ncluster.id={}\nnode.id={}\n",
            self.cluster_id, self.node_id
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
        assert!(matches!(
            MetaProperties::load_or_create(dir.path(), 4),
            Err(MetaPropertiesError::NodeIdMismatch {
                found: 3,
                expected: 4,
                ..
            })
        ));
    }
}
