//! The `__consumer_offsets` records of KIP-932 share groups, in Apache Kafka 4's schemas and
//! the consumer groups' key layout and encoding ([`super::consumer_records`]).
//!
//! | type | key | value |
//! | --- | --- | --- |
//! | 10 | group, member | ShareGroupMemberMetadataValue: rack, client, host, subscribed topics |
//! | 11 | group | ShareGroupMetadataValue: group epoch, metadata hash (written 0) |
//! | 12 | group | ShareGroupTargetAssignmentMetadataValue: assignment epoch |
//! | 13 | group, member | ShareGroupTargetAssignmentMemberValue: the member's target partitions |
//! | 14 | group, member | ShareGroupCurrentMemberAssignmentValue: epochs, state, partitions |
//!
//! | 15 | group | ShareGroupStatePartitionMetadataValue: the share partitions that may have state |
//!
//! Of type 15 only the initialized topics are written (a share partition initialises on its
//! leader, so none is ever "initializing" or "deleting" here): the partitions members were
//! assigned or an admin set offsets for, which DescribeShareGroupOffsets and DeleteGroups
//! use. As for consumer groups the whole group is written after every change (compaction
//! keeps the latest).

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::consumer::TopicImage;
use super::consumer_records::{
    decode_epoch, decode_target, encode_epoch, encode_key, encode_target, flexible,
    put_compact_nullable_string, put_partitions, put_uvarint, ConsumerRecordType,
};
use super::loader::ConsumerRecords;
use super::records::RecordError;
use crate::group::assignor::Assignment;
use crate::share::group::{ShareGroup, ShareGroupConfig, ShareMember};

use ConsumerRecordType::{
    ShareCurrentMemberAssignment, ShareGroupMetadata, ShareMemberMetadata,
    ShareStatePartitionMetadata, ShareTargetAssignmentMember, ShareTargetAssignmentMetadata,
};

/// One record to append: key and value (None: tombstone).
type Record = (Bytes, Option<Bytes>);

/// ShareGroupMemberMetadataValue of `m`.
pub fn encode_member_metadata(m: &ShareMember) -> Bytes {
    let mut buf = BytesMut::with_capacity(96);
    buf.put_i16(0);
    put_compact_nullable_string(&mut buf, m.rack_id.as_deref());
    put_compact_nullable_string(&mut buf, Some(&m.client_id));
    put_compact_nullable_string(&mut buf, Some(&m.client_host));
    put_uvarint(&mut buf, m.subscribed_topic_names.len() as u32 + 1);
    for name in &m.subscribed_topic_names {
        put_compact_nullable_string(&mut buf, Some(name));
    }
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

/// Fills `m`'s metadata from a ShareGroupMemberMetadataValue.
pub fn decode_member_metadata(mut bytes: &[u8], m: &mut ShareMember) -> Result<(), RecordError> {
    let r = &mut flexible(&mut bytes, "share group member metadata value")?;
    m.rack_id = r.compact_nullable_string()?;
    m.client_id = r.compact_nullable_string()?.unwrap_or_default();
    m.client_host = r.compact_nullable_string()?.unwrap_or_default();
    m.subscribed_topic_names.clear();
    for _ in 0..r.array_len()? {
        if let Some(name) = r.compact_nullable_string()? {
            m.subscribed_topic_names.insert(name);
        }
    }
    r.skip_tags()
}

/// ShareGroupMetadataValue: the group epoch and a metadata hash, which Weir does not use
/// (written 0; Kafka recomputes it when it differs).
pub fn encode_group_metadata(epoch: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(16);
    buf.put_i16(0);
    buf.put_i32(epoch);
    buf.put_i64(0);
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

/// ShareGroupCurrentMemberAssignmentValue of `m` (state 0: stable, share members never
/// revoke).
pub fn encode_current_assignment(m: &ShareMember) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
    buf.put_i32(m.member_epoch);
    buf.put_i32(m.member_epoch);
    buf.put_i8(0);
    put_partitions(&mut buf, &m.assignment);
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

/// Fills `m`'s epoch and partitions from a ShareGroupCurrentMemberAssignmentValue.
pub fn decode_current_assignment(mut bytes: &[u8], m: &mut ShareMember) -> Result<(), RecordError> {
    let r = &mut flexible(&mut bytes, "share group current assignment value")?;
    m.member_epoch = r.i32()?;
    let _previous = r.i32()?;
    r.need(1)?;
    let _state = r.buf.get_i8();
    m.assignment = r.partitions()?;
    r.skip_tags()
}

/// The share partitions that may have state, per topic id: (topic name, partitions).
pub type StatePartitions = BTreeMap<Uuid, (String, BTreeSet<i32>)>;

/// ShareGroupStatePartitionMetadataValue with `partitions` as its initialized topics (the
/// create timestamp written 0: Weir does not use it).
pub fn encode_state_partitions(partitions: &StatePartitions) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
    // InitializingTopics: none.
    put_uvarint(&mut buf, 1);
    put_uvarint(&mut buf, partitions.len() as u32 + 1);
    for (topic_id, (name, indexes)) in partitions {
        buf.put_slice(topic_id.as_bytes());
        put_compact_nullable_string(&mut buf, Some(name));
        put_uvarint(&mut buf, indexes.len() as u32 + 1);
        for p in indexes {
            buf.put_i32(*p);
        }
        buf.put_i64(0);
        put_uvarint(&mut buf, 0);
    }
    // DeletingTopics: none.
    put_uvarint(&mut buf, 1);
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

/// The initializing and initialized topics of a ShareGroupStatePartitionMetadataValue, merged
/// (both may have state).
pub fn decode_state_partitions(mut bytes: &[u8]) -> Result<StatePartitions, RecordError> {
    let r = &mut flexible(&mut bytes, "share group state partition metadata value")?;
    let mut out = StatePartitions::new();
    for _ in 0..2 {
        for _ in 0..r.array_len()? {
            r.need(16)?;
            let mut id = [0u8; 16];
            r.buf.copy_to_slice(&mut id);
            let name = r.compact_nullable_string()?.unwrap_or_default();
            let entry = out
                .entry(Uuid::from_bytes(id))
                .or_insert_with(|| (name, BTreeSet::new()));
            for _ in 0..r.array_len()? {
                entry.1.insert(r.i32()?);
            }
            r.need(8)?;
            let _create_timestamp = r.buf.get_i64();
            r.skip_tags()?;
        }
    }
    // DeletingTopics are gone already as far as the group is concerned.
    for _ in 0..r.array_len()? {
        r.need(16)?;
        r.buf.advance(16);
        r.compact_nullable_string()?;
        r.skip_tags()?;
    }
    r.skip_tags()?;
    Ok(out)
}

/// The records that store `group` as it is now, and tombstones for the members that left
/// since the last write.
pub fn snapshot(group_id: &str, group: &mut ShareGroup) -> Vec<Record> {
    let mut records = Vec::new();
    for m in std::mem::take(&mut group.departed) {
        if !group.members().contains_key(&m) {
            records.extend(member_tombstones(group_id, &m));
        }
    }
    for (id, m) in group.members() {
        records.push((
            encode_key(ShareMemberMetadata, group_id, Some(id)),
            Some(encode_member_metadata(m)),
        ));
    }
    records.push((
        encode_key(ShareGroupMetadata, group_id, None),
        Some(encode_group_metadata(group.group_epoch())),
    ));
    for id in group.members().keys() {
        let target = group.target_of(id).cloned().unwrap_or_default();
        records.push((
            encode_key(ShareTargetAssignmentMember, group_id, Some(id)),
            Some(encode_target(&target)),
        ));
    }
    records.push((
        encode_key(ShareTargetAssignmentMetadata, group_id, None),
        Some(encode_epoch(group.assignment_epoch())),
    ));
    let state_partitions = group.state_partitions();
    records.push((
        encode_key(ShareStatePartitionMetadata, group_id, None),
        (!state_partitions.is_empty()).then(|| encode_state_partitions(state_partitions)),
    ));
    for (id, m) in group.members() {
        records.push((
            encode_key(ShareCurrentMemberAssignment, group_id, Some(id)),
            Some(encode_current_assignment(m)),
        ));
    }
    records
}

fn member_tombstones(group_id: &str, member: &str) -> [Record; 3] {
    [
        (
            encode_key(ShareCurrentMemberAssignment, group_id, Some(member)),
            None,
        ),
        (
            encode_key(ShareTargetAssignmentMember, group_id, Some(member)),
            None,
        ),
        (
            encode_key(ShareMemberMetadata, group_id, Some(member)),
            None,
        ),
    ]
}

/// Tombstones for every record of the share group (deleted), members first.
pub fn tombstones(group_id: &str, group: &ShareGroup) -> Vec<Record> {
    let mut members: Vec<&String> = group.members().keys().collect();
    members.extend(group.departed.iter());
    let mut records: Vec<Record> = members
        .into_iter()
        .flat_map(|m| member_tombstones(group_id, m))
        .collect();
    for kind in [
        ShareStatePartitionMetadata,
        ShareTargetAssignmentMetadata,
        ShareGroupMetadata,
    ] {
        records.push((encode_key(kind, group_id, None), None));
    }
    records
}

/// A share group rebuilt from its loaded records; members' sessions start at `now_ms`.
pub fn from_records(
    group_id: &str,
    records: &ConsumerRecords,
    topics: &TopicImage,
    config: &ShareGroupConfig,
    now_ms: i64,
) -> ShareGroup {
    let (mut group_epoch, mut assignment_epoch) = (0, 0);
    let mut state_partitions = StatePartitions::new();
    let mut members: std::collections::BTreeMap<String, (ShareMember, Assignment)> =
        std::collections::BTreeMap::new();
    for ((kind, member), value) in records {
        let result = match (kind, member) {
            (ShareGroupMetadata, _) => decode_epoch(value).map(|e| group_epoch = e),
            (ShareTargetAssignmentMetadata, _) => decode_epoch(value).map(|e| assignment_epoch = e),
            (ShareStatePartitionMetadata, _) => {
                decode_state_partitions(value).map(|p| state_partitions = p)
            }
            (ShareMemberMetadata, Some(id)) => {
                let (m, _) = members
                    .entry(id.clone())
                    .or_insert_with(|| (ShareMember::new(id), Assignment::new()));
                decode_member_metadata(value, m)
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(group = group_id, error = %e, "skipping an undecodable share group record");
        }
    }
    for ((kind, member), value) in records {
        let Some((m, target)) = member.as_ref().and_then(|id| members.get_mut(id)) else {
            continue;
        };
        let result = match kind {
            ShareTargetAssignmentMember => decode_target(value).map(|t| *target = t),
            ShareCurrentMemberAssignment => decode_current_assignment(value, m),
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(group = group_id, error = %e, "skipping an undecodable share group record");
        }
    }
    let mut group = ShareGroup::loaded(
        group_epoch,
        assignment_epoch,
        members.into_values().collect(),
        topics,
        config,
        now_ms,
    );
    group.set_state_partitions(state_partitions);
    group
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use uuid::Uuid;

    use super::*;

    #[test]
    fn member_records_round_trip() {
        let mut m = ShareMember::new("m1");
        m.rack_id = Some("r".into());
        m.client_id = "client".into();
        m.client_host = "/127.0.0.1".into();
        m.subscribed_topic_names = BTreeSet::from(["a".to_string(), "b".to_string()]);
        m.member_epoch = 7;
        m.assignment = Assignment::from([(Uuid::from_bytes([9; 16]), BTreeSet::from([0, 2]))]);
        let mut back = ShareMember::new("m1");
        decode_member_metadata(&encode_member_metadata(&m), &mut back).unwrap();
        decode_current_assignment(&encode_current_assignment(&m), &mut back).unwrap();
        assert_eq!(back, m);
        assert_eq!(decode_epoch(&encode_group_metadata(5)).unwrap(), 5);
        assert!(decode_member_metadata(&[0, 0, 0xff], &mut back).is_err());
    }

    #[test]
    fn state_partitions_round_trip() {
        let partitions = StatePartitions::from([
            (
                Uuid::from_bytes([1; 16]),
                ("orders".to_string(), BTreeSet::from([0, 3])),
            ),
            (
                Uuid::from_bytes([2; 16]),
                ("audit".to_string(), BTreeSet::from([1])),
            ),
        ]);
        let bytes = encode_state_partitions(&partitions);
        assert_eq!(decode_state_partitions(&bytes).unwrap(), partitions);
        for cut in 0..bytes.len() {
            assert!(
                decode_state_partitions(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
