//! Questions the nemesis asks the cluster over the wire (raw protocol, short timeouts, never
//! panicking: a broker may be down, frozen or cut off): who coordinates the group, and what
//! its committed offsets are.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{FindCoordinatorRequest, GroupId, OffsetFetchRequest};
use kafka_protocol::protocol::StrBytes;

use crate::raw::{self, RawClient};

/// How long one probe request may take before the broker counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to `addr` with `PROBE_TIMEOUT` on every read.
pub fn connect(addr: SocketAddr) -> Option<RawClient> {
    let mut client = RawClient::try_connect(addr).ok()?;
    client.set_read_timeout(PROBE_TIMEOUT);
    Some(client)
}

/// The group's coordinator as the first answering broker of `brokers` names it: (node id,
/// address).
pub fn find_coordinator(brokers: &[SocketAddr], group: &str) -> Option<(i32, SocketAddr)> {
    brokers.iter().find_map(|addr| {
        let mut client = connect(*addr)?;
        let version = client.version::<FindCoordinatorRequest>(3);
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_string()))
            .with_key_type(0);
        let response = client.request(&request, version).ok()?;
        if response.error_code != 0 || response.node_id.0 < 0 {
            return None;
        }
        let address = (response.host.as_str(), response.port as u16)
            .to_socket_addrs()
            .ok()?
            .next()?;
        Some((response.node_id.0, address))
    })
}

/// The committed offset of every partition of `topic` in `group` that has one, as the
/// coordinator at `client` answers OffsetFetch; `None` on any error (including a
/// coordinator that is loading or is not the coordinator any more).
pub fn committed_offsets(
    client: &mut RawClient,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Option<BTreeMap<i32, i64>> {
    let version = client.version::<OffsetFetchRequest>(7);
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(raw::topic_name(topic))
            .with_partition_indexes((0..partitions).collect())]));
    let response = client.request(&request, version).ok()?;
    if response.error_code != 0 {
        return None;
    }
    let mut offsets = BTreeMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                return None;
            }
            offsets.insert(p.partition_index, p.committed_offset);
        }
    }
    Some(offsets)
}
