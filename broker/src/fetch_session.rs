//! Fetch sessions (KIP-227): the leader remembers what a fetcher asked for, so the fetcher
//! sends only what changed and the leader answers only what changed.
//!
//! A full fetch (`session_epoch` 0) may create a [`FetchSession`] holding every requested
//! partition with the fetch state the request gave it and the high watermark, last stable
//! offset and log start offset last answered for it; the response carries the new session id
//! and the fetcher's next request uses epoch 1. An incremental fetch (the session's id and its
//! current epoch) carries only partitions added or changed and the partitions to forget; the
//! leader answers only partitions with records, an error or a changed offset
//! ([`FetchSession::answer`]). It reads only the partitions that may answer something new:
//! those the request changed, those that changed on this broker since the last read, and
//! those whose last read was not settled (the session's [`SessionWakeups`] keep that, between
//! requests). Epoch -1 ends a session.
//!
//! [`FetchSessionCache`] bounds the sessions to `max.incremental.fetch.session.cache.slots`.
//! When it is full, a new session may take the place of: first, the session idle longest if
//! it has been idle more than [`EVICTION_MS`]; else the lowest-ranked evictable session, if it
//! ranks no higher than the newcomer. Sessions rank by (privileged, partition count, id):
//! followers' sessions are privileged, and a session counts as evictable only after
//! [`EVICTION_MS`] from its creation, except that a follower may always evict a consumer's
//! session. So small and stale sessions go first and a busy consumer cannot push out a
//! follower, as in Kafka.
//!
//! State with time passed in (a session's wakeups are the only part that waits, on the
//! partitions' change watches the fetch handler gives them); the caller holds it behind one
//! lock and never across an await. Eviction scans the sessions (at most the slot count, 1,000 by default), only when a
//! full cache meets a new session.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use uuid::Uuid;

/// The epoch of a full fetch that asks for a new session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch that closes a session (a full fetch without a new session).
pub const FINAL_EPOCH: i32 = -1;
/// "No session", in requests and responses.
pub const INVALID_SESSION_ID: i32 = 0;
/// How long a session must have been idle (or alive, to be evictable by rank) before another
/// may take its slot: Kafka's fixed two minutes.
pub const EVICTION_MS: u64 = 120_000;

/// One partition of a session: by id from Fetch v13, by name below (the other field empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    /// The topic id (nil below v13).
    pub topic_id: Uuid,
    /// The topic name (empty from v13).
    pub topic: TopicName,
    /// The partition index.
    pub partition: i32,
}

/// What a session remembers of one partition.
#[derive(Debug, Clone)]
pub struct CachedPartition {
    /// The fetch state the fetcher last sent for it.
    pub fetch: FetchPartition,
    /// Last answered high watermark (-1 before the first answer).
    pub high_watermark: i64,
    /// Last answered last stable offset.
    pub last_stable_offset: i64,
    /// Last answered log start offset.
    pub log_start_offset: i64,
    /// Place in the fetch order (lower first).
    order: u64,
}

impl CachedPartition {
    fn new(fetch: FetchPartition, order: u64) -> Self {
        Self {
            fetch,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            order,
        }
    }

    /// Whether `data` must go into an incremental response, remembering what it answers.
    fn must_respond(&mut self, data: &PartitionData) -> bool {
        let has_records = data.records.as_ref().is_some_and(|r| !r.is_empty());
        let respond = has_records
            || data.error_code != 0
            || data.high_watermark != self.high_watermark
            || data.last_stable_offset != self.last_stable_offset
            || data.log_start_offset != self.log_start_offset
            || data.diverging_epoch.epoch != -1
            || data.preferred_read_replica.0 != -1;
        if respond {
            self.high_watermark = data.high_watermark;
            self.last_stable_offset = data.last_stable_offset;
            self.log_start_offset = data.log_start_offset;
        }
        respond
    }
}

/// One fetcher's session. Invariant: `epoch` is the epoch its next incremental request must
/// carry (1 after creation, wrapping from `i32::MAX` to 1).
pub struct FetchSession {
    id: i32,
    epoch: i32,
    /// Created by a follower: ranks above every consumer's session.
    privileged: bool,
    /// Created by a Fetch v13+ (keys by topic id); a session is used with one kind only.
    uses_topic_ids: bool,
    created: Instant,
    last_used: Instant,
    /// Each with its place in the fetch order: a partition that answered records moves to
    /// the end, so the ones behind it get their turn under `max_bytes`.
    partitions: HashMap<PartitionKey, CachedPartition>,
    /// The order the next partition moved or added takes.
    next_order: u64,
    /// What changed on this broker since the last read, kept between requests; out of the
    /// session while a request long-polls ([`FetchSession::take_wakeups`]).
    wakeups: Option<SessionWakeups>,
}

impl std::fmt::Debug for FetchSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchSession")
            .field("id", &self.id)
            .field("epoch", &self.epoch)
            .field("privileged", &self.privileged)
            .field("partitions", &self.partitions.len())
            .finish_non_exhaustive()
    }
}

impl FetchSession {
    /// The session's id.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The epoch the next incremental request must carry.
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// Every partition of the session.
    pub fn keys(&self) -> impl Iterator<Item = &PartitionKey> {
        self.partitions.keys()
    }

    /// Takes the session's wakeups for a request's long poll.
    pub fn take_wakeups(&mut self) -> Option<SessionWakeups> {
        self.wakeups.take()
    }

    /// Gives the wakeups back after the request; if another request put its own meanwhile,
    /// those stay (and read everything next time, as they cannot know what these saw).
    pub fn put_wakeups(&mut self, wakeups: SessionWakeups) {
        match &mut self.wakeups {
            Some(other) => other.force_full(),
            None => self.wakeups = Some(wakeups),
        }
    }

    /// The session's partitions as a request's topics (consecutive partitions of one topic
    /// grouped), in fetch order.
    pub fn request_topics(&self) -> Vec<FetchTopic> {
        self.request_topics_for(self.partitions.keys())
    }

    /// `keys` of the session (others are skipped) as a request's topics, in fetch order.
    pub fn request_topics_for<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a PartitionKey>,
    ) -> Vec<FetchTopic> {
        let mut chosen: Vec<(&PartitionKey, &CachedPartition)> = keys
            .into_iter()
            .filter_map(|k| self.partitions.get_key_value(k))
            .collect();
        chosen.sort_unstable_by_key(|(_, c)| c.order);
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (key, cached) in chosen {
            let same = topics
                .last()
                .is_some_and(|t| t.topic_id == key.topic_id && t.topic == key.topic);
            if !same {
                topics.push(
                    FetchTopic::default()
                        .with_topic(key.topic.clone())
                        .with_topic_id(key.topic_id),
                );
            }
            if let Some(t) = topics.last_mut() {
                t.partitions.push(cached.fetch.clone());
            }
        }
        topics
    }

    /// Keeps from a response to some of the session's partitions only what an incremental
    /// fetch answers (see [`FetchSession::answer`]).
    pub fn select_response(
        &mut self,
        responses: Vec<FetchableTopicResponse>,
    ) -> Vec<FetchableTopicResponse> {
        let mut read = HashMap::new();
        for topic in responses {
            for data in topic.partitions {
                let key = key_of(
                    topic.topic_id,
                    &topic.topic,
                    data.partition_index,
                    self.uses_topic_ids,
                );
                read.insert(key, data);
            }
        }
        self.answer(read)
    }

    /// The response of an incremental fetch from what it read: only the partitions of the
    /// session that answer something (records, an error, a changed offset), in fetch order,
    /// consecutive partitions of a topic grouped. Remembers what they answered and moves
    /// those that answered records to the end of the fetch order.
    pub fn answer(
        &mut self,
        read: HashMap<PartitionKey, PartitionData>,
    ) -> Vec<FetchableTopicResponse> {
        let mut answered: Vec<(u64, PartitionKey, PartitionData)> = Vec::new();
        for (key, data) in read {
            let Some(cached) = self.partitions.get_mut(&key) else {
                continue;
            };
            if cached.must_respond(&data) {
                answered.push((cached.order, key, data));
            }
        }
        answered.sort_unstable_by_key(|(order, ..)| *order);
        let mut topics: Vec<FetchableTopicResponse> = Vec::new();
        for (_, key, data) in answered {
            if data.records.as_ref().is_some_and(|r| !r.is_empty()) {
                if let Some(cached) = self.partitions.get_mut(&key) {
                    cached.order = self.next_order;
                    self.next_order += 1;
                }
            }
            let same = topics
                .last()
                .is_some_and(|t| t.topic_id == key.topic_id && t.topic == key.topic);
            if !same {
                topics.push(
                    FetchableTopicResponse::default()
                        .with_topic(key.topic)
                        .with_topic_id(key.topic_id),
                );
            }
            if let Some(t) = topics.last_mut() {
                t.partitions.push(data);
            }
        }
        topics
    }

    /// Remembers what a full fetch answered, so the first incremental fetch answers only
    /// what changed since.
    fn remember(&mut self, responses: &[FetchableTopicResponse]) {
        for topic in responses {
            for data in &topic.partitions {
                let key = key_of(
                    topic.topic_id,
                    &topic.topic,
                    data.partition_index,
                    self.uses_topic_ids,
                );
                if let Some(cached) = self.partitions.get_mut(&key) {
                    cached.must_respond(data);
                }
            }
        }
    }

    fn rank(&self) -> (bool, usize, i32) {
        (self.privileged, self.partitions.len(), self.id)
    }
}

/// Why an incremental fetch was refused; each is a Kafka error code for the whole response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No session with that id (never created, evicted, expired or closed).
    #[error("fetch session {0} not found")]
    NotFound(i32),
    /// The request's epoch is not the session's next one.
    #[error("fetch session epoch {got} is not the expected {expected}")]
    InvalidEpoch {
        /// The request's epoch.
        got: i32,
        /// The session's.
        expected: i32,
    },
    /// A session created with topic ids used without them, or the other way round.
    #[error("fetch session used with and without topic ids")]
    TopicIdMismatch,
}

impl SessionError {
    /// The Kafka error for the whole response.
    pub fn code(self) -> i16 {
        match self {
            SessionError::NotFound(_) => ResponseError::FetchSessionIdNotFound.code(),
            SessionError::InvalidEpoch { .. } => ResponseError::InvalidFetchSessionEpoch.code(),
            SessionError::TopicIdMismatch => ResponseError::FetchSessionTopicIdError.code(),
        }
    }
}

/// The sessions of one broker, bounded by `max.incremental.fetch.session.cache.slots`.
#[derive(Debug)]
pub struct FetchSessionCache {
    max_slots: usize,
    eviction: Duration,
    sessions: HashMap<i32, FetchSession>,
    partitions_cached: usize,
    evictions: u64,
}

/// An incremental fetch that passed the epoch check.
#[derive(Debug)]
pub struct IncrementalFetch {
    /// The session's id (the response's `session_id`).
    pub session_id: i32,
    /// The partitions the request added or changed.
    pub changed: Vec<PartitionKey>,
    /// The partitions the request forgot.
    pub forgotten: Vec<PartitionKey>,
}

impl FetchSessionCache {
    /// An empty cache with `max_slots` sessions at most (0 turns sessions off).
    pub fn new(max_slots: usize) -> Self {
        Self::with_eviction(max_slots, Duration::from_millis(EVICTION_MS))
    }

    /// An empty cache whose sessions become evictable after `eviction` (tests).
    pub fn with_eviction(max_slots: usize, eviction: Duration) -> Self {
        Self {
            max_slots,
            eviction,
            sessions: HashMap::new(),
            partitions_cached: 0,
            evictions: 0,
        }
    }

    /// Sessions cached (Kafka's `NumIncrementalFetchSessions`).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is cached.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Partitions over all sessions (Kafka's `NumIncrementalFetchPartitionsCached`).
    pub fn partitions_cached(&self) -> usize {
        self.partitions_cached
    }

    /// Sessions evicted since start (Kafka's `IncrementalFetchSessionEvictionsPerSec`).
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// A session by id.
    pub fn get(&self, id: i32) -> Option<&FetchSession> {
        self.sessions.get(&id)
    }

    /// A session by id, to select its response.
    pub fn get_mut(&mut self, id: i32) -> Option<&mut FetchSession> {
        self.sessions.get_mut(&id)
    }

    /// Removes a session; whether it existed.
    pub fn remove(&mut self, id: i32) -> bool {
        match self.sessions.remove(&id) {
            Some(s) => {
                self.partitions_cached -= s.partitions.len();
                true
            }
            None => false,
        }
    }

    /// Creates a session for a full fetch of `topics` that answered `responses`, if there is
    /// a slot or one can be evicted; its id, or [`INVALID_SESSION_ID`] (the fetcher then keeps
    /// sending full fetches). `new_id` proposes ids (positive, retried on a clash).
    pub fn maybe_create(
        &mut self,
        now: Instant,
        privileged: bool,
        uses_topic_ids: bool,
        topics: &[FetchTopic],
        responses: &[FetchableTopicResponse],
        mut new_id: impl FnMut() -> i32,
    ) -> i32 {
        let (partitions, next_order) = to_partitions(topics, uses_topic_ids);
        if partitions.is_empty() || self.max_slots == 0 {
            return INVALID_SESSION_ID;
        }
        if self.sessions.len() >= self.max_slots
            && !self.try_evict(privileged, partitions.len(), now)
        {
            return INVALID_SESSION_ID;
        }
        let id = loop {
            let id = new_id();
            if id > 0 && !self.sessions.contains_key(&id) {
                break id;
            }
        };
        let mut session = FetchSession {
            id,
            epoch: next_epoch(INITIAL_EPOCH),
            privileged,
            uses_topic_ids,
            created: now,
            last_used: now,
            partitions,
            next_order,
            wakeups: None,
        };
        session.remember(responses);
        self.partitions_cached += session.partitions.len();
        self.sessions.insert(id, session);
        id
    }

    /// Checks an incremental fetch's id and epoch, applies its added, changed and forgotten
    /// partitions and advances the epoch. `None` when the session is left empty (it is
    /// removed; the fetch answers nothing, without a session).
    pub fn update(
        &mut self,
        now: Instant,
        id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        topics: &[FetchTopic],
        forgotten: &[ForgottenTopic],
    ) -> Result<Option<IncrementalFetch>, SessionError> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(SessionError::NotFound(id))?;
        if session.epoch != epoch {
            return Err(SessionError::InvalidEpoch {
                got: epoch,
                expected: session.epoch,
            });
        }
        if session.uses_topic_ids != uses_topic_ids {
            return Err(SessionError::TopicIdMismatch);
        }
        let before = session.partitions.len();
        let mut changed = Vec::new();
        for (key, fetch) in keyed(topics, uses_topic_ids) {
            match session.partitions.get_mut(&key) {
                Some(cached) => cached.fetch = fetch,
                None => {
                    let order = session.next_order;
                    session.next_order += 1;
                    session
                        .partitions
                        .insert(key.clone(), CachedPartition::new(fetch, order));
                }
            }
            changed.push(key);
        }
        let mut dropped = Vec::new();
        for ft in forgotten {
            for &partition in &ft.partitions {
                let key = key_of(ft.topic_id, &ft.topic, partition, uses_topic_ids);
                if session.partitions.remove(&key).is_some() {
                    dropped.push(key);
                }
            }
        }
        let after = session.partitions.len();
        self.partitions_cached = self.partitions_cached + after - before;
        if after == 0 {
            self.remove(id);
            return Ok(None);
        }
        session.epoch = next_epoch(session.epoch);
        session.last_used = now;
        Ok(Some(IncrementalFetch {
            session_id: id,
            changed,
            forgotten: dropped,
        }))
    }

    /// Frees a slot for a new session of `size` partitions; whether one was freed.
    fn try_evict(&mut self, privileged: bool, size: usize, now: Instant) -> bool {
        let stale = self
            .sessions
            .values()
            .filter(|s| now.saturating_duration_since(s.last_used) > self.eviction)
            .min_by_key(|s| (s.last_used, s.id))
            .map(|s| s.id);
        let victim = stale.or_else(|| {
            let old = |s: &FetchSession| now.saturating_duration_since(s.created) > self.eviction;
            self.sessions
                .values()
                .filter(|s| {
                    if privileged {
                        !s.privileged || old(s)
                    } else {
                        old(s)
                    }
                })
                .min_by_key(|s| s.rank())
                .filter(|s| s.rank() <= (privileged, size, i32::MAX))
                .map(|s| s.id)
        });
        match victim {
            Some(id) => {
                self.remove(id);
                self.evictions += 1;
                true
            }
            None => false,
        }
    }
}

/// The epoch after `epoch`: wraps to 1, never back to the initial or final epoch.
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// The session key of a partition: by topic id (`by_id`, Fetch v13+) or by name.
pub fn key_of(topic_id: Uuid, topic: &TopicName, partition: i32, by_id: bool) -> PartitionKey {
    if by_id {
        PartitionKey {
            topic_id,
            topic: TopicName(StrBytes::default()),
            partition,
        }
    } else {
        PartitionKey {
            topic_id: Uuid::nil(),
            topic: topic.clone(),
            partition,
        }
    }
}

fn keyed(
    topics: &[FetchTopic],
    by_id: bool,
) -> impl Iterator<Item = (PartitionKey, FetchPartition)> + '_ {
    topics.iter().flat_map(move |t| {
        t.partitions
            .iter()
            .map(move |p| (key_of(t.topic_id, &t.topic, p.partition, by_id), p.clone()))
    })
}

/// The partitions of a full fetch, in its order, and the order the next one takes.
fn to_partitions(
    topics: &[FetchTopic],
    by_id: bool,
) -> (HashMap<PartitionKey, CachedPartition>, u64) {
    let mut partitions = HashMap::new();
    let mut order = 0;
    for (key, fetch) in keyed(topics, by_id) {
        match partitions.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let cached: &mut CachedPartition = e.get_mut();
                cached.fetch = fetch;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(CachedPartition::new(fetch, order));
                order += 1;
            }
        }
    }
    (partitions, order)
}

/// The broker is shutting down: no more changes will come.
#[derive(Debug)]
pub struct Closed;

/// One partition's wait: its key, the number it was armed with, and its receiver back
/// (`None`: the partition was dropped, its watch closed).
struct Fired {
    key: PartitionKey,
    generation: u64,
    rx: Option<watch::Receiver<i64>>,
}

type Wait = Pin<Box<dyn Future<Output = Fired> + Send>>;

fn wait(key: PartitionKey, generation: u64, mut rx: watch::Receiver<i64>) -> Wait {
    Box::pin(async move {
        let rx = rx.changed().await.is_ok().then_some(rx);
        Fired {
            key,
            generation,
            rx,
        }
    })
}

/// What changed, on this broker, among one fetch session's partitions since they were last
/// read; kept in the session between its requests.
///
/// Invariant: every key of the session hosted here has one armed wait of its current
/// generation, or is in `dirty`; a wait is armed (its receiver marked seen) before the
/// partition is read, so a change after the read fires it.
pub struct SessionWakeups {
    image: watch::Receiver<u64>,
    waits: FuturesUnordered<Wait>,
    /// Watched keys and the number their wait was armed with (each arming takes a new one);
    /// a fired wait with another number (its partition forgotten, perhaps added again, or
    /// re-armed after a new image) is dropped.
    generations: HashMap<PartitionKey, u64>,
    generation: u64,
    /// To read at the next pass: changed, added, or not settled at the last read.
    dirty: HashSet<PartitionKey>,
    /// When every partition was last read.
    last_full: Instant,
    /// Read everything next pass, whatever the image says.
    full: bool,
}

impl std::fmt::Debug for SessionWakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWakeups")
            .field("watched", &self.generations.len())
            .field("dirty", &self.dirty.len())
            .finish_non_exhaustive()
    }
}

impl SessionWakeups {
    /// Watches nothing yet; the first pass reads (and watches) every partition. `image`
    /// changes whenever the broker applies a new metadata image.
    pub fn new(image: watch::Receiver<u64>) -> Self {
        Self {
            image,
            waits: FuturesUnordered::new(),
            generations: HashMap::new(),
            generation: 0,
            dirty: HashSet::new(),
            last_full: Instant::now(),
            full: true,
        }
    }

    /// Whether the next pass must read every partition: a new image (partitions created,
    /// moved, brokers fenced or back: resolve and watch them all again), or `every` passed
    /// since the last full read (so a follower that stays caught up on an idle partition is
    /// still seen fetching it, for the ISR, and nothing a watch cannot see goes unanswered
    /// for long).
    pub fn needs_full(&self, every: std::time::Duration) -> bool {
        self.full || self.image.has_changed().unwrap_or(true) || self.last_full.elapsed() >= every
    }

    /// Reads everything at the next pass.
    pub fn force_full(&mut self) {
        self.full = true;
    }

    /// Resolves and watches every key afresh and marks them all to read. `watch` gives the
    /// change watch of a partition hosted here (`None`: not hosted).
    pub fn rearm_all<'a>(
        &mut self,
        watch: impl Fn(&PartitionKey) -> Option<watch::Receiver<i64>>,
        keys: impl IntoIterator<Item = &'a PartitionKey>,
    ) {
        self.image.borrow_and_update();
        self.waits = FuturesUnordered::new();
        self.generations.clear();
        self.dirty.clear();
        for key in keys {
            self.arm(watch(key), key.clone());
        }
        self.last_full = Instant::now();
        self.full = false;
    }

    /// A partition the request added or changed: watched if it is not, read next pass.
    pub fn changed(
        &mut self,
        watch: impl Fn(&PartitionKey) -> Option<watch::Receiver<i64>>,
        key: PartitionKey,
    ) {
        if self.generations.contains_key(&key) {
            self.dirty.insert(key);
        } else {
            self.arm(watch(&key), key);
        }
    }

    /// A partition the request forgot: no longer watched or read.
    pub fn forget(&mut self, key: &PartitionKey) {
        self.generations.remove(key);
        self.dirty.remove(key);
    }

    /// Reads `key` again next pass (its last read was not settled).
    pub fn unsettled(&mut self, key: PartitionKey) {
        self.dirty.insert(key);
    }

    /// The partitions to read now: moves the ones that changed into the set (re-arming their
    /// waits first) and takes it.
    pub fn take_dirty(&mut self) -> Vec<PartitionKey> {
        // A poll goes through every woken wait until one is ready, so the first pending poll
        // means none is left.
        while let Some(Some(fired)) = self.waits.next().now_or_never() {
            self.on_fired(fired);
        }
        self.dirty.drain().collect()
    }

    /// Waits until a watched partition changes or a new image is applied.
    pub async fn changed_any(&mut self) -> Result<(), Closed> {
        loop {
            tokio::select! {
                image = self.image.changed() => {
                    return image.map_err(|_| Closed);
                }
                Some(fired) = self.waits.next(), if !self.waits.is_empty() => {
                    if self.on_fired(fired) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Arms the wait of `key` on its partition's change watch `rx` (`None`: not hosted here);
    /// marks it to read.
    fn arm(&mut self, rx: Option<watch::Receiver<i64>>, key: PartitionKey) {
        if let Some(rx) = rx {
            // A fresh receiver has seen the current value: only later changes fire it.
            self.generation += 1;
            self.generations.insert(key.clone(), self.generation);
            self.waits.push(wait(key.clone(), self.generation, rx));
        }
        // Not hosted here: read every pass (it answers an error) until a new image.
        self.dirty.insert(key);
    }

    /// Takes a fired wait: marks its partition to read and re-arms it (seen now, before the
    /// read). Whether it was one of the session's current waits.
    fn on_fired(&mut self, fired: Fired) -> bool {
        if self.generations.get(&fired.key) != Some(&fired.generation) {
            return false;
        }
        match fired.rx {
            Some(mut rx) => {
                rx.borrow_and_update();
                self.waits
                    .push(wait(fired.key.clone(), fired.generation, rx));
            }
            // Dropped (deleted, moved away): read once more, then only after a new image.
            None => {
                self.generations.remove(&fired.key);
            }
        }
        self.dirty.insert(fired.key);
        true
    }
}

#[cfg(test)]
#[path = "fetch_session_tests.rs"]
mod tests;
