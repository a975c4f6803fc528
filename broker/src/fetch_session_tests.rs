use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use super::*;

const EVICTION: Duration = Duration::from_secs(120);

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// A v12 request's topics: `partitions` of `topic`, each fetched from offset 0.
fn topics(topic: &str, partitions: std::ops::Range<i32>) -> Vec<FetchTopic> {
    vec![FetchTopic::default()
        .with_topic(name(topic))
        .with_partitions(
            partitions
                .map(|p| {
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(0)
                })
                .collect(),
        )]
}

/// A response for `partitions` of `topic` at high watermark `hw`, records for `with_records`.
fn responses(
    topic: &str,
    partitions: std::ops::Range<i32>,
    hw: i64,
    with_records: &[i32],
) -> Vec<FetchableTopicResponse> {
    vec![FetchableTopicResponse::default()
        .with_topic(name(topic))
        .with_partitions(
            partitions
                .map(|p| {
                    let records = if with_records.contains(&p) {
                        Bytes::from_static(b"batch")
                    } else {
                        Bytes::new()
                    };
                    PartitionData::default()
                        .with_partition_index(p)
                        .with_high_watermark(hw)
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(0)
                        .with_records(Some(records))
                })
                .collect(),
        )]
}

fn ids() -> impl FnMut() -> i32 {
    let mut next = 0;
    move || {
        next += 1;
        next
    }
}

fn answered(rs: &[FetchableTopicResponse]) -> Vec<i32> {
    rs.iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
        .collect()
}

/// A session of partitions `0..size` of topic "t", opened by a full fetch at high watermark 0.
fn open(
    cache: &mut FetchSessionCache,
    now: Instant,
    privileged: bool,
    size: i32,
    ids: &mut impl FnMut() -> i32,
) -> i32 {
    cache.maybe_create(
        now,
        privileged,
        false,
        &topics("t", 0..size),
        &responses("t", 0..size, 0, &[]),
        ids,
    )
}

#[test]
fn full_fetch_opens_a_session_at_epoch_one() {
    let mut cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open(&mut cache, now, false, 3, &mut ids());
    assert_ne!(id, INVALID_SESSION_ID);
    assert_eq!(cache.get(id).map(|s| s.epoch()), Some(1));
    assert_eq!((cache.len(), cache.partitions_cached()), (1, 3));
}

#[test]
fn incremental_fetch_answers_only_what_changed() {
    let mut cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open(&mut cache, now, false, 4, &mut ids());
    // Nothing sent: nothing changed by the request, the session still holds all four.
    let inc = cache
        .update(now, id, 1, false, &[], &[])
        .expect("epoch 1 is next")
        .expect("session not empty");
    assert!(inc.changed.is_empty() && inc.forgotten.is_empty());
    let session = cache.get_mut(id).expect("session");
    assert_eq!(session.request_topics()[0].partitions.len(), 4);
    // Partition 1 got records, the rest nothing new: only partition 1 answers.
    let kept = session.select_response(responses("t", 0..4, 0, &[1]));
    assert_eq!(answered(&kept), vec![1]);
    // It moved to the end of the fetch order.
    let order: Vec<i32> = session.request_topics()[0]
        .partitions
        .iter()
        .map(|p| p.partition)
        .collect();
    assert_eq!(order, vec![0, 2, 3, 1]);
    // A moved high watermark answers every partition once.
    assert_eq!(
        answered(&session.select_response(responses("t", 0..4, 6, &[]))).len(),
        4
    );
    assert!(session
        .select_response(responses("t", 0..4, 6, &[]))
        .is_empty());
}

#[test]
fn epochs_are_checked_and_advance() {
    let mut cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open(&mut cache, now, false, 1, &mut ids());
    assert!(cache.update(now, id, 1, false, &[], &[]).is_ok());
    assert_eq!(
        cache.update(now, id, 1, false, &[], &[]).unwrap_err(),
        SessionError::InvalidEpoch {
            got: 1,
            expected: 2
        }
    );
    assert_eq!(
        cache.update(now, id + 1, 2, false, &[], &[]).unwrap_err(),
        SessionError::NotFound(id + 1)
    );
    assert_eq!(
        cache.update(now, id, 2, true, &[], &[]).unwrap_err(),
        SessionError::TopicIdMismatch
    );
    assert_eq!(next_epoch(i32::MAX), 1);
}

#[test]
fn added_and_forgotten_partitions_change_the_session() {
    let mut cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open(&mut cache, now, false, 2, &mut ids());
    let forget = [ForgottenTopic::default()
        .with_topic(name("t"))
        .with_partitions(vec![0])];
    let inc = cache
        .update(now, id, 1, false, &topics("u", 0..2), &forget)
        .expect("valid")
        .expect("not empty");
    let changed: Vec<(String, i32)> = inc
        .changed
        .iter()
        .map(|k| (k.topic.0.to_string(), k.partition))
        .collect();
    assert_eq!(changed, vec![("u".into(), 0), ("u".into(), 1)]);
    let forgotten: Vec<(String, i32)> = inc
        .forgotten
        .iter()
        .map(|k| (k.topic.0.to_string(), k.partition))
        .collect();
    assert_eq!(forgotten, vec![("t".into(), 0)]);
    let read: Vec<(String, i32)> = cache
        .get(id)
        .expect("session")
        .request_topics()
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic.0.to_string(), p.partition))
        })
        .collect();
    assert_eq!(
        read,
        vec![("t".into(), 1), ("u".into(), 0), ("u".into(), 1)]
    );
    assert_eq!(cache.partitions_cached(), 3);
    // A new partition answers on its first incremental response even without records.
    let session = cache.get_mut(id).expect("session");
    let kept = session.select_response(responses("u", 0..2, 0, &[]));
    assert_eq!(answered(&kept), vec![0, 1]);
    // Forgetting everything removes the session.
    let forget_all = [
        ForgottenTopic::default()
            .with_topic(name("t"))
            .with_partitions(vec![1]),
        ForgottenTopic::default()
            .with_topic(name("u"))
            .with_partitions(vec![0, 1]),
    ];
    assert!(cache
        .update(now, id, 2, false, &[], &forget_all)
        .expect("valid")
        .is_none());
    assert!(cache.is_empty());
    assert_eq!(cache.partitions_cached(), 0);
}

#[test]
fn a_full_cache_evicts_only_stale_or_smaller_old_sessions() {
    let mut cache = FetchSessionCache::with_eviction(2, EVICTION);
    let mut next = ids();
    let t0 = Instant::now();
    let small = open(&mut cache, t0, false, 1, &mut next);
    let big = open(&mut cache, t0, false, 5, &mut next);
    // Young sessions are not evictable by a consumer.
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(
        open(&mut cache, t1, false, 3, &mut next),
        INVALID_SESSION_ID
    );
    // A follower may evict a consumer's session: the smallest one.
    let follower = open(&mut cache, t1, true, 3, &mut next);
    assert_ne!(follower, INVALID_SESSION_ID);
    assert!(cache.get(small).is_none());
    assert_eq!(cache.evictions(), 1);
    // Old enough, the big session is still not evicted by a smaller consumer session, and
    // the follower's is used so neither is stale.
    let t2 = t0 + EVICTION + Duration::from_secs(1);
    assert!(cache.update(t2, big, 1, false, &[], &[]).is_ok());
    assert!(cache.update(t2, follower, 1, false, &[], &[]).is_ok());
    assert_eq!(
        open(&mut cache, t2, false, 2, &mut next),
        INVALID_SESSION_ID
    );
    // A bigger consumer session takes the big one's slot (the follower ranks above both).
    let bigger = open(&mut cache, t2, false, 9, &mut next);
    assert_ne!(bigger, INVALID_SESSION_ID);
    assert!(cache.get(big).is_none());
    assert!(cache.get(follower).is_some());
}

#[test]
fn an_idle_session_expires_for_a_newcomer() {
    let mut cache = FetchSessionCache::with_eviction(1, EVICTION);
    let mut next = ids();
    let t0 = Instant::now();
    let idle = open(&mut cache, t0, true, 9, &mut next);
    let later = t0 + EVICTION + Duration::from_millis(1);
    let newcomer = open(&mut cache, later, false, 1, &mut next);
    assert_ne!(newcomer, INVALID_SESSION_ID);
    assert!(cache.get(idle).is_none());
    assert_eq!(cache.len(), 1);
}

#[test]
fn zero_slots_turn_sessions_off() {
    let mut cache = FetchSessionCache::new(0);
    let id = open(&mut cache, Instant::now(), true, 1, &mut ids());
    assert_eq!(id, INVALID_SESSION_ID);
}

#[test]
fn a_pass_over_some_partitions_reads_and_answers_them_in_fetch_order() {
    let mut cache = FetchSessionCache::new(10);
    let now = Instant::now();
    let id = open(&mut cache, now, false, 5, &mut ids());
    let session = cache.get_mut(id).expect("session");
    // Partition 1 answers records: it goes to the end of the fetch order.
    assert_eq!(
        answered(&session.select_response(responses("t", 1..2, 0, &[1]))),
        vec![1]
    );
    let key = |p| key_of(Uuid::nil(), &name("t"), p, false);
    let keys = [key(1), key(4), key(0), key(9)];
    // Only the asked partitions of the session (9 is not one), in fetch order: 1 last.
    let order: Vec<i32> = session.request_topics_for(&keys)[0]
        .partitions
        .iter()
        .map(|p| p.partition)
        .collect();
    assert_eq!(order, vec![0, 4, 1]);
    // Partitions 4 and 0 read with a new high watermark, 1 read with nothing new: 0 and 4
    // answer, in fetch order, in one topic.
    let read = responses("t", 0..5, 3, &[])
        .into_iter()
        .flat_map(|t| t.partitions)
        .filter(|p| p.partition_index == 0 || p.partition_index == 4)
        .map(|p| (key(p.partition_index), p))
        .collect();
    let answer = session.answer(read);
    assert_eq!(answer.len(), 1);
    assert_eq!(answered(&answer), vec![0, 4]);
    assert!(session
        .answer(
            [(
                key(1),
                responses("t", 1..2, 0, &[])[0].partitions[0].clone()
            )]
            .into()
        )
        .is_empty());
}
