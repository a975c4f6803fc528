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
//! Not built yet (see `docs/consumer-groups.md`): the ShareGroupHeartbeat, ShareFetch and
//! ShareAcknowledge handlers, share sessions, and persistence in `__share_group_state`. None
//! of the share APIs is advertised in ApiVersions.

pub mod assignor;
pub mod group;
pub mod manager;
pub mod partition;
pub mod session;

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
