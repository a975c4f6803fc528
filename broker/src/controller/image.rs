//! The cluster metadata image: brokers, topics and partitions as the Raft log has decided them.
//!
//! Every broker holds the same image, built by applying the committed metadata log in order
//! ([`MetadataImage::apply`]). Applying is a pure, deterministic function of the image and the
//! command, so all brokers agree; any decision that depends on the state (which replica becomes
//! leader, whether an ISR change is still valid) is taken inside `apply`, never by the proposer.
//!
//! Invariants kept by `apply`:
//! - a partition's `isr` is a non-empty subset of its `replicas` (it keeps its last member when
//!   every replica is fenced, as Kafka does, so that member can lead again when it returns);
//! - `leader` is `NO_LEADER` or a member of `isr` (or, with unclean election, the one replica
//!   that was elected and then is the whole ISR);
//! - `leader_epoch` grows by one every time the leader changes; `partition_epoch` grows by one
//!   on every change of the partition.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::acl::Acls;
use super::client_quotas::ClientQuotas;
use super::command::{CommandResult, MetadataCommand, PartitionChange, ReplicaAssignment};

/// `leader` of a partition that has none (every ISR member is fenced).
pub const NO_LEADER: i32 = -1;

/// Producer ids handed to a broker per allocation.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// Node id.
    pub id: i32,
    /// Log index of the registration: grows with every restart of the broker.
    pub epoch: i64,
    /// Random id of the process that registered, to tell restarts apart.
    pub incarnation: Uuid,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Advertised Kafka host.
    pub host: String,
    /// Advertised Kafka port.
    pub port: u16,
    /// Internal RPC address (`host:port`).
    pub rpc_addr: String,
    /// The directory id its storage had when it registered; the active controller compares
    /// it with the quorum's membership (see `controller::membership`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<Uuid>,
    /// Every Kafka listener's advertised address; `host`/`port` are the inter-broker
    /// listener's. Empty for a broker that registered before listeners existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerEndpoint>,
    /// Not allowed to lead or be in an ISR: missed its session, or has not caught up yet.
    pub fenced: bool,
    /// The log index of the record that last fenced it (its registration, or a missed
    /// session). It is unfenced only once it has applied the log that far, so by then it knows
    /// every leadership the fence moved away (see `replica_manager::lease`).
    #[serde(default)]
    pub fenced_at: u64,
    /// Asked to shut down; leaderships have moved away.
    pub in_controlled_shutdown: bool,
    /// Being drained: no new replicas are placed here.
    pub draining: bool,
}

/// A Kafka listener's advertised address, as a broker registered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerEndpoint {
    /// The listener name (`PLAINTEXT`, `SSL`, ...).
    pub name: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
}

impl BrokerRegistration {
    /// The address clients of `listener` are told for this broker: that listener's, or the
    /// inter-broker listener's when the broker has no listener of that name (it registered
    /// before listeners existed, or the cluster's brokers are configured unevenly).
    pub fn endpoint(&self, listener: &str) -> (&str, u16) {
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .map_or((self.host.as_str(), self.port), |l| {
                (l.host.as_str(), l.port)
            })
    }

    /// Whether the broker can lead partitions and count in ISRs.
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// One partition's replication state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// Replicas in preference order; the first is the preferred leader. During a reassignment
    /// this is the union of the old and the target replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Current leader or [`NO_LEADER`].
    pub leader: i32,
    /// Grows every time the leader changes.
    pub leader_epoch: i32,
    /// Grows on every change.
    pub partition_epoch: i32,
    /// Replicas being added by a reassignment in progress.
    pub adding: Vec<i32>,
    /// Replicas being removed by a reassignment in progress.
    pub removing: Vec<i32>,
}

impl PartitionImage {
    /// The replicas a finished reassignment leaves (all replicas when none is running).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }

    /// Whether a reassignment is running.
    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Topic-level config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
    /// Partitions `0..len`.
    pub partitions: Vec<PartitionImage>,
}

impl TopicImage {
    /// Replication factor of the topic: the target replica count of partition 0.
    pub fn replication_factor(&self) -> i16 {
        self.partitions
            .first()
            .map_or(0, |p| p.target_replicas().len() as i16)
    }

    /// Whether `unclean.leader.election.enable` is set on the topic.
    /// `unclean.leader.election.enable` of the topic, else the cluster-wide dynamic default.
    fn unclean_election(&self, dynamic: &DynamicBrokerConfigs) -> bool {
        const KEY: &str = "unclean.leader.election.enable";
        self.configs
            .get(KEY)
            .or_else(|| dynamic.default.get(KEY))
            .is_some_and(|v| v == "true")
    }
}

/// The whole cluster metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Cluster id, set once by the first controller.
    pub cluster_id: Option<String>,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Topics by name. `Arc` so that cloning the image (after every applied batch) is cheap.
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    /// First producer id not yet handed to any broker.
    pub next_producer_id: i64,
    /// Index of the last log entry applied.
    pub applied_index: u64,
    /// Bytes per second each broker may copy for replicas being added by reassignments;
    /// `None`: unthrottled. (Absent from snapshots written before it existed.)
    #[serde(default)]
    pub reassignment_throttle: Option<u64>,
    /// Dynamic broker settings (`crate::config::dynamic`). (Absent from snapshots written
    /// before it existed.)
    #[serde(default)]
    pub broker_configs: DynamicBrokerConfigs,
    /// Dynamic group configs (Kafka's GROUP config resource): group id → settings. (Absent
    /// from snapshots written before it existed.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// SCRAM credentials: user → mechanism name (`SCRAM-SHA-256`) → credential. (Absent
    /// from snapshots written before it existed.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scram_credentials: BTreeMap<String, BTreeMap<String, ScramCredential>>,
    /// Client quotas (AlterClientQuotas). (Absent from snapshots written before they existed.)
    #[serde(default, skip_serializing_if = "ClientQuotas::is_empty")]
    pub client_quotas: ClientQuotas,
    /// ACL bindings, indexed for authorization. (Absent from snapshots written before it
    /// existed.)
    #[serde(default, skip_serializing_if = "Acls::is_empty")]
    pub acls: Acls,
}

/// A user's SCRAM credential for one mechanism (RFC 5802): what the server keeps instead of
/// the password. Kafka's `UserScramCredentialRecord`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The salt the client hashes the password with.
    pub salt: Vec<u8>,
    /// H(HMAC(SaltedPassword, "Client Key")): checks a client's proof.
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key"): proves the server to the client.
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

/// Dynamic broker settings as stored in the metadata log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicBrokerConfigs {
    /// For every broker (`kafka-configs --entity-default`).
    pub default: BTreeMap<String, String>,
    /// Per broker id; a broker's own win over the defaults.
    pub brokers: BTreeMap<i32, BTreeMap<String, String>>,
}

impl DynamicBrokerConfigs {
    /// The settings of `broker`, empty if none.
    pub fn of(&self, broker: i32) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.brokers.get(&broker).unwrap_or(&EMPTY)
    }
}

/// A (topic, partition) the image refers to.
pub type TopicPartition = (String, i32);

impl MetadataImage {
    /// A topic by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.values().find(|t| t.id == id)
    }

    /// One partition.
    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionImage> {
        let t = self.topics.get(topic)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
    }

    /// Brokers that can take new replicas: active and not draining.
    pub fn placeable_brokers(&self) -> Vec<&BrokerRegistration> {
        self.brokers
            .values()
            .filter(|b| b.is_active() && !b.draining)
            .collect()
    }

    /// Partitions whose ISR is smaller than their target replica set.
    pub fn under_replicated(&self) -> Vec<TopicPartition> {
        self.partitions_where(|p| p.leader != NO_LEADER && p.isr.len() < p.replicas.len())
    }

    /// Partitions without a leader.
    pub fn offline(&self) -> Vec<TopicPartition> {
        self.partitions_where(|p| p.leader == NO_LEADER)
    }

    fn partitions_where(&self, pred: impl Fn(&PartitionImage) -> bool) -> Vec<TopicPartition> {
        let mut out = Vec::new();
        for t in self.topics.values() {
            for (i, p) in t.partitions.iter().enumerate() {
                if pred(p) {
                    out.push((t.name.clone(), i as i32));
                }
            }
        }
        out
    }

    /// Applies one committed command at log index `index`.
    pub fn apply(&mut self, index: u64, command: &MetadataCommand) -> CommandResult {
        self.applied_index = index;
        match command {
            MetadataCommand::InitCluster { cluster_id } => {
                let id = self.cluster_id.get_or_insert_with(|| cluster_id.clone());
                CommandResult::ClusterId(id.clone())
            }
            MetadataCommand::RegisterBroker {
                id,
                incarnation,
                rack,
                host,
                port,
                rpc_addr,
                directory_id,
                listeners,
            } => {
                let registration = BrokerRegistration {
                    id: *id,
                    epoch: index as i64,
                    incarnation: *incarnation,
                    rack: rack.clone(),
                    host: host.clone(),
                    port: *port,
                    rpc_addr: rpc_addr.clone(),
                    directory_id: *directory_id,
                    listeners: listeners.clone(),
                    fenced: true,
                    fenced_at: index,
                    in_controlled_shutdown: false,
                    draining: self.brokers.get(id).is_some_and(|b| b.draining),
                };
                self.brokers.insert(*id, registration);
                // A restarted broker lost whatever it had not flushed: it leaves the ISRs and
                // leaderships it held and rejoins them by catching up.
                self.on_broker_unavailable(*id);
                CommandResult::BrokerEpoch(index as i64)
            }
            MetadataCommand::UnregisterBroker { id } => {
                if self.brokers.remove(id).is_none() {
                    return CommandResult::error(
                        ResponseError::BrokerIdNotRegistered,
                        format!("broker {id} is not registered"),
                    );
                }
                self.on_broker_unavailable(*id);
                CommandResult::Ok
            }
            MetadataCommand::FenceBroker { id, epoch } => {
                match self.brokers.get_mut(id) {
                    Some(b) if b.epoch == *epoch => {
                        b.fenced = true;
                        b.fenced_at = index;
                    }
                    _ => {
                        return CommandResult::error(
                            ResponseError::StaleBrokerEpoch,
                            "stale broker epoch",
                        )
                    }
                }
                self.on_broker_unavailable(*id);
                CommandResult::Ok
            }
            MetadataCommand::UnfenceBroker { id, epoch } => {
                match self.brokers.get_mut(id) {
                    Some(b) if b.epoch == *epoch => {
                        b.fenced = false;
                        b.in_controlled_shutdown = false;
                    }
                    _ => {
                        return CommandResult::error(
                            ResponseError::StaleBrokerEpoch,
                            "stale broker epoch",
                        )
                    }
                }
                self.on_broker_available(*id);
                CommandResult::Ok
            }
            MetadataCommand::ControlledShutdown { id, epoch } => {
                match self.brokers.get_mut(id) {
                    Some(b) if b.epoch == *epoch => b.in_controlled_shutdown = true,
                    _ => {
                        return CommandResult::error(
                            ResponseError::StaleBrokerEpoch,
                            "stale broker epoch",
                        )
                    }
                }
                self.on_broker_unavailable(*id);
                CommandResult::Ok
            }
            MetadataCommand::SetDraining { id, draining } => match self.brokers.get_mut(id) {
                Some(b) => {
                    b.draining = *draining;
                    CommandResult::Ok
                }
                None => CommandResult::error(
                    ResponseError::BrokerIdNotRegistered,
                    format!("broker {id} is not registered"),
                ),
            },
            MetadataCommand::CreateTopic {
                name,
                id,
                configs,
                assignment,
            } => {
                if self.topics.contains_key(name) {
                    return CommandResult::error(
                        ResponseError::TopicAlreadyExists,
                        format!("topic `{name}` already exists"),
                    );
                }
                let partitions = assignment.iter().map(|a| self.new_partition(a)).collect();
                let topic = TopicImage {
                    name: name.clone(),
                    id: *id,
                    configs: configs.clone(),
                    partitions,
                };
                self.topics.insert(name.clone(), Arc::new(topic));
                CommandResult::Ok
            }
            MetadataCommand::CreatePartitions { name, assignment } => {
                let Some(topic) = self.topics.get(name) else {
                    return CommandResult::error(
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic `{name}` does not exist"),
                    );
                };
                let mut topic = TopicImage::clone(topic);
                for a in assignment {
                    topic.partitions.push(self.new_partition(a));
                }
                self.topics.insert(name.clone(), Arc::new(topic));
                CommandResult::Ok
            }
            MetadataCommand::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => CommandResult::Ok,
                None => CommandResult::error(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic `{name}` does not exist"),
                ),
            },
            MetadataCommand::AlterScramCredentials {
                upsertions,
                deletions,
            } => {
                for (user, mechanism) in deletions {
                    if let Some(credentials) = self.scram_credentials.get_mut(user) {
                        credentials.remove(mechanism);
                        if credentials.is_empty() {
                            self.scram_credentials.remove(user);
                        }
                    }
                }
                for (user, mechanism, credential) in upsertions {
                    self.scram_credentials
                        .entry(user.clone())
                        .or_default()
                        .insert(mechanism.clone(), credential.clone());
                }
                CommandResult::Ok
            }
            MetadataCommand::AlterClientQuotas { alterations } => {
                self.client_quotas.alter(alterations);
                CommandResult::Ok
            }
            MetadataCommand::CreateAcls { bindings } => {
                let mut all = self.acls.bindings().clone();
                all.extend(bindings.iter().cloned());
                self.acls = Acls::new(all);
                CommandResult::Ok
            }
            MetadataCommand::DeleteAcls { filters } => {
                let mut all = self.acls.bindings().clone();
                let deleted = filters
                    .iter()
                    .map(|f| {
                        let matched: Vec<_> =
                            all.iter().filter(|b| f.matches(b)).cloned().collect();
                        for b in &matched {
                            all.remove(b);
                        }
                        matched
                    })
                    .collect();
                self.acls = Acls::new(all);
                CommandResult::DeletedAcls(deleted)
            }
            MetadataCommand::AlterBrokerConfigs { broker, configs } => {
                match broker {
                    None => self.broker_configs.default = configs.clone(),
                    Some(id) if configs.is_empty() => {
                        self.broker_configs.brokers.remove(id);
                    }
                    Some(id) => {
                        self.broker_configs.brokers.insert(*id, configs.clone());
                    }
                }
                // Turning unclean election on may give offline partitions a leader.
                self.elect_where_leaderless();
                CommandResult::Ok
            }
            MetadataCommand::AlterGroupConfigs { group, configs } => {
                if configs.is_empty() {
                    self.group_configs.remove(group);
                } else {
                    self.group_configs.insert(group.clone(), configs.clone());
                }
                CommandResult::Ok
            }
            MetadataCommand::AlterTopicConfigs { name, configs } => {
                let Some(topic) = self.topics.get(name) else {
                    return CommandResult::error(
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic `{name}` does not exist"),
                    );
                };
                let mut topic = TopicImage::clone(topic);
                topic.configs = configs.clone();
                self.topics.insert(name.clone(), Arc::new(topic));
                // Turning unclean election on may give offline partitions a leader.
                self.elect_where_leaderless();
                CommandResult::Ok
            }
            MetadataCommand::AlterPartition(change) => self.alter_partition(change),
            MetadataCommand::ElectPreferredLeaders { partitions } => {
                let mut results = Vec::new();
                for (topic, index) in partitions {
                    let code = self.elect_preferred(topic, *index);
                    results.push(((topic.clone(), *index), code));
                }
                CommandResult::Elections(results)
            }
            MetadataCommand::Reassign {
                topic,
                partition,
                target,
            } => self.reassign(topic, *partition, target.as_deref()),
            MetadataCommand::SetReassignmentThrottle { bytes_per_second } => {
                self.reassignment_throttle = bytes_per_second.filter(|rate| *rate > 0);
                CommandResult::Ok
            }
            MetadataCommand::AllocateProducerIds { broker_id } => {
                if !self.brokers.contains_key(broker_id) {
                    return CommandResult::error(
                        ResponseError::BrokerIdNotRegistered,
                        format!("broker {broker_id} is not registered"),
                    );
                }
                let start = self.next_producer_id;
                self.next_producer_id += PRODUCER_ID_BLOCK_SIZE;
                CommandResult::ProducerIds {
                    start,
                    len: PRODUCER_ID_BLOCK_SIZE,
                }
            }
        }
    }

    fn is_active(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| b.is_active())
    }

    fn new_partition(&self, assignment: &ReplicaAssignment) -> PartitionImage {
        let active: Vec<i32> = assignment
            .iter()
            .copied()
            .filter(|r| self.is_active(*r))
            .collect();
        let isr = if active.is_empty() {
            assignment.clone()
        } else {
            active.clone()
        };
        PartitionImage {
            replicas: assignment.clone(),
            isr,
            leader: active.first().copied().unwrap_or(NO_LEADER),
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    /// Applies `f` to every partition (copy-on-write of the topics it changes).
    fn update_partitions(&mut self, mut f: impl FnMut(&TopicImage, &mut PartitionImage, &Self)) {
        let names: Vec<String> = self.topics.keys().cloned().collect();
        for name in names {
            let topic = self.topics[&name].clone();
            let mut updated = TopicImage::clone(&topic);
            for p in &mut updated.partitions {
                f(&topic, p, self);
            }
            if updated != *topic {
                self.topics.insert(name, Arc::new(updated));
            }
        }
    }

    /// A broker can no longer lead or be in sync: it leaves every ISR it can leave, and its
    /// leaderships move to other ISR members.
    fn on_broker_unavailable(&mut self, id: i32) {
        self.update_partitions(|topic, p, image| {
            if !p.replicas.contains(&id) {
                return;
            }
            let mut changed = false;
            if p.isr.contains(&id) && p.isr.len() > 1 {
                p.isr.retain(|r| *r != id);
                changed = true;
            }
            if p.leader == id {
                let next =
                    image.choose_leader(p, topic.unclean_election(&image.broker_configs), Some(id));
                set_leader(p, next);
                changed = true;
            }
            if changed {
                p.partition_epoch += 1;
            }
        });
    }

    /// A broker is back: partitions without a leader whose ISR holds it get it as leader.
    fn on_broker_available(&mut self, _id: i32) {
        self.elect_where_leaderless();
    }

    fn elect_where_leaderless(&mut self) {
        self.update_partitions(|topic, p, image| {
            if p.leader != NO_LEADER {
                return;
            }
            let next = image.choose_leader(p, topic.unclean_election(&image.broker_configs), None);
            if next != NO_LEADER {
                if !p.isr.contains(&next) {
                    // Unclean election: the new leader's log is the truth from now on.
                    p.isr = vec![next];
                }
                set_leader(p, next);
                p.partition_epoch += 1;
            }
        });
    }

    /// The first replica (in preference order, target replicas first) that is active and in
    /// the ISR; with `unclean`, any active replica when no ISR member is.
    fn choose_leader(&self, p: &PartitionImage, unclean: bool, exclude: Option<i32>) -> i32 {
        let candidates = || {
            p.target_replicas()
                .into_iter()
                .chain(p.removing.iter().copied())
                .filter(|r| Some(*r) != exclude && self.is_active(*r))
                .collect::<Vec<_>>()
        };
        let clean = candidates().into_iter().find(|r| p.isr.contains(r));
        match clean {
            Some(r) => r,
            None if unclean => candidates().first().copied().unwrap_or(NO_LEADER),
            None => NO_LEADER,
        }
    }

    fn alter_partition(&mut self, change: &PartitionChange) -> CommandResult {
        let Some(topic) = self.topics.get(&change.topic) else {
            return CommandResult::error(
                ResponseError::UnknownTopicOrPartition,
                format!("topic `{}` does not exist", change.topic),
            );
        };
        let Some(current) = usize::try_from(change.partition)
            .ok()
            .and_then(|i| topic.partitions.get(i))
        else {
            return CommandResult::error(
                ResponseError::UnknownTopicOrPartition,
                "unknown partition",
            );
        };
        if current.leader != change.leader {
            return CommandResult::error(ResponseError::NotLeaderOrFollower, "not the leader");
        }
        if current.leader_epoch != change.leader_epoch {
            return CommandResult::error(ResponseError::FencedLeaderEpoch, "fenced leader epoch");
        }
        if current.partition_epoch != change.partition_epoch {
            return CommandResult::error(
                ResponseError::InvalidUpdateVersion,
                "stale partition epoch",
            );
        }
        if change.isr.is_empty()
            || !change.isr.contains(&change.leader)
            || change.isr.iter().any(|r| !current.replicas.contains(r))
        {
            return CommandResult::error(
                ResponseError::InvalidRequest,
                "ISR must hold the leader and only replicas",
            );
        }
        // Only active brokers may join the ISR (a fenced one may not have the latest data).
        if change
            .isr
            .iter()
            .any(|r| !current.isr.contains(r) && !self.is_active(*r))
        {
            return CommandResult::error(
                ResponseError::IneligibleReplica,
                "a new ISR member is not active",
            );
        }
        let mut p = current.clone();
        p.isr = change.isr.clone();
        p.partition_epoch += 1;
        self.maybe_complete_reassignment(&mut p, topic.unclean_election(&self.broker_configs));
        let mut updated = TopicImage::clone(topic);
        updated.partitions[change.partition as usize] = p.clone();
        self.topics.insert(change.topic.clone(), Arc::new(updated));
        CommandResult::Partition(p)
    }

    /// Once every added replica is in the ISR, the reassignment completes: the removed replicas
    /// go, and a leader among them hands over to a target replica.
    fn maybe_complete_reassignment(&self, p: &mut PartitionImage, unclean: bool) {
        if !p.is_reassigning() || !p.adding.iter().all(|r| p.isr.contains(r)) {
            return;
        }
        let target = p.target_replicas();
        p.replicas = target.clone();
        p.isr.retain(|r| target.contains(r));
        p.adding.clear();
        p.removing.clear();
        if !target.contains(&p.leader) {
            let next = self.choose_leader(p, unclean, None);
            set_leader(p, next);
        }
    }

    fn reassign(&mut self, topic: &str, index: i32, target: Option<&[i32]>) -> CommandResult {
        let Some(t) = self.topics.get(topic) else {
            return CommandResult::error(
                ResponseError::UnknownTopicOrPartition,
                format!("topic `{topic}` does not exist"),
            );
        };
        let Some(current) = usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
        else {
            return CommandResult::error(
                ResponseError::UnknownTopicOrPartition,
                "unknown partition",
            );
        };
        let mut p = current.clone();
        let original: Vec<i32> = p
            .replicas
            .iter()
            .copied()
            .filter(|r| !p.adding.contains(r))
            .collect();
        let target = match target {
            Some(target) => {
                let mut seen = std::collections::BTreeSet::new();
                if target.is_empty() || !target.iter().all(|r| seen.insert(*r)) {
                    return CommandResult::error(
                        ResponseError::InvalidReplicaAssignment,
                        "target replicas must be distinct and non-empty",
                    );
                }
                if let Some(missing) = target.iter().find(|r| !self.brokers.contains_key(r)) {
                    return CommandResult::error(
                        ResponseError::InvalidReplicaAssignment,
                        format!("broker {missing} is not registered"),
                    );
                }
                target.to_vec()
            }
            // Cancel: back to the replicas before the reassignment.
            None if p.is_reassigning() => original.clone(),
            None => {
                return CommandResult::error(
                    ResponseError::NoReassignmentInProgress,
                    "no reassignment in progress",
                )
            }
        };
        let mut replicas = target.clone();
        replicas.extend(original.iter().filter(|r| !target.contains(r)));
        p.adding = target
            .iter()
            .copied()
            .filter(|r| !original.contains(r))
            .collect();
        p.removing = original
            .iter()
            .copied()
            .filter(|r| !target.contains(r))
            .collect();
        p.replicas = replicas;
        p.isr.retain(|r| p.replicas.contains(r));
        if p.isr.is_empty() {
            // Only a replica being added was in sync: cancelling would leave no copy to trust.
            return CommandResult::error(
                ResponseError::InvalidReplicaAssignment,
                "no in-sync replica would remain",
            );
        }
        p.partition_epoch += 1;
        self.maybe_complete_reassignment(&mut p, t.unclean_election(&self.broker_configs));
        // Cancelling can drop a leader that was one of the added replicas.
        if p.leader != NO_LEADER && !p.replicas.contains(&p.leader) {
            let next = self.choose_leader(&p, t.unclean_election(&self.broker_configs), None);
            set_leader(&mut p, next);
        }
        let mut updated = TopicImage::clone(t);
        updated.partitions[index as usize] = p;
        self.topics.insert(topic.to_string(), Arc::new(updated));
        CommandResult::Ok
    }

    fn elect_preferred(&mut self, topic: &str, index: i32) -> i16 {
        let Some(t) = self.topics.get(topic) else {
            return 3;
        };
        let Some(current) = usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
        else {
            return 3;
        };
        let Some(&preferred) = current.target_replicas().first() else {
            return 3;
        };
        if current.leader == preferred {
            return ELECTION_NOT_NEEDED;
        }
        if !current.isr.contains(&preferred) || !self.is_active(preferred) {
            return PREFERRED_LEADER_NOT_AVAILABLE;
        }
        let mut p = current.clone();
        set_leader(&mut p, preferred);
        p.partition_epoch += 1;
        let mut updated = TopicImage::clone(t);
        updated.partitions[index as usize] = p;
        self.topics.insert(topic.to_string(), Arc::new(updated));
        0
    }
}

fn set_leader(p: &mut PartitionImage, leader: i32) {
    if p.leader != leader {
        p.leader = leader;
        p.leader_epoch += 1;
    }
}

/// Kafka's `ELECTION_NOT_NEEDED`, as an election outcome.
pub const ELECTION_NOT_NEEDED: i16 = ResponseError::ElectionNotNeeded.code();
/// Kafka's `PREFERRED_LEADER_NOT_AVAILABLE`, as an election outcome.
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = ResponseError::PreferredLeaderNotAvailable.code();
