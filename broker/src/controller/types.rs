//! openraft type configuration of the metadata quorum.

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::command::{CommandResult, MetadataCommand};

openraft::declare_raft_types!(
    /// Raft types of the metadata log: commands in, results out, broker ids as node ids,
    /// [`QuorumNode`] as what the membership stores of each node.
    pub TypeConfig:
        D = MetadataCommand,
        R = CommandResult,
        Node = QuorumNode,
);

/// Raft node id: the broker's node id.
pub type NodeId = u64;

/// The Raft instance of the metadata quorum.
pub type Raft = openraft::Raft<TypeConfig>;

/// What the quorum's membership records of a node (voter or observer): where to reach it and
/// which storage it is expected to run with (KIP-853's voter key is node id plus directory id).
///
/// Invariant: a Raft message to this node names `directory_id`, and the node refuses it if its
/// own directory id differs, so only the storage that was made a voter is ever counted as one.
/// `None` is a membership written before directory ids existed; such a node is not checked.
/// The JSON form of a node without a directory id is openraft's `BasicNode`, so logs and
/// snapshots written before this type read back unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumNode {
    /// `host:port` of the node's internal RPC listener.
    pub addr: String,
    /// The directory id of the node's storage, from its `meta.properties`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<Uuid>,
}

impl QuorumNode {
    /// A node at `addr` running with storage `directory_id`.
    pub fn new(addr: impl Into<String>, directory_id: Option<Uuid>) -> Self {
        Self {
            addr: addr.into(),
            directory_id,
        }
    }
}

impl std::fmt::Display for QuorumNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.directory_id {
            Some(d) => write!(f, "{} (directory {d})", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_without_directory_id_reads_and_writes_as_basic_node() {
        let old = serde_json::to_string(&openraft::BasicNode::new("h:1")).unwrap();
        let node: QuorumNode = serde_json::from_str(&old).unwrap();
        assert_eq!(node, QuorumNode::new("h:1", None));
        assert_eq!(serde_json::to_string(&node).unwrap(), old);
        let with = QuorumNode::new("h:1", Some(Uuid::new_v4()));
        let back: QuorumNode =
            serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }
}
