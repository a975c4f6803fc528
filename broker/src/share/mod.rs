//! Share groups (KIP-932, Kafka's queues): records of a partition handed out to the members
//! of a share group one by one, each acknowledged individually, redelivered when released or
//! when its acquisition lock runs out.
//!
//! How the pieces fit:
//! - [`partition`]: the [`SharePartition`] state machine of one (share group, partition) on the
//!   partition leader: the share-partition start and end offsets (SPSO, SPEO), the in-flight
//!   records with their state and delivery count, and the acquisition locks. Pure: time is
//!   passed in, the log is read by the caller.
//! - [`assignor`]: the share groups' server-side assignment, where several members may hold
//!   the same partition.
//! - [`session`]: share sessions (ShareSessionEpoch), pure; [`manager`]: the share partitions
//!   this broker leads and its share sessions, which ShareFetch and ShareAcknowledge use.
//! - [`group`]: a share group's membership and epochs (ShareGroupHeartbeat), pure; the group
//!   coordinator ([`crate::group`]) holds it next to the other group types.
//!
//! - [`coordinator`]: the share coordinator, owning the `__share_group_state` partitions this
//!   broker leads (why the state lives there: its module docs); [`state_records`]: its
//!   ShareSnapshot and ShareUpdate records and the state they replay into; [`persister`]: the
//!   share-partition leader's ReadShareGroupState/WriteShareGroupState to the coordinator.
//!   The manager loads a share partition's state before serving it and persists every
//!   acquisition and acknowledgement before answering it.

pub mod assignor;
pub mod coordinator;
pub mod group;
pub mod manager;
pub mod partition;
pub mod persister;
pub mod session;
pub mod state_records;

pub use partition::{
    AcknowledgeType, AcquiredRecords, DeliveryState, SharePartition, SharePartitionConfig,
    SharePartitionError,
};

#[cfg(test)]
mod assignor_tests;
#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod partition_tests;
#[cfg(test)]
mod state_records_tests;
