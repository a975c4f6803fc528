//! Consumer groups: Kafka's classic group protocol with committed offsets stored in the
//! internal `__consumer_offsets` topic.
//!
//! How the pieces fit:
//! - [`coordinator`]: the [`GroupCoordinator`] of this broker. It owns the groups whose
//!   `__consumer_offsets` partition this broker leads (loaded on
//!   [`GroupCoordinator::on_become_leader`], dropped on [`GroupCoordinator::on_resign`]), and
//!   is the one place that appends to the topic.
//! - [`operations`]: one coordinator method per group API (join, sync, heartbeat, leave,
//!   describe, list, delete), and [`commit`] for OffsetCommit and OffsetFetch; the wire
//!   handlers in [`crate::handlers`] call them.
//! - [`classic`], [`rebalance`] and [`sync`]: one group's state machine, pure (no I/O, time
//!   passed in).
//! - [`member`]: a member and the answers handed to parked JoinGroup/SyncGroup requests.
//! - [`offsets`]: a group's committed offsets; a commit is visible once replicated, a
//!   transactional one once its transaction commits.
//! - [`txn_commit`]: TxnOffsetCommit and [`GroupCoordinator::complete_transaction`], the hook
//!   the transaction markers call.
//! - [`consumer`], [`consumer_member`] and [`assignor`]: KIP-848 consumer groups
//!   (`group.protocol=consumer`), pure: the group and member epochs, the server-side
//!   `uniform` and `range` assignors, and each member's reconciliation (revoke before
//!   assign); [`consumer_ops`] runs ConsumerGroupHeartbeat on the coordinator and
//!   [`consumer_records`] holds their `__consumer_offsets` records.
//! - [`records`]: Kafka's on-disk key/value schemas of the topic; [`loader`] replays them.
//! - [`share_ops`]: KIP-932 share groups (ShareGroupHeartbeat, ShareGroupDescribe) through the
//!   pure [`crate::share::group::ShareGroup`], held in the same map as the other group types;
//!   [`share_records`] holds their `__consumer_offsets` records.

pub mod assignor;
pub mod classic;
pub mod commit;
pub mod consumer;
pub mod consumer_classic;
pub mod consumer_member;
pub mod consumer_ops;
pub mod consumer_records;
pub mod coordinator;
pub mod loader;
pub mod member;
pub mod migration;
pub mod offsets;
pub mod operations;
pub mod rebalance;
pub mod records;
pub mod share_admin;
pub mod share_ops;
pub mod share_records;
pub mod sync;
pub mod txn_commit;

pub use classic::{Group, GroupConfig, GroupState};
pub use coordinator::{GroupCoordinator, OFFSETS_TOPIC};

#[cfg(test)]
mod consumer_tests;
#[cfg(test)]
mod coordinator_tests;
#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_commit_tests;
