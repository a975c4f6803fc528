//! The `__consumer_offsets` record types of KIP-932 share groups, in Apache Kafka 4's
//! numbering (the key's version), sharing the consumer groups' key layout
//! ([`super::consumer_records::encode_record_key`]).
//!
//! | type | key | value |
//! | --- | --- | --- |
//! | 10 | group, member | ShareGroupMemberMetadataValue |
//! | 11 | group | ShareGroupMetadataValue |
//! | 12 | group | ShareGroupTargetAssignmentMetadataValue |
//! | 13 | group, member | ShareGroupTargetAssignmentMemberValue |
//! | 14 | group, member | ShareGroupCurrentMemberAssignmentValue |
//! | 15 | group | ShareGroupStatePartitionMetadataValue |
//!
//! Weir does not write the share groups' membership yet (a coordinator failover makes the
//! members rejoin, as after a session expiry); it writes the tombstones of every type when a
//! share group is deleted, so records Kafka wrote do not outlive the group.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::consumer_records::encode_record_key;
use crate::share::group::ShareGroup;

/// ShareGroupMemberMetadata.
pub const MEMBER_METADATA: i16 = 10;
/// ShareGroupMetadata.
pub const GROUP_METADATA: i16 = 11;
/// ShareGroupTargetAssignmentMetadata.
pub const TARGET_ASSIGNMENT_METADATA: i16 = 12;
/// ShareGroupTargetAssignmentMember.
pub const TARGET_ASSIGNMENT_MEMBER: i16 = 13;
/// ShareGroupCurrentMemberAssignment.
pub const CURRENT_MEMBER_ASSIGNMENT: i16 = 14;
/// ShareGroupStatePartitionMetadata.
pub const STATE_PARTITION_METADATA: i16 = 15;

/// Tombstones for every record of the share group, members first, the group's epoch last.
pub fn tombstones(group_id: &str, group: &ShareGroup) -> Vec<(Bytes, Option<Bytes>)> {
    let mut members: BTreeSet<&String> = group.members().keys().collect();
    members.extend(group.departed.iter());
    let mut records = Vec::new();
    for member in members {
        for kind in [
            CURRENT_MEMBER_ASSIGNMENT,
            TARGET_ASSIGNMENT_MEMBER,
            MEMBER_METADATA,
        ] {
            records.push((encode_record_key(kind, group_id, Some(member)), None));
        }
    }
    for kind in [
        STATE_PARTITION_METADATA,
        TARGET_ASSIGNMENT_METADATA,
        GROUP_METADATA,
    ] {
        records.push((encode_record_key(kind, group_id, None), None));
    }
    records
}
