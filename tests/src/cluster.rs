//! A cluster of real `weir-broker` processes on loopback: fixed ports per node (so restarts
//! keep their addresses), a shared voter list, and helpers that read the cluster's state the
//! way clients see it (Metadata through the raw protocol client).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use rdkafka::ClientConfig;

use crate::broker::{Broker, BrokerOptions};
use crate::raw::RawClient;

/// Settings that make failures show quickly in tests (Kafka's defaults are for production).
pub const FAST_FAILOVER: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "2000"),
    ("broker.heartbeat.interval.ms", "250"),
    ("controller.quorum.election.timeout.ms", "800"),
    ("replica.lag.time.max.ms", "10000"),
    ("replica.fetch.wait.max.ms", "200"),
];

/// One partition as a Metadata response shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Leader id, -1 for none.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// A running cluster. Brokers are indexed by node id.
#[derive(Debug)]
pub struct Cluster {
    /// The brokers, `brokers[i]` is node `i`.
    pub brokers: Vec<Broker>,
    /// Whether node `i` is currently down (killed or stopped by the test).
    pub down: Vec<bool>,
}

/// A free port below Linux's ephemeral range (32768+), so that no broker or client binding
/// port 0 elsewhere can take it between this check and the broker's own bind.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 400) * 30;
    for _ in 0..2_000 {
        let port = (20_000 + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range")
}

impl Cluster {
    /// Starts `n` brokers, all voters, with [`FAST_FAILOVER`] plus `sets`.
    pub fn start(n: usize, sets: &[(&str, &str)]) -> Cluster {
        Cluster::start_with_voters(n, n, sets)
    }

    /// Starts `n` brokers of which the first `voters` are the metadata quorum.
    pub fn start_with_voters(n: usize, voters: usize, sets: &[(&str, &str)]) -> Cluster {
        Cluster::start_adjusted(n, voters, sets, |_, options| options)
    }

    /// [`Cluster::start_with_voters`] where `adjust` has the last word on node `i`'s options
    /// (settings for one broker only).
    pub fn start_adjusted(
        n: usize,
        voters: usize,
        sets: &[(&str, &str)],
        adjust: impl Fn(usize, BrokerOptions) -> BrokerOptions,
    ) -> Cluster {
        let loopback = vec![IpAddr::V4(Ipv4Addr::LOCALHOST); n];
        Cluster::start_on_hosts(&loopback, voters, sets, adjust)
    }

    /// [`Cluster::start_adjusted`] with node `i` bound to `hosts[i]` (for brokers in their
    /// own network namespaces, which `adjust` names). Ports are picked free on loopback: a
    /// namespace of its own has every port free.
    pub fn start_on_hosts(
        hosts: &[IpAddr],
        voters: usize,
        sets: &[(&str, &str)],
        adjust: impl Fn(usize, BrokerOptions) -> BrokerOptions,
    ) -> Cluster {
        let n = hosts.len();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let voter_list = ports
            .iter()
            .zip(hosts)
            .take(voters)
            .enumerate()
            .map(|(id, ((_, rpc), host))| format!("{id}@{}", SocketAddr::new(*host, *rpc)))
            .collect::<Vec<_>>()
            .join(",");
        let options: Vec<BrokerOptions> = ports
            .iter()
            .enumerate()
            .map(|(id, (kafka, rpc))| {
                let mut o = BrokerOptions {
                    node_id: id as i32,
                    kafka_port: Some(*kafka),
                    rpc_port: Some(*rpc),
                    voters: Some(voter_list.clone()),
                    host: Some(hosts[id]),
                    ..BrokerOptions::default()
                };
                for (k, v) in FAST_FAILOVER.iter().chain(sets) {
                    o = o.set(k, v);
                }
                adjust(id, o)
            })
            .collect();
        // A broker is ready only once a quorum exists, so they must start together.
        let brokers = std::thread::scope(|scope| {
            let handles: Vec<_> = options
                .into_iter()
                .map(|o| scope.spawn(move || Broker::start(o)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("starting a broker"))
                .collect::<Vec<_>>()
        });
        let cluster = Cluster {
            down: vec![false; brokers.len()],
            brokers,
        };
        cluster.wait_every_broker_lists_the_controller();
        cluster
    }

    /// Waits until every broker's Metadata names an active controller that it also lists.
    /// A broker is ready once it sees itself unfenced, but for a moment after a start its image
    /// may not yet show the quorum leader unfenced; a client bootstrapping from it then has no
    /// controller to send CreateTopics to and waits (librdkafka's admin client up to its
    /// timeout). Tests start their clients after that moment.
    fn wait_every_broker_lists_the_controller(&self) {
        for broker in &self.brokers {
            crate::wait_until(
                Duration::from_secs(30),
                "every broker lists the active controller",
                || {
                    let mut client = RawClient::try_connect(broker.kafka_addr()).ok()?;
                    let version = client.version::<MetadataRequest>(12);
                    let request = MetadataRequest::default().with_topics(Some(Vec::new()));
                    let response: MetadataResponse = client.request(&request, version).ok()?;
                    let controller = response.controller_id;
                    (controller.0 >= 0 && response.brokers.iter().any(|b| b.node_id == controller))
                        .then_some(())
                },
            );
        }
    }

    /// Bootstrap servers: every broker that is up.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .zip(&self.down)
            .filter(|(_, down)| !**down)
            .map(|(b, _)| b.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client config for the whole cluster.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.bootstrap())
            .set("broker.address.family", "v4")
            .set("client.id", "weir-tests")
            .set("topic.metadata.refresh.interval.ms", "500");
        config
    }

    /// A client config that bootstraps from `nodes` only (a frozen broker accepts
    /// connections but never answers, so it must not be a client's first contact).
    pub fn client_config_for(&self, nodes: &[usize]) -> ClientConfig {
        let mut config = self.client_config();
        let servers = nodes
            .iter()
            .map(|i| self.brokers[*i].bootstrap())
            .collect::<Vec<_>>()
            .join(",");
        config.set("bootstrap.servers", servers);
        config
    }

    /// SIGKILLs node `id`.
    pub fn kill9(&mut self, id: usize) {
        self.brokers[id].kill9();
        self.down[id] = true;
    }

    /// SIGSTOPs node `id` (counted as down until [`Cluster::resume`]).
    pub fn pause(&mut self, id: usize) {
        self.brokers[id].pause();
        self.down[id] = true;
    }

    /// SIGCONTs node `id` after [`Cluster::pause`].
    pub fn resume(&mut self, id: usize) {
        self.brokers[id].resume();
        self.down[id] = false;
    }

    /// Restarts node `id` (same data directory and ports) and waits until it is ready.
    pub fn restart(&mut self, id: usize) {
        self.brokers[id].restart();
        self.down[id] = false;
    }

    /// Restarts node `id` without waiting until it is ready (see
    /// [`Broker::restart_without_waiting`]).
    pub fn restart_without_waiting(&mut self, id: usize) {
        self.brokers[id].restart_without_waiting();
        self.down[id] = false;
    }

    /// Metadata for `topic` as a live broker answers it.
    pub fn metadata(&self, topic: &str) -> Option<MetadataResponse> {
        for (b, down) in self.brokers.iter().zip(&self.down) {
            if *down {
                continue;
            }
            let Ok(mut client) = RawClient::try_connect(b.kafka_addr()) else {
                continue;
            };
            let version = client.version::<MetadataRequest>(12);
            let request = MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(kafka_protocol::messages::TopicName(
                        kafka_protocol::protocol::StrBytes::from_string(topic.to_string()),
                    ))),
            ]));
            if let Ok(r) = client.request(&request, version) {
                return Some(r);
            }
        }
        None
    }

    /// One partition of `topic` as the cluster reports it.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<PartitionView> {
        let metadata = self.metadata(topic)?;
        let t = metadata.topics.first()?;
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)?;
        Some(PartitionView {
            leader: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
        })
    }

    /// The active controller, as Metadata reports it.
    pub fn controller(&self, topic: &str) -> Option<i32> {
        self.metadata(topic)
            .map(|m| m.controller_id.0)
            .filter(|id| *id >= 0)
    }

    /// The broker coordinating `group`, as FindCoordinator answers on a live broker; waits
    /// (up to `timeout`) for one other than `not`.
    pub fn group_coordinator(&self, group: &str, not: Option<i32>, timeout: Duration) -> i32 {
        self.coordinator(group, 0, not, timeout)
    }

    /// The broker coordinating transactional id `id`, as [`Cluster::group_coordinator`].
    pub fn transaction_coordinator(&self, id: &str, not: Option<i32>, timeout: Duration) -> i32 {
        self.coordinator(id, 1, not, timeout)
    }

    /// The share coordinator of a share partition's state (FindCoordinator key type 2, key
    /// `group:topicId:partition`), as [`Cluster::group_coordinator`].
    pub fn share_coordinator(&self, key: &str, not: Option<i32>, timeout: Duration) -> i32 {
        self.coordinator(key, 2, not, timeout)
    }

    fn coordinator(&self, key: &str, key_type: i8, not: Option<i32>, timeout: Duration) -> i32 {
        use kafka_protocol::messages::FindCoordinatorRequest;
        use kafka_protocol::protocol::StrBytes;
        crate::wait_until(timeout, &format!("a coordinator for {key}"), || {
            let live = self.down.iter().position(|d| !d)?;
            let mut client = RawClient::try_connect(self.brokers[live].kafka_addr()).ok()?;
            let request = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(key.to_string()))
                .with_key_type(key_type);
            let response = client.request(&request, 3).ok()?;
            (response.error_code == 0 && Some(response.node_id.0) != not)
                .then_some(response.node_id.0)
        })
    }

    /// A member of `group` that commits only when told to, reading from the earliest offset.
    pub fn group_consumer(&self, group: &str) -> rdkafka::consumer::BaseConsumer {
        let mut config = self.client_config();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500");
        config.create().expect("group consumer")
    }

    /// Waits until `topic`/`partition` satisfies `done`, returning its view.
    pub fn wait_partition(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
        what: &str,
        done: impl Fn(&PartitionView) -> bool,
    ) -> PartitionView {
        crate::wait_until(timeout, what, || {
            self.partition(topic, partition).filter(|p| done(p))
        })
    }
}

/// Sends `values` to `topic`/`partition` all at once and returns those acknowledged, in send
/// order (a failed delivery is simply not in the result; callers compare with what is stored).
pub async fn send_all(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: i32,
    values: &[String],
) -> Vec<String> {
    let futures: Vec<_> = values
        .iter()
        .map(|v| {
            let record = rdkafka::producer::FutureRecord::<(), String>::to(topic)
                .partition(partition)
                .payload(v);
            let future = producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueueing");
            (v.clone(), future)
        })
        .collect();
    let mut acked = Vec::new();
    for (v, f) in futures {
        if let Ok(Ok(_)) = f.await {
            acked.push(v);
        }
    }
    acked
}
