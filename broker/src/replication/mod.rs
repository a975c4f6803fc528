//! Kafka's ISR replication between brokers: followers fetch from leaders with the Fetch API
//! ([`fetcher`], over [`client`]); leaders track their followers ([`leader`]) to advance the
//! high watermark and propose ISR changes to the controller. Replicas being added by a
//! reassignment fetch within the [`throttle`].

pub mod client;
pub mod fetcher;
pub mod leader;
pub mod throttle;
