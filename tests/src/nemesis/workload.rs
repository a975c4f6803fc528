//! What runs against the cluster while faults happen, each on its own thread, recording
//! everything the checker needs:
//!
//! - an idempotent `acks=all` producer ([`Acked`]: partition, offset, sequence number and
//!   time of every acknowledged record; values are `n<SEQ>`, unique in the run, and sent
//!   round-robin over the partitions, so a partition's sequence numbers rise with its
//!   offsets);
//! - a consumer group of rdkafka members that commit their positions synchronously every
//!   [`COMMIT_INTERVAL`] ([`CommitAck`] per acknowledged partition offset, with latency) and
//!   whose assignments are kept with their times (`rd_kafka_commit` in sync mode: librdkafka
//!   0.39's `BaseConsumer` never hands async commit results to the commit callback, tried
//!   against a healthy broker; a sync commit slower than [`COMMIT_TIMEOUT`] is reported);
//! - an OffsetFetch watcher that polls the coordinator and records every committed offset
//!   that went backwards ([`Backwards`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::client_log::{with_debug, ClientLog, MEMBER_DEBUG, PRODUCER_DEBUG};
use super::probe;

/// How often a member commits what it consumed.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(250);
/// How often the watcher asks the coordinator for the committed offsets.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// Records the producer may have outstanding before it waits for acknowledgements.
const MAX_IN_FLIGHT: usize = 2_000;
/// The consumers' session timeout (the SIGSTOP fault pauses a broker longer than this).
pub const SESSION_TIMEOUT_MS: u32 = 6_000;
/// A commit answered later than this is reported as unanswered in time.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a member may take to close (LeaveGroup) when the run ends.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(60);

/// One acknowledged record.
#[derive(Debug, Clone, Copy)]
pub struct Acked {
    pub partition: i32,
    pub offset: i64,
    pub seq: u64,
    pub at: Instant,
}

/// One acknowledged commit of one partition.
#[derive(Debug, Clone, Copy)]
pub struct CommitAck {
    pub member: usize,
    pub partition: i32,
    pub offset: i64,
    pub at: Instant,
}

/// A committed offset the watcher saw lower than one it had seen before.
#[derive(Debug, Clone)]
pub struct Backwards {
    pub partition: i32,
    pub from: i64,
    pub from_at: Instant,
    /// The coordinator that answered `from`.
    pub from_coordinator: i32,
    pub to: i64,
    pub at: Instant,
    pub coordinator: i32,
}

/// What a member holds, as of `since`.
#[derive(Debug, Clone)]
pub struct Holding {
    pub partitions: BTreeSet<i32>,
    pub since: Instant,
}

/// Everything recorded, shared between the threads and the fault loop.
#[derive(Debug, Default)]
pub struct Record {
    pub acked: Vec<Acked>,
    pub delivery_failures: u64,
    /// Why deliveries failed: librdkafka's error, and how often.
    pub delivery_errors: BTreeMap<String, u64>,
    pub producer_fatal: Vec<String>,
    pub commits: Vec<CommitAck>,
    /// Latency of every synchronous commit call that succeeded.
    pub commit_latencies: Vec<Duration>,
    pub commit_failures: Vec<(usize, Instant, String)>,
    /// Commits that got no answer within [`COMMIT_TIMEOUT`]: (member, sent at).
    pub commits_unanswered: Vec<(usize, Instant)>,
    /// Members whose thread did not finish within `CLOSE_TIMEOUT` of the end.
    pub members_not_closed: Vec<usize>,
    /// Per member, its assignment history (the last entry is the current one).
    pub holdings: Vec<Vec<Holding>>,
    pub backwards: Vec<Backwards>,
    /// Offset resets librdkafka logged for the members (a fetch out of range, a truncation
    /// found by KIP-320 validation): (member, when, librdkafka's line). A reset moves a member
    /// back to `auto.offset.reset`, and its next commits go backwards.
    pub member_resets: Vec<(usize, Instant, String)>,
    /// The highest committed offset the watcher saw per partition, and when.
    pub watched: BTreeMap<i32, (i64, Instant, i32)>,
}

/// The shared record.
pub type Shared = Arc<Mutex<Record>>;

/// Where the workload points.
#[derive(Debug, Clone)]
pub struct Target {
    pub brokers: Vec<SocketAddr>,
    pub topic: String,
    pub partitions: i32,
    pub group: String,
    pub members: usize,
}

impl Target {
    pub(super) fn client_config(&self) -> ClientConfig {
        let bootstrap = self
            .brokers
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("broker.address.family", "v4")
            .set("topic.metadata.refresh.interval.ms", "500")
            .set("socket.connection.setup.timeout.ms", "3000");
        config
    }
}

/// The running threads. Stop them with [`Workload::stop_producer`] then
/// [`Workload::stop_consumers`]; dropping stops everything too.
#[derive(Debug)]
pub struct Workload {
    pub record: Shared,
    producing: Arc<AtomicBool>,
    consuming: Arc<AtomicBool>,
    producer: Option<JoinHandle<()>>,
    members: Vec<JoinHandle<()>>,
    watcher: Option<JoinHandle<()>>,
}

impl Workload {
    pub fn start(target: &Target) -> Workload {
        let record: Shared = Arc::new(Mutex::new(Record {
            holdings: vec![Vec::new(); target.members],
            ..Record::default()
        }));
        let producing = Arc::new(AtomicBool::new(true));
        let consuming = Arc::new(AtomicBool::new(true));
        let producer = {
            let (t, r, run) = (target.clone(), record.clone(), producing.clone());
            std::thread::spawn(move || produce(&t, &r, &run))
        };
        let members = (0..target.members)
            .map(|member| {
                let (t, r, run) = (target.clone(), record.clone(), consuming.clone());
                std::thread::spawn(move || consume(member, &t, &r, &run))
            })
            .collect();
        let watcher = {
            let (t, r, run) = (target.clone(), record.clone(), consuming.clone());
            std::thread::spawn(move || watch(&t, &r, &run))
        };
        Workload {
            record,
            producing,
            consuming,
            producer: Some(producer),
            members,
            watcher: Some(watcher),
        }
    }

    /// Stops producing and waits until every outstanding record is acknowledged or failed.
    pub fn stop_producer(&mut self) {
        self.producing.store(false, Ordering::SeqCst);
        if let Some(p) = self.producer.take() {
            p.join().expect("producer thread panicked");
        }
    }

    /// Stops the members (they leave the group) and the watcher. A member that does not
    /// finish within `CLOSE_TIMEOUT` is noted and left behind.
    pub fn stop_consumers(&mut self) {
        self.consuming.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        for (i, m) in self.members.drain(..).enumerate() {
            while !m.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if m.is_finished() {
                m.join().expect("member thread panicked");
            } else {
                self.record.lock().unwrap().members_not_closed.push(i);
            }
        }
        if let Some(w) = self.watcher.take() {
            w.join().expect("watcher thread panicked");
        }
    }

    /// The time of the latest acknowledged record.
    pub fn last_ack(&self) -> Option<Instant> {
        self.record.lock().unwrap().acked.last().map(|a| a.at)
    }

    /// Each member's current partitions.
    pub fn assignments(&self) -> Vec<BTreeSet<i32>> {
        let record = self.record.lock().unwrap();
        record
            .holdings
            .iter()
            .map(|h| h.last().map(|h| h.partitions.clone()).unwrap_or_default())
            .collect()
    }

    /// The highest acknowledged commit per partition.
    pub fn last_commits(&self) -> BTreeMap<i32, i64> {
        let record = self.record.lock().unwrap();
        let mut last = BTreeMap::new();
        for c in &record.commits {
            let e = last.entry(c.partition).or_insert(c.offset);
            *e = (*e).max(c.offset);
        }
        last
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.producing.store(false, Ordering::SeqCst);
        self.consuming.store(false, Ordering::SeqCst);
        // Threads are joined only on the normal path: a panicking test must not wait for a
        // flush against a broken cluster.
    }
}

/// The sequence number in a value the workload producer wrote (`n<seq>`).
pub fn value_seq(payload: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(payload?)
        .ok()?
        .strip_prefix('n')?
        .parse()
        .ok()
}

/// Records each delivery report.
struct AckContext {
    record: Shared,
    log: ClientLog,
}

impl ClientContext for AckContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.print(level, fac, log_message);
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let at = Instant::now();
        let mut record = self.record.lock().unwrap();
        match result {
            Ok(m) => {
                let seq = value_seq(m.payload()).expect("the producer's own value");
                record.acked.push(Acked {
                    partition: m.partition(),
                    offset: m.offset(),
                    seq,
                    at,
                });
            }
            Err((e, _)) => {
                record.delivery_failures += 1;
                *record.delivery_errors.entry(e.to_string()).or_default() += 1;
            }
        }
    }
}

fn new_producer(target: &Target, record: &Shared) -> BaseProducer<AckContext> {
    let mut config = target.client_config();
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "180000")
        .set("retry.backoff.ms", "50")
        .set("client.id", "nemesis-producer");
    with_debug(&mut config, PRODUCER_DEBUG);
    config
        .create_with_context(AckContext {
            record: record.clone(),
            log: ClientLog::new("nemesis-producer".into(), PRODUCER_DEBUG),
        })
        .expect("creating the producer")
}

fn produce(target: &Target, record: &Shared, running: &AtomicBool) {
    let mut producer = new_producer(target, record);
    let mut seq: u64 = 0;
    while running.load(Ordering::SeqCst) {
        if let Some((code, reason)) = producer.client().fatal_error() {
            // An idempotent producer cannot go on after a fatal error: note it (the checker
            // fails the run) and carry on with a new one, so the rest of the run still counts.
            record
                .lock()
                .unwrap()
                .producer_fatal
                .push(format!("{code:?}: {reason}"));
            producer = new_producer(target, record);
        }
        if producer.in_flight_count() < MAX_IN_FLIGHT as i32 {
            for _ in 0..target.partitions {
                let value = format!("n{seq}");
                let partition = (seq % target.partitions as u64) as i32;
                let sent = producer.send(
                    BaseRecord::<(), String>::to(&target.topic)
                        .partition(partition)
                        .payload(&value),
                );
                if sent.is_err() {
                    break; // queue full: poll below, send this sequence number again
                }
                seq += 1;
            }
        }
        // Serves delivery callbacks and paces the producer (about 100 rounds a second).
        producer.poll(Duration::from_millis(10));
    }
    let _ = producer.flush(Duration::from_secs(180));
}

/// A member's consumption state: next offset per held partition and what was committed.
#[derive(Debug, Default)]
struct Progress {
    positions: BTreeMap<i32, i64>,
    committed: BTreeMap<i32, i64>,
    held: BTreeSet<i32>,
    /// The member context's rebalance count when the positions were last cleared.
    rebalances: u64,
}

/// A member's client context: counts the assignments librdkafka applies, so the member's
/// bookkeeping notices a partition lost and assigned again between two polls, and keeps the
/// offset resets librdkafka logs (printed as well, see [`ClientLog`]).
struct MemberContext {
    rebalances: std::sync::atomic::AtomicU64,
    member: usize,
    log: ClientLog,
    record: Shared,
}

impl ClientContext for MemberContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if self.log.print(level, fac, log_message) {
            self.record.lock().unwrap().member_resets.push((
                self.member,
                Instant::now(),
                log_message.to_string(),
            ));
        }
    }
}

impl rdkafka::consumer::ConsumerContext for MemberContext {
    fn post_rebalance(
        &self,
        _consumer: &BaseConsumer<Self>,
        _rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
    }
}

type Member = BaseConsumer<MemberContext>;

impl Progress {
    /// Polls once: notes a consumed record and a changed assignment.
    fn poll(&mut self, member: usize, consumer: &Member, record: &Shared) {
        let polled = consumer.poll(Duration::from_millis(100));
        // After any rebalance, positions consumed under the old assignment are not this
        // member's to commit, even for a partition it holds again: a real consumer commits
        // what it consumed since the assignment (librdkafka resets its positions to the
        // committed offsets). Committing a stale position would move the group backwards.
        let rebalances = consumer.context().rebalances.load(Ordering::SeqCst);
        if rebalances != self.rebalances {
            self.rebalances = rebalances;
            self.positions.clear();
            self.committed.clear();
        }
        if let Some(Ok(m)) = polled {
            self.positions.insert(m.partition(), m.offset() + 1);
        }
        let now_held: BTreeSet<i32> = consumer
            .assignment()
            .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        if now_held != self.held {
            self.positions.retain(|p, _| now_held.contains(p));
            self.committed.retain(|p, _| now_held.contains(p));
            self.held = now_held.clone();
            record.lock().unwrap().holdings[member].push(Holding {
                partitions: now_held,
                since: Instant::now(),
            });
        }
    }
}

fn consume(member: usize, target: &Target, record: &Shared, running: &AtomicBool) {
    let mut config = target.client_config();
    config
        .set("group.id", &target.group)
        .set("client.id", format!("nemesis-member-{member}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    with_debug(&mut config, MEMBER_DEBUG);
    let context = MemberContext {
        rebalances: Default::default(),
        member,
        log: ClientLog::new(format!("nemesis-member-{member}"), MEMBER_DEBUG),
        record: record.clone(),
    };
    let consumer: Member = config
        .create_with_context(context)
        .expect("creating a member");
    consumer
        .subscribe(&[&target.topic])
        .expect("subscribing a member");
    let mut progress = Progress::default();
    let mut last_commit = Instant::now();
    record.lock().unwrap().holdings[member].push(Holding {
        partitions: BTreeSet::new(),
        since: Instant::now(),
    });
    while running.load(Ordering::SeqCst) {
        progress.poll(member, &consumer, record);
        if last_commit.elapsed() < COMMIT_INTERVAL {
            continue;
        }
        last_commit = Instant::now();
        let due: Vec<(i32, i64)> = progress
            .positions
            .iter()
            .filter(|(p, o)| progress.committed.get(*p).is_none_or(|c| c < *o))
            .map(|(p, o)| (*p, *o))
            .collect();
        if due.is_empty() {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &due {
            tpl.add_partition_offset(&target.topic, *p, Offset::Offset(*o))
                .expect("a valid offset");
        }
        let sent = Instant::now();
        let result = consumer.commit(&tpl, CommitMode::Sync);
        let at = Instant::now();
        let mut r = record.lock().unwrap();
        match result {
            Ok(()) => {
                r.commit_latencies.push(at - sent);
                if at - sent >= COMMIT_TIMEOUT {
                    r.commits_unanswered.push((member, sent));
                }
                for (p, o) in due {
                    let e = progress.committed.entry(p).or_insert(o);
                    *e = (*e).max(o);
                    r.commits.push(CommitAck {
                        member,
                        partition: p,
                        offset: o,
                        at,
                    });
                }
            }
            Err(e) => r.commit_failures.push((member, at, e.to_string())),
        }
    }
    // Dropping the consumer closes it: it leaves the group.
}

fn watch(target: &Target, record: &Shared, running: &AtomicBool) {
    let mut coordinator: Option<(i32, crate::raw::RawClient)> = None;
    while running.load(Ordering::SeqCst) {
        let round = Instant::now();
        if coordinator.is_none() {
            coordinator = probe::find_coordinator(&target.brokers, &target.group)
                .and_then(|(id, addr)| Some((id, probe::connect(addr)?)));
        }
        let fetched = coordinator.as_mut().and_then(|(id, client)| {
            probe::committed_offsets(client, &target.group, &target.topic, target.partitions)
                .map(|offsets| (*id, offsets))
        });
        match fetched {
            None => coordinator = None,
            Some((id, offsets)) => {
                let at = Instant::now();
                let mut r = record.lock().unwrap();
                for (partition, offset) in offsets {
                    match r.watched.get(&partition).copied() {
                        Some((seen, seen_at, seen_from)) if offset < seen => {
                            r.backwards.push(Backwards {
                                partition,
                                from: seen,
                                from_at: seen_at,
                                from_coordinator: seen_from,
                                to: offset,
                                at,
                                coordinator: id,
                            })
                        }
                        Some((seen, _, _)) if offset == seen => {}
                        _ if offset < 0 => {}
                        _ => {
                            r.watched.insert(partition, (offset, at, id));
                        }
                    }
                }
            }
        }
        // Paces the polling; not a synchronisation.
        if let Some(rest) = WATCH_INTERVAL.checked_sub(round.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}
