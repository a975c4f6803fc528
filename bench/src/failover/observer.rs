//! Who leads what right now: the partition leader and in-sync replicas from a metadata
//! request, the group coordinator (the leader of the group's `__consumer_offsets` partition;
//! the run gives that topic one partition), and the metadata quorum's leader.
//!
//! The quorum leader is found the way each system exposes it. Weir answers a Metadata
//! request with its Raft leader as `controller_id`; librdkafka does not surface that field, so
//! [`weir_controller`] sends a Metadata v4 request of its own (no topics) and reads the
//! field. Kafka in KRaft mode answers a random broker there, so [`kafka_controller`] reads
//! each node's `quorum-state` file (leader and epoch, as the node last saw them) and takes the
//! newest epoch's leader.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};

use crate::client;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("creating the metadata client")]
    Create(#[source] KafkaError),
    #[error("metadata request to {addr}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata response from {addr} ended early")]
    Short { addr: SocketAddr },
}

/// A partition as the cluster's metadata describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionState {
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A metadata client of its own (not the probes'), so observing does not disturb them.
pub struct Observer {
    client: BaseProducer,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

impl Observer {
    pub fn new(bootstrap: &str) -> Result<Observer, ObserveError> {
        let client = client::base_config(bootstrap)
            .set("client.id", "weir-bench-observer")
            .create()
            .map_err(ObserveError::Create)?;
        Ok(Observer { client })
    }

    /// Partition `partition` of `topic`, `None` if metadata did not answer or has no leader.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<PartitionState> {
        let metadata = self
            .client
            .client()
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .ok()?;
        let topic = metadata.topics().iter().find(|t| t.name() == topic)?;
        let p = topic.partitions().iter().find(|p| p.id() == partition)?;
        (p.error().is_none() && p.leader() >= 0).then(|| PartitionState {
            leader: p.leader(),
            replicas: p.replicas().to_vec(),
            isr: p.isr().to_vec(),
        })
    }

    /// Every partition of `topic` as (partition id, leader), the leader `-1` where the
    /// partition answered an error or has none; `None` if metadata did not answer for the
    /// topic.
    pub fn partitions(&self, topic: &str) -> Option<Vec<(i32, i32)>> {
        let metadata = self
            .client
            .client()
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .ok()?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())?;
        Some(
            topic
                .partitions()
                .iter()
                .map(|p| (p.id(), if p.error().is_none() { p.leader() } else { -1 }))
                .collect(),
        )
    }

    /// Brokers the metadata lists as serving (unfenced).
    pub fn live_brokers(&self) -> Option<usize> {
        let metadata = self
            .client
            .client()
            .fetch_metadata(None, METADATA_TIMEOUT)
            .ok()?;
        Some(metadata.brokers().len())
    }
}

/// Weir's metadata quorum leader, as the broker at `addr` knows it (`-1`: none known).
pub fn weir_controller(addr: SocketAddr) -> Result<i32, ObserveError> {
    let io = |source| ObserveError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, METADATA_TIMEOUT).map_err(io)?;
    stream
        .set_read_timeout(Some(METADATA_TIMEOUT))
        .map_err(io)?;
    stream.write_all(&metadata_v4_request()).map_err(io)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(io)?;
    let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    stream.read_exact(&mut body).map_err(io)?;
    controller_id_v4(&body).ok_or(ObserveError::Short { addr })
}

/// A Metadata v4 request (header v1) asking for no topics.
fn metadata_v4_request() -> Vec<u8> {
    const CLIENT_ID: &[u8] = b"weir-bench-observer";
    let mut message = Vec::new();
    message.extend_from_slice(&3i16.to_be_bytes()); // api key: Metadata
    message.extend_from_slice(&4i16.to_be_bytes()); // api version
    message.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    message.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    message.extend_from_slice(CLIENT_ID);
    message.extend_from_slice(&0i32.to_be_bytes()); // topics: none
    message.push(0); // allow_auto_topic_creation: false
    let mut framed = (message.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&message);
    framed
}

/// `controller_id` of a Metadata v4 response (after its correlation id): throttle time,
/// brokers (id, host, port, rack), cluster id, then the controller.
fn controller_id_v4(body: &[u8]) -> Option<i32> {
    let mut r = Reader(body);
    r.i32()?; // correlation id
    r.i32()?; // throttle_time_ms
    for _ in 0..r.i32()?.max(0) {
        r.i32()?; // node id
        r.string()?; // host
        r.i32()?; // port
        r.string()?; // rack (nullable)
    }
    r.string()?; // cluster id (nullable)
    r.i32()
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// A (nullable) string, skipped.
    fn string(&mut self) -> Option<()> {
        let len = i16::from_be_bytes(self.take(2)?.try_into().ok()?);
        self.take(len.max(0) as usize).map(|_| ())
    }
}

/// Kafka's metadata quorum leader: the leader of the newest epoch among `node_dirs`'
/// `logs/__cluster_metadata-0/quorum-state` files (`None` if no node has seen one).
pub fn kafka_controller<'a>(node_dirs: impl IntoIterator<Item = &'a Path>) -> Option<i32> {
    node_dirs
        .into_iter()
        .filter_map(|dir| {
            let text =
                std::fs::read_to_string(dir.join("logs/__cluster_metadata-0/quorum-state")).ok()?;
            let state: serde_json::Value = serde_json::from_str(&text).ok()?;
            let leader = state.get("leaderId")?.as_i64()?;
            let epoch = state.get("leaderEpoch")?.as_i64()?;
            (leader >= 0).then_some((epoch, leader as i32))
        })
        .max()
        .map(|(_, leader)| leader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_controller_after_brokers_and_cluster_id() {
        let mut body = Vec::new();
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&0i32.to_be_bytes());
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&7i32.to_be_bytes());
        body.extend_from_slice(&9i16.to_be_bytes());
        body.extend_from_slice(b"127.0.0.1");
        body.extend_from_slice(&9092i32.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(b"id");
        body.extend_from_slice(&2i32.to_be_bytes());
        assert_eq!(controller_id_v4(&body), Some(2));
        assert_eq!(controller_id_v4(&body[..body.len() - 1]), None);
    }

    #[test]
    fn kafka_controller_is_the_newest_epochs_leader() {
        let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        for (dir, (leader, epoch)) in dirs.iter().zip([(1, 3), (2, 4)]) {
            let state = dir.path().join("logs/__cluster_metadata-0");
            std::fs::create_dir_all(&state).unwrap();
            std::fs::write(
                state.join("quorum-state"),
                format!(r#"{{"leaderId":{leader},"leaderEpoch":{epoch},"votedId":-1}}"#),
            )
            .unwrap();
        }
        assert_eq!(kafka_controller(dirs.iter().map(|d| d.path())), Some(2));
    }
}
