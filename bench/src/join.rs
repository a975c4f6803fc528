//! A member joining a live consumer group (issue 17): how long the group takes to settle, and
//! how long the members already in it stop receiving meanwhile, for the classic protocol
//! (eager and cooperative assignors) and the consumer protocol of KIP-848, Weir and Apache
//! Kafka alternately on the same machine.
//!
//! Each case: a fresh single broker, a topic of `partitions` partitions fed at a steady rate
//! (every partition in turn, so each one carries records all the time), `members` librdkafka
//! consumers in a fresh group reading from the end; once their assignment is stable and
//! records have flowed for a while, one more member subscribes. **Settle** is the time from
//! that subscribe until every partition is owned by exactly one member and none is
//! empty-handed; **pause** is, for each member that was already there, the longest stretch
//! without a record from the subscribe until two seconds after the settle (the largest of
//! them is reported: the member that waited longest).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::ClientContext;
use serde::{Deserialize, Serialize};

use crate::cases::Topology;
use crate::client;
use crate::process::Launcher;
use crate::results::BrokerKind;
use crate::scale::wait_ready;
use crate::stats;

const TOPIC: &str = "join";
/// Records flow this long before the new member subscribes, and after the group settles.
const STEADY: Duration = Duration::from_secs(2);

/// How the members form their group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// The classic protocol with librdkafka's default assignors (`range,roundrobin`): every
    /// member gives up everything on a rebalance.
    ClassicEager,
    /// The classic protocol with `cooperative-sticky`: only moved partitions are revoked.
    ClassicCooperative,
    /// KIP-848 (`group.protocol=consumer`): the broker assigns, incrementally.
    Consumer,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [
        Protocol::ClassicEager,
        Protocol::ClassicCooperative,
        Protocol::Consumer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::ClassicEager => "classic, range/roundrobin (eager)",
            Protocol::ClassicCooperative => "classic, cooperative-sticky",
            Protocol::Consumer => "consumer (KIP-848)",
        }
    }

    fn configure(self, config: &mut rdkafka::ClientConfig) {
        match self {
            Protocol::ClassicEager => {
                config.set("partition.assignment.strategy", "range,roundrobin");
            }
            Protocol::ClassicCooperative => {
                config.set("partition.assignment.strategy", "cooperative-sticky");
            }
            Protocol::Consumer => {
                config.set("group.protocol", "consumer");
            }
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub launcher: Launcher,
    pub systems: Vec<BrokerKind>,
    pub protocols: Vec<Protocol>,
    pub rounds: usize,
    pub partitions: i32,
    /// Members before the join.
    pub members: usize,
    /// Records per second the producer sends (spread over the partitions).
    pub rate: f64,
    /// Give up on a group that has not settled after this long.
    pub timeout: Duration,
}

/// One join.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinPoint {
    pub system: String,
    pub protocol: Protocol,
    pub settle_ms: f64,
    /// The longest stretch without records any member already in the group saw.
    pub pause_max_ms: f64,
}

/// The member's assignment as librdkafka applies it, and when it received records.
#[derive(Default)]
struct Tracker {
    assignment: Mutex<BTreeSet<i32>>,
    received: Mutex<Vec<Instant>>,
}

struct SharedTracker(Arc<Tracker>);

impl ClientContext for SharedTracker {}

impl ConsumerContext for SharedTracker {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut owned = self.0.assignment.lock().unwrap_or_else(|e| e.into_inner());
        match rebalance {
            Rebalance::Assign(tpl) => owned.extend(tpl.elements().iter().map(|e| e.partition())),
            Rebalance::Revoke(tpl) => {
                for e in tpl.elements() {
                    owned.remove(&e.partition());
                }
            }
            Rebalance::Error(_) => {}
        }
    }
}

/// One group member polling on its own thread until dropped (which closes it).
pub struct Member {
    tracker: Arc<Tracker>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn start(bootstrap: &str, group: &str, protocol: Protocol) -> anyhow::Result<Member> {
        let mut config = client::base_config(bootstrap);
        config
            .set("group.id", group)
            .set("auto.offset.reset", "latest")
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "100");
        protocol.configure(&mut config);
        Member::subscribe(&config, TOPIC)
    }

    /// A member of the group `config` names, subscribed to `topic`, polling on its own
    /// thread; it tracks its assignment and when it received records.
    pub fn subscribe(config: &rdkafka::ClientConfig, topic: &str) -> anyhow::Result<Member> {
        let tracker = Arc::new(Tracker::default());
        let consumer: BaseConsumer<SharedTracker> =
            config.create_with_context(SharedTracker(tracker.clone()))?;
        consumer.subscribe(&[topic])?;
        let stop = Arc::new(AtomicBool::new(false));
        let (stopping, seen) = (stop.clone(), tracker.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                // Rebalance callbacks run inside poll.
                if let Some(Ok(_)) = consumer.poll(Duration::from_millis(10)) {
                    let mut received = seen.received.lock().unwrap_or_else(|e| e.into_inner());
                    received.push(Instant::now());
                }
            }
            consumer.unsubscribe();
        });
        Ok(Member {
            tracker,
            stop,
            thread: Some(thread),
        })
    }

    /// The partitions librdkafka has assigned to this member.
    pub fn assignment(&self) -> BTreeSet<i32> {
        self.tracker
            .assignment
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn received(&self) -> Vec<Instant> {
        self.tracker
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("assignment", &self.assignment())
            .finish_non_exhaustive()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether `members` hold every partition exactly once, each holding at least one.
pub fn stable<M: std::borrow::Borrow<Member>>(members: &[M], partitions: i32) -> bool {
    let sets: Vec<BTreeSet<i32>> = members.iter().map(|m| m.borrow().assignment()).collect();
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    sets.iter().all(|s| !s.is_empty())
        && total == partitions as usize
        && union == (0..partitions).collect()
}

fn wait_stable(members: &[Member], options: &JoinOptions, what: &str) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + options.timeout;
    while !stable(members, options.partitions) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: no stable assignment within {:?}",
            options.timeout
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(Instant::now())
}

/// The longest stretch in `[from, to]` without an instant of `received` (sorted).
pub fn longest_gap(received: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for &at in received.iter().filter(|&&at| at > from && at <= to) {
        longest = longest.max(at - last);
        last = at;
    }
    longest.max(to.saturating_duration_since(last))
}

/// A producer sending `rate` records a second, each partition in turn, until stopped.
struct Feed {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Feed {
    fn start(bootstrap: &str, partitions: i32, rate: f64) -> anyhow::Result<Feed> {
        let producer: ThreadedProducer<_> = client::base_config(bootstrap)
            .set("linger.ms", "0")
            .create()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut sent: u32 = 0;
            while !stopping.load(Ordering::Relaxed) {
                let partition = (sent % partitions as u32) as i32;
                let record = BaseRecord::<(), [u8]>::to(TOPIC)
                    .partition(partition)
                    .payload(&[0u8; 100]);
                // A full queue means the broker is away: drop the record, keep the pace.
                let _ = producer.send(record);
                sent += 1;
                if let Some(wait) = (interval * sent).checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            producer.flush(Duration::from_secs(10))?;
            Ok(())
        });
        Ok(Feed {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs every case: per round, each system's broker once, every protocol on it in turn.
pub fn run(options: &JoinOptions) -> anyhow::Result<Vec<JoinPoint>> {
    let mut points = Vec::new();
    for round in 0..options.rounds {
        for &kind in &options.systems {
            let label = format!("{}-join-{round}", kind.name().to_lowercase());
            let mut broker = options
                .launcher
                .start(kind, &label, &Topology::SINGLE_NODE)?;
            wait_ready(&mut broker)?;
            let bootstrap = broker.bootstrap();
            client::create_topic(
                &bootstrap,
                TOPIC,
                options.partitions,
                &Topology::SINGLE_NODE,
            )?;
            let feed = Feed::start(&bootstrap, options.partitions, options.rate)?;
            for &protocol in &options.protocols {
                let group = format!("join-{round}-{protocol:?}");
                let point = join_once(options, &bootstrap, &group, protocol, kind)?;
                eprintln!("  round {round}: {point:?}");
                points.push(point);
            }
            drop(feed);
            broker.stop()?;
        }
    }
    Ok(points)
}

fn join_once(
    options: &JoinOptions,
    bootstrap: &str,
    group: &str,
    protocol: Protocol,
    kind: BrokerKind,
) -> anyhow::Result<JoinPoint> {
    let mut members = (0..options.members)
        .map(|_| Member::start(bootstrap, group, protocol))
        .collect::<anyhow::Result<Vec<_>>>()?;
    wait_stable(&members, options, "before the join")?;
    std::thread::sleep(STEADY);
    let subscribed = Instant::now();
    members.push(Member::start(bootstrap, group, protocol)?);
    let settled = wait_stable(&members, options, "after the join")?;
    std::thread::sleep(STEADY);
    let until = settled + STEADY;
    let pause = members[..options.members]
        .iter()
        .map(|m| longest_gap(&m.received(), subscribed, until))
        .max()
        .unwrap_or_default();
    Ok(JoinPoint {
        system: kind.name().to_string(),
        protocol,
        settle_ms: (settled - subscribed).as_secs_f64() * 1000.0,
        pause_max_ms: pause.as_secs_f64() * 1000.0,
    })
}

/// The comments that delimit the join section of docs/BENCHMARKS.md.
pub const BEGIN_MARKER: &str = "<!-- weir-bench:join:begin -->";
pub const END_MARKER: &str = "<!-- weir-bench:join:end -->";

/// A table row's metric: its name and how to read it off a join.
type Metric = (&'static str, fn(&JoinPoint) -> f64);

/// The table: per protocol, medians of settle and pause, Weir beside Kafka.
pub fn render(points: &[JoinPoint], options_line: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{options_line}\n");
    out.push_str("| protocol | metric | Weir | Kafka | Weir/Kafka |\n|---|---|---:|---:|---:|\n");
    for protocol in Protocol::ALL {
        let median = |system: &str, value: fn(&JoinPoint) -> f64| {
            let values: Vec<f64> = points
                .iter()
                .filter(|p| p.protocol == protocol && p.system == system)
                .map(value)
                .collect();
            stats::median(&values)
        };
        let metrics: [Metric; 2] = [
            ("join settles", |p| p.settle_ms),
            ("longest pause of a member already in", |p| p.pause_max_ms),
        ];
        for (metric, value) in metrics {
            let (w, k) = (median("Weir", value), median("Kafka", value));
            if w.is_none() && k.is_none() {
                continue;
            }
            let show = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0} ms"));
            let ratio = match (w, k) {
                (Some(w), Some(k)) if k > 0.0 => format!("{:.2}x", w / k),
                _ => "–".to_string(),
            };
            let _ = writeln!(
                out,
                "| {} | {metric} | {} | {} | {ratio} |",
                protocol.name(),
                show(w),
                show(k)
            );
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_counts_the_edges_of_the_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let received = [at(5), at(10), at(300), at(320)];
        // 10 → 300 is the longest inside.
        assert_eq!(
            longest_gap(&received, t0, at(400)),
            Duration::from_millis(290)
        );
        // Nothing after 320 until the window ends at 1000: 680.
        assert_eq!(
            longest_gap(&received, t0, at(1000)),
            Duration::from_millis(680)
        );
        // Nothing at all: the whole window.
        assert_eq!(longest_gap(&[], t0, at(50)), Duration::from_millis(50));
    }

    #[test]
    fn the_table_shows_medians_and_ratios_per_protocol() {
        let point = |system: &str, settle: f64| JoinPoint {
            system: system.into(),
            protocol: Protocol::Consumer,
            settle_ms: settle,
            pause_max_ms: 10.0,
        };
        let table = render(
            &[
                point("Weir", 100.0),
                point("Weir", 300.0),
                point("Kafka", 400.0),
            ],
            "3 members",
        );
        assert!(
            table.contains("| consumer (KIP-848) | join settles | 200 ms | 400 ms | 0.50x |"),
            "{table}"
        );
        assert!(
            !table.contains("eager"),
            "no rows for protocols not measured: {table}"
        );
    }
}
