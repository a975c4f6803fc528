//! Shared between the Weir broker and operator: the internal gRPC API (tonic/prost, generated
//! from `proto/`), replica placement ([`placement`]), and the defaults both sides agree on, so
//! the operator never links the broker.

pub mod admin;
pub mod log_filter;
pub mod placement;

/// Default Kafka client port of a broker.
pub const DEFAULT_CLIENT_PORT: u16 = 9092;
/// Default internal (Raft / admin gRPC) port of a broker.
pub const DEFAULT_RPC_PORT: u16 = 9093;
/// Default Prometheus metrics and health port of a broker.
pub const DEFAULT_METRICS_PORT: u16 = 9644;

/// Generated protobuf messages and gRPC services.
pub mod proto {
    /// The controller's internal RPCs (Raft transport) between brokers.
    pub mod controller {
        tonic::include_proto!("weir.controller.v1");
    }

    /// Brokers asking each other about their local replicas (reassignment progress).
    pub mod broker {
        tonic::include_proto!("weir.broker.v1");
    }

    /// The admin API the operator and tools use (`proto/weir/admin/v1/admin.proto`); see
    /// [`crate::admin`] for conversions to and from placement types.
    pub mod admin {
        tonic::include_proto!("weir.admin.v1");
    }
}
