//! Helpers shared by the end-to-end tests in `tests/tests/*.rs`, as a library so every test
//! binary links what it uses.
//!
//! - [`admin`]: the admin gRPC API of a [`cluster::Cluster`]'s brokers, and async waiting.
//! - [`chart`]: the Helm chart's static checks: tools, rendering, OpenAPI schemas, PromQL.
//! - [`broker`]: starts a real `weir-broker` process on ephemeral ports and controls it
//!   (SIGTERM, SIGKILL, SIGSTOP/SIGCONT, restart on the same data directory and port).
//! - [`clients`]: rdkafka producer/consumer/admin configs and the reading helpers.
//! - [`raw`]: a tiny Kafka wire-protocol client for exact control over requests.
//! - [`segments`]: reads record batch v2 headers straight from `.log` segment files.
//! - [`group_consumer`]: group consumers as separate processes (crash with SIGKILL, clean
//!   stop), their assignments, rebalance events and consumed records.
//! - [`http`]: a plain HTTP/1.0 GET for the metrics endpoint.
//! - [`kafka_tools`]: Apache Kafka's command-line tools run with `java`.
//! - [`kcat`]: kcat, the librdkafka client with SSL and SASL.
//! - [`java`]: the programs of `tests/java/` run with the Kafka Java client.
//! - [`kube`]: a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)
//!   with admin, user and service-account clients.
//! - [`kubelet`]: a kubelet stand-in that runs a namespace's pods with test-supplied callbacks.
//! - [`node`]: a real one-node Kubernetes (kubelet, containerd, kube-proxy, CoreDNS, a local
//!   registry) brought up by `scripts/kube-node.sh`.
//! - [`nemesis`]: faults (kills, pauses, network partitions, a full disk) against three
//!   brokers under a recorded workload, and the checker of what was acknowledged.
//! - [`wait`]: waiting for a condition with a deadline (no sleeps as synchronisation).

pub mod admin;
pub mod broker;
pub mod chart;
pub mod clients;
pub mod cluster;
pub mod group_consumer;
pub mod http;
pub mod java;
pub mod kafka_tools;
pub mod kcat;
pub mod kube;
pub mod kubelet;
pub mod nemesis;
pub mod node;
pub mod operator;
pub mod raw;
pub mod segments;
pub mod tls;
pub mod wait;
pub mod weir_pods;

pub use broker::{Broker, BrokerOptions};
pub use wait::wait_until;

use std::sync::atomic::{AtomicU32, Ordering};

/// A topic name unique within this test process, so tests sharing nothing but a name prefix
/// never collide (each test has its own broker anyway; this keeps failures readable).
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
