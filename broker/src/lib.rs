//! `weir-broker`: a Kafka-compatible broker on a durable segmented log.
//!
//! How the pieces fit, from the socket inwards:
//! - [`server`] accepts connections and reads length-prefixed frames ([`protocol::frame`]);
//!   [`protocol`] decodes them with the `kafka-protocol` crate and refuses what Weir does not
//!   implement ([`protocol::versions`]).
//! - [`handlers`] has one module per Kafka API; they work on the shared [`broker::Broker`].
//! - [`replica_manager`] owns the topics and their [`partition`]s and the topic lifecycle,
//!   as the [`controller`]'s metadata image places them.
//! - [`group`] is the group coordinator: consumer groups and their committed offsets in
//!   `__consumer_offsets`; [`share`] holds share groups' (KIP-932) per-partition delivery
//!   state and their assignor.
//! - [`log`] is the storage layer: segments, indexes, recovery, retention, producer state.
//! - [`admin_service`] serves the admin gRPC API (and shares its operations with the Kafka
//!   admin handlers) on the internal listener, next to the [`controller`]'s Raft services.
//! - [`config`] holds Kafka-named settings; [`cli`] the command line; [`app`] wires it all up
//!   and runs the background jobs; [`metrics`] and [`http`] serve Prometheus and health;
//!   [`telemetry`] sets up the log output.
//!
//! Imports point one way, down these layers (a module uses its own layer and those below):
//!
//! ```text
//! app, cli → lifecycle → server, http → handlers → admin_service
//!   → broker, metrics → group, share, producer_ids → replica_manager → replication
//!   → partition (its leader side included) → controller → log, config, protocol, clock
//! ```
//!
//! `broker/tests/layering.rs` holds the full table and fails on an import against it; run it
//! with `--nocapture` to print the module graph.

pub mod admin_service;
pub mod app;
pub mod broker;
pub mod cleaner_metrics;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connection_quotas;
pub mod controller;
pub mod fetch_session;
pub mod group;
pub mod handlers;
pub mod http;
pub mod legacy_catalogue;
pub mod lifecycle;
pub mod log;
pub mod metrics;
pub mod partition;
pub mod producer_ids;
pub mod protocol;
pub mod quota;
pub mod replica_manager;
pub mod replication;
pub mod replication_metrics;
pub mod security;
pub mod server;
pub mod share;
pub mod telemetry;
#[cfg(test)]
pub mod test_support;
pub mod transactions;
pub mod volume_metrics;

/// Waits (polling every few ms, up to 20 s) until `done` holds; for unit tests.
#[cfg(test)]
pub async fn wait_for_condition(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
