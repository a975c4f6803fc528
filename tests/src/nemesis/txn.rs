//! A transactional consume-process-produce loop, as exactly-once applications run it, beside
//! the rest of the workload while faults happen.
//!
//! [`TXN_PROCESSORS`] processors share one consumer group on the workload's topic (the
//! input). Each has an rdkafka consumer (`isolation.level=read_committed`, no auto commit)
//! and a transactional producer of its own `transactional.id`. One iteration polls a batch,
//! begins a transaction, produces one record per input record to the output topic (same
//! partition, value = the input's value `n<SEQ>`, key = `<partition>@<offset>` of the
//! input), sends the consumer's positions with its group metadata to the transaction and
//! commits it. On an abortable error, or when the assignment changed under the batch, the
//! transaction is aborted and the consumer rewound to the batch's first offsets; on a fatal
//! one (a fenced producer) the producer is recreated with the same `transactional.id`, which
//! aborts whatever it left open. Every transaction is recorded with its input records and
//! its outcome ([`Txn`]); [`super::txn_check`] checks them against the output topic.
//!
//! A supervisor replaces a processor whose client call has not returned for `STUCK_AFTER`
//! (librdkafka's transactional calls can block past their own timeout): the new incarnation
//! takes the same `transactional.id`, which fences the stuck producer, and its consumer joins
//! the group while the stuck one is dropped from it after `max.poll.interval.ms`. Each
//! replacement is recorded ([`Stuck`]) and reported. `WEIR_NEMESIS_TXN_DEBUG` (librdkafka
//! `debug` contexts, e.g. `eos,protocol`) prints the processors' client logs on stderr.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::client_log::{note, with_debug, ClientLog, TXN_DEBUG};
use super::workload::{Target, SESSION_TIMEOUT_MS};

/// A producer whose delivery reports a thread of its own serves (`commit_transaction`
/// flushes, and librdkafka's flush waits for every delivery report to be served).
type TxnProducer = ThreadedProducer<ClientLog>;

impl ConsumerContext for ClientLog {}

impl ProducerContext for ClientLog {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Processors in the transactional group.
pub const TXN_PROCESSORS: usize = 2;
/// The most input records one transaction takes.
const MAX_BATCH: usize = 500;
/// How long a processor gathers a batch.
const BATCH_TIME: Duration = Duration::from_millis(200);
/// The timeout of each transactional call; a retriable failure is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The producers' `transaction.timeout.ms`: a transaction left open by a processor that
/// lost its coordinator is aborted by the coordinator after this.
const TRANSACTION_TIMEOUT_MS: u32 = 30_000;
/// How long a processor may take to finish when the run ends.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(90);
/// A processor whose client call has not returned for this long is replaced, and not waited
/// for when the run ends: every call has a [`CALL_TIMEOUT`], so one still running 15 s past
/// it is hung in the client. librdkafka 2.12's `send_offsets_to_transaction` hangs so when
/// its group coordinator drops out of a Metadata answer (fenced after a kill) while the call
/// waits on it: the decommissioned broker never changes state again to wake the request,
/// whose own timeout is never checked (librdkafka issues #5511 and #5456).
const STUCK_AFTER: Duration = Duration::from_secs(45);
/// A consumer that is not polled for this long leaves the group (the stuck one's partitions
/// go to the others).
const MAX_POLL_INTERVAL_MS: u32 = 60_000;

/// A processor replaced because a call did not return.
#[derive(Debug, Clone)]
pub struct Stuck {
    pub processor: usize,
    /// The client call that did not return.
    pub call: &'static str,
    /// When it was called.
    pub since: Instant,
    pub replaced_at: Instant,
}

/// One input record taken into a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    pub partition: i32,
    pub offset: i64,
    pub seq: u64,
}

/// How a transaction ended, as the client was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `commit_transaction` succeeded.
    Committed,
    /// Aborted by the processor (`abort_transaction` succeeded, or the producer was
    /// recreated, which aborts it), with why.
    Aborted(String),
    /// Ended by a fatal error after `commit_transaction` was called: the coordinator may
    /// have committed it.
    Unknown(String),
}

/// One transaction: who ran it, what it took from the input, the offsets it sent, how it
/// ended and when.
#[derive(Debug, Clone)]
pub struct Txn {
    pub processor: usize,
    pub inputs: Vec<Input>,
    /// Next offset per input partition, as sent with `send_offsets_to_transaction`.
    pub offsets: BTreeMap<i32, i64>,
    pub outcome: Outcome,
    pub at: Instant,
}

/// Everything the processors recorded.
#[derive(Debug, Default)]
pub struct TxnRecord {
    pub txns: Vec<Txn>,
    /// Producers recreated after a fatal error.
    pub fenced: u64,
    /// Errors seen, by call and librdkafka's message, and how often.
    pub errors: BTreeMap<String, u64>,
    /// Processors whose thread did not finish within `CLOSE_TIMEOUT` of the end, with the
    /// call each was in and for how long.
    pub not_closed: Vec<(usize, &'static str, Duration)>,
    /// Processors replaced by the supervisor.
    pub stuck: Vec<Stuck>,
    /// When the processors started (for the times in `went_back`).
    pub started: Option<Instant>,
    /// Where a processor's consumer went below an offset an acknowledged transaction had
    /// committed: a record read there, or an OffsetFetch answer below it. Either one precedes
    /// duplicated output; reported so that such a failure says how the consumer got there.
    pub went_back: Vec<String>,
    /// Each processor's assignment whenever it changed (seconds since the start, processor,
    /// partitions), printed with `went_back`.
    pub assignments: Vec<(f64, usize, BTreeSet<i32>)>,
}

impl TxnRecord {
    /// The highest offset committed per input partition by an acknowledged transaction.
    pub fn committed_offsets(&self) -> BTreeMap<i32, i64> {
        let mut last = BTreeMap::new();
        for t in self.txns.iter().filter(|t| t.outcome == Outcome::Committed) {
            for (p, o) in &t.offsets {
                let e = last.entry(*p).or_insert(*o);
                *e = (*e).max(*o);
            }
        }
        last
    }

    fn error(&mut self, call: &str, e: &KafkaError) {
        *self.errors.entry(format!("{call}: {e}")).or_default() += 1;
    }

    /// Notes that `processor` went below `committed`, the acknowledged commit of input
    /// `partition`, and which transaction committed it when.
    fn went_back(&mut self, processor: usize, partition: i32, committed: i64, what: String) {
        let since = |t: Instant| self.started.map_or(0.0, |s| (t - s).as_secs_f64());
        let at = since(Instant::now());
        let by = self
            .txns
            .iter()
            .find(|t| {
                t.outcome == Outcome::Committed && t.offsets.get(&partition) == Some(&committed)
            })
            .map(|t| format!("processor {} at {:.1}s", t.processor, since(t.at)))
            .unwrap_or_default();
        self.went_back.push(format!(
            "processor {processor} at {at:.1}s: {what} (committed by {by})"
        ));
    }
}

/// Where the processors read and write.
#[derive(Debug, Clone)]
pub struct TxnTarget {
    pub input: Target,
    pub output_topic: String,
    pub group: String,
    pub processors: usize,
}

impl TxnTarget {
    fn transactional_id(&self, processor: usize) -> String {
        format!("{}-processor-{processor}", self.group)
    }
}

/// One incarnation of a processor: told to stop on its own (when replaced or at the end),
/// and telling the supervisor which call it is in since when.
#[derive(Debug)]
struct Incarnation {
    running: AtomicBool,
    progress: Mutex<(&'static str, Instant)>,
}

impl Incarnation {
    fn new() -> Arc<Incarnation> {
        Arc::new(Incarnation {
            running: AtomicBool::new(true),
            progress: Mutex::new(("start", Instant::now())),
        })
    }

    fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Notes that the processor enters `call` now.
    fn enter(&self, call: &'static str) {
        *self.progress.lock().unwrap() = (call, Instant::now());
    }
}

/// A processor's current incarnation and its thread.
type Slot = (Arc<Incarnation>, JoinHandle<()>);

/// The running processors and their supervisor.
#[derive(Debug)]
pub struct Processors {
    pub record: Arc<Mutex<TxnRecord>>,
    running: Arc<AtomicBool>,
    slots: Arc<Mutex<Vec<Slot>>>,
    supervisor: Option<JoinHandle<()>>,
}

fn spawn(processor: usize, target: &TxnTarget, record: &Arc<Mutex<TxnRecord>>) -> Slot {
    let incarnation = Incarnation::new();
    let (t, r, i) = (target.clone(), record.clone(), incarnation.clone());
    let thread = std::thread::spawn(move || process(processor, &t, &r, &i));
    (incarnation, thread)
}

impl Processors {
    pub fn start(target: &TxnTarget) -> Processors {
        let record = Arc::new(Mutex::new(TxnRecord {
            started: Some(Instant::now()),
            ..TxnRecord::default()
        }));
        let running = Arc::new(AtomicBool::new(true));
        let slots: Vec<Slot> = (0..target.processors)
            .map(|i| spawn(i, target, &record))
            .collect();
        let slots = Arc::new(Mutex::new(slots));
        let supervisor = {
            let (t, r, s, run) = (
                target.clone(),
                record.clone(),
                slots.clone(),
                running.clone(),
            );
            std::thread::spawn(move || supervise(&t, &r, &s, &run))
        };
        Processors {
            record,
            running,
            slots,
            supervisor: Some(supervisor),
        }
    }

    /// The highest offset committed per input partition so far.
    pub fn committed_offsets(&self) -> BTreeMap<i32, i64> {
        self.record.lock().unwrap().committed_offsets()
    }

    /// Stops the supervisor and the processors (an open transaction is aborted). One that
    /// does not finish within `CLOSE_TIMEOUT`, or is in a call it entered `STUCK_AFTER`
    /// ago (hung: waiting longer would only delay the report), is noted and left behind, as
    /// are the incarnations replaced earlier.
    pub fn stop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(s) = self.supervisor.take() {
            s.join().expect("supervisor thread panicked");
        }
        let slots = std::mem::take(&mut *self.slots.lock().unwrap());
        for (incarnation, _) in &slots {
            incarnation.running.store(false, Ordering::SeqCst);
        }
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        for (i, (incarnation, t)) in slots.into_iter().enumerate() {
            let hung = || incarnation.progress.lock().unwrap().1.elapsed() >= STUCK_AFTER;
            while !t.is_finished() && Instant::now() < deadline && !hung() {
                std::thread::sleep(Duration::from_millis(50));
            }
            if t.is_finished() {
                t.join().expect("processor thread panicked");
            } else {
                let (call, since) = *incarnation.progress.lock().unwrap();
                let stuck = (i, call, since.elapsed());
                self.record.lock().unwrap().not_closed.push(stuck);
            }
        }
    }
}

impl Drop for Processors {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        for (incarnation, _) in self.slots.lock().unwrap().iter() {
            incarnation.running.store(false, Ordering::SeqCst);
        }
    }
}

/// Replaces every processor stuck in a call for [`STUCK_AFTER`], until the run ends.
fn supervise(
    target: &TxnTarget,
    record: &Arc<Mutex<TxnRecord>>,
    slots: &Mutex<Vec<Slot>>,
    running: &AtomicBool,
) {
    while running.load(Ordering::SeqCst) {
        {
            let mut slots = slots.lock().unwrap();
            for (processor, slot) in slots.iter_mut().enumerate() {
                let (call, since) = *slot.0.progress.lock().unwrap();
                if since.elapsed() < STUCK_AFTER || slot.1.is_finished() {
                    continue;
                }
                record.lock().unwrap().stuck.push(Stuck {
                    processor,
                    call,
                    since,
                    replaced_at: Instant::now(),
                });
                slot.0.running.store(false, Ordering::SeqCst);
                // The stuck thread is left behind: it ends when its call returns.
                *slot = spawn(processor, target, record);
            }
        }
        // Paces the supervision; not a synchronisation.
        std::thread::sleep(Duration::from_secs(1));
    }
}

type TxnConsumer = BaseConsumer<ClientLog>;

fn new_consumer(processor: usize, target: &TxnTarget) -> TxnConsumer {
    let mut config = target.input.client_config();
    config
        .set("group.id", &target.group)
        .set("client.id", format!("nemesis-processor-{processor}"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", "500")
        .set("max.poll.interval.ms", MAX_POLL_INTERVAL_MS.to_string())
        .set("fetch.wait.max.ms", "100");
    with_debug(&mut config, TXN_DEBUG);
    let consumer: TxnConsumer = config
        .create_with_context(ClientLog::new(
            format!("processor-{processor}-consumer"),
            TXN_DEBUG,
        ))
        .expect("creating a processor's consumer");
    consumer
        .subscribe(&[&target.input.topic])
        .expect("subscribing a processor");
    consumer
}

fn new_producer(processor: usize, target: &TxnTarget) -> TxnProducer {
    let mut config = target.input.client_config();
    config
        .set("transactional.id", target.transactional_id(processor))
        .set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS.to_string())
        .set("client.id", format!("nemesis-processor-{processor}"))
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "50");
    with_debug(&mut config, TXN_DEBUG);
    config
        .create_with_context(ClientLog::new(
            format!("processor-{processor}-producer"),
            TXN_DEBUG,
        ))
        .expect("creating a processor's transactional producer")
}

/// A producer that has its producer id: `init_transactions` retried until it succeeds or
/// the run ends.
fn ready_producer(
    processor: usize,
    target: &TxnTarget,
    record: &Mutex<TxnRecord>,
    me: &Incarnation,
) -> Option<TxnProducer> {
    let mut producer = new_producer(processor, target);
    while me.running() {
        me.enter("init_transactions");
        match producer.init_transactions(CALL_TIMEOUT) {
            Ok(()) => return Some(producer),
            Err(e) => {
                record.lock().unwrap().error("init_transactions", &e);
                if is_fatal(&e) {
                    producer = new_producer(processor, target);
                }
                // Paces the retries against an unreachable coordinator; not a synchronisation.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    None
}

fn is_fatal(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_fatal())
}

fn is_retriable(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_retriable())
}

/// A batch of input records polled from the consumer.
#[derive(Debug, Default)]
struct Batch {
    inputs: Vec<Input>,
    /// First and next offset per partition.
    ranges: BTreeMap<i32, (i64, i64)>,
}

impl Batch {
    fn push(&mut self, input: Input) {
        let e = self
            .ranges
            .entry(input.partition)
            .or_insert((input.offset, input.offset + 1));
        e.1 = input.offset + 1;
        self.inputs.push(input);
    }
}

fn assignment(consumer: &TxnConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls up to [`MAX_BATCH`] records for [`BATCH_TIME`]. `Err` with what was polled when the
/// consumer's position moved under the batch (the assignment changed, or a partition
/// restarted from its committed offset after a rebalance): the caller drops the batch and
/// rewinds.
fn poll_batch(
    consumer: &TxnConsumer,
    processor: usize,
    record: &Mutex<TxnRecord>,
) -> Result<Batch, Batch> {
    let held = assignment(consumer);
    let acknowledged = {
        let mut r = record.lock().unwrap();
        let last = r.assignments.iter().rev().find(|(_, p, _)| *p == processor);
        if last.is_none_or(|(_, _, a)| *a != held) {
            let at = r.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
            r.assignments.push((at, processor, held.clone()));
        }
        r.committed_offsets()
    };
    let mut batch = Batch::default();
    let until = Instant::now() + BATCH_TIME;
    while batch.inputs.len() < MAX_BATCH && Instant::now() < until {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            let seq =
                super::workload::value_seq(m.payload()).expect("the workload producer's own value");
            if batch
                .ranges
                .get(&m.partition())
                .is_some_and(|(_, next)| *next != m.offset())
            {
                return Err(batch);
            }
            let below = acknowledged
                .get(&m.partition())
                .filter(|c| m.offset() < **c && !batch.ranges.contains_key(&m.partition()));
            if let Some(c) = below {
                record.lock().unwrap().went_back(
                    processor,
                    m.partition(),
                    *c,
                    format!(
                        "read input {}@{} below the acknowledged commit {c}",
                        m.partition(),
                        m.offset()
                    ),
                );
            }
            batch.push(Input {
                partition: m.partition(),
                offset: m.offset(),
                seq,
            });
        }
    }
    if assignment(consumer) == held {
        Ok(batch)
    } else {
        Err(batch)
    }
}

/// Puts the consumer back at the group's committed offsets (OffsetFetch, which waits for
/// pending transactional offsets under `read_committed`), so the next batch takes the
/// uncommitted records again; at the batch's first offsets where the coordinator does not
/// answer (for the request or for a partition: an unanswered partition is not one without
/// a committed offset). A partition that cannot be sought (no longer held) is someone
/// else's now. Every answer is checked against the acknowledged commits.
///
/// Only the partitions the consumer has moved past records of the batch are sought: not a
/// partition the batch took nothing of, nor one (re)assigned since (no position yet: the
/// consumer starts it at the group's committed offset by itself). Seeking a partition whose
/// own start-offset lookup is still in flight trips a race of librdkafka 2.12: the lookup's
/// answer, outdated by the seek, re-arms the lookup timer of a partition that then
/// fetches; the timer later looks up `BEGINNING` again, and if the leader epoch changed
/// meanwhile the partition restarts from its first offset after the transaction that
/// consumed it committed (seen with seed 1 as duplicated output: the client's doing, not
/// the brokers').
fn rewind(
    consumer: &TxnConsumer,
    topic: &str,
    batch: &Batch,
    processor: usize,
    record: &Mutex<TxnRecord>,
) {
    let positioned: BTreeSet<i32> = consumer
        .position()
        .map(|tpl| {
            tpl.elements()
                .iter()
                .filter(|e| matches!(e.offset(), Offset::Offset(_)))
                .map(|e| e.partition())
                .collect()
        })
        .unwrap_or_default();
    let seeks = |p: i32| batch.ranges.contains_key(&p) && positioned.contains(&p);
    let acknowledged = record.lock().unwrap().committed_offsets();
    let seek_timeout = Duration::from_secs(5);
    let batch_start = |p: i32| {
        batch
            .ranges
            .get(&p)
            .map(|(first, _)| Offset::Offset(*first))
    };
    match consumer.committed(Duration::from_secs(10)) {
        Ok(committed) => {
            for e in committed.elements() {
                let offset = match (e.error(), e.offset()) {
                    (Ok(()), Offset::Offset(o)) => Some(Offset::Offset(o)),
                    // The group has no offset for it: where a new member starts too.
                    (Ok(()), _) => Some(Offset::Beginning),
                    // Not answered for this partition: no offset is known, which is not
                    // "none committed".
                    (Err(_), _) => batch_start(e.partition()),
                };
                let known = acknowledged.get(&e.partition()).copied();
                let below = match offset {
                    Some(Offset::Offset(o)) => known.filter(|k| o < *k),
                    Some(Offset::Beginning) => known.filter(|k| *k > 0),
                    _ => None,
                };
                if let Some(k) = below {
                    record.lock().unwrap().went_back(
                        processor,
                        e.partition(),
                        k,
                        format!(
                            "OffsetFetch answered {:?} for input {} after the acknowledged commit {k}",
                            e.offset(),
                            e.partition()
                        ),
                    );
                }
                let sought = offset
                    .filter(|_| seeks(e.partition()))
                    .map(|o| consumer.seek(topic, e.partition(), o, seek_timeout));
                note(
                    TXN_DEBUG,
                    &format!("processor-{processor}"),
                    format_args!(
                        "rewind: OffsetFetch {}: {:?} {:?}, seek to {offset:?}: {sought:?}",
                        e.partition(),
                        e.offset(),
                        e.error()
                    ),
                );
            }
        }
        Err(e) => {
            note(
                TXN_DEBUG,
                &format!("processor-{processor}"),
                format_args!("rewind: OffsetFetch failed ({e}), batch {:?}", batch.ranges),
            );
            for p in batch.ranges.keys().filter(|p| seeks(**p)) {
                if let Some(offset) = batch_start(*p) {
                    let _ = consumer.seek(topic, *p, offset, seek_timeout);
                }
            }
        }
    }
}

/// What one attempt at a transaction ended in.
enum Step {
    Done(Outcome),
    /// The producer is unusable: recreate it.
    Fatal(Outcome),
}

fn process(processor: usize, target: &TxnTarget, record: &Mutex<TxnRecord>, me: &Incarnation) {
    let consumer = new_consumer(processor, target);
    let Some(mut producer) = ready_producer(processor, target, record, me) else {
        return;
    };
    while me.running() {
        me.enter("poll");
        let batch = match poll_batch(&consumer, processor, record) {
            Ok(batch) => batch,
            Err(partial) => {
                note(
                    TXN_DEBUG,
                    &format!("processor-{processor}"),
                    format_args!("batch dropped: {:?}", partial.ranges),
                );
                rewind(&consumer, &target.input.topic, &partial, processor, record);
                continue;
            }
        };
        if batch.inputs.is_empty() {
            continue;
        }
        let step = transact(&consumer, &producer, target, &batch, record, me);
        let (outcome, fatal) = match step {
            Step::Done(o) => (o, false),
            Step::Fatal(o) => (o, true),
        };
        note(
            TXN_DEBUG,
            &format!("processor-{processor}"),
            format_args!("transaction over {:?}: {outcome:?}", batch.ranges),
        );
        if outcome != Outcome::Committed {
            rewind(&consumer, &target.input.topic, &batch, processor, record);
        }
        let offsets = batch.ranges.iter().map(|(p, (_, n))| (*p, *n)).collect();
        {
            let mut r = record.lock().unwrap();
            r.txns.push(Txn {
                processor,
                inputs: batch.inputs,
                offsets,
                outcome,
                at: Instant::now(),
            });
            if fatal {
                r.fenced += 1;
            }
        }
        if fatal {
            drop(producer);
            match ready_producer(processor, target, record, me) {
                Some(p) => producer = p,
                None => return,
            }
        }
    }
    me.enter("close (producer and consumer)");
    drop(producer);
    // Dropping the consumer closes it: it leaves the group.
    drop(consumer);
}

/// One transaction over `batch`: begin, produce, send offsets, commit; aborted on an
/// abortable error.
fn transact(
    consumer: &TxnConsumer,
    producer: &TxnProducer,
    target: &TxnTarget,
    batch: &Batch,
    record: &Mutex<TxnRecord>,
    me: &Incarnation,
) -> Step {
    let failed = |call: &str, e: &KafkaError| {
        record.lock().unwrap().error(call, e);
        format!("{call}: {e}")
    };
    me.enter("begin_transaction");
    if let Err(e) = producer.begin_transaction() {
        let why = failed("begin_transaction", &e);
        return Step::Fatal(Outcome::Aborted(why));
    }
    me.enter("produce");
    if let Err(why) = produce_batch(producer, target, batch) {
        *record
            .lock()
            .unwrap()
            .errors
            .entry(why.clone())
            .or_default() += 1;
        return abort(producer, why, record, me);
    }
    let mut offsets = TopicPartitionList::new();
    for (p, (_, next)) in &batch.ranges {
        offsets
            .add_partition_offset(&target.input.topic, *p, Offset::Offset(*next))
            .expect("a valid offset");
    }
    let Some(metadata) = consumer.group_metadata() else {
        return abort(producer, "no group metadata".into(), record, me);
    };
    loop {
        me.enter("send_offsets_to_transaction");
        match producer.send_offsets_to_transaction(&offsets, &metadata, CALL_TIMEOUT) {
            Ok(()) => break,
            Err(e) if is_fatal(&e) => {
                return Step::Fatal(Outcome::Aborted(failed("send_offsets_to_transaction", &e)))
            }
            Err(e) if is_retriable(&e) && me.running() => {
                failed("send_offsets_to_transaction", &e);
            }
            Err(e) => {
                let why = failed("send_offsets_to_transaction", &e);
                return abort(producer, why, record, me);
            }
        }
    }
    loop {
        me.enter("commit_transaction");
        match producer.commit_transaction(CALL_TIMEOUT) {
            Ok(()) => return Step::Done(Outcome::Committed),
            Err(e) if is_fatal(&e) => {
                return Step::Fatal(Outcome::Unknown(failed("commit_transaction", &e)))
            }
            // A commit whose outcome is not known yet is retried, even at the end of the
            // run: abandoning it would leave the outcome unknown.
            Err(e) if is_retriable(&e) => {
                failed("commit_transaction", &e);
            }
            Err(e) => {
                let why = failed("commit_transaction", &e);
                return abort(producer, why, record, me);
            }
        }
    }
}

/// Produces one output record per input record; `Err` when one cannot be queued.
fn produce_batch(producer: &TxnProducer, target: &TxnTarget, batch: &Batch) -> Result<(), String> {
    for input in &batch.inputs {
        let key = format!("{}@{}", input.partition, input.offset);
        let value = format!("n{}", input.seq);
        loop {
            let sent = producer.send(
                BaseRecord::to(&target.output_topic)
                    .partition(input.partition)
                    .key(&key)
                    .payload(&value),
            );
            match sent {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // The queue drains as the producer's thread serves deliveries.
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(format!("produce: {e}")),
            }
        }
    }
    Ok(())
}

/// Aborts the transaction (retried while retriable); a producer that cannot abort is
/// fatal.
fn abort(producer: &TxnProducer, why: String, record: &Mutex<TxnRecord>, me: &Incarnation) -> Step {
    loop {
        me.enter("abort_transaction");
        match producer.abort_transaction(CALL_TIMEOUT) {
            Ok(()) => return Step::Done(Outcome::Aborted(why)),
            Err(e) if is_retriable(&e) => record.lock().unwrap().error("abort_transaction", &e),
            Err(e) => {
                record.lock().unwrap().error("abort_transaction", &e);
                return Step::Fatal(Outcome::Aborted(why));
            }
        }
    }
}
