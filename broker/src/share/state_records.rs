//! The records of `__share_group_state`, after Kafka's share coordinator schemas
//! (`ShareSnapshotKey`/`ShareSnapshotValue`, `ShareUpdateKey`/`ShareUpdateValue`), and
//! [`ShareState`], the persisted state of one share partition they replay into.
//!
//! | record | key | value |
//! | --- | --- | --- |
//! | ShareSnapshot | type 0: group, topic id, partition | v0: snapshot epoch, state epoch, leader epoch, start offset, create and write timestamps, state batches |
//! | ShareUpdate | type 1: group, topic id, partition | v0: snapshot epoch, leader epoch, start offset, state batches |
//!
//! A key starts with its int16 record type, then the group as an int16-length string, the
//! topic id's 16 bytes and the partition as int32. A value starts with its int16 version and
//! is encoded as Kafka's flexible versions are: compact arrays (unsigned varint length + 1)
//! and an empty tagged-field section after each struct. The meaning is Kafka's; byte
//! compatibility with Kafka's own decoders is not tested.
//!
//! A snapshot holds the whole state; an update holds state batches that overlay it (offsets
//! below the new start offset drop out). The share coordinator writes an update per write and
//! a snapshot every `share.coordinator.snapshot.update.records.per.snapshot` updates. Weir's
//! share-partition leader sends its whole in-flight window with every write, so the latest
//! snapshot and the latest update of a key are all a replay needs: that is why the topic can
//! be compacted (Kafka, whose updates carry only the changed batches, prunes with
//! DeleteRecords instead).

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::partition::StateBatch;

/// Record type of a ShareSnapshot key.
const SNAPSHOT_TYPE: i16 = 0;
/// Record type of a ShareUpdate key.
const UPDATE_TYPE: i16 = 1;

/// A `__share_group_state` record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateRecordError {
    /// The bytes ended before a field.
    #[error("{what} is truncated")]
    Truncated {
        /// Which schema was being read.
        what: &'static str,
    },
    /// A record type or value version this broker does not read.
    #[error("{what} has unknown type or version {version}")]
    Unknown {
        /// Which schema was being read.
        what: &'static str,
        /// The type or version found.
        version: i16,
    },
}

/// The key of a share partition's records: Kafka's `SharePartitionKey`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharePartitionKey {
    /// The share group.
    pub group_id: String,
    /// The topic id.
    pub topic_id: Uuid,
    /// The partition index.
    pub partition: i32,
}

impl SharePartitionKey {
    /// Kafka's coordinator key, `group:topicId:partition`, hashed to pick the
    /// `__share_group_state` partition.
    pub fn coordinator_key(&self) -> String {
        format!("{}:{}:{}", self.group_id, self.topic_id, self.partition)
    }
}

/// A decoded record: the key and whether it is a snapshot or an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRecord {
    /// A ShareSnapshot: the whole state.
    Snapshot(ShareState),
    /// A ShareUpdate: batches over the last snapshot.
    Update(ShareUpdate),
}

/// The values of a ShareUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareUpdate {
    /// The snapshot it applies on.
    pub snapshot_epoch: i32,
    /// The share-partition leader's epoch.
    pub leader_epoch: i32,
    /// The new SPSO, or -1: unchanged.
    pub start_offset: i64,
    /// The batches that changed.
    pub batches: Vec<StateBatch>,
}

/// The persisted state of one share partition, as the share coordinator holds it and a
/// ShareSnapshot stores it. Invariant: `batches` are sorted, disjoint, and at or above
/// `start_offset`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareState {
    /// Bumped on every snapshot written.
    pub snapshot_epoch: i32,
    /// The state epoch (bumped when an admin resets the state).
    pub state_epoch: i32,
    /// The leader epoch of the last write (older writes are fenced).
    pub leader_epoch: i32,
    /// SPSO.
    pub start_offset: i64,
    /// When the snapshot was taken (ms).
    pub write_timestamp: i64,
    /// The in-flight window.
    pub batches: Vec<StateBatch>,
}

impl ShareState {
    /// Applies an update: the start offset moves (unless -1), offsets below it drop out, and
    /// the update's batches replace the states of the offsets they cover.
    pub fn apply_update(&mut self, update: &ShareUpdate) {
        if update.start_offset >= 0 {
            self.start_offset = update.start_offset;
        }
        self.leader_epoch = self.leader_epoch.max(update.leader_epoch);
        let mut offsets: BTreeMap<i64, (i8, i16)> = BTreeMap::new();
        for b in self.batches.iter().chain(&update.batches) {
            for offset in b.first_offset.max(self.start_offset)..=b.last_offset {
                offsets.insert(offset, (b.delivery_state, b.delivery_count));
            }
        }
        self.batches = runs(offsets);
    }
}

/// Offsets with their state and count, merged into runs.
fn runs(offsets: BTreeMap<i64, (i8, i16)>) -> Vec<StateBatch> {
    let mut out: Vec<StateBatch> = Vec::new();
    for (offset, (delivery_state, delivery_count)) in offsets {
        match out.last_mut() {
            Some(b)
                if b.last_offset + 1 == offset
                    && b.delivery_state == delivery_state
                    && b.delivery_count == delivery_count =>
            {
                b.last_offset = offset
            }
            _ => out.push(StateBatch {
                first_offset: offset,
                last_offset: offset,
                delivery_state,
                delivery_count,
            }),
        }
    }
    out
}

/// The key of a snapshot (`snapshot`) or an update record of `key`.
pub fn encode_key(key: &SharePartitionKey, snapshot: bool) -> Bytes {
    let mut b = BytesMut::with_capacity(24 + key.group_id.len());
    b.put_i16(if snapshot { SNAPSHOT_TYPE } else { UPDATE_TYPE });
    b.put_i16(key.group_id.len() as i16);
    b.put_slice(key.group_id.as_bytes());
    b.put_slice(key.topic_id.as_bytes());
    b.put_i32(key.partition);
    b.freeze()
}

/// A ShareSnapshot value.
pub fn encode_snapshot(state: &ShareState) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(state.snapshot_epoch);
    b.put_i32(state.state_epoch);
    b.put_i32(state.leader_epoch);
    b.put_i64(state.start_offset);
    b.put_i64(state.write_timestamp);
    b.put_i64(state.write_timestamp);
    put_batches(&mut b, &state.batches);
    b.put_u8(0);
    b.freeze()
}

/// A ShareUpdate value.
pub fn encode_update(update: &ShareUpdate) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(update.snapshot_epoch);
    b.put_i32(update.leader_epoch);
    b.put_i64(update.start_offset);
    put_batches(&mut b, &update.batches);
    b.put_u8(0);
    b.freeze()
}

/// Decodes a record; `Ok(None)` for a tombstone (the state was deleted).
pub fn decode(
    mut key: &[u8],
    value: Option<&[u8]>,
) -> Result<(SharePartitionKey, Option<StateRecord>), StateRecordError> {
    let what = "__share_group_state key";
    need(key, 4, what)?;
    let kind = key.get_i16();
    if kind != SNAPSHOT_TYPE && kind != UPDATE_TYPE {
        return Err(StateRecordError::Unknown {
            what,
            version: kind,
        });
    }
    let len = key.get_i16().max(0) as usize;
    need(key, len + 20, what)?;
    let group_id = String::from_utf8_lossy(&key[..len]).into_owned();
    key.advance(len);
    let topic_id =
        Uuid::from_slice(&key[..16]).map_err(|_| StateRecordError::Truncated { what })?;
    key.advance(16);
    let partition = key.get_i32();
    let id = SharePartitionKey {
        group_id,
        topic_id,
        partition,
    };
    let Some(mut value) = value else {
        return Ok((id, None));
    };
    let what = if kind == SNAPSHOT_TYPE {
        "ShareSnapshotValue"
    } else {
        "ShareUpdateValue"
    };
    need(value, 2, what)?;
    let version = value.get_i16();
    if version != 0 {
        return Err(StateRecordError::Unknown { what, version });
    }
    let record = if kind == SNAPSHOT_TYPE {
        need(value, 36, what)?;
        let snapshot_epoch = value.get_i32();
        let state_epoch = value.get_i32();
        let leader_epoch = value.get_i32();
        let start_offset = value.get_i64();
        let _create_timestamp = value.get_i64();
        let write_timestamp = value.get_i64();
        StateRecord::Snapshot(ShareState {
            snapshot_epoch,
            state_epoch,
            leader_epoch,
            start_offset,
            write_timestamp,
            batches: get_batches(&mut value, what)?,
        })
    } else {
        need(value, 16, what)?;
        StateRecord::Update(ShareUpdate {
            snapshot_epoch: value.get_i32(),
            leader_epoch: value.get_i32(),
            start_offset: value.get_i64(),
            batches: get_batches(&mut value, what)?,
        })
    };
    Ok((id, Some(record)))
}

fn need(buf: &[u8], n: usize, what: &'static str) -> Result<(), StateRecordError> {
    if buf.len() < n {
        return Err(StateRecordError::Truncated { what });
    }
    Ok(())
}

fn put_varint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn get_varint(buf: &mut &[u8], what: &'static str) -> Result<u32, StateRecordError> {
    let mut v = 0u32;
    for shift in (0..35).step_by(7) {
        need(buf, 1, what)?;
        let byte = buf.get_u8();
        v |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(StateRecordError::Truncated { what })
}

fn put_batches(b: &mut BytesMut, batches: &[StateBatch]) {
    put_varint(b, batches.len() as u32 + 1);
    for batch in batches {
        b.put_i64(batch.first_offset);
        b.put_i64(batch.last_offset);
        b.put_i8(batch.delivery_state);
        b.put_i16(batch.delivery_count);
        b.put_u8(0);
    }
}

/// Skips an empty-or-not tagged-field section.
fn skip_tags(buf: &mut &[u8], what: &'static str) -> Result<(), StateRecordError> {
    let count = get_varint(buf, what)?;
    for _ in 0..count {
        let _tag = get_varint(buf, what)?;
        let size = get_varint(buf, what)? as usize;
        need(buf, size, what)?;
        buf.advance(size);
    }
    Ok(())
}

fn get_batches(buf: &mut &[u8], what: &'static str) -> Result<Vec<StateBatch>, StateRecordError> {
    let n = get_varint(buf, what)?.saturating_sub(1) as usize;
    let mut batches = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        need(buf, 19, what)?;
        batches.push(StateBatch {
            first_offset: buf.get_i64(),
            last_offset: buf.get_i64(),
            delivery_state: buf.get_i8(),
            delivery_count: buf.get_i16(),
        });
        skip_tags(buf, what)?;
    }
    skip_tags(buf, what)?;
    Ok(batches)
}
