//! The Weir Kubernetes operator: `Cluster`, `Topic` and `User` custom resources reconciled
//! into StatefulSet brokers, Kafka topics and Kafka users.
//!
//! How the pieces fit:
//! - [`crd`]: the resource types (the CRDs are generated from them by `crdgen`);
//! - [`build`]: pure builders, spec → desired Kubernetes objects;
//! - [`cluster`], [`topic`] and [`user`]: the reconcilers, each a pipeline fetch → validate → build →
//!   apply (server-side apply, one field manager) → status, with the decisions that need the
//!   cluster's state (scale, drain, roll) as pure functions in their `plan` modules;
//! - [`admin`]: the client of the brokers' admin gRPC API (`weir.admin.v1`);
//! - [`leader`]: leader election on a Lease, so two operator replicas can run;
//! - [`tls`]: the cluster's CAs and broker certificates, renewed before they expire;
//! - [`metrics`], [`run`]: the operator process; [`backoff`]: retry delays after failures.

pub mod admin;
pub mod backoff;
pub mod build;
pub mod cluster;
pub mod context;
pub mod crd;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod rack;
pub mod run;
pub mod tls;
pub mod topic;
pub mod user;
