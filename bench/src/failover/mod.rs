//! `weir-bench failover`: how long acknowledgements stop under faults, Weir and Apache Kafka
//! on the same harness (issue 13).
//!
//! Each system runs as three brokers ([`Launcher::start_with`], the same [`Settings`] for
//! both), with one topic of one partition, replication factor 3 and `min.insync.replicas=2`.
//! An idempotent `acks=all` producer sends a record every few milliseconds and a committer
//! commits synchronously ([`probe`]). Faults ([`Fault`]) are applied one at a time, each kind
//! in turn, `repetitions` rounds; after each the cluster heals (killed brokers restarted,
//! paused ones continued) and the next fault waits until every replica is in sync again and
//! both clients are acknowledged again.
//!
//! What one fault measures ([`FaultResult`]):
//! - `gap`: from the fault to the first acknowledgement of a record *sent after* the fault
//!   (for the coordinator kill, of a commit sent after it), the time a writer that started
//!   after the fault waits;
//! - `silence`: the longest time without any acknowledgement at all around the fault.
//!
//! [`report`] renders medians and maxima side by side with the Weir/Kafka ratio.

pub mod observer;
pub mod probe;
pub mod report;
pub mod settings;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::cases::Topology;
use crate::client;
use crate::process::{Launcher, RunningBrokers};
use crate::results::BrokerKind;
use observer::{Observer, OFFSETS_TOPIC};
use probe::{Probes, Timeline};
pub use settings::Settings;

const TOPIC: &str = "failover";
const GROUP: &str = "failover-committer";
/// How long acknowledgements may stay away after a fault before the run gives up on it.
pub(crate) const GAP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the cluster may take to heal after a fault.
const HEAL_TIMEOUT: Duration = Duration::from_secs(180);
/// Acknowledgements watched after the first one, so the silence around the fault is whole.
const AFTERMATH: Duration = Duration::from_secs(1);
/// How long two killed brokers stay down.
const TWO_DOWN_HOLD: Duration = Duration::from_secs(5);

/// One kind of fault, applied to whichever broker holds the role at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Fault {
    /// SIGKILL of the partition leader, restarted once acknowledgements are back.
    LeaderKill,
    /// SIGKILL of the metadata quorum's leader, restarted once acknowledgements are back.
    ControllerKill,
    /// SIGSTOP of the partition leader until acknowledgements are back (past the session
    /// timeout: nothing but fencing brings them back), then SIGCONT.
    LeaderPause,
    /// SIGKILL of the partition leader and one follower; both restarted after
    /// `TWO_DOWN_HOLD`; `acks=all` cannot succeed before one is back.
    TwoBrokersKill,
    /// SIGKILL of the group coordinator; the gap is the committer's.
    CoordinatorKill,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::LeaderKill,
        Fault::ControllerKill,
        Fault::LeaderPause,
        Fault::TwoBrokersKill,
        Fault::CoordinatorKill,
    ];

    /// The name `weir-bench failover --faults` takes.
    pub fn cli_name(self) -> &'static str {
        match self {
            Fault::LeaderKill => "leader-kill",
            Fault::ControllerKill => "controller-kill",
            Fault::LeaderPause => "leader-pause",
            Fault::TwoBrokersKill => "two-brokers-kill",
            Fault::CoordinatorKill => "coordinator-kill",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Fault::LeaderKill => "SIGKILL partition leader",
            Fault::ControllerKill => "SIGKILL quorum leader",
            Fault::LeaderPause => "SIGSTOP partition leader",
            Fault::TwoBrokersKill => "SIGKILL leader + follower, back after 5 s",
            Fault::CoordinatorKill => "SIGKILL group coordinator (commit gap)",
        }
    }
}

/// What one fault measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultResult {
    pub broker: BrokerKind,
    pub fault: Fault,
    pub repetition: usize,
    /// Node ids of the brokers the fault hit.
    pub victims: Vec<i32>,
    /// Whether the victim also led the partition (a quorum-leader or coordinator kill that
    /// also moves the partition's leadership).
    pub victim_led_partition: bool,
    /// Whether a request sent after the fault was acknowledged within `GAP_TIMEOUT` (the
    /// fault itself undone only after that: a paused broker stays paused until then).
    #[serde(default = "yes")]
    pub recovered: bool,
    /// Fault to the first acknowledgement of a request sent after it, in seconds (to the
    /// end of `GAP_TIMEOUT` if none was).
    pub gap_seconds: f64,
    /// The longest time without any acknowledgement around the fault, in seconds.
    pub silence_seconds: f64,
    /// For the coordinator kill: the producer's gap too.
    pub produce_gap_seconds: Option<f64>,
    /// When a fault moved the partition's leadership: fault to the first metadata answer
    /// naming a new leader, in seconds (detection and election; the rest of the gap is the
    /// clients' and replication's).
    #[serde(default)]
    pub new_leader_seconds: Option<f64>,
    /// The fault's wall-clock time (milliseconds since the epoch), to find it in broker logs.
    #[serde(default)]
    pub at_unix_ms: u64,
}

/// A whole failover run: settings, and every fault of both systems.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailoverResults {
    pub machine: String,
    pub weir_version: String,
    pub kafka_version: String,
    pub weir_build: String,
    pub settings: Settings,
    pub repetitions: usize,
    pub command: String,
    pub faults: Vec<FaultResult>,
}

#[derive(Debug)]
pub struct FailoverOptions {
    pub launcher: Launcher,
    pub systems: Vec<BrokerKind>,
    pub faults: Vec<Fault>,
    pub repetitions: usize,
    pub settings: Settings,
    pub results_path: Option<PathBuf>,
}

/// Runs every fault `repetitions` times on each system in turn; saves after each system.
pub fn run(options: &FailoverOptions, results: &mut FailoverResults) -> anyhow::Result<()> {
    for &kind in &options.systems {
        eprintln!("failover: {}", kind.name());
        let measured = run_system(options, kind)
            .with_context(|| format!("failover run on {}", kind.name()))?;
        results.faults.extend(measured);
        if let Some(path) = &options.results_path {
            let json = serde_json::to_string_pretty(results)?;
            std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// One cluster start of `kind`, every fault in turn.
pub fn run_system(options: &FailoverOptions, kind: BrokerKind) -> anyhow::Result<Vec<FaultResult>> {
    let topology = Topology::cluster(3);
    let label = format!("{}-failover", kind.name().to_lowercase());
    let mut brokers =
        options
            .launcher
            .start_with(kind, &label, &topology, &options.settings.broker_pairs())?;
    let logs = brokers.logs.clone();
    let outcome = measure_faults(options, kind, &mut brokers, &topology);
    // A paused broker cannot act on SIGTERM.
    for node in 0..3 {
        let _ = brokers.signal(node, Signal::SIGCONT);
    }
    let _ = brokers.stop();
    outcome.with_context(|| {
        format!(
            "broker logs: {}",
            logs.iter()
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn measure_faults(
    options: &FailoverOptions,
    kind: BrokerKind,
    brokers: &mut RunningBrokers,
    topology: &Topology,
) -> anyhow::Result<Vec<FaultResult>> {
    let bootstrap = brokers.bootstrap();
    wait_until(HEAL_TIMEOUT, "the cluster to create a topic", || {
        client::create_topic(&bootstrap, TOPIC, 1, topology).is_ok()
    })?;
    let observer = Observer::new(&bootstrap)?;
    let probes = Probes::start(&bootstrap, TOPIC, GROUP, &options.settings)?;
    let mut results = Vec::new();
    for repetition in 0..options.repetitions {
        for &fault in &options.faults {
            heal_wait(brokers, &observer, &probes)
                .with_context(|| format!("before {fault:?} {repetition}"))?;
            let result = inject(kind, fault, repetition, brokers, &observer, &probes)
                .with_context(|| format!("{fault:?} {repetition}"))?;
            eprintln!(
                "  {} {:?} #{repetition} on {:?} at {} ms: {}gap {:.3}s, silence {:.3}s, new leader in metadata {}{}",
                kind.name(),
                fault,
                result.victims,
                result.at_unix_ms,
                if result.recovered { "" } else { "NOT RECOVERED, " },
                result.gap_seconds,
                result.silence_seconds,
                result
                    .new_leader_seconds
                    .map_or("-".to_string(), |s| format!("{s:.3}s")),
                result
                    .produce_gap_seconds
                    .map(|g| format!(", producer gap {g:.3}s"))
                    .unwrap_or_default()
            );
            results.push(result);
        }
    }
    heal_wait(brokers, &observer, &probes).context("after the last fault")?;
    eprintln!(
        "  {}: {} records and {} commits acknowledged, {} records and {} commits failed",
        kind.name(),
        probes.records.len(),
        probes.commits.len(),
        probes.records.failed(),
        probes.commits.failed()
    );
    Ok(results)
}

/// Applies `fault`, measures, and undoes it (restart, continue).
fn inject(
    kind: BrokerKind,
    fault: Fault,
    repetition: usize,
    brokers: &mut RunningBrokers,
    observer: &Observer,
    probes: &Probes,
) -> anyhow::Result<FaultResult> {
    let partition = observer
        .partition(TOPIC, 0)
        .context("no leader for the topic")?;
    let leader = partition.leader;
    let victims: Vec<i32> = match fault {
        Fault::LeaderKill | Fault::LeaderPause => vec![leader],
        Fault::ControllerKill => vec![controller(kind, brokers)?],
        Fault::CoordinatorKill => vec![
            observer
                .partition(OFFSETS_TOPIC, 0)
                .context("no leader for the offsets topic")?
                .leader,
        ],
        Fault::TwoBrokersKill => {
            let follower = partition
                .replicas
                .iter()
                .copied()
                .find(|&r| r != leader)
                .context("no follower")?;
            vec![leader, follower]
        }
    };
    let nodes = victims
        .iter()
        .map(|&id| {
            brokers
                .node_of(id)
                .with_context(|| format!("no broker {id}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let timeline: &Timeline = match fault {
        Fault::CoordinatorKill => &probes.commits,
        _ => &probes.records,
    };
    let at = Instant::now();
    let at_unix_ms = unix_ms();
    for &node in &nodes {
        match fault {
            Fault::LeaderPause => brokers.signal(node, Signal::SIGSTOP)?,
            _ => brokers.kill_node(node)?,
        }
    }
    let moves_leader = victims.contains(&leader) && fault != Fault::TwoBrokersKill;
    let (first, produce_first, elected) = std::thread::scope(|scope| {
        // When the metadata first names a new leader: detection and election, apart from
        // what the clients and replication add after it.
        let elected = scope.spawn(|| {
            moves_leader
                .then(|| {
                    wait_for(GAP_TIMEOUT, || {
                        observer
                            .partition(TOPIC, 0)
                            .filter(|p| !victims.contains(&p.leader))
                            .map(|_| Instant::now())
                    })
                })
                .flatten()
        });
        if fault == Fault::TwoBrokersKill {
            std::thread::sleep(TWO_DOWN_HOLD);
            for &node in &nodes {
                brokers.restart(node)?;
            }
        }
        let first = wait_for(GAP_TIMEOUT, || timeline.first_sent_after(at));
        let produce_first = (fault == Fault::CoordinatorKill)
            .then(|| wait_for(GAP_TIMEOUT, || probes.records.first_sent_after(at)))
            .flatten();
        let elected = elected.join().expect("metadata watcher");
        anyhow::Ok((first, produce_first, elected))
    })?;
    // Let the aftermath in, so the silence around the fault is whole.
    std::thread::sleep(AFTERMATH);
    match fault {
        Fault::LeaderPause => brokers.signal(nodes[0], Signal::SIGCONT)?,
        Fault::TwoBrokersKill => {}
        _ => {
            for &node in &nodes {
                brokers.restart(node)?;
            }
        }
    }
    // No acknowledgement within GAP_TIMEOUT is a result (the fault was healed above; the
    // table counts it), not a reason to abandon the run.
    let recovered = first.is_some();
    let until = first.map_or_else(Instant::now, |a| a.acked);
    Ok(FaultResult {
        recovered,
        broker: kind,
        fault,
        repetition,
        victim_led_partition: victims.contains(&leader),
        victims,
        gap_seconds: (until - at).as_secs_f64(),
        silence_seconds: timeline
            .longest_silence(at, until + AFTERMATH)
            .as_secs_f64(),
        produce_gap_seconds: produce_first.map(|a| (a.acked - at).as_secs_f64()),
        new_leader_seconds: elected.map(|t| (t - at).as_secs_f64()),
        at_unix_ms,
    })
}

fn yes() -> bool {
    true
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The metadata quorum's leader now (also the controller the scale bench kills).
pub(crate) fn controller(kind: BrokerKind, brokers: &RunningBrokers) -> anyhow::Result<i32> {
    let id = match kind {
        BrokerKind::Weir => brokers
            .addrs
            .iter()
            .find_map(|&addr| observer::weir_controller(addr).ok().filter(|&id| id >= 0)),
        BrokerKind::Kafka => {
            let dirs: Vec<PathBuf> = (0..brokers.addrs.len())
                .map(|node| brokers.kafka_node_dir(node))
                .collect();
            observer::kafka_controller(dirs.iter().map(PathBuf::as_path))
        }
    };
    id.context("no quorum leader known")
}

/// Until every broker serves, the topic and the offsets topic have all three replicas in
/// sync, and both clients have been acknowledged in the last second.
fn heal_wait(
    brokers: &mut RunningBrokers,
    observer: &Observer,
    probes: &Probes,
) -> anyhow::Result<()> {
    let count = brokers.addrs.len();
    let fresh = |timeline: &Timeline| {
        timeline
            .last_acked()
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
    };
    wait_until(HEAL_TIMEOUT, "the cluster to heal", || {
        observer.live_brokers() == Some(count)
            && [TOPIC, OFFSETS_TOPIC].iter().all(|topic| {
                observer
                    .partition(topic, 0)
                    .is_some_and(|p| p.isr.len() == count)
            })
            && fresh(&probes.records)
            && fresh(&probes.commits)
    })
}

fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    if wait_for(timeout, || done().then_some(())).is_some() {
        Ok(())
    } else {
        bail!("timed out after {timeout:?} waiting for {what}")
    }
}

/// Polls `check` every 10 ms until it answers or `timeout` passes.
fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The smoke check CI runs: one clean leader kill on a Weir cluster, with a short session
/// timeout so it takes seconds. Fails unless acknowledgements resumed within
/// `SMOKE_GAP_BOUND` and the killed broker came back in sync.
pub fn smoke(launcher: &Launcher) -> anyhow::Result<FaultResult> {
    let mut settings = Settings::default();
    for (name, value) in &mut settings.broker {
        match name.as_str() {
            "broker.session.timeout.ms" => *value = "3000".to_string(),
            "broker.heartbeat.interval.ms" => *value = "500".to_string(),
            _ => {}
        }
    }
    let options = FailoverOptions {
        launcher: launcher.clone(),
        systems: vec![BrokerKind::Weir],
        faults: vec![Fault::LeaderKill],
        repetitions: 1,
        settings,
        results_path: None,
    };
    let mut measured = run_system(&options, BrokerKind::Weir)?;
    let result = measured.pop().context("no fault measured")?;
    if result.gap_seconds > SMOKE_GAP_BOUND.as_secs_f64() {
        bail!(
            "acknowledgements resumed {:.1}s after the leader kill, more than {SMOKE_GAP_BOUND:?} \
             with a 3 s session timeout",
            result.gap_seconds
        );
    }
    Ok(result)
}

/// The smoke's bound on the gap: the 3 s session timeout, an election and a client's metadata
/// refresh, with a wide margin for a debug build on a loaded machine.
const SMOKE_GAP_BOUND: Duration = Duration::from_secs(20);
