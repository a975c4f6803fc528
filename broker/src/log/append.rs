//! Appends: the leader validates, checks producer sequences and assigns offsets; a follower
//! checks that what it fetched continues its log. Both then write through one path that
//! records leader epochs, rolls, writes, updates producer state and flushes.

use bytes::Bytes;

use super::batch::{
    set_base_offset, set_log_append_time, set_partition_leader_epoch, validate_produce_batches,
    validate_stored_header, verify_crc, RecordBatchHeader, RecordBatchIter, NO_TIMESTAMP,
};
use super::control::{control_record_type, encode_marker, ControlRecordType, TxnMarker};
use super::flush::PendingFlush;
use super::producer_state::ProducerCheck;
use super::transaction_index::AbortedTxn;
use super::{Log, LogAppendInfo, LogError, LogSegment, TimestampType};

/// Producer snapshots kept on disk; older ones only matter for truncations below them.
pub(super) const SNAPSHOTS_TO_KEEP: usize = 2;

impl Log {
    /// Appends a produce request's records as the partition leader.
    ///
    /// Validates every batch ([`super::batch::validate_produce_batches`]), checks idempotent
    /// producers' epochs and sequences (a duplicate of one of a producer's last 5 batches is
    /// not appended and is answered with its original offsets), assigns offsets from the log
    /// end, stamps `leader_epoch` (and the broker time for LogAppendTime topics), then writes
    /// them as `Log::append_batches` does.
    pub fn append_as_leader(
        &mut self,
        records: &Bytes,
        leader_epoch: i32,
    ) -> Result<LogAppendInfo, LogError> {
        self.ensure_open()?;
        validate_produce_batches(records, self.config.max_message_bytes)?;
        if self.config.cleanup_policy.compact {
            refuse_keyless_records(records)?;
        }
        if let Some(duplicate) = self.check_producers(records)? {
            return Ok(duplicate);
        }

        let now = self.clock.now_ms();
        // One copy of the request per append: the headers must be rewritten and the request's
        // buffer is shared. Only headers are touched, never records.
        let mut buf = records.to_vec();
        let log_append_time = match self.config.timestamp_type {
            TimestampType::LogAppendTime => now,
            TimestampType::CreateTime => NO_TIMESTAMP,
        };
        stamp_headers(
            &mut buf,
            self.log_end_offset(),
            leader_epoch,
            log_append_time,
        )?;
        self.append_batches(&buf, log_append_time, now)
    }

    /// Appends batches a coordinator built as the partition leader (Kafka's
    /// `AppendOrigin.COORDINATOR`): the group coordinator's transactional offset commits carry
    /// a producer id and epoch but no sequence, so sequences are not checked; a producer epoch
    /// older than the log's is still [`LogError::InvalidProducerEpoch`]. Offsets and leader
    /// epoch are assigned as for clients.
    pub fn append_as_coordinator(
        &mut self,
        records: &Bytes,
        leader_epoch: i32,
    ) -> Result<LogAppendInfo, LogError> {
        self.ensure_open()?;
        for item in RecordBatchIter::new(records) {
            let (header, range) = item?;
            if header.is_control() {
                return Err(LogError::InvalidBatch {
                    position: range.start as u64,
                    reason: "a coordinator writes data batches",
                });
            }
            if let Some(entry) = self.producer_state.producer(header.producer_id()) {
                if header.producer_epoch() < entry.epoch {
                    return Err(LogError::InvalidProducerEpoch {
                        producer_id: header.producer_id(),
                        epoch: header.producer_epoch(),
                        current_epoch: entry.epoch,
                    });
                }
            }
        }
        let now = self.clock.now_ms();
        let mut buf = records.to_vec();
        stamp_headers(&mut buf, self.log_end_offset(), leader_epoch, NO_TIMESTAMP)?;
        self.append_batches(&buf, NO_TIMESTAMP, now)
    }

    /// Appends a transaction marker as the partition leader (WriteTxnMarkers; Kafka's
    /// `appendAsLeader` with the coordinator as origin). A marker of an older producer epoch
    /// than known is [`LogError::InvalidProducerEpoch`]; one from an older coordinator than the
    /// producer's last marker is [`LogError::TransactionCoordinatorFenced`]. A marker for a
    /// producer without an open transaction is still written (a retried marker, or an abort
    /// of a transaction that never reached this partition), as Kafka does; it completes
    /// nothing.
    pub fn append_marker_as_leader(
        &mut self,
        marker: &TxnMarker,
        leader_epoch: i32,
    ) -> Result<LogAppendInfo, LogError> {
        self.ensure_open()?;
        if let Some(entry) = self.producer_state.producer(marker.producer_id) {
            if marker.producer_epoch < entry.epoch {
                return Err(LogError::InvalidProducerEpoch {
                    producer_id: marker.producer_id,
                    epoch: marker.producer_epoch,
                    current_epoch: entry.epoch,
                });
            }
            if marker.coordinator_epoch < entry.coordinator_epoch {
                return Err(LogError::TransactionCoordinatorFenced {
                    producer_id: marker.producer_id,
                    coordinator_epoch: marker.coordinator_epoch,
                    current: entry.coordinator_epoch,
                });
            }
        }
        let now = self.clock.now_ms();
        let mut buf = encode_marker(marker, now).to_vec();
        set_base_offset(&mut buf, self.log_end_offset());
        set_partition_leader_epoch(&mut buf, leader_epoch);
        let info = self.append_batches(&buf, NO_TIMESTAMP, now)?;
        self.producer_state
            .set_coordinator_epoch(marker.producer_id, marker.coordinator_epoch);
        Ok(info)
    }

    /// Appends batches a follower fetched from its leader, exactly as the leader stores them:
    /// offsets, leader epochs and timestamps are kept, not assigned.
    ///
    /// Every batch must be a whole v2 batch with a valid CRC-32C and a known codec, and the
    /// batches must continue the log: each starts at or after the log end offset and after
    /// the previous one, else [`LogError::UnexpectedAppendOffset`] (the fetcher lost its place;
    /// nothing is written). A gap is allowed, as in Kafka: a compacted leader no longer holds
    /// the offsets the cleaner removed. Producer sequences are not checked (the leader did)
    /// but producer state is updated, so this replica can take over as leader; `max.message.bytes`
    /// is not applied (the leader's setting may have just changed, as Kafka allows). Empty
    /// `records` append nothing.
    pub fn append_as_follower(&mut self, records: &Bytes) -> Result<LogAppendInfo, LogError> {
        self.ensure_open()?;
        let mut expected = self.log_end_offset();
        for item in RecordBatchIter::new(records) {
            let (header, range) = item?;
            let position = range.start as u64;
            verify_crc(&header, position)?;
            validate_stored_header(&header, position)?;
            if header.base_offset() < expected {
                return Err(LogError::UnexpectedAppendOffset {
                    position,
                    base_offset: header.base_offset(),
                    expected,
                });
            }
            expected = header.next_offset();
        }
        let now = self.clock.now_ms();
        self.append_batches(records, NO_TIMESTAMP, now)
    }

    /// Writes batches whose headers are final (offsets continuing the log end, leader epochs
    /// stamped), for leader and follower appends alike: assigns each new leader epoch in the
    /// epoch cache (before the data is written, so the cache never misses an epoch the log
    /// holds), rolls the active segment if it is full, too old or its index is full, appends,
    /// updates producer state, and fsyncs when `flush.messages`/`flush.ms` say so.
    fn append_batches(
        &mut self,
        batches: &[u8],
        log_append_time: i64,
        now: i64,
    ) -> Result<LogAppendInfo, LogError> {
        let first_offset = self.log_end_offset();
        let mut info = LogAppendInfo {
            first_offset,
            last_offset: first_offset - 1,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            log_append_time,
            log_start_offset: self.log_start_offset,
            records_count: 0,
            valid_bytes: batches.len() as u64,
            duplicate: false,
            leader_epoch: -1,
        };
        if batches.is_empty() {
            return Ok(info);
        }
        for item in RecordBatchIter::new(batches) {
            let (header, _) = item?;
            if header.max_timestamp() > info.max_timestamp {
                info.max_timestamp = header.max_timestamp();
                info.offset_of_max_timestamp = header.last_offset();
            }
            info.last_offset = header.last_offset();
            info.records_count += i64::from(header.records_count());
            let epoch = header.partition_leader_epoch();
            if epoch >= 0
                && self
                    .leader_epoch_cache
                    .assign(epoch, header.base_offset())?
            {
                self.defer_sync(self.leader_epoch_cache.path());
            }
        }

        if self.should_roll(batches.len() as u64, info.last_offset, now) {
            self.roll()?;
        }
        let index_interval_bytes = self.config.index_interval_bytes;
        self.active_mut()
            .append(batches, index_interval_bytes, now)?;
        for item in RecordBatchIter::new(batches) {
            let (header, range) = item?;
            let control = if header.is_control() {
                control_record_type(&header, range.start as u64)?
            } else {
                None
            };
            self.track_transaction(self.segments.len() - 1, &header, control)?;
        }
        self.unflushed_records += info.records_count;
        self.maybe_flush(now)?;
        Ok(info)
    }

    /// Feeds one appended or replayed batch to the producer state; the ABORT marker of a
    /// transaction adds it to the aborted-transaction index of `segment` (the marker's).
    pub(super) fn track_transaction(
        &mut self,
        segment: usize,
        header: &RecordBatchHeader<'_>,
        control: Option<ControlRecordType>,
    ) -> Result<(), LogError> {
        match self.producer_state.update(header, control) {
            Some(txn) if txn.aborted => self.segments[segment].txn_index_mut().append(AbortedTxn {
                producer_id: txn.producer_id,
                first_offset: txn.first_offset,
                last_offset: txn.last_offset,
                last_stable_offset: txn.last_stable_offset,
            }),
            _ => Ok(()),
        }
    }

    /// Checks every idempotent batch against the producer state (and the earlier batches of
    /// the same request). `Some` if the request is a duplicate, with the original offsets.
    fn check_producers(&self, records: &Bytes) -> Result<Option<LogAppendInfo>, LogError> {
        // (producer id, epoch, last sequence) of this request's earlier batches. Empty, and so
        // not allocated, unless a request carries several idempotent batches.
        let mut pending: Vec<(i64, i16, i32)> = Vec::new();
        let batches = RecordBatchIter::new(records);
        for item in batches {
            let (header, _) = item?;
            let producer_id = header.producer_id();
            if producer_id < 0 {
                continue;
            }
            let prior = pending
                .iter()
                .rev()
                .find(|p| p.0 == producer_id)
                .map(|p| (p.1, p.2));
            let check = self.producer_state.check_batch(&header, prior)?;
            tracing::trace!(
                dir = %self.dir.display(),
                producer_id,
                epoch = header.producer_epoch(),
                first_seq = header.base_sequence(),
                last_seq = header.last_sequence(),
                known = ?self.producer_state.producer(producer_id).map(|e| (e.epoch, e.last_seq())),
                ?check,
                log_end = self.log_end_offset(),
                "checked an idempotent batch"
            );
            match check {
                ProducerCheck::Duplicate(original) => {
                    return Ok(Some(LogAppendInfo {
                        first_offset: original.first_offset,
                        last_offset: original.last_offset,
                        max_timestamp: original.timestamp,
                        offset_of_max_timestamp: original.last_offset,
                        log_append_time: match self.config.timestamp_type {
                            TimestampType::LogAppendTime => original.timestamp,
                            TimestampType::CreateTime => NO_TIMESTAMP,
                        },
                        log_start_offset: self.log_start_offset,
                        records_count: original.last_offset - original.first_offset + 1,
                        valid_bytes: 0,
                        duplicate: true,
                        leader_epoch: -1,
                    }));
                }
                ProducerCheck::Append if records.len() > header.total_size() => {
                    pending.push((producer_id, header.producer_epoch(), header.last_sequence()));
                }
                ProducerCheck::Append => {}
            }
        }
        Ok(None)
    }

    /// Kafka's `shouldRoll`: the active segment is non-empty and would exceed `segment.bytes`,
    /// or is older than `segment.ms`, or an index is full, or `last_offset` would not fit a
    /// relative offset.
    fn should_roll(&self, append_bytes: u64, last_offset: i64, now_ms: i64) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        let too_big = active.size() + append_bytes > self.config.segment_bytes;
        let too_old = active
            .roll_base_ms()
            .is_some_and(|started| now_ms.saturating_sub(started) > self.config.segment_ms);
        let offset_overflow = last_offset - active.base_offset() > i64::from(i32::MAX);
        too_big || too_old || active.is_index_full() || offset_overflow
    }

    /// Starts a new active segment at the log end offset.
    ///
    /// The segments below it that are not known durable are *not* fsynced here, under the
    /// partition's write lock: as Kafka does, the roll queues their flush (with the directory's,
    /// for the new files) and the owner runs it off the lock ([`Log::take_pending_flushes`]);
    /// the recovery point moves to the new segment only when that flush completes, so a crash
    /// before it rescans the rolled segments too. Producer state is snapshotted at the new base
    /// offset, as Kafka does on roll.
    pub fn roll(&mut self) -> Result<(), LogError> {
        self.ensure_open()?;
        let new_base = self.log_end_offset();
        if self.active().is_empty() {
            return Ok(());
        }
        // Not fsynced here, under the partition's lock: the queued flush fsyncs it before the
        // recovery point reaches the new segment (as Kafka flushes a roll's snapshot with it).
        let snapshot = self.producer_state.take_snapshot_unsynced()?;
        self.defer_sync(&snapshot);
        self.producer_state
            .retain_latest_snapshots(SNAPSHOTS_TO_KEEP)?;
        let segment = LogSegment::create(&self.dir, new_base, self.config.segment_index_bytes)?;
        // Its index entries go to their files now (no fsync: the queued flush does that, and
        // it only fsyncs what is written).
        self.active_mut().release_index_memory()?;
        let recovery_point = self.recovery_point.get();
        let unflushed = self
            .segments
            .iter()
            .filter(|s| s.next_offset() > recovery_point)
            .map(LogSegment::files)
            .collect();
        self.segments.push(segment);
        self.dir_unsynced = true;
        self.pending_flushes.push(PendingFlush::new(
            &self.dir,
            unflushed,
            new_base,
            &self.recovery_point,
        ));
        tracing::debug!(dir = %self.dir.display(), base_offset = new_base, "rolled segment");
        Ok(())
    }

    /// fsyncs if records were appended and `flush.ms` passed since the last flush; for a
    /// periodic background task, so `flush.ms` holds even when appends stop. A no-op once
    /// closed.
    pub fn maybe_flush_by_time(&mut self) -> Result<(), LogError> {
        if self.closed {
            return Ok(());
        }
        let now_ms = self.clock.now_ms();
        if self.unflushed_records > 0
            && now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms
        {
            self.flush()?;
        }
        Ok(())
    }

    /// fsyncs if `flush.messages` records or `flush.ms` passed since the last flush.
    fn maybe_flush(&mut self, now_ms: i64) -> Result<(), LogError> {
        let by_count = self.unflushed_records >= self.config.flush_messages;
        let by_time = now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms;
        if by_count || by_time {
            self.flush_segments()?;
        }
        Ok(())
    }
}

/// The leader's header rewrite of whole batches about to be appended: base offsets from
/// `next_offset` on, `leader_epoch`, and the broker time for LogAppendTime topics
/// (`log_append_time`, or [`NO_TIMESTAMP`]).
fn stamp_headers(
    buf: &mut [u8],
    mut next_offset: i64,
    leader_epoch: i32,
    log_append_time: i64,
) -> Result<(), LogError> {
    let mut position = 0;
    while position < buf.len() {
        let size = RecordBatchHeader::parse(&buf[position..], position as u64)?.total_size();
        let batch = buf
            .get_mut(position..position + size)
            .ok_or(LogError::InvalidBatch {
                position: position as u64,
                reason: "a batch runs past the end of the request",
            })?;
        set_base_offset(batch, next_offset);
        set_partition_leader_epoch(batch, leader_epoch);
        if log_append_time != NO_TIMESTAMP {
            set_log_append_time(batch, log_append_time);
        }
        next_offset = RecordBatchHeader::parse(batch, position as u64)?.next_offset();
        position += size;
    }
    Ok(())
}

#[cfg(test)]
#[path = "append_tests.rs"]
mod tests;

/// Kafka's rule for compacted topics: every record needs a key (the cleaner could never
/// compact a keyless one). Decodes the request's records: a cost only compacted topics pay.
fn refuse_keyless_records(records: &Bytes) -> Result<(), LogError> {
    for item in RecordBatchIter::new(records) {
        let (header, range) = item?;
        let position = range.start as u64;
        let batch = records.slice(range);
        let decoded = super::cleaner::records::decode_batch(&batch)?;
        let keyless = super::cleaner::records::records(&header, &decoded.records)?
            .iter()
            .any(|r| r.key.is_none());
        if keyless {
            return Err(LogError::KeylessRecordInCompactedTopic { position });
        }
    }
    Ok(())
}
