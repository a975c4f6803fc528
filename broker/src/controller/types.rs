//! openraft type configuration of the metadata quorum.

use std::io::Cursor;

use super::command::{CommandResult, MetadataCommand};

openraft::declare_raft_types!(
    /// Raft types of the metadata log: commands in, results out, broker ids as node ids.
    pub TypeConfig:
        D = MetadataCommand,
        R = CommandResult,
);

/// Raft node id: the broker's node id.
pub type NodeId = u64;

/// The Raft instance of the metadata quorum.
pub type Raft = openraft::Raft<TypeConfig>;
