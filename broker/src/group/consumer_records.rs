//! The `__consumer_offsets` records of KIP-848 consumer groups, in Apache Kafka 4's schemas,
//! so Kafka's tools read them (`kafka-dump-log --offsets-decoder`, the offsets formatter).
//!
//! A key's int16 version is its record type; keys are not flexible (int16-length strings).
//! Values are version 0 and flexible: compact strings and arrays (unsigned-varint length + 1,
//! 0 for null), UUIDs as 16 bytes, and a tagged-field section at the end of every struct
//! (written empty; skipped when read, so fields Kafka adds as tags, such as the metadata hash
//! of 4.1, do not stop a load).
//!
//! | type | key | value |
//! | --- | --- | --- |
//! | 3 | group | ConsumerGroupMetadataValue: group epoch |
//! | 5 | group, member | ConsumerGroupMemberMetadataValue: instance, rack, client, subscription, rebalance timeout, assignor |
//! | 6 | group | ConsumerGroupTargetAssignmentMetadataValue: assignment epoch |
//! | 7 | group, member | ConsumerGroupTargetAssignmentMemberValue: the member's target partitions |
//! | 8 | group, member | ConsumerGroupCurrentMemberAssignmentValue: epochs, state, assigned and pending-revocation partitions |
//!
//! Type 4 (ConsumerGroupPartitionMetadata, deprecated by Kafka 4.1) is neither written nor
//! needed: the subscribed topics are recomputed from the metadata image on load.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use std::collections::BTreeSet;

use super::assignor::Assignment;
use super::consumer::{ConsumerGroup, TopicImage};
use super::consumer_member::{ClassicMemberMetadata, ConsumerMember, MemberState};
use super::loader::ConsumerRecords;
use super::records::{Reader, RecordError};

/// The record types of consumer groups (the key's version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsumerRecordType {
    /// ConsumerGroupMetadata (3).
    GroupMetadata = 3,
    /// ConsumerGroupPartitionMetadata (4): read and ignored.
    PartitionMetadata = 4,
    /// ConsumerGroupMemberMetadata (5).
    MemberMetadata = 5,
    /// ConsumerGroupTargetAssignmentMetadata (6).
    TargetAssignmentMetadata = 6,
    /// ConsumerGroupTargetAssignmentMember (7).
    TargetAssignmentMember = 7,
    /// ConsumerGroupCurrentMemberAssignment (8).
    CurrentMemberAssignment = 8,
    /// ShareGroupMemberMetadata (10), of a KIP-932 share group ([`super::share_records`]).
    ShareMemberMetadata = 10,
    /// ShareGroupMetadata (11).
    ShareGroupMetadata = 11,
    /// ShareGroupTargetAssignmentMetadata (12).
    ShareTargetAssignmentMetadata = 12,
    /// ShareGroupTargetAssignmentMember (13).
    ShareTargetAssignmentMember = 13,
    /// ShareGroupCurrentMemberAssignment (14).
    ShareCurrentMemberAssignment = 14,
    /// ShareGroupStatePartitionMetadata (15): read and ignored (Weir's share partitions
    /// initialise on their leader).
    ShareStatePartitionMetadata = 15,
}

impl ConsumerRecordType {
    /// The type of key version `version`.
    pub fn from_version(version: i16) -> Option<Self> {
        Some(match version {
            3 => Self::GroupMetadata,
            4 => Self::PartitionMetadata,
            5 => Self::MemberMetadata,
            6 => Self::TargetAssignmentMetadata,
            7 => Self::TargetAssignmentMember,
            8 => Self::CurrentMemberAssignment,
            10 => Self::ShareMemberMetadata,
            11 => Self::ShareGroupMetadata,
            12 => Self::ShareTargetAssignmentMetadata,
            13 => Self::ShareTargetAssignmentMember,
            14 => Self::ShareCurrentMemberAssignment,
            15 => Self::ShareStatePartitionMetadata,
            _ => return None,
        })
    }

    /// Whether the key names a member.
    pub fn has_member(self) -> bool {
        matches!(
            self,
            Self::MemberMetadata
                | Self::TargetAssignmentMember
                | Self::CurrentMemberAssignment
                | Self::ShareMemberMetadata
                | Self::ShareTargetAssignmentMember
                | Self::ShareCurrentMemberAssignment
        )
    }

    /// Whether the record is a share group's (types 10-15).
    pub fn is_share(self) -> bool {
        (self as i16) >= 10
    }
}

/// An int32 value (group epoch, assignment epoch) as ConsumerGroupMetadataValue and
/// ConsumerGroupTargetAssignmentMetadataValue store it.
pub fn encode_epoch(epoch: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(8);
    buf.put_i16(0);
    buf.put_i32(epoch);
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

/// Reads an epoch value.
pub fn decode_epoch(mut bytes: &[u8]) -> Result<i32, RecordError> {
    let r = &mut flexible(&mut bytes, "consumer group epoch value")?;
    r.i32()
}

/// ConsumerGroupMemberMetadataValue of `m`.
pub fn encode_member_metadata(m: &ConsumerMember) -> Bytes {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i16(0);
    put_compact_nullable_string(&mut buf, m.instance_id.as_deref());
    put_compact_nullable_string(&mut buf, m.rack_id.as_deref());
    put_compact_nullable_string(&mut buf, Some(&m.client_id));
    put_compact_nullable_string(&mut buf, Some(&m.client_host));
    put_uvarint(&mut buf, m.subscribed_topic_names.len() as u32 + 1);
    for name in &m.subscribed_topic_names {
        put_compact_nullable_string(&mut buf, Some(name));
    }
    put_compact_nullable_string(&mut buf, m.subscribed_topic_regex.as_deref());
    buf.put_i32(m.rebalance_timeout_ms);
    put_compact_nullable_string(&mut buf, m.server_assignor.as_deref());
    match &m.classic {
        None => put_uvarint(&mut buf, 0),
        Some(classic) => {
            // One tagged field: tag 0, its size, then ClassicMemberMetadata.
            let field = encode_classic_member_metadata(classic);
            put_uvarint(&mut buf, 1);
            put_uvarint(&mut buf, 0);
            put_uvarint(&mut buf, field.len() as u32);
            buf.put_slice(&field);
        }
    }
    buf.freeze()
}

/// ClassicMemberMetadata (the tagged field 0 of ConsumerGroupMemberMetadataValue): session
/// timeout, `[]ClassicProtocol` (name, metadata bytes, tags), tags.
fn encode_classic_member_metadata(classic: &ClassicMemberMetadata) -> BytesMut {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(classic.session_timeout_ms);
    put_uvarint(&mut buf, classic.protocols.len() as u32 + 1);
    for (name, metadata) in &classic.protocols {
        put_compact_nullable_string(&mut buf, Some(name));
        put_uvarint(&mut buf, metadata.len() as u32 + 1);
        buf.put_slice(metadata);
        put_uvarint(&mut buf, 0);
    }
    put_uvarint(&mut buf, 0);
    buf
}

fn decode_classic_member_metadata(mut bytes: &[u8]) -> Result<ClassicMemberMetadata, RecordError> {
    let r = &mut Reader {
        buf: &mut bytes,
        what: "classic member metadata",
    };
    let session_timeout_ms = r.i32()?;
    let mut protocols = Vec::new();
    for _ in 0..r.array_len()? {
        let name = r.compact_nullable_string()?.unwrap_or_default();
        let metadata = r.compact_bytes()?;
        r.skip_tags()?;
        protocols.push((name, metadata));
    }
    r.skip_tags()?;
    Ok(ClassicMemberMetadata {
        session_timeout_ms,
        protocols,
    })
}

/// Fills `m`'s subscription fields from a ConsumerGroupMemberMetadataValue.
pub fn decode_member_metadata(mut bytes: &[u8], m: &mut ConsumerMember) -> Result<(), RecordError> {
    let r = &mut flexible(&mut bytes, "consumer group member metadata value")?;
    m.instance_id = r.compact_nullable_string()?;
    m.rack_id = r.compact_nullable_string()?;
    m.client_id = r.compact_nullable_string()?.unwrap_or_default();
    m.client_host = r.compact_nullable_string()?.unwrap_or_default();
    let n = r.array_len()?;
    m.subscribed_topic_names.clear();
    for _ in 0..n {
        if let Some(name) = r.compact_nullable_string()? {
            m.subscribed_topic_names.insert(name);
        }
    }
    m.subscribed_topic_regex = r.compact_nullable_string()?;
    m.rebalance_timeout_ms = r.i32()?;
    m.server_assignor = r.compact_nullable_string()?;
    m.classic = None;
    for _ in 0..r.uvarint()? {
        let tag = r.uvarint()?;
        let size = r.uvarint()? as usize;
        r.need(size)?;
        let (field, rest) = r.buf.split_at(size);
        if tag == 0 {
            m.classic = Some(decode_classic_member_metadata(field)?);
        }
        *r.buf = rest;
    }
    Ok(())
}

/// ConsumerGroupTargetAssignmentMemberValue.
pub fn encode_target(assignment: &Assignment) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
    put_partitions(&mut buf, assignment);
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

/// Reads a ConsumerGroupTargetAssignmentMemberValue.
pub fn decode_target(mut bytes: &[u8]) -> Result<Assignment, RecordError> {
    let r = &mut flexible(&mut bytes, "consumer group target assignment value")?;
    let a = r.partitions()?;
    r.skip_tags()?;
    Ok(a)
}

/// ConsumerGroupCurrentMemberAssignmentValue of `m`.
pub fn encode_current_assignment(m: &ConsumerMember) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
    buf.put_i32(m.member_epoch);
    buf.put_i32(m.previous_member_epoch);
    buf.put_i8(match m.state {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    });
    put_partitions(&mut buf, &m.assigned);
    put_partitions(&mut buf, &m.pending_revocation);
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

/// Fills `m`'s epochs and partitions from a ConsumerGroupCurrentMemberAssignmentValue.
pub fn decode_current_assignment(
    mut bytes: &[u8],
    m: &mut ConsumerMember,
) -> Result<(), RecordError> {
    let r = &mut flexible(&mut bytes, "consumer group current assignment value")?;
    m.member_epoch = r.i32()?;
    m.previous_member_epoch = r.i32()?;
    r.need(1)?;
    m.state = match r.buf.get_i8() {
        1 => MemberState::UnrevokedPartitions,
        2 => MemberState::UnreleasedPartitions,
        // Stable, or a state of a newer Kafka: reconciliation starts again from here.
        _ => MemberState::Stable,
    };
    m.assigned = r.partitions()?;
    m.pending_revocation = r.partitions()?;
    r.skip_tags()
}

/// The key of a consumer-group record.
pub fn encode_key(kind: ConsumerRecordType, group: &str, member: Option<&str>) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(kind as i16);
    put_string(&mut buf, group);
    if let Some(member) = member {
        put_string(&mut buf, member);
    }
    buf.freeze()
}

/// One record to append: key and value (None: tombstone).
type Record = (Bytes, Option<Bytes>);

fn key(kind: ConsumerRecordType, group: &str, member: Option<&str>) -> Bytes {
    encode_key(kind, group, member)
}

/// The records that store `group` as it is now: its epochs, every member's metadata, target
/// and current assignment, and tombstones for the members stored before and gone since.
/// Written whole after every change (Kafka writes only the changed records); compaction keeps
/// the latest of each key.
pub fn snapshot(group_id: &str, group: &mut ConsumerGroup) -> Vec<Record> {
    use ConsumerRecordType::*;
    let mut records = Vec::new();
    let gone: Vec<String> = group
        .persisted_members
        .iter()
        .filter(|m| !group.members.contains_key(*m))
        .cloned()
        .collect();
    for m in &gone {
        records.extend(member_tombstones(group_id, m));
    }
    for (id, m) in &group.members {
        records.push((
            key(MemberMetadata, group_id, Some(id)),
            Some(encode_member_metadata(m)),
        ));
    }
    records.push((
        key(GroupMetadata, group_id, None),
        Some(encode_epoch(group.group_epoch)),
    ));
    for (id, target) in &group.target {
        records.push((
            key(TargetAssignmentMember, group_id, Some(id)),
            Some(encode_target(target)),
        ));
    }
    records.push((
        key(TargetAssignmentMetadata, group_id, None),
        Some(encode_epoch(group.assignment_epoch)),
    ));
    for (id, m) in &group.members {
        records.push((
            key(CurrentMemberAssignment, group_id, Some(id)),
            Some(encode_current_assignment(m)),
        ));
    }
    group.persisted_members = group.members.keys().cloned().collect();
    records
}

fn member_tombstones(group_id: &str, member: &str) -> [Record; 3] {
    use ConsumerRecordType::*;
    [
        (key(CurrentMemberAssignment, group_id, Some(member)), None),
        (key(TargetAssignmentMember, group_id, Some(member)), None),
        (key(MemberMetadata, group_id, Some(member)), None),
    ]
}

/// Tombstones for every record of the group (deleted, expired, or turned classic), in
/// Kafka's order: members first, the group's epoch last.
pub fn tombstones(group_id: &str, group: &ConsumerGroup) -> Vec<Record> {
    use ConsumerRecordType::*;
    let mut members: BTreeSet<&String> = group.members.keys().collect();
    members.extend(group.persisted_members.iter());
    let mut records: Vec<Record> = members
        .into_iter()
        .flat_map(|m| member_tombstones(group_id, m))
        .collect();
    records.push((key(TargetAssignmentMetadata, group_id, None), None));
    records.push((key(PartitionMetadata, group_id, None), None));
    records.push((key(GroupMetadata, group_id, None), None));
    records
}

/// A group rebuilt from its loaded records: members' sessions start at `now_ms` (members
/// that are gone expire), the subscribed topics are resolved against `topics`.
pub fn from_records(
    group_id: &str,
    records: &ConsumerRecords,
    topics: &TopicImage,
    session_timeout_ms: i32,
    now_ms: i64,
) -> ConsumerGroup {
    use ConsumerRecordType::*;
    let mut group = ConsumerGroup::new(now_ms);
    for ((kind, member), value) in records {
        let result = match (kind, member) {
            (GroupMetadata, _) => decode_epoch(value).map(|e| group.group_epoch = e),
            (TargetAssignmentMetadata, _) => {
                decode_epoch(value).map(|e| group.assignment_epoch = e)
            }
            (MemberMetadata, Some(id)) => {
                let m = group
                    .members
                    .entry(id.clone())
                    .or_insert_with(|| ConsumerMember::new(id));
                decode_member_metadata(value, m)
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(group = group_id, error = %e, "skipping an undecodable consumer group record");
        }
    }
    for ((kind, member), value) in records {
        let Some(id) = member else { continue };
        let result = match kind {
            TargetAssignmentMember if group.members.contains_key(id) => {
                decode_target(value).map(|t| {
                    group.target.insert(id.clone(), t);
                })
            }
            CurrentMemberAssignment => match group.members.get_mut(id) {
                Some(m) => decode_current_assignment(value, m),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(group = group_id, member = %id, error = %e, "skipping an undecodable consumer group record");
        }
    }
    for m in group.members.values_mut() {
        let session = m
            .classic
            .as_ref()
            .map_or(session_timeout_ms, |c| c.session_timeout_ms);
        m.session_deadline_ms = now_ms + i64::from(session);
        if m.state == MemberState::UnrevokedPartitions {
            m.revocation_deadline_ms = Some(now_ms + i64::from(m.rebalance_timeout_ms.max(0)));
        }
    }
    group.assignment_epoch = group.assignment_epoch.min(group.group_epoch);
    group.persisted_members = group.members.keys().cloned().collect();
    group.rebuild_owners();
    group.init_subscribed_topics(topics);
    group
}

fn put_string(buf: &mut BytesMut, s: &str) {
    let n = s.len().min(i16::MAX as usize);
    buf.put_i16(n as i16);
    buf.put_slice(&s.as_bytes()[..n]);
}

pub(super) fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

pub(super) fn put_compact_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(buf, 0),
        Some(s) => {
            put_uvarint(buf, s.len() as u32 + 1);
            buf.put_slice(s.as_bytes());
        }
    }
}

/// `[]TopicPartitions`: topic id, `[]int32` partitions, tagged fields.
pub(super) fn put_partitions(buf: &mut BytesMut, assignment: &Assignment) {
    put_uvarint(buf, assignment.len() as u32 + 1);
    for (topic, partitions) in assignment {
        buf.put_slice(topic.as_bytes());
        put_uvarint(buf, partitions.len() as u32 + 1);
        for p in partitions {
            buf.put_i32(*p);
        }
        put_uvarint(buf, 0);
    }
}

/// A reader of a flexible value, after checking its version (0).
pub(super) fn flexible<'a, 'b>(
    buf: &'a mut &'b [u8],
    what: &'static str,
) -> Result<Reader<'a, 'b>, RecordError> {
    let r = Reader { buf, what };
    r.need(2)?;
    let version = r.buf.get_i16();
    if version != 0 {
        return Err(RecordError::UnknownVersion { what, version });
    }
    Ok(r)
}

/// The flexible (compact) reads of Kafka's version-0 coordinator values: bounds-checked,
/// never panicking on short or hostile input.
impl Reader<'_, '_> {
    fn uvarint(&mut self) -> Result<u32, RecordError> {
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            self.need(1)?;
            let b = self.buf.get_u8();
            v |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::Truncated { what: self.what })
    }

    /// A compact array's length (null reads as empty).
    pub(super) fn array_len(&mut self) -> Result<usize, RecordError> {
        let n = self.uvarint()?.saturating_sub(1) as usize;
        // Each element takes at least one byte: a longer count is a lie.
        self.need(n)?;
        Ok(n)
    }

    pub(super) fn compact_nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        match self.uvarint()? {
            0 => Ok(None),
            n => self.utf8((n - 1) as usize).map(Some),
        }
    }

    fn compact_bytes(&mut self) -> Result<Bytes, RecordError> {
        let n = self.uvarint()?.saturating_sub(1) as usize;
        self.need(n)?;
        let (bytes, rest) = self.buf.split_at(n);
        let out = Bytes::copy_from_slice(bytes);
        *self.buf = rest;
        Ok(out)
    }

    pub(super) fn partitions(&mut self) -> Result<Assignment, RecordError> {
        let mut out = Assignment::new();
        for _ in 0..self.array_len()? {
            self.need(16)?;
            let mut id = [0u8; 16];
            self.buf.copy_to_slice(&mut id);
            let n = self.array_len()?;
            let set = out.entry(Uuid::from_bytes(id)).or_default();
            for _ in 0..n {
                set.insert(self.i32()?);
            }
            self.skip_tags()?;
        }
        Ok(out)
    }

    pub(super) fn skip_tags(&mut self) -> Result<(), RecordError> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.need(size)?;
            self.buf.advance(size);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_records_round_trip() {
        let mut m = ConsumerMember::new("m1");
        m.instance_id = Some("i".into());
        m.client_id = "client".into();
        m.client_host = "/127.0.0.1".into();
        m.subscribed_topic_names = BTreeSet::from(["a".to_string(), "b".to_string()]);
        m.subscribed_topic_regex = Some("x.*".into());
        m.rebalance_timeout_ms = 300_000;
        m.server_assignor = Some("range".into());
        m.member_epoch = 7;
        m.previous_member_epoch = 6;
        m.state = MemberState::UnrevokedPartitions;
        let t = Uuid::from_bytes([9; 16]);
        m.assigned = Assignment::from([(t, BTreeSet::from([0, 2]))]);
        m.pending_revocation = Assignment::from([(t, BTreeSet::from([1]))]);
        let mut back = ConsumerMember::new("m1");
        decode_member_metadata(&encode_member_metadata(&m), &mut back).unwrap();
        decode_current_assignment(&encode_current_assignment(&m), &mut back).unwrap();
        assert_eq!(back, m);
        // A classic-protocol member (online migration) keeps its protocols in tag 0.
        m.classic = Some(ClassicMemberMetadata {
            session_timeout_ms: 45_000,
            protocols: vec![
                ("range".into(), Bytes::from_static(&[0, 3, 1, 2])),
                ("cooperative-sticky".into(), Bytes::new()),
            ],
        });
        let mut back = ConsumerMember::new("m1");
        decode_member_metadata(&encode_member_metadata(&m), &mut back).unwrap();
        decode_current_assignment(&encode_current_assignment(&m), &mut back).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            decode_target(&encode_target(&m.assigned)).unwrap(),
            m.assigned
        );
        assert_eq!(decode_epoch(&encode_epoch(42)).unwrap(), 42);
    }

    #[test]
    fn kafkas_layout_and_tagged_fields_are_read() {
        // ConsumerGroupMetadataValue v0, epoch 5, with a MetadataHash tag (0, 8 bytes).
        let mut v = vec![0, 0, 0, 0, 0, 5, 1, 0, 8];
        v.extend_from_slice(&[0; 8]);
        assert_eq!(decode_epoch(&v).unwrap(), 5);
        // Key: version 8, group "g", member "m".
        let key = encode_key(ConsumerRecordType::CurrentMemberAssignment, "g", Some("m"));
        assert_eq!(&key[..], &[0, 8, 0, 1, b'g', 0, 1, b'm']);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut m = ConsumerMember::new("m");
        assert!(decode_member_metadata(&[0, 0, 0xff], &mut m).is_err());
        assert!(decode_current_assignment(&[0, 0, 0, 0, 0, 1], &mut m).is_err());
        assert!(decode_target(&[0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(decode_epoch(&[0, 1, 0, 0, 0, 0, 0]).is_err());
    }
}
