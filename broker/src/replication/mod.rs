//! Kafka's ISR replication between brokers: followers fetch from leaders with the Fetch API
//! ([`fetcher`], over [`client`]) and append to their [`crate::partition::Partition`];
//! the leader side (followers' positions, high watermark, ISR changes proposed to the
//! controller) is part of the partition ([`crate::partition::leader`]). Replicas being added
//! by a reassignment fetch within the [`throttle`]. Followers fetch through fetch sessions
//! ([`session`]), as Kafka's do.

pub mod client;
pub mod fetcher;
pub mod session;
pub mod throttle;
