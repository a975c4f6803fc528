//! Following the metadata image: every change of the image is applied here, on one task.
//!
//! For each partition the image places on this broker: open (or create) the local replica,
//! then make it leader or follower in the image's leader epoch. A follower's fetcher is pointed
//! at its leader's Kafka listener. Local replicas the image no longer places here are closed
//! and deleted, but only once this broker has caught up with the metadata log to its own
//! registration: before that, an image may simply be old.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};

use super::local::{delete_dir, read_topic_id, write_topic_id_unsynced};
use super::{AdminError, PartitionKey, ReplicaManager, TopicMetadata, TopicState, Topics};
use crate::config::topic as topic_config;
use crate::controller::image::MetadataImage;
use crate::partition::Partition;

/// Told when this broker starts or stops leading a partition (the group coordinator follows
/// `__consumer_offsets` this way). Called from the image-applying task; may block.
pub trait LeadershipListener: Send + Sync {
    /// This broker leads `topic`/`partition` from `leader_epoch` on.
    fn on_become_leader(&self, topic: &str, partition: i32, leader_epoch: i32);
    /// This broker no longer leads `topic`/`partition`.
    fn on_resign(&self, topic: &str, partition: i32);
}

impl ReplicaManager {
    /// Registers a leadership listener (kept weakly) and tells it which partitions this
    /// broker already leads.
    pub fn add_leadership_listener(&self, listener: Weak<dyn LeadershipListener>) {
        self.listeners.write().push(listener.clone());
        if let Some(l) = listener.upgrade() {
            for p in self.all_partitions() {
                if p.is_leader() {
                    l.on_become_leader(&p.topic, p.index, p.leader_epoch());
                }
            }
        }
    }

    fn listeners(&self) -> Vec<Arc<dyn LeadershipListener>> {
        self.listeners
            .read()
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Applies a new metadata image. Blocking (creates, recovers and deletes logs).
    pub fn apply_image(&self, image: Arc<MetadataImage>) {
        let local_id = self.local_id();
        let previous = self.image();
        let listeners = self.listeners();
        let mut wanted: HashSet<PartitionKey> = HashSet::new();
        let mut topics = HashMap::new();
        let mut leaders = Vec::new();
        // Until the log is replayed up to this broker's registration, an image may be old
        // (a restart replays from the start): replicas take no role from it.
        let registered = self
            .registration_epoch
            .load(std::sync::atomic::Ordering::Acquire);
        let roles = registered >= 0 && image.applied_index >= registered as u64;
        let config = self.refresh_effective_config(&previous, &image);
        if roles {
            self.open_new_replicas(&image, local_id, &config);
        }
        for topic in image.topics.values() {
            let name: Arc<str> = Arc::from(topic.name.as_str());
            topics.insert(
                name.clone(),
                Arc::new(TopicState {
                    meta: TopicMetadata {
                        name: topic.name.clone(),
                        id: topic.id,
                        partitions: topic.partitions.len() as i32,
                        replication_factor: topic.replication_factor(),
                        configs: topic.configs.clone(),
                    },
                }),
            );
            let configs_changed = previous
                .topics
                .get(&topic.name)
                .is_some_and(|old| old.configs != topic.configs);
            let log_config = topic_config::log_config(&config, &topic.configs);
            if !roles {
                continue;
            }
            for (index, p) in topic.partitions.iter().enumerate() {
                let index = index as i32;
                if !p.replicas.contains(&local_id) {
                    continue;
                }
                wanted.insert((name.clone(), index));
                let partition = match self.ensure_local(&name, topic.id, index, &log_config) {
                    Ok(partition) => partition,
                    Err(e) => {
                        tracing::error!(topic = %name, partition = index, error = %e, "cannot open a replica");
                        continue;
                    }
                };
                // Also when the log runs with other settings than the image says: a log opened
                // at start-up from its directory knows none of the topic's overrides.
                if configs_changed || !partition.has_config(&log_config) {
                    partition.update_config(log_config.clone());
                }
                let was_leader = partition.is_leader();
                if p.leader == local_id {
                    self.fetchers.remove(&name, index);
                    leaders.push(Leadership {
                        new: !was_leader || partition.leader_epoch() != p.leader_epoch,
                        partition,
                        leader_epoch: p.leader_epoch,
                        partition_epoch: p.partition_epoch,
                        replicas: &p.replicas,
                        isr: &p.isr,
                    });
                } else {
                    partition.make_follower(p.leader, p.leader_epoch);
                    match image.brokers.get(&p.leader) {
                        Some(leader) => {
                            let addr = format!("{}:{}", leader.host, leader.port);
                            // Copied under the throttle: a replica a reassignment adds, or one
                            // the topic lists in `follower.replication.throttled.replicas`.
                            let throttled = p.adding.contains(&local_id)
                                || listed_replica(
                                    &topic.configs,
                                    "follower.replication.throttled.replicas",
                                    index,
                                    local_id,
                                );
                            self.fetchers.assign(&partition, p.leader, &addr, throttled);
                        }
                        None => self.fetchers.remove(&name, index),
                    }
                    if was_leader {
                        for l in &listeners {
                            l.on_resign(&name, index);
                        }
                    }
                }
            }
        }
        self.take_leaderships(local_id, &leaders, &listeners);
        drop(leaders);
        // The admin API's reassignment throttle and this broker's
        // `follower.replication.throttled.rate`: the lower one holds.
        let rates = [
            image.reassignment_throttle,
            config.throttled_rate("follower.replication.throttled.rate"),
        ];
        self.fetchers
            .set_throttle(rates.into_iter().flatten().min());
        self.leader_throttle.set_rate(
            config.throttled_rate("leader.replication.throttled.rate"),
            std::time::Instant::now(),
        );
        *self.topics.write() = Topics::new(topics);
        *self.image.write() = image.clone();
        if roles {
            self.remove_unwanted(&wanted, &listeners);
        }
        // Wake whoever waits for the metadata, and long polls of partitions created or moved.
        self.notify_image_applied();
    }

    /// Makes this broker the leader of `leaders` (before the image is published, so nothing
    /// reads it as leading a partition that is not yet), then tells the listeners of the new
    /// leaderships. A new leader epoch is written to each partition's leader-epoch checkpoint
    /// with two fsyncs; when many partitions change at once (every partition of a broker that
    /// restarted after a clean shutdown, whose leaderships the controller moved away) those
    /// are spread over [`LEADERSHIP_THREADS`] threads, as the disk takes concurrent fsyncs in
    /// one journal commit: one after another, 10,000 partitions waited on 20,000 fsyncs in turn.
    fn take_leaderships(
        &self,
        local_id: i32,
        leaders: &[Leadership<'_>],
        listeners: &[Arc<dyn LeadershipListener>],
    ) {
        let make = |l: &Leadership<'_>| {
            l.partition.make_leader(
                local_id,
                l.leader_epoch,
                l.partition_epoch,
                l.replicas,
                l.isr,
            )
        };
        let new = leaders.iter().filter(|l| l.new).count();
        let threads = if new < PARALLEL_LEADERSHIPS_FROM {
            1
        } else {
            LEADERSHIP_THREADS
        };
        let results = map_on_threads(leaders, threads, make);
        for (l, result) in leaders.iter().zip(results) {
            let (topic, index) = (&l.partition.topic, l.partition.index);
            match result {
                Err(e) => {
                    tracing::error!(%topic, partition = index, error = %e, "cannot become leader")
                }
                Ok(()) if l.new => {
                    for listener in listeners {
                        listener.on_become_leader(topic, index, l.leader_epoch);
                    }
                }
                Ok(()) => {}
            }
        }
    }

    /// Opens the replicas `image` places here that are not open yet, on up to
    /// `num.recovery.threads.per.data.dir` threads: creating a log, or loading and recovering
    /// one at start-up, is mostly waiting for the disk (fsyncs, reads), and a topic of
    /// thousands of partitions would pay each wait in turn. Failures are left to the caller's
    /// own [`ReplicaManager::ensure_local`], which logs them.
    fn open_new_replicas(
        &self,
        image: &MetadataImage,
        local_id: i32,
        config: &crate::config::BrokerConfig,
    ) {
        let mut new = Vec::new();
        {
            let open = self.partitions.read();
            for topic in image.topics.values() {
                let name: Arc<str> = Arc::from(topic.name.as_str());
                let mut log_config = None;
                for (index, p) in topic.partitions.iter().enumerate() {
                    let index = index as i32;
                    if !p.replicas.contains(&local_id)
                        || open
                            .get(&(name.clone(), index))
                            .is_some_and(|o| o.topic_id == topic.id)
                    {
                        continue;
                    }
                    let log_config = log_config
                        .get_or_insert_with(|| topic_config::log_config(config, &topic.configs));
                    new.push((name.clone(), topic.id, index, log_config.clone()));
                }
            }
        }
        let threads = config.num_recovery_threads();
        if threads <= 1 || new.len() <= 1 {
            return;
        }
        map_on_threads(&new, threads, |(name, id, index, log_config)| {
            let _ = self.ensure_local(name, *id, *index, log_config);
        });
    }

    /// The local replica of a partition, created (with its `partition.metadata`) if missing,
    /// or re-created if the directory belongs to an older topic of the same name.
    fn ensure_local(
        &self,
        name: &Arc<str>,
        topic_id: uuid::Uuid,
        index: i32,
        log_config: &crate::log::LogConfig,
    ) -> Result<Arc<Partition>, AdminError> {
        let key = (name.clone(), index);
        if let Some(p) = self.partitions.read().get(&key) {
            if p.topic_id == topic_id {
                return Ok(p.clone());
            }
        }
        let stale = self.partitions.write().remove(&key);
        if let Some(old) = stale {
            tracing::warn!(topic = %name, partition = index, "replacing a replica of an older topic with the same name");
            let _ = old.close();
            delete_dir(&self.config.data_dir, name, index, old.topic_id);
        }
        let dir = self.config.data_dir.join(Partition::dir_name(name, index));
        if dir.exists() && read_topic_id(&dir).is_some_and(|id| id != topic_id) {
            delete_dir(&self.config.data_dir, name, index, topic_id);
        }
        let partition = Arc::new(Partition::open(
            &self.config.data_dir,
            name.clone(),
            topic_id,
            index,
            log_config.clone(),
            self.clock.clone(),
        )?);
        write_topic_id_unsynced(&partition, topic_id)?;
        self.partitions.write().insert(key, partition.clone());
        Ok(partition)
    }

    fn remove_unwanted(
        &self,
        wanted: &HashSet<PartitionKey>,
        listeners: &[Arc<dyn LeadershipListener>],
    ) {
        if !self.caught_up() {
            return;
        }
        let unwanted: Vec<(PartitionKey, Arc<Partition>)> = self
            .partitions
            .read()
            .iter()
            .filter(|(k, _)| !wanted.contains(*k))
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        for ((topic, index), partition) in unwanted {
            self.fetchers.remove(&topic, index);
            if partition.is_leader() {
                for l in listeners {
                    l.on_resign(&topic, index);
                }
            }
            self.partitions.write().remove(&(topic.clone(), index));
            // A leader moved off by a reassignment: its acks=all waiters answer
            // NOT_LEADER_OR_FOLLOWER now instead of timing out.
            partition.make_follower(
                crate::controller::image::NO_LEADER,
                partition.leader_epoch(),
            );
            if let Err(e) = partition.close() {
                tracing::warn!(topic = %topic, partition = index, error = %e, "closing a removed replica");
            }
            delete_dir(&self.config.data_dir, &topic, index, partition.topic_id);
            tracing::info!(topic = %topic, partition = index, "removed a replica no longer placed here");
        }
    }

    /// Topic configs by name, for metrics and admin answers.
    pub fn topic_configs(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.topic(name).map(|t| t.meta.configs.clone())
    }
}

/// Whether the topic's throttled replica list `key` (`leader.` or
/// `follower.replication.throttled.replicas`: `*` or `partition:broker` pairs) names this
/// replica.
/// One partition this broker leads in an image being applied.
struct Leadership<'a> {
    partition: Arc<Partition>,
    /// Not led before, or led in another epoch: listeners are told.
    new: bool,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: &'a [i32],
    isr: &'a [i32],
}

/// New leaderships in one image from which they are taken on several threads.
const PARALLEL_LEADERSHIPS_FROM: usize = 32;
/// Threads that take many leaderships, or close many logs, at once (each mostly waits for
/// the file system).
pub(super) const LEADERSHIP_THREADS: usize = 16;

/// `f` of every item, in order, computed on up to `threads` scoped threads that take the
/// next item as they finish one (on the calling thread alone for one thread or one item):
/// for work that mostly waits for the disk, whose waits overlap.
pub(super) fn map_on_threads<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<parking_lot::Mutex<Option<R>>> = items
        .iter()
        .map(|_| parking_lot::Mutex::new(None))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { return };
                *slots[i].lock() = Some(f(item));
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| slot.into_inner().expect("every item done"))
        .collect()
}

pub(super) fn listed_replica(
    configs: &BTreeMap<String, String>,
    key: &str,
    partition: i32,
    broker: i32,
) -> bool {
    let Some(list) = configs.get(key) else {
        return false;
    };
    let list = list.trim();
    list == "*"
        || list.split(',').any(|pair| {
            pair.split_once(':').is_some_and(|(p, b)| {
                p.trim().parse() == Ok(partition) && b.trim().parse() == Ok(broker)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_on_threads_does_every_item_once_in_order() {
        let items: Vec<u32> = (0..1000).collect();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        for threads in [0, 1, 3, 16, 5000] {
            calls.store(0, std::sync::atomic::Ordering::Relaxed);
            let doubled = map_on_threads(&items, threads, |i| {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                i * 2
            });
            assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
            assert_eq!(
                calls.load(std::sync::atomic::Ordering::Relaxed),
                items.len()
            );
        }
        assert!(map_on_threads(&[] as &[u32], 4, |i| *i).is_empty());
    }

    #[test]
    fn throttled_replicas_are_read_as_kafka_writes_them() {
        const KEY: &str = "follower.replication.throttled.replicas";
        let configs = |v: &str| BTreeMap::from([(KEY.to_string(), v.to_string())]);
        assert!(listed_replica(&configs("*"), KEY, 3, 1));
        assert!(listed_replica(&configs("0:1,1:2"), KEY, 1, 2));
        assert!(!listed_replica(&configs("0:1,1:2"), KEY, 1, 1));
        assert!(!listed_replica(&configs(""), KEY, 0, 0));
        assert!(!listed_replica(&BTreeMap::new(), KEY, 0, 0));
        assert!(!listed_replica(
            &configs("*"),
            "leader.replication.throttled.replicas",
            0,
            0
        ));
    }
}
