//! Kafka's ISR replication between brokers: followers fetch from leaders with the Fetch API
//! ([`fetcher`], over [`client`]) and append to their [`crate::partition::Partition`];
//! the leader side (followers' positions, high watermark, ISR changes proposed to the
//! controller) is part of the partition ([`crate::partition::leader`]). Replicas being added
//! by a reassignment fetch within the [`throttle`].

pub mod client;
pub mod fetcher;
pub mod throttle;
