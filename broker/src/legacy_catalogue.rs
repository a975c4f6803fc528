//! The topic catalogue of a single broker: which topics exist, their ids, partition counts and
//! config overrides, persisted in `<data-dir>/topics.json`.
//!
//! This is the single-node stand-in for the Raft metadata log of the replicated cluster; it is
//! kept behind one small interface so that swap touches only this file and its callers in
//! [`crate::replica_manager`]. Writes are atomic (temp file, fsync, rename, fsync of the
//! directory), so a crash leaves either the old or the new catalogue, never a torn one.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A topic as the catalogue records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    /// Topic name, already validated by [`validate_topic_name`].
    pub name: String,
    /// Topic id (Kafka's topic UUID); never the nil UUID.
    pub id: Uuid,
    /// Number of partitions, at least 1; partitions are `0..partitions`.
    pub partitions: i32,
    /// Replication factor (1 on a single node).
    pub replication_factor: i16,
    /// Topic-level config overrides by Kafka name, each validated.
    pub configs: BTreeMap<String, String>,
}

/// Why the catalogue could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing a file atomically failed.
    #[error(transparent)]
    Write(crate::log::LogError),
    /// A file exists but is not what Weir wrote.
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

#[derive(Debug, Serialize, Deserialize)]
struct CatalogueFile {
    version: u32,
    topics: Vec<TopicMetadata>,
}

/// The identity of a data directory: Kafka's `meta.properties` (`cluster.id`, `node.id`).
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
    pub fn load_or_create(dir: &Path, node_id: i32) -> Result<Self, MetadataError> {
        let path = dir.join("meta.properties");
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mut cluster_id = None;
                let mut found = None;
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("cluster.id=") {
                        cluster_id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("node.id=") {
                        found = v.trim().parse::<i32>().ok();
                    }
                }
                let corrupt = |reason: &str| MetadataError::Corrupt {
                    path: path.clone(),
                    reason: reason.to_string(),
                };
                let cluster_id = cluster_id.ok_or_else(|| corrupt("no cluster.id"))?;
                let found = found.ok_or_else(|| corrupt("no valid node.id"))?;
                if found != node_id {
                    return Err(MetadataError::NodeIdMismatch {
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
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let meta = Self {
                    cluster_id: new_cluster_id(),
                    node_id,
                };
                let text = format!(
                    "# Written by weir-broker; identifies this data directory.\nversion=1\ncluster.id={}\nnode.id={}\n",
                    meta.cluster_id, meta.node_id
                );
                write_atomically(&path, text.as_bytes())?;
                Ok(meta)
            }
            Err(source) => Err(MetadataError::Io {
                action: "reading",
                path,
                source,
            }),
        }
    }
}

impl MetaProperties {
    /// Rewrites `<dir>/meta.properties` (a fresh directory adopting the quorum's cluster id).
    pub fn store(&self, dir: &Path) -> Result<(), MetadataError> {
        let text = format!(
            "# Written by weir-broker; identifies this data directory.\nversion=1\ncluster.id={}\nnode.id={}\n",
            self.cluster_id, self.node_id
        );
        write_atomically(&dir.join("meta.properties"), text.as_bytes())
    }
}

/// Kafka cluster ids are 22-character URL-safe base64 of a UUID; any unique string works for
/// clients, so use the UUID's simple form, which is also URL-safe.
fn new_cluster_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// The persisted topic catalogue. Not synchronised: the owner serialises writers.
#[derive(Debug)]
pub struct MetadataStore {
    path: PathBuf,
    topics: BTreeMap<String, TopicMetadata>,
}

impl MetadataStore {
    /// Loads `<dir>/topics.json`, or starts empty when it does not exist.
    pub fn load(dir: &Path) -> Result<Self, MetadataError> {
        let path = dir.join("topics.json");
        let topics = match fs::read(&path) {
            Ok(bytes) => {
                let file: CatalogueFile =
                    serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                file.topics
                    .into_iter()
                    .map(|t| (t.name.clone(), t))
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(MetadataError::Io {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        Ok(Self { path, topics })
    }

    /// All topics, by name.
    pub fn topics(&self) -> impl Iterator<Item = &TopicMetadata> {
        self.topics.values()
    }

    /// Adds or replaces a topic and persists the catalogue.
    pub fn put(&mut self, topic: TopicMetadata) -> Result<(), MetadataError> {
        let previous = self.topics.insert(topic.name.clone(), topic.clone());
        self.save().inspect_err(|_| {
            // Keep memory and disk in agreement when the write fails.
            match previous {
                Some(p) => self.topics.insert(p.name.clone(), p),
                None => self.topics.remove(&topic.name),
            };
        })
    }

    /// Removes a topic and persists the catalogue.
    pub fn remove(&mut self, name: &str) -> Result<Option<TopicMetadata>, MetadataError> {
        let removed = self.topics.remove(name);
        if let Some(t) = &removed {
            if let Err(e) = self.save() {
                self.topics.insert(t.name.clone(), t.clone());
                return Err(e);
            }
        }
        Ok(removed)
    }

    fn save(&self) -> Result<(), MetadataError> {
        let file = CatalogueFile {
            version: 1,
            topics: self.topics.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| MetadataError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&self.path, &bytes)
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MetadataError> {
    crate::log::write_atomically(path, bytes).map_err(MetadataError::Write)
}

/// Kafka's topic name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".to_string());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be `{name}`"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters, the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name `{name}` contains `{c}`; only ASCII letters, digits, `.`, `_` and `-` are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::load(dir.path()).unwrap();
        let t = TopicMetadata {
            name: "a".into(),
            id: Uuid::new_v4(),
            partitions: 3,
            replication_factor: 1,
            configs: [("retention.ms".to_string(), "5".to_string())].into(),
        };
        store.put(t.clone()).unwrap();
        let reloaded = MetadataStore::load(dir.path()).unwrap();
        assert_eq!(reloaded.topics().cloned().collect::<Vec<_>>(), vec![t]);
        let mut store = reloaded;
        store.remove("a").unwrap();
        assert_eq!(MetadataStore::load(dir.path()).unwrap().topics().count(), 0);
    }

    #[test]
    fn meta_properties_pin_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let first = MetaProperties::load_or_create(dir.path(), 3).unwrap();
        let again = MetaProperties::load_or_create(dir.path(), 3).unwrap();
        assert_eq!(first.cluster_id, again.cluster_id);
        assert!(matches!(
            MetaProperties::load_or_create(dir.path(), 4),
            Err(MetadataError::NodeIdMismatch {
                found: 3,
                expected: 4,
                ..
            })
        ));
    }

    #[test]
    fn topic_names_follow_kafka() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        for bad in ["", ".", "..", "a b", "a/b", "ü"] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
