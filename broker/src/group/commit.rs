//! OffsetCommit and OffsetFetch on the coordinator: a commit is appended under the group's
//! lock, waits for the in-sync replicas without it, and only then becomes what OffsetFetch
//! answers (see [`super::offsets`] for why).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;

use super::classic::{Group, TopicPartition};
use super::coordinator::GroupCoordinator;
use super::operations::code;
use super::records::{OffsetCommitValue, RecordKey};
use crate::log::Appended;
use crate::partition::Partition;

/// One error code per partition of an OffsetCommit.
type CommitCodes = Vec<(TopicPartition, i16)>;

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    /// Topic and partition.
    pub partition: TopicPartition,
    /// The next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: Option<String>,
}

/// One partition in OffsetFetch's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchedOffset {
    /// The committed offset.
    Committed(OffsetCommitValue),
    /// Nothing committed.
    None,
    /// A commit waits for replication and the request asked for stable offsets:
    /// UNSTABLE_OFFSET_COMMIT, the client asks again.
    Unstable,
}

/// Commits appended to `__consumer_offsets` and waiting for the in-sync replicas. Dropped
/// without [`PendingCommit::finish`] (the request was abandoned), it still ends the commits:
/// applied if the high watermark already passed them, else only no longer pending.
struct PendingCommit {
    group: Arc<Mutex<Group>>,
    offsets: Vec<(TopicPartition, OffsetCommitValue)>,
    /// The batch's last record and the leader epoch it was appended in.
    appended: Appended,
    /// The group's `__consumer_offsets` partition, whose high watermark decides when dropped
    /// unfinished.
    log: Option<Arc<Partition>>,
}

impl PendingCommit {
    /// Ends the commits: applied if `replicated`, else only no longer pending. Leaves
    /// nothing for [`Drop`] to do.
    fn finish(mut self, replicated: bool) {
        self.end(replicated);
    }

    fn end(&mut self, replicated: bool) {
        let offsets = std::mem::take(&mut self.offsets);
        let at = replicated.then_some(self.appended.last_offset);
        self.group
            .lock()
            .committed_offsets_mut()
            .complete(offsets, at);
    }
}

impl Drop for PendingCommit {
    fn drop(&mut self) {
        if self.offsets.is_empty() {
            return;
        }
        let replicated = self
            .log
            .as_ref()
            .is_some_and(|log| matches!(log.is_replicated(self.appended, None), Ok(true)));
        self.end(replicated);
    }
}

impl GroupCoordinator {
    /// OffsetCommit: `Err` applies to every partition, else one code per partition. Answers
    /// once the commit is on every in-sync replica of the group's `__consumer_offsets`
    /// partition; the offsets become visible to OffsetFetch at that moment, not before.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<OffsetCommit>,
    ) -> Result<Vec<(TopicPartition, i16)>, i16> {
        let (mut results, pending) =
            self.append_commit(group_id, generation, member_id, instance_id, offsets)?;
        let Some(pending) = pending else {
            return Ok(results);
        };
        let stored = self
            .wait_replicated(group_id, pending.appended)
            .await
            .err()
            .unwrap_or(0);
        results.extend(pending.offsets.iter().map(|(tp, _)| (tp.clone(), stored)));
        tracing::debug!(
            group = group_id,
            record_offset = pending.appended.last_offset,
            error_code = stored,
            "offset commit replicated or failed"
        );
        pending.finish(stored == 0);
        Ok(results)
    }

    /// The part of OffsetCommit under the group's lock: validates the member and the
    /// offsets, appends what is accepted and marks it pending.
    fn append_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<OffsetCommit>,
    ) -> Result<(CommitCodes, Option<PendingCommit>), i16> {
        let group = match self.group(group_id)? {
            Some(g) => g,
            // No group yet: only a commit outside group management may create one.
            None if generation < 0 => self.group_or_create(group_id)?,
            None => return Err(code(ResponseError::IllegalGeneration)),
        };
        let mut g = group.lock();
        let now = self.now_ms();
        g.validate_commit(generation, member_id, instance_id, now)?;
        let max_metadata = self.config.offset_metadata_max_bytes();
        let mut results = Vec::with_capacity(offsets.len());
        let mut accepted = Vec::new();
        for o in offsets {
            let metadata = o.metadata.unwrap_or_default();
            let known = self
                .replicas
                .topic(&o.partition.0)
                .is_some_and(|t| (0..t.meta.partitions).contains(&o.partition.1));
            if !known {
                results.push((o.partition, code(ResponseError::UnknownTopicOrPartition)));
            } else if metadata.len() > max_metadata {
                results.push((o.partition, code(ResponseError::OffsetMetadataTooLarge)));
            } else {
                let value = OffsetCommitValue {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata,
                    commit_timestamp: now,
                };
                accepted.push((o.partition, value));
            }
        }
        if accepted.is_empty() {
            return Ok((results, None));
        }
        let records = accepted
            .iter()
            .map(|((topic, partition), value)| {
                let key = RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                (key.encode(), Some(value.encode()))
            })
            .collect();
        let appended = match self.append(group_id, records) {
            Ok(offset) => offset,
            Err(c) => {
                results.extend(accepted.into_iter().map(|(tp, _)| (tp, c)));
                return Ok((results, None));
            }
        };
        g.committed_offsets_mut()
            .begin(accepted.iter().map(|(tp, _)| tp));
        tracing::debug!(
            group = group_id,
            member = member_id,
            generation,
            state = g.state().name(),
            record_offset = appended.last_offset,
            offsets = ?accepted.iter().map(|((t, p), v)| format!("{t}-{p}={}", v.offset)).collect::<Vec<_>>(),
            "offset commit appended"
        );
        drop(g);
        let log = self
            .replicas
            .partition(super::OFFSETS_TOPIC, self.partition_for(group_id));
        let pending = PendingCommit {
            group,
            offsets: accepted,
            appended,
            log,
        };
        Ok((results, Some(pending)))
    }

    /// OffsetFetch: the committed offsets of `partitions`, or of every partition with one
    /// (`None`). With `require_stable` (v7+), a partition whose commit still waits for
    /// replication, or for its transaction's marker, answers [`FetchedOffset::Unstable`].
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<TopicPartition>>,
        require_stable: bool,
    ) -> Result<Vec<(TopicPartition, FetchedOffset)>, i16> {
        let group = self.group(group_id)?;
        let guard = group.as_ref().map(|g| g.lock());
        let lookup = |tp: &TopicPartition| -> FetchedOffset {
            let Some(g) = guard.as_ref() else {
                return FetchedOffset::None;
            };
            if require_stable && g.has_pending_commit(tp) {
                return FetchedOffset::Unstable;
            }
            match g.offsets().get(tp) {
                Some(v) => FetchedOffset::Committed(v.clone()),
                None => FetchedOffset::None,
            }
        };
        Ok(match partitions {
            None => guard
                .as_ref()
                .map(|g| {
                    g.offsets()
                        .keys()
                        .map(|tp| (tp.clone(), lookup(tp)))
                        .collect()
                })
                .unwrap_or_default(),
            Some(wanted) => wanted
                .into_iter()
                .map(|tp| {
                    let v = lookup(&tp);
                    (tp, v)
                })
                .collect(),
        })
    }
}
