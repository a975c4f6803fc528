//! Shared between the Weir broker and operator.
//!
//! This crate will hold the internal gRPC admin API (tonic/prost) and the replica placement
//! algorithm once the replicated cluster lands. For now it only names the defaults both sides
//! agree on, so the operator never has to link the broker to learn them.

/// Default Kafka client port of a broker.
pub const DEFAULT_CLIENT_PORT: u16 = 9092;
/// Default internal (Raft / admin gRPC) port of a broker.
pub const DEFAULT_RPC_PORT: u16 = 9093;
/// Default Prometheus metrics and health port of a broker.
pub const DEFAULT_METRICS_PORT: u16 = 9644;
