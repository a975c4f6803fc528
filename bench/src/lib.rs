//! `weir-bench`: Weir against Apache Kafka on the same machine, through the same client
//! (librdkafka via the `rdkafka` crate).
//!
//! How the pieces fit:
//! - [`cases`] says what is measured (the producer matrix, catch-up, latency), how big, and
//!   on what (one broker, or a cluster with replicated topics: its `Topology`);
//! - [`produce`], [`consume`], [`latency`] and [`first_produce`] each run one kind of case
//!   against a broker address, with the client settings of [`client`] and values from
//!   [`payload`]; [`wire_client`] runs the producer and catch-up cases again with the bench's
//!   own client on `kafka-protocol` (requests built before the clock), over the blocking
//!   frames of [`frames`], so that the brokers rather than librdkafka decide those rows;
//! - [`process`] starts and stops the broker or the cluster's brokers (Weir's binary or Kafka
//!   via `scripts/kafka.sh`) and [`procstat`] reads each one's peak RSS and CPU time;
//! - [`round`] is one broker (or cluster) start with one phase of cases; [`compare`]
//!   alternates Weir and Kafka over rounds and phases, [`smoke`] is the small Weir-only run CI
//!   does; [`transactions`] has the transactional producer and `read_committed` latency cases
//!   and their section of the document; [`failover`] is the fault-injection comparison (gaps without acknowledgements);
//!   [`scale`] measures how cost grows with partitions, connections and groups (and with
//!   partitions on three brokers, RF 3, with the controller's failover); [`join`] how a
//!   member joining a live group pauses the others, per group protocol; [`share`] share-group
//!   throughput with the Java client's share consumers; [`tls`] what TLS and SASL_SSL cost
//!   the producer and how many new TLS connections a broker takes per second; [`cpu_cost`] the
//!   broker CPU per byte of the rows still behind Kafka (100-byte records, 16-partition catch-up);
//! - [`results`] holds what was measured, [`stats`] and [`report`] turn it into the tables of
//!   docs/BENCHMARKS.md, [`machine`] describes the host.

pub mod cases;
pub mod client;
pub mod compare;
pub mod consume;
pub mod cpu_cost;
pub mod failover;
pub mod first_produce;
pub mod frames;
pub mod join;
pub mod latency;
pub mod machine;
pub mod payload;
pub mod process;
pub mod procstat;
pub mod produce;
pub mod report;
pub mod results;
pub mod round;
pub mod scale;
pub mod share;
pub mod smoke;
pub mod stats;
pub mod tls;
pub mod transactions;
pub mod wire_client;
