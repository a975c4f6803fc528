//! ShareFetch (KIP-932): a share consumer's fetch. The request's share session epoch opens,
//! continues or closes its share session ([`crate::share::session`]); acknowledgements it
//! carries are applied first; then every partition of the session is read and records are
//! acquired for the member ([`crate::share::manager`]), waiting up to `max_wait_ms` when
//! nothing could be acquired. A wait ends early when a partition changes (append, high
//! watermark, role), when records are released, or when an acquisition lock runs out.
//!
//! Only partitions with acquired records, an error or an acknowledgement result are in the
//! answer (all of them when the request opened the session), as Kafka answers.
//!
//! Version 2 (Kafka 4.2+): `ShareAcquireMode` (KIP-1206) is 0, batch-optimized, where
//! `MaxRecords` is a soft limit that Kafka may exceed to end on a batch boundary, or 1,
//! record-limit, where it is a hard limit; Weir acquires offset by offset and never exceeds
//! it in either mode (which both contracts allow). Any other mode is INVALID_REQUEST.
//! `MaxRecords` bounds the whole request, not each partition, and the partitions are
//! visited from a different one each request (by session epoch) so none starves.
//! `IsRenewAck` (KIP-1222) says the acknowledgements may hold type 4, Renew (a fresh
//! acquisition lock for records the member keeps); such a request only acknowledges: its
//! fetch parameters (`MaxWaitMs`, `MinBytes`, `MaxBytes`, `MaxRecords`) must be 0
//! (INVALID_REQUEST otherwise) and it acquires nothing, so the renewed lock is not spent
//! waiting. A Renew without `IsRenewAck` (and any Renew in v1) is INVALID_REQUEST for its
//! partition's acknowledgement.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords as WireAcquired, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{ShareFetchRequest, ShareFetchResponse};
use tokio::time::Instant;
use uuid::Uuid;

use super::authz::Authz;
use super::fetch_wake::FetchWakeups;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::share::manager::{AcknowledgementBatch, FetchedPartition, DEFAULT_MAX_RECORDS};
use crate::share::session::{SharePartitionId, INITIAL_EPOCH};

/// What one partition's answer holds.
#[derive(Default)]
struct PartitionAnswer {
    fetched: Option<FetchedPartition>,
    acknowledge_error_code: Option<i16>,
}

/// Answers ShareFetch.
pub async fn handle(
    broker: &Broker,
    request: ShareFetchRequest,
    authz: &Authz<'_>,
) -> ShareFetchResponse {
    let fail = |code: i16, message: &str| {
        broker.count_error("ShareFetch", code);
        ShareFetchResponse::default()
            .with_error_code(code)
            .with_error_message(Some(text(message)))
    };
    let (group_id, member_id) = match share_member(
        request.group_id.as_ref().map(|g| g.as_str()),
        request.member_id.as_ref().map(|m| m.as_str()),
        authz,
    ) {
        Ok(ids) => ids,
        Err((code, message)) => return fail(code, message),
    };
    // KIP-1206's acquire modes: 0 batch-optimized, 1 record-limit.
    if !matches!(request.share_acquire_mode, 0 | 1) {
        return fail(
            ResponseError::InvalidRequest.code(),
            "Unknown ShareAcquireMode.",
        );
    }
    let renewing = request.is_renew_ack;
    if renewing
        && (request.max_wait_ms != 0
            || request.min_bytes != 0
            || request.max_bytes != 0
            || request.max_records != 0)
    {
        return fail(
            ResponseError::InvalidRequest.code(),
            "MaxWaitMs, MinBytes, MaxBytes and MaxRecords must be 0 when IsRenewAck is set.",
        );
    }
    let has_acks = request
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .any(|p| !p.acknowledgement_batches.is_empty());
    if request.share_session_epoch == INITIAL_EPOCH && has_acks {
        return fail(
            ResponseError::InvalidRequest.code(),
            "Acknowledge data present on initial epoch.",
        );
    }
    let added: Vec<SharePartitionId> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, p.partition_index)))
        .collect();
    let forgotten: Vec<SharePartitionId> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, *p)))
        .collect();
    let session = match broker.share.update_session(
        &group_id,
        &member_id,
        request.share_session_epoch,
        added,
        forgotten,
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(group = %group_id, member = %member_id, error = %e, "share session refused");
            return fail(e.code(), &e.to_string());
        }
    };
    let denied = denied_topics(broker, authz, &session.partitions);
    let acknowledgements = acknowledgements_of(&request);
    let mut answers: BTreeMap<SharePartitionId, PartitionAnswer> = acknowledge(
        broker,
        &group_id,
        &member_id,
        acknowledgements,
        &denied,
        renewing,
    )
    .await
    .into_iter()
    .map(|(key, code)| {
        let answer = PartitionAnswer {
            fetched: None,
            acknowledge_error_code: Some(code),
        };
        (key, answer)
    })
    .collect();
    if session.closed {
        broker
            .share
            .release_member(&group_id, &member_id, &session.partitions);
    } else if !renewing {
        let fetched = long_poll(
            broker,
            &request,
            &group_id,
            &member_id,
            &session.partitions,
            &denied,
        )
        .await;
        for (key, f) in fetched {
            let keep = session.full || f.error_code != 0 || !f.acquired.is_empty();
            if keep {
                answers.entry(key).or_default().fetched = Some(f);
            }
        }
        if session.full {
            // Partitions the record limit left unread are answered too.
            for key in &session.partitions {
                answers.entry(*key).or_default();
            }
        }
    }
    response(broker, &group_id, answers)
}

/// A ShareFetch's acknowledgements per partition.
fn acknowledgements_of(
    request: &ShareFetchRequest,
) -> Vec<(SharePartitionId, Vec<AcknowledgementBatch>)> {
    let mut out = Vec::new();
    for t in &request.topics {
        for p in &t.partitions {
            let batches = p
                .acknowledgement_batches
                .iter()
                .map(AcknowledgementBatch::from)
                .collect();
            out.push(((t.topic_id, p.partition_index), batches));
        }
    }
    out
}

/// The group and member ids of a ShareFetch or ShareAcknowledge, both required
/// (INVALID_REQUEST), and READ on the group (GROUP_AUTHORIZATION_FAILED).
pub(super) fn share_member(
    group_id: Option<&str>,
    member_id: Option<&str>,
    authz: &Authz<'_>,
) -> Result<(String, String), (i16, &'static str)> {
    let (group_id, member_id) = (group_id.unwrap_or_default(), member_id.unwrap_or_default());
    if group_id.is_empty() || member_id.is_empty() {
        return Err((
            ResponseError::InvalidRequest.code(),
            "GroupId and MemberId must be set.",
        ));
    }
    if !authz.group(AclOperation::Read, group_id) {
        return Err((ResponseError::GroupAuthorizationFailed.code(), ""));
    }
    Ok((group_id.to_string(), member_id.to_string()))
}

/// Applies a request's acknowledgements (the partitions with batches); Kafka's error code per
/// partition, 0 once applied and persisted. `allow_renew`: the request's `IsRenewAck`.
pub(super) async fn acknowledge(
    broker: &Broker,
    group_id: &str,
    member_id: &str,
    acknowledgements: Vec<(SharePartitionId, Vec<AcknowledgementBatch>)>,
    denied: &BTreeSet<Uuid>,
    allow_renew: bool,
) -> BTreeMap<SharePartitionId, i16> {
    let mut codes = BTreeMap::new();
    for ((topic_id, index), batches) in acknowledgements {
        if batches.is_empty() {
            continue;
        }
        let code = if denied.contains(&topic_id) {
            ResponseError::TopicAuthorizationFailed.code()
        } else {
            broker
                .share
                .acknowledge(group_id, member_id, topic_id, index, &batches, allow_renew)
                .await
        };
        if code != 0 {
            broker.count_error("ShareAcknowledge", code);
        }
        codes.insert((topic_id, index), code);
    }
    codes
}

/// The topics of the session the principal may not read.
pub(super) fn denied_topics(
    broker: &Broker,
    authz: &Authz<'_>,
    partitions: &BTreeSet<SharePartitionId>,
) -> BTreeSet<Uuid> {
    if !authz.enabled() {
        return BTreeSet::new();
    }
    partitions
        .iter()
        .map(|(t, _)| *t)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|id| {
            broker
                .replicas
                .topic_by_id(*id)
                .is_some_and(|t| !authz.topic(AclOperation::Read, &t.meta.name))
        })
        .collect()
}

/// Reads the session's partitions until records were acquired, an error came up, or
/// `max_wait_ms` passed. At most `max_records` records over all partitions, starting from a
/// partition that moves with the session epoch.
async fn long_poll(
    broker: &Broker,
    request: &ShareFetchRequest,
    group_id: &str,
    member_id: &str,
    partitions: &BTreeSet<SharePartitionId>,
    denied: &BTreeSet<Uuid>,
) -> HashMap<SharePartitionId, FetchedPartition> {
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let deadline = Instant::now() + wait;
    let max_bytes = if request.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        request.max_bytes as usize
    };
    let max_records = if request.max_records > 0 {
        request.max_records as usize
    } else {
        DEFAULT_MAX_RECORDS
    };
    let order: Vec<SharePartitionId> = {
        let all: Vec<SharePartitionId> = partitions.iter().copied().collect();
        let start = match all.len() {
            0 => 0,
            n => request.share_session_epoch.max(0) as usize % n,
        };
        all[start..].iter().chain(&all[..start]).copied().collect()
    };
    let led = partitions
        .iter()
        .filter_map(|(t, p)| broker.share.leader(*t, *p).ok());
    let mut wakeups = FetchWakeups::for_partitions(broker, led);
    loop {
        wakeups.mark_seen();
        let released = broker.share.released();
        tokio::pin!(released);
        released.as_mut().enable();
        let mut out = HashMap::with_capacity(partitions.len());
        let mut remaining = max_bytes;
        let mut records_left = max_records;
        let mut done = false;
        for &(topic_id, index) in &order {
            if records_left == 0 {
                break;
            }
            let f = if denied.contains(&topic_id) {
                FetchedPartition {
                    error_code: ResponseError::TopicAuthorizationFailed.code(),
                    leader_epoch: -1,
                    ..FetchedPartition::default()
                }
            } else {
                broker
                    .share
                    .fetch(
                        group_id,
                        member_id,
                        topic_id,
                        index,
                        remaining,
                        records_left as i32,
                    )
                    .await
            };
            remaining = remaining.saturating_sub(f.records.len());
            let acquired: usize = f
                .acquired
                .iter()
                .map(|a| (a.last_offset - a.first_offset + 1) as usize)
                .sum();
            records_left = records_left.saturating_sub(acquired);
            done |= f.error_code != 0 || !f.acquired.is_empty();
            out.insert((topic_id, index), f);
        }
        if done || Instant::now() >= deadline {
            return out;
        }
        // A lock running out makes records available without any partition changing.
        let lock_expiry = broker
            .share
            .next_lock_expiry(group_id, partitions)
            .map(|at| {
                let in_ms = (at - broker.share.now_ms()).max(0) as u64;
                Instant::now() + Duration::from_millis(in_ms)
            })
            .unwrap_or(deadline)
            .min(deadline);
        tokio::select! {
            changed = wakeups.changed() => if changed.is_err() { return out },
            _ = &mut released => {}
            _ = tokio::time::sleep_until(lock_expiry) => {}
        }
    }
}

fn response(
    broker: &Broker,
    group_id: &str,
    answers: BTreeMap<SharePartitionId, PartitionAnswer>,
) -> ShareFetchResponse {
    let mut topics: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for ((topic_id, index), answer) in answers {
        let fetched = answer.fetched.unwrap_or_else(|| FetchedPartition {
            leader_epoch: broker
                .share
                .leader(topic_id, index)
                .map_or(-1, |p| p.leader_epoch()),
            ..FetchedPartition::default()
        });
        if fetched.error_code != 0 {
            broker.count_error("ShareFetch", fetched.error_code);
        }
        let leader_id = if fetched.leader_epoch >= 0 {
            broker.node_id()
        } else {
            -1
        };
        let data = PartitionData::default()
            .with_partition_index(index)
            .with_error_code(fetched.error_code)
            .with_acknowledge_error_code(answer.acknowledge_error_code.unwrap_or(0))
            .with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(leader_id)
                    .with_leader_epoch(fetched.leader_epoch),
            )
            .with_records(Some(fetched.records))
            .with_acquired_records(
                fetched
                    .acquired
                    .iter()
                    .map(|a| {
                        WireAcquired::default()
                            .with_first_offset(a.first_offset)
                            .with_last_offset(a.last_offset)
                            .with_delivery_count(a.delivery_count)
                    })
                    .collect(),
            );
        topics.entry(topic_id).or_default().push(data);
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(broker.share.lock_duration_ms(group_id))
        .with_responses(
            topics
                .into_iter()
                .map(|(topic_id, partitions)| {
                    ShareFetchableTopicResponse::default()
                        .with_topic_id(topic_id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}
