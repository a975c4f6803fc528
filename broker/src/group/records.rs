//! The records of `__consumer_offsets`, in Apache Kafka's on-disk schemas, so Kafka's own
//! tools (`kafka-console-consumer --formatter ...OffsetsMessageFormatter`, `kafka-dump-log
//! --offsets-decoder`) can read a Weir broker's offsets topic.
//!
//! Every key and value starts with an int16 schema version; strings are int16-length
//! prefixed (-1 for null), byte arrays int32-length prefixed, nothing is flexible (no tagged
//! fields). The `kafka-protocol` crate does not ship these schemas, so they are encoded here.
//!
//! | record | key | value |
//! | --- | --- | --- |
//! | committed offset | v1: group, topic, partition | v3: offset, leader epoch, metadata, commit timestamp |
//! | group metadata | v2: group | v3: protocol type, generation, protocol, leader, state timestamp, members |
//! | consumer group (KIP-848) | v3-v8: the record type; group (and member) | see [`super::consumer_records`] |
//!
//! A null value is a tombstone: the offset or group was deleted. On load the latest record per
//! key wins. Values of older schema versions (offset v0-v3, group v0-v3) are read too.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::consumer_records::{self, ConsumerRecordType};

/// A `__consumer_offsets` record that could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The key or value ended before a field it announces.
    #[error("{what} is truncated")]
    Truncated {
        /// Which schema was being read.
        what: &'static str,
    },
    /// A schema version this broker does not read.
    #[error("{what} has unknown schema version {version}")]
    UnknownVersion {
        /// Which schema was being read.
        what: &'static str,
        /// The version found.
        version: i16,
    },
    /// A string that is not UTF-8.
    #[error("{what} holds a string that is not UTF-8")]
    NotUtf8 {
        /// Which schema was being read.
        what: &'static str,
    },
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    /// The committed offset of one partition for one group (key versions 0 and 1).
    Offset {
        /// Group id.
        group: String,
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// A group's membership and generation (key version 2).
    Group {
        /// Group id.
        group: String,
    },
    /// A KIP-848 consumer group's record (key versions 3-8, the record type); values in
    /// [`super::consumer_records`].
    Consumer {
        /// The record type.
        kind: ConsumerRecordType,
        /// Group id.
        group: String,
        /// Member id, for the per-member types.
        member: Option<String>,
    },
}

/// A committed offset as stored (value schema v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The next offset the group will consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string, round-tripped to OffsetFetch.
    pub metadata: String,
    /// When the commit was written (ms since the epoch).
    pub commit_timestamp: i64,
}

/// One member as stored in a group's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataValue {
    /// Coordinator-assigned member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Rebalance timeout in ms.
    pub rebalance_timeout_ms: i32,
    /// Session timeout in ms.
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    /// The assignment the leader gave it.
    pub assignment: Bytes,
}

/// A group's state as stored (value schema v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// `consumer` for Kafka consumers; empty for a group that only commits offsets.
    pub protocol_type: String,
    /// Generation id.
    pub generation: i32,
    /// The selected assignor (`range`, `cooperative-sticky`, ...), if any.
    pub protocol: Option<String>,
    /// Leader member id, if any.
    pub leader: Option<String>,
    /// When the group entered its current state (ms since the epoch), or -1.
    pub current_state_timestamp: i64,
    /// Members with their assignments.
    pub members: Vec<MemberMetadataValue>,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

impl RecordKey {
    /// The group this record belongs to.
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. }
            | RecordKey::Group { group }
            | RecordKey::Consumer { group, .. } => group,
        }
    }

    /// Encodes the key with its version prefix.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(OFFSET_KEY_VERSION);
                put_string(&mut buf, group);
                put_string(&mut buf, topic);
                buf.put_i32(*partition);
            }
            RecordKey::Group { group } => {
                buf.put_i16(GROUP_KEY_VERSION);
                put_string(&mut buf, group);
            }
            RecordKey::Consumer {
                kind,
                group,
                member,
            } => return consumer_records::encode_key(*kind, group, member.as_deref()),
        }
        buf.freeze()
    }

    /// Decodes a key of any version Kafka writes.
    pub fn decode(mut bytes: &[u8]) -> Result<Self, RecordError> {
        let r = &mut Reader {
            buf: &mut bytes,
            what: "record key",
        };
        match r.i16()? {
            0 | 1 => Ok(RecordKey::Offset {
                group: r.string()?,
                topic: r.string()?,
                partition: r.i32()?,
            }),
            2 => Ok(RecordKey::Group { group: r.string()? }),
            version => match ConsumerRecordType::from_version(version) {
                Some(kind) => Ok(RecordKey::Consumer {
                    kind,
                    group: r.string()?,
                    member: if kind.has_member() {
                        Some(r.string()?)
                    } else {
                        None
                    },
                }),
                None => Err(RecordError::UnknownVersion {
                    what: "record key",
                    version,
                }),
            },
        }
    }
}

impl OffsetCommitValue {
    /// Encodes as value schema v3.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(32 + self.metadata.len());
        buf.put_i16(OFFSET_VALUE_VERSION);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_string(&mut buf, &self.metadata);
        buf.put_i64(self.commit_timestamp);
        buf.freeze()
    }

    /// Decodes value schemas v0-v3.
    pub fn decode(mut bytes: &[u8]) -> Result<Self, RecordError> {
        let what = "offset commit value";
        let r = &mut Reader {
            buf: &mut bytes,
            what,
        };
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::UnknownVersion { what, version });
        }
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.string()?;
        let commit_timestamp = r.i64()?;
        if version == 1 {
            r.i64()?; // expire timestamp, no longer used
        }
        Ok(Self {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
        })
    }
}

impl GroupMetadataValue {
    /// Encodes as value schema v3.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i16(GROUP_VALUE_VERSION);
        put_string(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref());
        put_nullable_string(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp);
        buf.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_string(&mut buf, &m.member_id);
            put_nullable_string(&mut buf, m.group_instance_id.as_deref());
            put_string(&mut buf, &m.client_id);
            put_string(&mut buf, &m.client_host);
            buf.put_i32(m.rebalance_timeout_ms);
            buf.put_i32(m.session_timeout_ms);
            put_bytes(&mut buf, &m.subscription);
            put_bytes(&mut buf, &m.assignment);
        }
        buf.freeze()
    }

    /// Decodes value schemas v0-v3.
    pub fn decode(mut bytes: &[u8]) -> Result<Self, RecordError> {
        let what = "group metadata value";
        let r = &mut Reader {
            buf: &mut bytes,
            what,
        };
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::UnknownVersion { what, version });
        }
        let protocol_type = r.string()?;
        let generation = r.i32()?;
        let protocol = r.nullable_string()?;
        let leader = r.nullable_string()?;
        let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
        let count = r.i32()?.max(0) as usize;
        let mut members = Vec::with_capacity(count.min(r.buf.len()));
        for _ in 0..count {
            let member_id = r.string()?;
            let group_instance_id = if version >= 3 {
                r.nullable_string()?
            } else {
                None
            };
            let client_id = r.string()?;
            let client_host = r.string()?;
            let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
            let session_timeout_ms = r.i32()?;
            let subscription = r.bytes()?;
            let assignment = r.bytes()?;
            members.push(MemberMetadataValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                    session_timeout_ms
                } else {
                    rebalance_timeout_ms
                },
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(Self {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

fn put_string(buf: &mut BytesMut, s: &str) {
    // Names are bounded well below i16::MAX by the request decoder (int16-length strings).
    buf.put_i16(s.len().min(i16::MAX as usize) as i16);
    buf.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

/// Bounds-checked reads; never panics on short or hostile input. The flexible (compact)
/// reads of the consumer-group values are in [`super::consumer_records`].
pub(super) struct Reader<'a, 'b> {
    pub(super) buf: &'a mut &'b [u8],
    pub(super) what: &'static str,
}

impl Reader<'_, '_> {
    pub(super) fn need(&self, n: usize) -> Result<(), RecordError> {
        if self.buf.remaining() < n {
            return Err(RecordError::Truncated { what: self.what });
        }
        Ok(())
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }

    pub(super) fn i32(&mut self) -> Result<i32, RecordError> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        self.utf8(len as usize).map(Some)
    }

    /// The next `len` bytes as a UTF-8 string.
    pub(super) fn utf8(&mut self, len: usize) -> Result<String, RecordError> {
        self.need(len)?;
        let s = std::str::from_utf8(&self.buf[..len])
            .map_err(|_| RecordError::NotUtf8 { what: self.what })?
            .to_string();
        self.buf.advance(len);
        Ok(s)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }

    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        let len = len as usize;
        self.need(len)?;
        let b = Bytes::copy_from_slice(&self.buf[..len]);
        self.buf.advance(len);
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_key_and_value_round_trip_in_kafkas_layout() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        let bytes = key.encode();
        // version 1, "g", "t", partition 3
        assert_eq!(&bytes[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(RecordKey::decode(&bytes).unwrap(), key);
        let value = OffsetCommitValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "meta".into(),
            commit_timestamp: 1000,
        };
        let bytes = value.encode();
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(bytes.len(), 2 + 8 + 4 + 2 + 4 + 8);
        assert_eq!(OffsetCommitValue::decode(&bytes).unwrap(), value);
    }

    #[test]
    fn group_value_round_trips() {
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 99,
            members: vec![MemberMetadataValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let key = RecordKey::Group { group: "g".into() };
        assert_eq!(&key.encode()[..], &[0, 2, 0, 1, b'g']);
        assert_eq!(GroupMetadataValue::decode(&value.encode()).unwrap(), value);
    }

    #[test]
    fn old_offset_value_versions_decode() {
        // v1: offset, metadata, commit timestamp, expire timestamp
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        buf.put_i64(10);
        put_string(&mut buf, "m");
        buf.put_i64(5);
        buf.put_i64(6);
        let v = OffsetCommitValue::decode(&buf).unwrap();
        assert_eq!((v.offset, v.leader_epoch, v.commit_timestamp), (10, -1, 5));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(RecordKey::decode(&[]).is_err());
        assert!(RecordKey::decode(&[0, 1, 0, 9, b'x']).is_err());
        assert_eq!(
            RecordKey::decode(&[0, 99]).unwrap_err(),
            RecordError::UnknownVersion {
                what: "record key",
                version: 99
            }
        );
        assert!(
            GroupMetadataValue::decode(&[0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
        assert!(OffsetCommitValue::decode(&[0, 3, 1]).is_err());
    }
}
