//! Partition directories on this broker's disk: finding them at start, creating and deleting
//! them when the metadata image says so.
//!
//! Each partition directory `<data-dir>/<topic>-<index>` holds a `partition.metadata` file
//! (`version: 0`, `topic_id: <uuid>`, as Kafka keeps one) naming the topic id it belongs to, so
//! a topic deleted and re-created under the same name while this broker was down is told apart
//! from the old one. Directories of brokers from before the metadata quorum have no such file;
//! their topic ids come from the old `topics.json` catalogue.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use super::{AdminError, PartitionKey};
use crate::clock::Clock;
use crate::config::{topic as topic_config, BrokerConfig};
use crate::legacy_catalogue;
use crate::log::write_atomically;
use crate::partition::Partition;

/// Kafka's name for the file naming a partition directory's topic id.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// The topic id recorded in a partition directory, if any.
pub fn read_topic_id(dir: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(dir.join(PARTITION_METADATA_FILE)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
}

/// Records the topic id of a partition directory, durably.
pub fn write_topic_id(dir: &Path, id: Uuid) -> Result<(), AdminError> {
    write_atomically(&dir.join(PARTITION_METADATA_FILE), &topic_id_file(id))?;
    Ok(())
}

/// Records the topic id of a replica just opened, fsynced with its log's first flush: a
/// power loss before that leaves a directory without the file, which the next start skips
/// and the metadata image creates again, and loses no flushed record.
pub fn write_topic_id_unsynced(partition: &Partition, id: Uuid) -> Result<(), AdminError> {
    partition.write_file_unsynced(PARTITION_METADATA_FILE, &topic_id_file(id))?;
    Ok(())
}

/// `partition.metadata`'s content (Kafka's format).
fn topic_id_file(id: Uuid) -> Vec<u8> {
    format!("version: 0\ntopic_id: {}\n", id.simple()).into_bytes()
}

/// Splits `<topic>-<index>` (topic names may contain `-`).
fn parse_dir_name(name: &str) -> Option<(&str, i32)> {
    let (topic, index) = name.rsplit_once('-')?;
    let index: i32 = index.parse().ok().filter(|i| *i >= 0)?;
    (!topic.is_empty()).then_some((topic, index))
}

/// Opens every partition directory in the data directory, recovering its log.
pub(super) fn open_existing(
    config: &Arc<BrokerConfig>,
    clock: &Arc<dyn Clock>,
) -> Result<HashMap<PartitionKey, Arc<Partition>>, AdminError> {
    let data_dir = &config.data_dir;
    remove_deleted_dirs(data_dir);
    // Topic ids of directories written before partition.metadata existed.
    let legacy: HashMap<String, (Uuid, std::collections::BTreeMap<String, String>)> =
        match legacy_catalogue::load(data_dir) {
            Ok(topics) => topics
                .into_iter()
                .map(|t| (t.name, (t.id, t.configs)))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable topics.json");
                HashMap::new()
            }
        };
    let mut partitions = HashMap::new();
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Ok(partitions);
    };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let Some((topic, index)) = parse_dir_name(&name) else {
            continue;
        };
        let (topic_id, configs) = match read_topic_id(&path) {
            Some(id) => (
                id,
                legacy.get(topic).map(|l| l.1.clone()).unwrap_or_default(),
            ),
            None => match legacy.get(topic) {
                Some((id, configs)) => {
                    write_topic_id(&path, *id)?;
                    (*id, configs.clone())
                }
                None => {
                    tracing::warn!(dir = %path.display(), "skipping a directory without partition.metadata");
                    continue;
                }
            },
        };
        let log_config = topic_config::log_config(config, &configs);
        let topic: Arc<str> = Arc::from(topic);
        let partition = Partition::open(
            data_dir,
            topic.clone(),
            topic_id,
            index,
            log_config,
            clock.clone(),
        )?;
        partitions.insert((topic, index), Arc::new(partition));
    }
    Ok(partitions)
}

/// Removes a partition directory: renamed aside first so a crash cannot leave a half-deleted
/// log that looks live, then deleted.
pub(super) fn delete_dir(data_dir: &Path, topic: &str, index: i32, topic_id: Uuid) {
    let dir = data_dir.join(Partition::dir_name(topic, index));
    let aside = data_dir.join(format!(
        "{}.{}-delete",
        Partition::dir_name(topic, index),
        topic_id.simple()
    ));
    if let Err(e) = std::fs::rename(&dir, &aside).and_then(|_| std::fs::remove_dir_all(&aside)) {
        tracing::warn!(dir = %dir.display(), error = %e, "removing a partition directory");
    }
}

/// Removes `*-delete` directories that a deletion interrupted by a crash left behind.
fn remove_deleted_dirs(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && path.to_string_lossy().ends_with("-delete") {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(dir = %path.display(), error = %e, "removing leftover deleted partition");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_split_at_the_last_dash() {
        assert_eq!(parse_dir_name("orders-3"), Some(("orders", 3)));
        assert_eq!(parse_dir_name("my-topic-12"), Some(("my-topic", 12)));
        assert_eq!(parse_dir_name("__cluster_metadata"), None);
        assert_eq!(parse_dir_name("t--1"), Some(("t-", 1)));
        assert_eq!(parse_dir_name("-1"), None);
    }

    #[test]
    fn topic_ids_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        write_topic_id(dir.path(), id).unwrap();
        assert_eq!(read_topic_id(dir.path()), Some(id));
    }
}
