//! The partitions this broker hosts, by topic, and the topic lifecycle around them: create,
//! grow, reconfigure, delete, load at start, close at shutdown.
//!
//! Thread-safety: the topic map is a `RwLock` read on every request and written only by admin
//! operations; admin operations are serialised by the catalogue mutex, which they hold while
//! they change files, so two CreateTopics for one name cannot both win.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::{topic as topic_config, BrokerConfig, ConfigError};
use crate::log::LogError;
use crate::metadata::{validate_topic_name, MetadataError, MetadataStore, TopicMetadata};
use crate::partition::Partition;

/// A topic and its open partitions.
#[derive(Debug)]
pub struct TopicState {
    /// The catalogue entry.
    pub meta: TopicMetadata,
    /// Partitions `0..meta.partitions`, in order.
    pub partitions: Vec<Arc<Partition>>,
}

/// Why an admin operation on topics failed; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `TOPIC_ALREADY_EXISTS` (36).
    #[error("topic `{0}` already exists")]
    TopicAlreadyExists(String),
    /// `UNKNOWN_TOPIC_OR_PARTITION` (3).
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// `INVALID_TOPIC_EXCEPTION` (17).
    #[error("{0}")]
    InvalidTopic(String),
    /// `INVALID_PARTITIONS` (37).
    #[error("{0}")]
    InvalidPartitions(String),
    /// `INVALID_REPLICATION_FACTOR` (38).
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// `INVALID_CONFIG` (40).
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    /// `KAFKA_STORAGE_ERROR` (56): the catalogue could not be written.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// `KAFKA_STORAGE_ERROR` (56): a partition log could not be opened or removed.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl AdminError {
    /// The Kafka error code for this error.
    pub fn code(&self) -> i16 {
        match self {
            AdminError::TopicAlreadyExists(_) => 36,
            AdminError::UnknownTopic(_) => 3,
            AdminError::InvalidTopic(_) => 17,
            AdminError::InvalidPartitions(_) => 37,
            AdminError::InvalidReplicationFactor(_) => 38,
            AdminError::InvalidConfig(_) => 40,
            AdminError::Metadata(_) | AdminError::Log(_) => 56,
        }
    }
}

/// Every partition on this broker.
#[derive(Debug)]
pub struct ReplicaManager {
    config: Arc<BrokerConfig>,
    clock: Arc<dyn Clock>,
    topics: RwLock<HashMap<Arc<str>, Arc<TopicState>>>,
    catalogue: Mutex<MetadataStore>,
    appended: watch::Sender<u64>,
}

impl ReplicaManager {
    /// Loads the catalogue and opens (recovering) every partition log in it, and removes
    /// directories left behind by deletions interrupted by a crash.
    pub fn open(config: Arc<BrokerConfig>, clock: Arc<dyn Clock>) -> Result<Self, AdminError> {
        let data_dir = config.data_dir.clone();
        remove_deleted_dirs(&data_dir);
        let catalogue = MetadataStore::load(&data_dir)?;
        let mut topics = HashMap::new();
        for meta in catalogue.topics() {
            let state = open_topic(&config, &clock, meta.clone(), 0)?;
            topics.insert(Arc::from(meta.name.as_str()), Arc::new(state));
        }
        Ok(Self {
            config,
            clock,
            topics: RwLock::new(topics),
            catalogue: Mutex::new(catalogue),
            appended: watch::channel(0).0,
        })
    }

    /// The broker config.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicState>> {
        self.topics.read().get(name).cloned()
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<TopicState>> {
        self.topics
            .read()
            .values()
            .find(|t| t.meta.id == id)
            .cloned()
    }

    /// One partition.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let topics = self.topics.read();
        let t = topics.get(topic)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .cloned()
    }

    /// All topics, sorted by name.
    pub fn all_topics(&self) -> Vec<Arc<TopicState>> {
        let mut v: Vec<_> = self.topics.read().values().cloned().collect();
        v.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        v
    }

    /// All partitions of all topics.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Tells long-polling fetches that some partition grew.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes after every append, for long-poll fetches.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Creates a topic (or only checks that it could be, with `validate_only`).
    /// `partitions` and `replication_factor` of -1 take the broker defaults.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicMetadata, AdminError> {
        validate_topic_name(name).map_err(AdminError::InvalidTopic)?;
        let partitions = if partitions == -1 {
            self.config.num_partitions()
        } else {
            partitions
        };
        if partitions < 1 {
            return Err(AdminError::InvalidPartitions(format!(
                "number of partitions must be at least 1, got {partitions}"
            )));
        }
        let replication_factor = if replication_factor == -1 {
            self.config.default_replication_factor()
        } else {
            replication_factor
        };
        let brokers = 1;
        if replication_factor < 1 || replication_factor > brokers {
            return Err(AdminError::InvalidReplicationFactor(format!(
                "replication factor {replication_factor} is not between 1 and the {brokers} available broker(s)"
            )));
        }
        topic_config::validate_all(&configs)?;
        let mut catalogue = self.catalogue.lock();
        if self.topics.read().contains_key(name) {
            return Err(AdminError::TopicAlreadyExists(name.to_string()));
        }
        let meta = TopicMetadata {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
        };
        if validate_only {
            return Ok(meta);
        }
        let state = open_topic(&self.config, &self.clock, meta.clone(), 0)?;
        catalogue.put(meta.clone())?;
        self.topics.write().insert(Arc::from(name), Arc::new(state));
        tracing::info!(topic = name, partitions, id = %meta.id, "created topic");
        Ok(meta)
    }

    /// Returns the topic, creating it with the broker defaults when `auto.create.topics.enable`
    /// allows (Metadata requests do this).
    pub fn get_or_auto_create(&self, name: &str) -> Result<Arc<TopicState>, AdminError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if !self.config.auto_create_topics() {
            return Err(AdminError::UnknownTopic(name.to_string()));
        }
        match self.create_topic(name, -1, -1, BTreeMap::new(), false) {
            Ok(_) | Err(AdminError::TopicAlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        self.topic(name)
            .ok_or_else(|| AdminError::UnknownTopic(name.to_string()))
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let mut catalogue = self.catalogue.lock();
        let current = self
            .topic(name)
            .ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
        let have = current.meta.partitions;
        if count <= have {
            return Err(AdminError::InvalidPartitions(format!(
                "topic `{name}` has {have} partitions; the new count {count} must be larger"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let mut meta = current.meta.clone();
        meta.partitions = count;
        let state = open_topic(&self.config, &self.clock, meta.clone(), have).map(|mut s| {
            let mut partitions = current.partitions.clone();
            partitions.append(&mut s.partitions);
            TopicState {
                meta: meta.clone(),
                partitions,
            }
        })?;
        catalogue.put(meta)?;
        self.topics.write().insert(Arc::from(name), Arc::new(state));
        tracing::info!(topic = name, from = have, to = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        topic_config::validate_all(&configs)?;
        let mut catalogue = self.catalogue.lock();
        let current = self
            .topic(name)
            .ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let mut meta = current.meta.clone();
        meta.configs = configs;
        catalogue.put(meta.clone())?;
        let log_config = topic_config::log_config(&self.config, &meta.configs);
        for p in &current.partitions {
            p.update_config(log_config.clone());
        }
        let state = TopicState {
            meta,
            partitions: current.partitions.clone(),
        };
        self.topics.write().insert(Arc::from(name), Arc::new(state));
        Ok(())
    }

    /// Deletes a topic: it leaves the catalogue first (so a crash cannot resurrect it), then
    /// its directories are renamed aside and removed.
    pub fn delete_topic(&self, name: &str) -> Result<TopicMetadata, AdminError> {
        let mut catalogue = self.catalogue.lock();
        let meta = catalogue
            .remove(name)?
            .ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
        let state = self.topics.write().remove(name);
        if let Some(state) = state {
            for p in &state.partitions {
                if let Err(e) = p.close() {
                    tracing::warn!(topic = name, partition = p.index, error = %e, "closing deleted partition");
                }
                let dir = self
                    .config
                    .data_dir
                    .join(Partition::dir_name(name, p.index));
                let aside = self.config.data_dir.join(format!(
                    "{}.{}-delete",
                    Partition::dir_name(name, p.index),
                    meta.id.simple()
                ));
                if let Err(e) =
                    std::fs::rename(&dir, &aside).and_then(|_| std::fs::remove_dir_all(&aside))
                {
                    tracing::warn!(dir = %dir.display(), error = %e, "removing deleted partition directory");
                }
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(meta)
    }

    /// Runs retention on every partition.
    pub fn apply_retention(&self) {
        for p in self.all_partitions() {
            match p.apply_retention() {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments")
                }
                Err(e) => {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                }
            }
        }
    }

    /// Lets every partition fsync if its `flush.ms` is due.
    pub fn flush_due(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.flush_if_due() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "flush failed");
            }
        }
    }

    /// Flushes every partition and writes recovery checkpoints.
    pub fn checkpoint(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.checkpoint() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "checkpoint failed");
            }
        }
    }

    /// Closes every log cleanly; the next start skips recovery.
    pub fn shutdown(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.close() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "closing log failed");
            }
        }
    }
}

fn open_topic(
    config: &BrokerConfig,
    clock: &Arc<dyn Clock>,
    meta: TopicMetadata,
    first_partition: i32,
) -> Result<TopicState, AdminError> {
    let name: Arc<str> = Arc::from(meta.name.as_str());
    let log_config = topic_config::log_config(config, &meta.configs);
    let partitions = (first_partition..meta.partitions)
        .map(|i| {
            Partition::open(
                &config.data_dir,
                name.clone(),
                meta.id,
                i,
                log_config.clone(),
                clock.clone(),
            )
            .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TopicState { meta, partitions })
}

/// Removes `*-delete` directories that a deletion interrupted by a crash left behind.
fn remove_deleted_dirs(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        if path.is_dir() && path.to_string_lossy().ends_with("-delete") {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(dir = %path.display(), error = %e, "removing leftover deleted partition");
            }
        }
    }
}
