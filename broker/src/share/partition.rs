//! One share partition: the records of a topic partition as one share group consumes them.
//! Kafka's `SharePartition`.
//!
//! The partition leader keeps a window of **in-flight** records per share group:
//!
//! ```text
//!   log:   ... done ... | SPSO ................................. SPEO | not fetched yet ...
//!                        |<--------- in-flight window (<= max record locks) --------->|
//! ```
//!
//! Every offset below the share-partition start offset (SPSO) is done (acknowledged or
//! archived). Every offset from SPSO up to `next_offset` (the share-partition end offset SPEO
//! plus one) has a [`DeliveryState`] and a delivery count; offsets from `next_offset` on were
//! never handed out. A record moves
//!
//! ```text
//!   AVAILABLE --acquire (count+1, lock)--> ACQUIRED --ACCEPT--> ACKNOWLEDGED
//!       ^                                   |  |  |
//!       +--RELEASE or lock expiry ----------+  |  +--REJECT / gap--> ARCHIVED
//!          (ARCHIVED instead once the count reached group.share.delivery.count.limit)
//! ```
//!
//! and SPSO moves over the leading records that are ACKNOWLEDGED or ARCHIVED, which leave the
//! window. Pure: the caller reads the log, passes the current time in, and persists
//! [`SharePartition::state_batches`]. Thread-safety: none of its own; the owner holds it
//! behind a mutex.
//!
//! Kafka keeps in-flight state per batch and splits a batch into per-offset state on a partial
//! acknowledgement; this keeps it per offset (the window is bounded by
//! `group.share.partition.max.record.locks`), which gives the same answers with less code.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

/// `group.share.record.lock.duration.ms` default.
pub const DEFAULT_RECORD_LOCK_DURATION_MS: i64 = 30_000;
/// `group.share.delivery.count.limit` default.
pub const DEFAULT_DELIVERY_COUNT_LIMIT: i16 = 5;
/// `group.share.partition.max.record.locks` default (Kafka 4.1 on).
pub const DEFAULT_MAX_RECORD_LOCKS: usize = 2_000;

/// The settings a share partition obeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartitionConfig {
    /// `group.share.record.lock.duration.ms`: how long an acquired record stays locked to its
    /// member before it is released on its own.
    pub record_lock_duration_ms: i64,
    /// `group.share.delivery.count.limit`: a record released after this many deliveries is
    /// archived instead.
    pub delivery_count_limit: i16,
    /// `group.share.partition.max.record.locks`: the most offsets in the in-flight window.
    pub max_record_locks: usize,
}

impl SharePartitionConfig {
    /// The settings in force.
    pub fn from_broker(config: &crate::config::BrokerConfig) -> Self {
        Self {
            record_lock_duration_ms: config.group_share("group.share.record.lock.duration.ms"),
            delivery_count_limit: config.group_share("group.share.delivery.count.limit") as i16,
            max_record_locks: config.group_share("group.share.partition.max.record.locks") as usize,
        }
    }
}

impl Default for SharePartitionConfig {
    fn default() -> Self {
        Self {
            record_lock_duration_ms: DEFAULT_RECORD_LOCK_DURATION_MS,
            delivery_count_limit: DEFAULT_DELIVERY_COUNT_LIMIT,
            max_record_locks: DEFAULT_MAX_RECORD_LOCKS,
        }
    }
}

/// The state of an in-flight record, with Kafka's codes (`RecordState`, also the
/// `DeliveryState` of the `__share_group_state` records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Free to be acquired.
    Available,
    /// Handed to one member, locked until it acknowledges or the lock runs out.
    Acquired,
    /// Processed: never delivered again.
    Acknowledged,
    /// Rejected, a gap, or out of deliveries: never delivered again.
    Archived,
}

impl DeliveryState {
    /// Kafka's code of the state.
    pub fn code(self) -> i8 {
        match self {
            DeliveryState::Available => 0,
            DeliveryState::Acquired => 1,
            DeliveryState::Acknowledged => 2,
            DeliveryState::Archived => 4,
        }
    }

    /// The state of a code read back from `__share_group_state`. ACQUIRED is never persisted
    /// as such (a lock does not survive its leader), so it reads back as AVAILABLE.
    pub fn from_persisted(code: i8) -> Option<DeliveryState> {
        match code {
            0 | 1 => Some(DeliveryState::Available),
            2 => Some(DeliveryState::Acknowledged),
            4 => Some(DeliveryState::Archived),
            _ => None,
        }
    }

    /// Whether the record is done with: SPSO may move over it.
    fn is_terminal(self) -> bool {
        matches!(self, DeliveryState::Acknowledged | DeliveryState::Archived)
    }
}

/// What a member says of records it acquired (ShareFetch/ShareAcknowledge `AcknowledgeTypes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcknowledgeType {
    /// 0: the offset is not a record (a control record, or a gap left by compaction).
    Gap,
    /// 1: processed.
    Accept,
    /// 2: give it back for another delivery.
    Release,
    /// 3: unprocessable, never deliver again.
    Reject,
    /// 4: keep it, with a fresh acquisition lock (KIP-1222).
    Renew,
}

impl AcknowledgeType {
    /// The type of a wire code.
    pub fn from_code(code: i8) -> Option<AcknowledgeType> {
        match code {
            0 => Some(AcknowledgeType::Gap),
            1 => Some(AcknowledgeType::Accept),
            2 => Some(AcknowledgeType::Release),
            3 => Some(AcknowledgeType::Reject),
            4 => Some(AcknowledgeType::Renew),
            _ => None,
        }
    }
}

/// A run of offsets handed to a member (ShareFetch `AcquiredRecords`): every offset from
/// `first_offset` to `last_offset` inclusive, each delivered for the `delivery_count`th time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquiredRecords {
    /// The first acquired offset.
    pub first_offset: i64,
    /// The last acquired offset (inclusive).
    pub last_offset: i64,
    /// How often these records have been delivered, this time included.
    pub delivery_count: i16,
}

/// Appends `run` to `runs`, merged into the last run when it follows it with the same
/// delivery count (as ShareFetch's `AcquiredRecords` are best sent).
pub fn push_run(runs: &mut Vec<AcquiredRecords>, run: AcquiredRecords) {
    match runs.last_mut() {
        Some(last)
            if last.last_offset + 1 == run.first_offset
                && last.delivery_count == run.delivery_count =>
        {
            last.last_offset = run.last_offset
        }
        _ => runs.push(run),
    }
}

/// A run of offsets with one state and delivery count, as the `StateBatches` of Kafka's
/// ShareSnapshot and ShareUpdate records store them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    /// The first offset.
    pub first_offset: i64,
    /// The last offset (inclusive).
    pub last_offset: i64,
    /// Kafka's code of the state ([`DeliveryState::code`]; ACQUIRED is written as AVAILABLE).
    pub delivery_state: i8,
    /// The delivery count.
    pub delivery_count: i16,
}

/// A refused acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharePartitionError {
    /// An offset of the range is not acquired by this member (never acquired, acknowledged
    /// already, its lock expired, or another member holds it).
    #[error("offset {offset} is not acquired by member {member_id}")]
    InvalidRecordState {
        /// The first offending offset.
        offset: i64,
        /// The acknowledging member.
        member_id: String,
    },
    /// The acknowledgement batch itself is malformed.
    #[error("invalid acknowledgement batch {first_offset}..={last_offset}: {reason}")]
    InvalidRequest {
        /// The batch's first offset.
        first_offset: i64,
        /// The batch's last offset.
        last_offset: i64,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl SharePartitionError {
    /// Kafka's error code for the client.
    pub fn code(&self) -> i16 {
        match self {
            SharePartitionError::InvalidRecordState { .. } => {
                ResponseError::InvalidRecordState.code()
            }
            SharePartitionError::InvalidRequest { .. } => ResponseError::InvalidRequest.code(),
        }
    }
}

/// One in-flight offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlightRecord {
    state: DeliveryState,
    delivery_count: i16,
    /// The holder while ACQUIRED.
    member_id: Option<String>,
    /// When the acquisition lock runs out, while ACQUIRED.
    lock_expires_ms: i64,
}

impl InFlightRecord {
    fn available(delivery_count: i16) -> Self {
        Self {
            state: DeliveryState::Available,
            delivery_count,
            member_id: None,
            lock_expires_ms: 0,
        }
    }
}

/// Counters of what happened to the partition's records, for the `weir_share_*` metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharePartitionStats {
    /// Records acquired.
    pub acquired: u64,
    /// Records acquired again after an earlier delivery.
    pub redeliveries: u64,
    /// Records archived (rejected, gaps, or out of deliveries).
    pub archived: u64,
    /// Acquisition locks that ran out.
    pub lock_timeouts: u64,
}

/// One share group's state of one partition; see the module docs. Invariants: every key of
/// `records` lies in `start_offset..next_offset`; the record at `start_offset`, if any, is not
/// terminal; `next_offset - start_offset <= max_record_locks` unless loaded that way.
#[derive(Debug, Clone)]
pub struct SharePartition {
    config: SharePartitionConfig,
    /// SPSO.
    start_offset: i64,
    /// SPEO + 1: the first offset never handed out.
    next_offset: i64,
    /// The in-flight window. An offset of the window missing here was never acquired (a
    /// loaded snapshot need not cover every offset): AVAILABLE with delivery count 0.
    records: BTreeMap<i64, InFlightRecord>,
    /// The leader epoch the state was written under (`__share_group_state`).
    pub leader_epoch: i32,
    /// The state epoch: bumped on every snapshot rewrite.
    pub state_epoch: i32,
    stats: SharePartitionStats,
}

impl SharePartition {
    /// A share partition nobody consumed yet, starting at `start_offset` (where
    /// `share.auto.offset.reset` puts it: the high watermark for `latest`, the log start for
    /// `earliest`).
    pub fn new(config: SharePartitionConfig, start_offset: i64) -> Self {
        Self {
            config,
            start_offset,
            next_offset: start_offset,
            records: BTreeMap::new(),
            leader_epoch: 0,
            state_epoch: 0,
            stats: SharePartitionStats::default(),
        }
    }

    /// The partition as persisted: SPSO and the state batches of its in-flight window.
    /// Records that were ACQUIRED when it was written are AVAILABLE again, with their delivery
    /// count, so a new leader redelivers them.
    pub fn from_state(
        config: SharePartitionConfig,
        start_offset: i64,
        batches: &[StateBatch],
    ) -> Self {
        let mut partition = Self::new(config, start_offset);
        for batch in batches {
            let state = DeliveryState::from_persisted(batch.delivery_state)
                .unwrap_or(DeliveryState::Available);
            for offset in batch.first_offset.max(start_offset)..=batch.last_offset {
                let mut record = InFlightRecord::available(batch.delivery_count);
                record.state = state;
                partition.records.insert(offset, record);
                partition.next_offset = partition.next_offset.max(offset + 1);
            }
        }
        partition.advance_start_offset();
        partition
    }

    /// SPSO: every offset below it is done.
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// SPEO, Kafka's share-partition end offset: the last offset of the in-flight window
    /// (SPSO when the window is empty).
    pub fn end_offset(&self) -> i64 {
        (self.next_offset - 1).max(self.start_offset)
    }

    /// The settings.
    pub fn config(&self) -> &SharePartitionConfig {
        &self.config
    }

    /// Replaces the settings (a group config changed); locks already taken keep their expiry.
    pub fn set_config(&mut self, config: SharePartitionConfig) {
        self.config = config;
    }

    /// The counters for metrics.
    pub fn stats(&self) -> SharePartitionStats {
        self.stats
    }

    /// The state and delivery count of `offset` (tests, DescribeShareGroupOffsets).
    pub fn state_of(&self, offset: i64) -> Option<(DeliveryState, i16)> {
        if offset < self.start_offset {
            return Some((DeliveryState::Acknowledged, 0));
        }
        if offset >= self.next_offset {
            return None;
        }
        Some(
            self.records
                .get(&offset)
                .map_or((DeliveryState::Available, 0), |r| {
                    (r.state, r.delivery_count)
                }),
        )
    }

    /// Records ACQUIRED now (the in-flight records metric).
    pub fn acquired_count(&self) -> usize {
        self.records
            .values()
            .filter(|r| r.state == DeliveryState::Acquired)
            .count()
    }

    /// Where the leader should read the log for the next acquisition: the first AVAILABLE
    /// offset of the window, else the first offset never handed out while the window has room.
    /// `None` when nothing can be acquired now.
    pub fn fetch_offset(&self) -> Option<i64> {
        let available = (self.start_offset..self.next_offset).find(|offset| {
            self.records
                .get(offset)
                .is_none_or(|r| r.state == DeliveryState::Available)
        });
        available.or_else(|| self.window_has_room().then_some(self.next_offset))
    }

    /// The record at `offset` of the window (at or above SPSO), the window growing to it while
    /// it has room; `None` past a full window.
    fn window_entry(&mut self, offset: i64) -> Option<&mut InFlightRecord> {
        if offset >= self.next_offset {
            if !self.window_has_room() {
                return None;
            }
            self.next_offset = offset + 1;
        }
        Some(
            self.records
                .entry(offset)
                .or_insert_with(|| InFlightRecord::available(0)),
        )
    }

    fn window_has_room(&self) -> bool {
        ((self.next_offset - self.start_offset) as usize) < self.config.max_record_locks
    }

    /// Acquires for `member_id` up to `max_records` AVAILABLE or never handed out offsets
    /// among `first_offset..=last_offset`, the offsets of the batches the leader read from the
    /// log (committed data only). New offsets join the window only while it has room. Offsets
    /// between the window's end and `first_offset` are not in the log (compacted, deleted, or
    /// the read started at a later batch) and are archived, unless the window is full: then
    /// they are the rest of a read the window had no room for, and nothing happens. Returns
    /// the acquired runs.
    pub fn acquire(
        &mut self,
        member_id: &str,
        first_offset: i64,
        last_offset: i64,
        max_records: usize,
        now_ms: i64,
    ) -> Vec<AcquiredRecords> {
        if first_offset > self.next_offset {
            if !self.window_has_room() {
                // Not a gap: the window filled up on an earlier batch of the same read, and
                // the offsets between are in the log, waiting for room.
                return Vec::new();
            }
            for offset in self.next_offset..first_offset {
                self.records.insert(
                    offset,
                    InFlightRecord {
                        state: DeliveryState::Archived,
                        ..InFlightRecord::available(0)
                    },
                );
            }
            self.next_offset = first_offset;
            self.advance_start_offset();
        }
        let lock_expires_ms = now_ms.saturating_add(self.config.record_lock_duration_ms);
        let mut acquired: Vec<AcquiredRecords> = Vec::new();
        let mut count = 0;
        for offset in first_offset.max(self.start_offset)..=last_offset {
            if count >= max_records {
                break;
            }
            let Some(record) = self.window_entry(offset) else {
                break;
            };
            if record.state != DeliveryState::Available {
                continue;
            }
            let redelivery = record.delivery_count > 0;
            record.state = DeliveryState::Acquired;
            record.delivery_count = record.delivery_count.saturating_add(1);
            record.member_id = Some(member_id.to_string());
            record.lock_expires_ms = lock_expires_ms;
            let run = AcquiredRecords {
                first_offset: offset,
                last_offset: offset,
                delivery_count: record.delivery_count,
            };
            self.stats.redeliveries += u64::from(redelivery);
            self.stats.acquired += 1;
            count += 1;
            push_run(&mut acquired, run);
        }
        acquired
    }

    /// Archives the offsets of `first_offset..=last_offset` that no member holds and were not
    /// acknowledged: a control batch (transaction marker), which is never delivered. New
    /// offsets join the window while it has room.
    pub fn archive_range(&mut self, first_offset: i64, last_offset: i64) {
        for offset in first_offset.max(self.start_offset)..=last_offset {
            let Some(record) = self.window_entry(offset) else {
                break;
            };
            if record.state == DeliveryState::Available {
                record.state = DeliveryState::Archived;
            }
        }
        self.advance_start_offset();
    }

    /// Applies `member_id`'s acknowledgement of `first_offset..=last_offset`: one type for the
    /// whole range, or one per offset. All or nothing: every offset must be ACQUIRED by the
    /// member, else nothing changes. Returns whether SPSO moved.
    pub fn acknowledge(
        &mut self,
        member_id: &str,
        first_offset: i64,
        last_offset: i64,
        types: &[AcknowledgeType],
        now_ms: i64,
    ) -> Result<bool, SharePartitionError> {
        let invalid = |reason| SharePartitionError::InvalidRequest {
            first_offset,
            last_offset,
            reason,
        };
        if first_offset > last_offset {
            return Err(invalid("the first offset is past the last"));
        }
        let span = (last_offset - first_offset + 1) as usize;
        if types.len() != 1 && types.len() != span {
            return Err(invalid("one acknowledge type, or one per offset"));
        }
        for offset in first_offset..=last_offset {
            let held = self.records.get(&offset).is_some_and(|r| {
                r.state == DeliveryState::Acquired && r.member_id.as_deref() == Some(member_id)
            });
            if !held {
                return Err(SharePartitionError::InvalidRecordState {
                    offset,
                    member_id: member_id.to_string(),
                });
            }
        }
        let lock_expires_ms = now_ms.saturating_add(self.config.record_lock_duration_ms);
        for (i, offset) in (first_offset..=last_offset).enumerate() {
            let ack = if types.len() == 1 { types[0] } else { types[i] };
            match ack {
                AcknowledgeType::Accept => self.finish(offset, DeliveryState::Acknowledged),
                AcknowledgeType::Reject | AcknowledgeType::Gap => {
                    self.finish(offset, DeliveryState::Archived)
                }
                AcknowledgeType::Release => self.release(offset),
                AcknowledgeType::Renew => {
                    if let Some(record) = self.records.get_mut(&offset) {
                        record.lock_expires_ms = lock_expires_ms;
                    }
                }
            }
        }
        Ok(self.advance_start_offset())
    }

    /// Releases every record whose acquisition lock ran out by `now_ms`. Returns how many.
    pub fn expire_locks(&mut self, now_ms: i64) -> usize {
        let expired = self.release_acquired(|r| r.lock_expires_ms <= now_ms);
        self.stats.lock_timeouts += expired as u64;
        expired
    }

    /// Releases what `member_id` holds (it left the group or its share session closed).
    /// Returns how many records.
    ///
    /// As Kafka's `releaseAcquiredRecords`, this acquisition does not count as a delivery:
    /// records a member still held when its session ended were fetched but never handed to
    /// an application (a client prefetches), so their delivery count goes back by one. Without
    /// that, records prefetched by consumers that come and go reach the delivery count limit
    /// and are archived without anyone having processed them.
    pub fn release_member(&mut self, member_id: &str) -> usize {
        for record in self.records.values_mut() {
            if record.state == DeliveryState::Acquired
                && record.member_id.as_deref() == Some(member_id)
            {
                record.delivery_count = record.delivery_count.saturating_sub(1).max(0);
            }
        }
        self.release_acquired(|r| r.member_id.as_deref() == Some(member_id))
    }

    /// Releases the ACQUIRED records `which` selects; how many.
    fn release_acquired(&mut self, which: impl Fn(&InFlightRecord) -> bool) -> usize {
        let chosen: Vec<i64> = self
            .records
            .iter()
            .filter(|(_, r)| r.state == DeliveryState::Acquired && which(r))
            .map(|(offset, _)| *offset)
            .collect();
        for offset in &chosen {
            self.release(*offset);
        }
        self.advance_start_offset();
        chosen.len()
    }

    /// The earliest acquisition lock expiry, for the leader's timer.
    pub fn next_lock_expiry(&self) -> Option<i64> {
        self.records
            .values()
            .filter(|r| r.state == DeliveryState::Acquired)
            .map(|r| r.lock_expires_ms)
            .min()
    }

    /// Moves SPSO to `offset` (the log start moved past it, or an admin reset the group's
    /// offsets): everything in flight below it is dropped; moving back forgets the window.
    pub fn reset_start_offset(&mut self, offset: i64) {
        if offset < self.start_offset || offset >= self.next_offset {
            self.records.clear();
            self.start_offset = offset;
            self.next_offset = offset;
        } else {
            self.records = self.records.split_off(&offset);
            self.start_offset = offset;
            self.advance_start_offset();
        }
    }

    /// The window as Kafka's ShareSnapshot stores it: runs of offsets with one persisted state
    /// and delivery count, ACQUIRED written as AVAILABLE (a lock dies with its leader).
    pub fn state_batches(&self) -> Vec<StateBatch> {
        let mut batches: Vec<StateBatch> = Vec::new();
        for offset in self.start_offset..self.next_offset {
            let (state, delivery_count) = self
                .records
                .get(&offset)
                .map_or((DeliveryState::Available, 0), |r| {
                    (r.state, r.delivery_count)
                });
            let delivery_state = match state {
                DeliveryState::Acquired => DeliveryState::Available.code(),
                other => other.code(),
            };
            match batches.last_mut() {
                Some(b)
                    if b.delivery_state == delivery_state && b.delivery_count == delivery_count =>
                {
                    b.last_offset = offset
                }
                _ => batches.push(StateBatch {
                    first_offset: offset,
                    last_offset: offset,
                    delivery_state,
                    delivery_count,
                }),
            }
        }
        batches
    }

    fn finish(&mut self, offset: i64, state: DeliveryState) {
        if let Some(record) = self.records.get_mut(&offset) {
            if state == DeliveryState::Archived {
                self.stats.archived += 1;
            }
            record.state = state;
            record.member_id = None;
        }
    }

    /// Back to AVAILABLE, or ARCHIVED when it used up its deliveries.
    fn release(&mut self, offset: i64) {
        let limit = self.config.delivery_count_limit;
        let Some(record) = self.records.get_mut(&offset) else {
            return;
        };
        if record.delivery_count >= limit {
            self.finish(offset, DeliveryState::Archived);
        } else {
            record.state = DeliveryState::Available;
            record.member_id = None;
        }
    }

    /// Moves SPSO over the leading terminal records. Returns whether it moved.
    fn advance_start_offset(&mut self) -> bool {
        let before = self.start_offset;
        while self.start_offset < self.next_offset {
            match self.records.get(&self.start_offset) {
                Some(record) if record.state.is_terminal() => {
                    self.records.remove(&self.start_offset);
                    self.start_offset += 1;
                }
                _ => break,
            }
        }
        self.start_offset != before
    }
}
