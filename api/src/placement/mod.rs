//! Replica placement: where each partition's replicas live and which one is preferred leader.
//! One implementation, pure and deterministic (no I/O, no clock, no randomness), shared by the
//! broker's controller (CreateTopics, CreatePartitions, auto-creation) and by the operator
//! (rebalance after scale-up, drain before scale-down, status).
//!
//! The rules, in priority order:
//! 1. never two replicas of a partition on one broker;
//! 2. no failure domain (a `broker.rack`, or a rackless broker on its own) holds more of a
//!    partition's replicas than its rack cap, `ceil(RF / domains)` when the domains are big
//!    enough ([`topology`]);
//! 3. replica counts per broker as even as rules 1–2 allow: within one without racks;
//! 4. preferred leaders (first replicas) per broker as even as the replica sets allow;
//! 5. for plans, the fewest replica moves, then keeping each partition's preferred leader.
//!
//! How the pieces fit: [`topology`] numbers the eligible brokers and their domains; `replicas`
//! (phase one) chooses every replica set with one min-cost flow over `flow`, `leaders` (phase
//! two) chooses leaders with another, and `order` writes the ordered lists. Creation instead
//! keeps only phase one's per-broker counts and rebuilds the new partitions leaders first
//! (`followers`), which lets leaderships even out whenever the counts allow it. [`create`] and
//! [`rebalance`] feed them; [`validate()`] checks any assignment against the same rules.
//! `docs/placement.md` explains the model and what the tests prove.

pub mod create;
pub mod error;
mod flow;
mod followers;
mod leaders;
mod order;
pub mod rebalance;
mod replicas;
pub mod topology;
pub mod types;
pub mod validate;

pub use create::{add_partitions, assign_new_topic};
pub use error::PlacementError;
pub use rebalance::{drain_plan, rebalance_plan};
pub use topology::FailureDomain;
pub use types::{
    Assignment, BrokerId, BrokerInfo, Plan, Reassignment, ReplicaMove, TopicAssignment,
    TopicPartition,
};
pub use validate::{validate, validate_scoped, BalanceScope, Violation};
