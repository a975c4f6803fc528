//! Fetch: whole record batches straight from the segment files, with Kafka's long poll.
//!
//! Consumers read from the leader up to the high watermark. Followers (a `replica_id`) read up
//! to the log end; their fetch offsets tell the leader their positions, which advances the high
//! watermark and may propose adding them to the ISR (only if the image shows their broker
//! active); a follower whose last fetched epoch ended earlier on the leader gets a
//! `diverging_epoch` instead of records and truncates.
//!
//! The handler reads every requested partition; if the response holds fewer than `min_bytes`
//! and `max_wait_ms` has not passed, it waits until one of those partitions changes
//! (`super::fetch_wake`) and reads again. Batches are never decoded. On a plaintext
//! connection a partition's records of [`SENDFILE_FROM`] bytes or more never enter the
//! broker's memory: the read finds their range in the segment file from the batch headers,
//! and the frame sends it with `sendfile(2)` ([`crate::protocol::file_slice`]), for consumers
//! and followers alike; smaller ones, and all on TLS connections, are read into (pooled)
//! buffers that the response is written from without a further copy.
//!
//! Fetch sessions (KIP-227, from v7): a full fetch (epoch 0) may open a session
//! ([`crate::fetch_session`]) whose id the response carries; an incremental fetch names it and
//! its epoch, sends only changed partitions, and is answered with only the partitions that
//! changed. It reads (and long-polls on) only what may have changed: the partitions the
//! request changed, those whose watch fired since they were read, and those whose last read
//! was not settled (records or a lag left to fetch, an error, an ISR change to propose);
//! every partition after a new image and at least every tenth of `replica.lag.time.max.ms`
//! ([`crate::fetch_session::SessionWakeups`]). A session id or epoch that does not match gets
//! the Kafka error for the whole response and no partitions; the client then starts over with
//! a full fetch.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::time::Instant;

use super::authz::Authz;
use super::fetch_wake::{partition_changes, FetchWakeups};
use super::FileSlices;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::controller::command::PartitionChange;
use crate::fetch_session::{
    key_of, FetchSessionCache, PartitionKey, SessionError, SessionWakeups, FINAL_EPOCH,
    INITIAL_EPOCH, INVALID_SESSION_ID,
};
use crate::log::LogError;
use std::path::PathBuf;

use crate::log::FileRecords;
use crate::partition::PartitionError;
use crate::protocol::file_slice::{self, FileSlice};
use crate::replication::throttle::Allowance;

/// How a fetch request relates to a fetch session.
enum SessionContext {
    /// No session: before v7, epoch -1, or a session left empty.
    Sessionless,
    /// A full fetch that may open a session.
    Full,
    /// An incremental fetch of this session, with what changed among its partitions.
    Incremental(i32, SessionWakeups),
}

/// Answers Fetch, waiting up to `max_wait_ms` for `min_bytes`.
///
/// `zero_copy`: the connection's file slices (a plaintext connection): a consumer's records of
/// [`SENDFILE_FROM`] bytes or more in one partition are left there as ranges of the segment
/// file, with placeholders in the response ([`crate::protocol::file_slice`]).
pub async fn handle(
    broker: &Broker,
    mut request: FetchRequest,
    version: i16,
    authz: &Authz<'_>,
    zero_copy: Option<&FileSlices>,
) -> FetchResponse {
    let context = match open_session(broker, &mut request, version) {
        Ok(context) => context,
        Err(e) => {
            broker.count_error("Fetch", e.code());
            tracing::debug!(error = %e, "fetch session refused");
            return FetchResponse::default()
                .with_error_code(e.code())
                .with_session_id(INVALID_SESSION_ID);
        }
    };
    if let SessionContext::Incremental(id, wakeups) = context {
        broker.metrics.incremental_fetches.inc();
        return incremental(broker, request, version, authz, zero_copy, id, wakeups).await;
    }
    let denied = denied_topics(broker, &request, version, authz);
    let (mut response, files) =
        long_poll(broker, &request, version, &denied, zero_copy.is_some()).await;
    record_out(broker, &response, version, &files.records);
    if let Some(sink) = zero_copy {
        *sink.lock() = files.slices;
    }
    let mut sessions = broker.fetch_sessions.lock();
    match context {
        SessionContext::Sessionless => {}
        SessionContext::Full => {
            response.session_id = sessions.maybe_create(
                std::time::Instant::now(),
                follower_id(&request, version).is_some(),
                version >= 13,
                &request.topics,
                &response.responses,
                || (uuid::Uuid::new_v4().as_u128() as i32) & i32::MAX,
            );
        }
        SessionContext::Incremental(..) => unreachable!("answered above"),
    }
    publish_session_metrics(broker, &sessions);
    response
}

/// Answers an incremental fetch of session `id`: reads what may have changed among its
/// partitions, long-polling until they hold `min_bytes` or `max_wait_ms` passed, and answers
/// those that changed. Each pass reads only the partitions changed since the one before; the
/// response is every partition's latest read.
async fn incremental(
    broker: &Broker,
    request: FetchRequest,
    version: i16,
    authz: &Authz<'_>,
    zero_copy: Option<&FileSlices>,
    id: i32,
    mut wakeups: SessionWakeups,
) -> FetchResponse {
    let by_id = version >= 13;
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let deadline = Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let full_every = broker
        .replicas
        .config()
        .duration_ms("replica.lag.time.max.ms")
        / FULL_READS_PER_LAG;
    let mut files = PassFiles::default();
    let mut read: HashMap<PartitionKey, PartitionData> = HashMap::new();
    let mut held = 0usize;
    loop {
        if wakeups.needs_full(full_every) {
            let keys: Vec<PartitionKey> = match broker.fetch_sessions.lock().get(id) {
                Some(session) => session.keys().cloned().collect(),
                None => break,
            };
            wakeups.rearm_all(partition_changes(broker), &keys);
        }
        let keys = wakeups.take_dirty();
        let mut done_early = false;
        if !keys.is_empty() {
            let topics = match broker.fetch_sessions.lock().get(id) {
                Some(session) => session.request_topics_for(&keys),
                None => break,
            };
            // `request` has no topics left (the session holds them): cheap to copy.
            let pass_request = request.clone().with_topics(topics);
            let denied = denied_topics(broker, &pass_request, version, authz);
            let pass = read_all(
                broker,
                &pass_request,
                version,
                &denied,
                zero_copy.is_some(),
                &mut files,
                held,
            );
            for (partition, change) in pass.isr_changes {
                let replicas = broker.replicas.clone();
                tokio::spawn(async move { replicas.propose_isr_change(&partition, change).await });
            }
            done_early = pass.done_early;
            let mut settled = pass.settled.into_iter();
            for topic in pass.response.responses {
                for data in topic.partitions {
                    let key = key_of(topic.topic_id, &topic.topic, data.partition_index, by_id);
                    if !settled.next().unwrap_or(false) {
                        wakeups.unsettled(key.clone());
                    }
                    held += records_len(&data);
                    if let Some(old) = read.insert(key, data) {
                        held -= records_len(&old);
                    }
                }
            }
        }
        if held >= min_bytes || done_early || Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            changed = wakeups.changed_any() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    let mut sessions = broker.fetch_sessions.lock();
    // A session evicted during the wait answers nothing more; its fetcher learns of the
    // eviction on its next request.
    let responses = match sessions.get_mut(id) {
        Some(session) => {
            session.put_wakeups(wakeups);
            session.answer(read)
        }
        None => Vec::new(),
    };
    publish_session_metrics(broker, &sessions);
    drop(sessions);
    let response = FetchResponse::default()
        .with_session_id(id)
        .with_responses(responses);
    record_out(broker, &response, version, &files.records);
    if let Some(sink) = zero_copy {
        *sink.lock() = files.slices;
    }
    response
}

/// An incremental session reads every partition at least this many times per
/// `replica.lag.time.max.ms`: a follower caught up on an idle partition is then seen fetching
/// it well within the lag (its ISR place depends on it), and anything no watch sees (a log
/// start moved by retention) is answered within that time.
const FULL_READS_PER_LAG: u32 = 10;

fn records_len(data: &PartitionData) -> usize {
    data.records.as_ref().map_or(0, |r| r.len())
}

/// Checks the request's session id and epoch against the cache; an incremental request gets
/// its topics replaced by every partition of its session (and nothing to forget).
fn open_session(
    broker: &Broker,
    request: &mut FetchRequest,
    version: i16,
) -> Result<SessionContext, SessionError> {
    if version < 7 {
        return Ok(SessionContext::Sessionless);
    }
    let mut sessions = broker.fetch_sessions.lock();
    let epoch = request.session_epoch;
    if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
        // A full fetch closes the session it names.
        if request.session_id != INVALID_SESSION_ID {
            sessions.remove(request.session_id);
            publish_session_metrics(broker, &sessions);
        }
        return Ok(if epoch == FINAL_EPOCH {
            SessionContext::Sessionless
        } else {
            SessionContext::Full
        });
    }
    let updated = sessions.update(
        std::time::Instant::now(),
        request.session_id,
        epoch,
        version >= 13,
        &request.topics,
        &request.forgotten_topics_data,
    );
    publish_session_metrics(broker, &sessions);
    Ok(match updated? {
        Some(incremental) => {
            let id = incremental.session_id;
            let mut wakeups = sessions
                .get_mut(id)
                .and_then(|s| s.take_wakeups())
                .unwrap_or_else(|| SessionWakeups::new(broker.replicas.subscribe_image_applied()));
            for key in &incremental.forgotten {
                wakeups.forget(key);
            }
            let watch = partition_changes(broker);
            for key in incremental.changed {
                wakeups.changed(&watch, key);
            }
            request.topics.clear();
            request.forgotten_topics_data.clear();
            SessionContext::Incremental(id, wakeups)
        }
        None => {
            request.topics.clear();
            SessionContext::Sessionless
        }
    })
}

fn publish_session_metrics(broker: &Broker, sessions: &FetchSessionCache) {
    let m = &broker.metrics;
    m.fetch_sessions.set(sessions.len() as i64);
    m.fetch_session_partitions
        .set(sessions.partitions_cached() as i64);
    let evicted = sessions.evictions();
    if evicted > m.fetch_session_evictions.get() {
        m.fetch_session_evictions
            .inc_by(evicted - m.fetch_session_evictions.get());
    }
}

/// Reads the request's partitions until they hold `min_bytes` or `max_wait_ms` passed.
async fn long_poll(
    broker: &Broker,
    request: &FetchRequest,
    version: i16,
    denied: &HashSet<String>,
    zero_copy: bool,
) -> (FetchResponse, PassFiles) {
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let deadline = Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let mut wakeups = FetchWakeups::new(broker, request, version);
    loop {
        // Seen before the read, never after: a change landing after the read must wake us.
        wakeups.mark_seen();
        let mut files = PassFiles::default();
        let pass = read_all(broker, request, version, denied, zero_copy, &mut files, 0);
        for (partition, change) in pass.isr_changes {
            let replicas = broker.replicas.clone();
            tokio::spawn(async move { replicas.propose_isr_change(&partition, change).await });
        }
        let response = (pass.response, files);
        if pass.bytes >= min_bytes || pass.done_early || Instant::now() >= deadline {
            return response;
        }
        tokio::select! {
            changed = wakeups.changed() => if changed.is_err() { return response },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// What one pass over a fetch request produced.
struct FetchPass {
    response: FetchResponse,
    bytes: usize,
    /// An error or a divergence: answer at once.
    done_early: bool,
    /// ISR expansions proposed by follower fetches.
    isr_changes: Vec<(std::sync::Arc<crate::partition::Partition>, PartitionChange)>,
    /// Per partition of the response, in order: whether its read is settled, answering the
    /// same until the partition changes (caught up, no error, no ISR change to propose). A
    /// session skips settled partitions until their watch fires.
    settled: Vec<bool>,
}

fn settle(settled: &mut [bool]) {
    if let Some(last) = settled.last_mut() {
        *last = true;
    }
}

/// The file slices of a pass, in placeholder order, and the records each holds (for the
/// records-out metric, which cannot count them from the placeholder).
#[derive(Default)]
struct PassFiles {
    slices: Vec<FileSlice>,
    records: Vec<u64>,
}

/// A consumer's records in one partition are sent from the segment file from this many bytes;
/// fewer cost less read into memory and written with the rest of the response.
pub const SENDFILE_FROM: usize = 32 * 1024;

/// The follower id of a replica fetch, `None` for a consumer.
fn follower_id(request: &FetchRequest, version: i16) -> Option<i32> {
    let id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    (id >= 0).then_some(id)
}

/// The topics of `request` the principal may not fetch from, checked once per request: a
/// follower needs CLUSTER_ACTION on the cluster (else every topic is refused), a consumer
/// READ on each topic.
fn denied_topics(
    broker: &Broker,
    request: &FetchRequest,
    version: i16,
    authz: &Authz<'_>,
) -> HashSet<String> {
    if !authz.enabled() {
        return HashSet::new();
    }
    let names = request.topics.iter().filter_map(|ft| {
        if version >= 13 {
            broker
                .replicas
                .topic_by_id(ft.topic_id)
                .map(|t| t.meta.name.clone())
        } else {
            Some(ft.topic.to_string())
        }
    });
    if follower_id(request, version).is_some() {
        if authz.cluster(AclOperation::ClusterAction) {
            return HashSet::new();
        }
        return names.collect();
    }
    names
        .filter(|name| !authz.topic(AclOperation::Read, name))
        .collect()
}

/// Reads every partition of `request` into a response, its file slices into `files`; `held`
/// bytes of records are already in the response being built (an incremental fetch's earlier
/// passes), and count against `max_bytes`.
fn read_all(
    broker: &Broker,
    request: &FetchRequest,
    version: i16,
    denied: &HashSet<String>,
    zero_copy: bool,
    files: &mut PassFiles,
    held: usize,
) -> FetchPass {
    let follower = follower_id(request, version);
    // Only a broker the image shows active may join an ISR; proposing any other is refused
    // by the controller, at the price of a metadata log entry each time. The quorum's latest
    // image, not the replica manager's: that one is swapped in only after every role of an
    // image was applied, and leaderships moved by a broker's controlled shutdown would meet
    // its fetches with the older image meanwhile.
    let follower_eligible = follower.is_some_and(|id| {
        let image = broker
            .replicas
            .controller()
            .map_or_else(|| broker.replicas.image(), |c| c.image());
        image.brokers.get(&id).is_some_and(|b| b.is_active())
    });
    let mut isr_changes = Vec::new();
    let mut settled = Vec::new();
    let mut diverged = false;
    // What the request asks for, within the broker's own cap: Kafka's `fetch.max.bytes` for
    // consumers, `replica.fetch.response.max.bytes` for followers.
    let asked = if request.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        request.max_bytes as usize
    };
    let cap = if follower.is_some() {
        broker.config.replica_fetch_response_max_bytes()
    } else {
        broker.config.fetch_max_bytes()
    };
    let mut remaining = asked.min(cap).saturating_sub(held);
    let mut total = 0usize;
    let mut errors = false;
    let read_committed = request.isolation_level == 1;
    let mut topics = Vec::with_capacity(request.topics.len());
    for ft in &request.topics {
        let topic = if version >= 13 {
            broker.replicas.topic_by_id(ft.topic_id)
        } else {
            broker.replicas.topic(&ft.topic)
        };
        let refused = !denied.is_empty()
            && denied.contains(
                topic
                    .as_ref()
                    .map_or(ft.topic.as_str(), |t| t.meta.name.as_str()),
            );
        let mut partitions = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            // Set where the read is settled.
            settled.push(false);
            let base = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_aborted_transactions(read_committed.then(Vec::new));
            if refused {
                errors = true;
                partitions.push(error_data(
                    base,
                    ResponseError::TopicAuthorizationFailed.code(),
                ));
                continue;
            }
            let exists = topic
                .as_ref()
                .is_some_and(|t| (0..t.meta.partitions).contains(&fp.partition));
            let partition = topic
                .as_ref()
                .filter(|_| exists)
                .and_then(|t| broker.replicas.partition(&t.meta.name, fp.partition));
            let Some(partition) = partition else {
                errors = true;
                let code = if version >= 13 && topic.is_none() {
                    ResponseError::UnknownTopicId.code()
                } else if exists {
                    ResponseError::NotLeaderOrFollower.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                broker.count_error("Fetch", code);
                partitions.push(error_data(base, code));
                continue;
            };
            let mut limit = (fp.partition_max_bytes.max(0) as usize).min(remaining);
            let file_from = if zero_copy { SENDFILE_FROM } else { usize::MAX };
            if let Some(replica) = follower {
                // Kafka's leader-side replication throttle: a listed replica gets what the
                // bucket allows, nothing while it is spent.
                let throttle = broker.replicas.leader_throttle();
                let throttled = topic.as_ref().is_some_and(|t| {
                    broker
                        .replicas
                        .is_leader_throttled(&t.meta.configs, fp.partition)
                });
                if throttled {
                    match throttle.allowance(std::time::Instant::now()) {
                        Allowance::Unlimited => {}
                        Allowance::Bytes(n) => limit = limit.min(n as usize),
                        Allowance::WaitFor(_) => limit = 0,
                    }
                }
                let fetched = partition
                    .fetch_for_follower(
                        replica,
                        fp.fetch_offset,
                        fp.log_start_offset,
                        fp.last_fetched_epoch,
                        fp.current_leader_epoch,
                        limit,
                        follower_eligible,
                        file_from,
                    )
                    .and_then(|mut f| {
                        files.place::<PartitionError>(&mut f.records, f.file.take())?;
                        Ok(f)
                    });
                match fetched {
                    Ok(f) => {
                        let n = f.records.len();
                        if throttled {
                            throttle.consume(n as u64, std::time::Instant::now());
                        }
                        total += n;
                        remaining = remaining.saturating_sub(n);
                        if f.settled {
                            settle(&mut settled);
                        }
                        if let Some(change) = f.isr_change {
                            isr_changes.push((partition.clone(), change));
                        }
                        let mut data = base
                            .with_high_watermark(f.high_watermark)
                            .with_last_stable_offset(f.high_watermark)
                            .with_log_start_offset(f.log_start_offset)
                            .with_records(Some(f.records));
                        if let Some((epoch, end_offset)) = f.diverging {
                            data.diverging_epoch = EpochEndOffset::default()
                                .with_epoch(epoch)
                                .with_end_offset(end_offset);
                            diverged = true;
                        }
                        partitions.push(data);
                    }
                    Err(e) => {
                        errors = true;
                        broker.count_error("Fetch", e.code());
                        partitions.push(error_data(base, e.code()));
                    }
                }
                continue;
            }
            if let Err(e) = partition.check_leader_epoch(fp.current_leader_epoch) {
                errors = true;
                broker.count_error("Fetch", e.code());
                partitions.push(error_data(base, e.code()));
                continue;
            }
            // Kafka lets the first batch of a response exceed the limits so a consumer can
            // always make progress past a batch larger than its fetch size.
            let read = partition
                .read_for_fetch(
                    fp.fetch_offset,
                    limit,
                    total == 0 && held == 0,
                    read_committed,
                    file_from,
                )
                .and_then(|mut read| {
                    files.place::<LogError>(&mut read.records, read.file.take())?;
                    Ok(read)
                });
            match read {
                Ok(read) => {
                    let n = read.records.len();
                    total += n;
                    remaining = remaining.saturating_sub(n);
                    let end = if read_committed {
                        read.last_stable_offset
                    } else {
                        read.high_watermark
                    };
                    if n == 0 && fp.fetch_offset >= end {
                        settle(&mut settled);
                    }
                    let aborted = read.aborted.map(|txns| {
                        txns.into_iter()
                            .map(|t| {
                                AbortedTransaction::default()
                                    .with_producer_id(t.producer_id.into())
                                    .with_first_offset(t.first_offset)
                            })
                            .collect()
                    });
                    partitions.push(
                        base.with_high_watermark(read.high_watermark)
                            .with_last_stable_offset(read.last_stable_offset)
                            .with_log_start_offset(read.log_start_offset)
                            .with_aborted_transactions(aborted)
                            .with_records(Some(read.records)),
                    );
                }
                Err(e) => {
                    errors = true;
                    let out_of_range = matches!(e, LogError::OffsetOutOfRange { .. });
                    if !out_of_range {
                        tracing::error!(topic = %partition.topic, partition = fp.partition, error = %e, "fetch read failed");
                    }
                    // A leader whose registration lease lapsed (paused or cut off past its
                    // session) may have been replaced, and its log may end before offsets the
                    // new leader has acknowledged: "out of range" would make the consumer
                    // reset its position (to the start: every record again; to the end:
                    // records skipped). It is not sure it leads, so it says so, and the
                    // client asks the metadata again.
                    let code = if out_of_range && !broker.replicas.holds_lease() {
                        tracing::info!(topic = %partition.topic, partition = fp.partition, offset = fp.fetch_offset, "fetch out of range while the registration lease has lapsed: answered NOT_LEADER_OR_FOLLOWER");
                        ResponseError::NotLeaderOrFollower.code()
                    } else {
                        e.kafka_code()
                    };
                    broker.count_error("Fetch", code);
                    partitions.push(error_data(base, code));
                }
            }
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_topic_id(ft.topic_id)
                .with_partitions(partitions),
        );
    }
    FetchPass {
        response: FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        bytes: total,
        done_early: errors || diverged,
        isr_changes,
        settled,
    }
}

impl PassFiles {
    /// Keeps a read's file range here and puts its placeholder in `records`; reads the range
    /// into `records` when the response has no room for another placeholder.
    fn place<E: From<LogError>>(
        &mut self,
        records: &mut Bytes,
        file: Option<FileRecords>,
    ) -> Result<(), E> {
        let Some(file) = file else {
            return Ok(());
        };
        match file_slice::placeholder(self.slices.len(), file.slice.len()) {
            Some(placeholder) => {
                *records = placeholder;
                self.slices.push(file.slice);
                self.records.push(file.records);
            }
            None => {
                *records = file.slice.read().map_err(|e| {
                    E::from(LogError::io("read segment for a fetch", PathBuf::new())(e))
                })?;
            }
        }
        Ok(())
    }
}

fn error_data(base: PartitionData, code: i16) -> PartitionData {
    base.with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()))
}

fn record_out(broker: &Broker, response: &FetchResponse, version: i16, file_records: &[u64]) {
    for t in &response.responses {
        let by_id;
        let name = if version >= 13 {
            by_id = broker.replicas.topic_by_id(t.topic_id);
            by_id
                .as_ref()
                .map(|s| s.meta.name.as_str())
                .unwrap_or_default()
        } else {
            t.topic.as_str()
        };
        let (bytes, records) = t.partitions.iter().filter_map(|p| p.records.as_ref()).fold(
            (0u64, 0u64),
            |(b, r), recs| {
                let n = match file_slice::placeholder_index(recs) {
                    Some(i) => file_records.get(i).copied().unwrap_or(0),
                    None => count_records(recs),
                };
                (b + recs.len() as u64, r + n)
            },
        );
        if bytes > 0 {
            broker
                .metrics
                .bytes_out
                .with_label_values(&[name])
                .inc_by(bytes);
            broker
                .metrics
                .records_out
                .with_label_values(&[name])
                .inc_by(records);
        }
    }
}

/// Sums the record counts of the batches in `records` from their headers (no decoding).
fn count_records(records: &Bytes) -> u64 {
    const LENGTH_AT: usize = 8;
    const COUNT_AT: usize = 57;
    let mut pos = 0usize;
    let mut count = 0u64;
    while pos + COUNT_AT + 4 <= records.len() {
        let len = i32::from_be_bytes([
            records[pos + LENGTH_AT],
            records[pos + LENGTH_AT + 1],
            records[pos + LENGTH_AT + 2],
            records[pos + LENGTH_AT + 3],
        ]);
        let c = &records[pos + COUNT_AT..pos + COUNT_AT + 4];
        count += i32::from_be_bytes([c[0], c[1], c[2], c[3]]).max(0) as u64;
        if len <= 0 {
            break;
        }
        pos += 12 + len as usize;
    }
    count
}
