//! The nemesis: three real `weir-broker` processes, a workload that records everything
//! acknowledged to it ([`workload`]) and a transactional consume-process-produce loop
//! ([`txn`], checked by [`txn_check`]), faults drawn from a seeded schedule ([`faults`]) and
//! applied one at a time — SIGKILL, SIGSTOP, network partitions between namespaces
//! ([`net`]), a full disk ([`disk`]) — and at the end a checker that compares what was
//! acknowledged with what the cluster holds ([`checker`]) and prints a report.
//!
//! One harness, two sizes: `tests/tests/nemesis.rs` runs it bounded in CI,
//! `scripts/nemesis.sh` runs it long. [`Settings::from_env`] reads the knobs
//! (`WEIR_NEMESIS_FAULTS`, `WEIR_NEMESIS_SEED`, `WEIR_NEMESIS_DURATION_S`, ...).
//!
//! Network and disk faults need root. Without it they are left out of the schedule with a
//! printed reason, unless `WEIR_REQUIRE_NEMESIS=1`, which makes their absence a failure.
//!
//! Cleanup: fields of [`Harness`] drop in declaration order — the workload's clients, then
//! the brokers (killed), then the disks (unmounted), then the network (namespaces, veths,
//! bridge, iptables rule) — on success and while a test panics alike.

pub mod checker;
pub mod client_log;
pub mod disk;
pub mod faults;
pub mod net;
pub mod probe;
pub mod rng;
pub mod txn;
pub mod txn_check;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::CreateTopicsRequest;
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::raw::{self, RawClient};
use checker::{FaultOutcome, Report, Settled};
use disk::SmallDisk;
use faults::FaultKind;
use net::Network;
use rng::SeededRng;
use txn::{Processors, TxnTarget};
use workload::{Target, Workload};

/// Brokers in the cluster (all voters).
const BROKERS: usize = 3;
/// Broker settings on top of [`crate::cluster::FAST_FAILOVER`].
const BROKER_SETTINGS: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "300"),
    ("group.min.session.timeout.ms", "1000"),
];
/// How long the cluster may take to heal after a fault: leaders, full ISR, a new ack.
const HEAL_TIMEOUT: Duration = Duration::from_secs(120);
/// How often memory is sampled while the harness waits.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// The knobs of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    pub faults: usize,
    /// Stop scheduling faults after this long (the checks still run).
    pub duration: Option<Duration>,
    pub partitions: i32,
    pub members: usize,
    /// Processors of the transactional consume-process-produce loop.
    pub processors: usize,
    /// Every member must hold partitions again within this after a fault is healed.
    pub assign_bound: Duration,
    /// Peak resident memory allowed per broker process.
    pub memory_limit_bytes: u64,
    /// Size of each broker's tmpfs data directory (it holds the whole run's log).
    pub disk_bytes: u64,
    /// Fail instead of skipping network and disk faults when they cannot run here.
    pub require_all_faults: bool,
    /// Only these kinds of fault (all when empty), for a focused reproduction.
    pub only_kinds: Vec<FaultKind>,
}

/// Whether this process runs with effective uid 0 (from `/proc/self/status`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let uids = s.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            uids.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a valid value")),
    )
}

impl Settings {
    /// `default_faults` and a seed from the clock, overridden by `WEIR_NEMESIS_FAULTS`,
    /// `WEIR_NEMESIS_SEED`, `WEIR_NEMESIS_DURATION_S`, `WEIR_NEMESIS_PARTITIONS`,
    /// `WEIR_NEMESIS_MEMBERS`, `WEIR_NEMESIS_PROCESSORS`, `WEIR_NEMESIS_ASSIGN_BOUND_S`,
    /// `WEIR_NEMESIS_MEMORY_LIMIT_MB`, `WEIR_NEMESIS_DISK_MB`, `WEIR_NEMESIS_KINDS` (fault names, as the report prints them,
    /// separated by commas) and `WEIR_REQUIRE_NEMESIS=1`.
    pub fn from_env(default_faults: usize, default_seed: Option<u64>) -> Settings {
        let clock_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Settings {
            seed: env_parse("WEIR_NEMESIS_SEED")
                .or(default_seed)
                .unwrap_or(clock_seed),
            faults: env_parse("WEIR_NEMESIS_FAULTS").unwrap_or(default_faults),
            duration: env_parse("WEIR_NEMESIS_DURATION_S").map(Duration::from_secs),
            partitions: env_parse("WEIR_NEMESIS_PARTITIONS").unwrap_or(6),
            members: env_parse("WEIR_NEMESIS_MEMBERS").unwrap_or(3),
            processors: env_parse("WEIR_NEMESIS_PROCESSORS").unwrap_or(txn::TXN_PROCESSORS),
            assign_bound: Duration::from_secs(
                env_parse("WEIR_NEMESIS_ASSIGN_BOUND_S").unwrap_or(60),
            ),
            memory_limit_bytes: env_parse::<u64>("WEIR_NEMESIS_MEMORY_LIMIT_MB").unwrap_or(1024)
                << 20,
            disk_bytes: env_parse::<u64>("WEIR_NEMESIS_DISK_MB").unwrap_or(512) << 20,
            require_all_faults: std::env::var("WEIR_REQUIRE_NEMESIS").is_ok_and(|v| v == "1"),
            only_kinds: std::env::var("WEIR_NEMESIS_KINDS")
                .map(|names| {
                    names
                        .split(',')
                        .map(|name| {
                            FaultKind::from_name(name.trim()).unwrap_or_else(|| {
                                panic!("WEIR_NEMESIS_KINDS: `{name}` is not a fault kind")
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A running nemesis. Field order is drop order (see the module doc).
#[derive(Debug)]
pub struct Harness {
    workload: Option<Workload>,
    processors: Option<Processors>,
    cluster: Cluster,
    disks: Vec<SmallDisk>,
    network: Option<Network>,
    settings: Settings,
    rng: SeededRng,
    target: Target,
    txn_target: TxnTarget,
    started: Instant,
    /// Peak VmHWM seen per broker (over all its processes).
    peak_memory: Vec<u64>,
    last_sample: Instant,
    /// Things that happened that are not failures by themselves (a broker exiting on a full
    /// disk, as Kafka's does).
    events: Vec<String>,
    outcomes: Vec<FaultOutcome>,
    skipped: Vec<String>,
    /// Why the run cannot go on (a broker that does not come back): the schedule stops and
    /// the report says so instead of checking a cluster that is not there.
    aborted: Option<String>,
}

impl Harness {
    /// Starts the cluster (in namespaces, on small disks, when possible), creates the topic
    /// and starts the workload.
    pub fn start(settings: Settings) -> Harness {
        println!(
            "nemesis: seed {} (rerun with WEIR_NEMESIS_SEED={}), {} faults",
            settings.seed, settings.seed, settings.faults
        );
        let mut skipped = Vec::new();
        let network = match net::unavailable_reason() {
            None => Some(Network::create(BROKERS)),
            Some(reason) => {
                skipped.push(format!("network faults skipped: {reason}"));
                None
            }
        };
        let disks: Vec<SmallDisk> = match disk::unavailable_reason() {
            None => (0..BROKERS)
                .map(|_| SmallDisk::mount(settings.disk_bytes))
                .collect(),
            Some(reason) => {
                skipped.push(format!("disk-full faults skipped: {reason}"));
                Vec::new()
            }
        };
        for s in &skipped {
            println!("nemesis: {s}");
        }
        if settings.require_all_faults && !skipped.is_empty() {
            panic!("WEIR_REQUIRE_NEMESIS=1 but: {}", skipped.join("; "));
        }
        let hosts: Vec<IpAddr> = (0..BROKERS)
            .map(|i| match &network {
                Some(n) => n.address(i),
                None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            })
            .collect();
        let netns: Vec<Option<String>> = (0..BROKERS)
            .map(|i| network.as_ref().map(|n| n.netns(i).to_string()))
            .collect();
        let data_dirs: Vec<_> = disks.iter().map(SmallDisk::data_dir).collect();
        let cluster = Cluster::start_on_hosts(&hosts, BROKERS, BROKER_SETTINGS, |i, mut o| {
            o.netns = netns[i].clone();
            o.data_dir = data_dirs.get(i).cloned();
            // The brokers' log filter, for a closer look at a failure (e.g.
            // `info,weir_broker::group=debug`).
            if let Ok(filter) = std::env::var("WEIR_NEMESIS_BROKER_LOG") {
                o.env.push(("WEIR_LOG".into(), filter));
            }
            o
        });
        let target = Target {
            brokers: cluster.brokers.iter().map(|b| b.kafka_addr()).collect(),
            topic: crate::unique_topic("nemesis"),
            partitions: settings.partitions,
            group: crate::unique_topic("nemesis-group"),
            members: settings.members,
        };
        let txn_target = TxnTarget {
            input: target.clone(),
            output_topic: crate::unique_topic("nemesis-txn-out"),
            group: crate::unique_topic("nemesis-txn-group"),
            processors: settings.processors,
        };
        create_topic(&cluster, &target.brokers, &target.topic, target.partitions);
        create_topic(
            &cluster,
            &target.brokers,
            &txn_target.output_topic,
            target.partitions,
        );
        let rng = SeededRng::new(settings.seed);
        let mut harness = Harness {
            workload: None,
            processors: None,
            peak_memory: vec![0; BROKERS],
            cluster,
            disks,
            network,
            settings,
            rng,
            target,
            txn_target,
            started: Instant::now(),
            last_sample: Instant::now(),
            events: Vec::new(),
            outcomes: Vec::new(),
            skipped,
            aborted: None,
        };
        harness.workload = Some(Workload::start(&harness.target));
        harness.processors = Some(Processors::start(&harness.txn_target));
        let since = Instant::now();
        let settled = harness.wait_settled(since, Duration::from_secs(120));
        assert!(
            settled.all(),
            "the workload never got going within 120 s: {settled:?}"
        );
        harness
    }

    /// Fault kinds this machine can run.
    fn available_kinds(&self) -> Vec<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .filter(|k| !k.needs_network() || self.network.is_some())
            .filter(|k| !k.needs_disk() || !self.disks.is_empty())
            .filter(|k| self.settings.only_kinds.is_empty() || self.settings.only_kinds.contains(k))
            .collect()
    }

    /// Runs the schedule, then the checks; returns the report (the caller asserts on it).
    pub fn run(mut self) -> Report {
        let kinds = self.available_kinds();
        let schedule = faults::schedule(&mut self.rng, &kinds, self.settings.faults);
        for (index, kind) in schedule.into_iter().enumerate() {
            if let Some(limit) = self.settings.duration {
                if self.started.elapsed() >= limit {
                    println!("nemesis: duration of {limit:?} reached after {index} faults");
                    break;
                }
            }
            let outcome = self.inject(index, kind);
            println!("nemesis: {}", outcome.summary(self.started));
            self.outcomes.push(outcome);
            if let Some(reason) = self.aborted.take() {
                return Report::aborted(
                    self.settings.seed,
                    self.started,
                    &self.outcomes,
                    &self.events,
                    &reason,
                );
            }
        }
        self.finish()
    }

    /// A random broker id.
    fn random_broker(&mut self) -> usize {
        self.rng.below(BROKERS as u64) as usize
    }

    fn coordinator(&mut self) -> usize {
        match probe::find_coordinator(&self.target.brokers, &self.target.group) {
            Some((id, _)) if (id as usize) < BROKERS => id as usize,
            _ => self.random_broker(),
        }
    }

    fn controller(&mut self) -> usize {
        match self.cluster.controller(&self.target.topic) {
            Some(id) if (id as usize) < BROKERS => id as usize,
            _ => self.random_broker(),
        }
    }

    fn partition_leader(&mut self) -> usize {
        let p = self.rng.below(self.target.partitions as u64) as i32;
        match self.cluster.partition(&self.target.topic, p) {
            Some(v) if v.leader >= 0 && (v.leader as usize) < BROKERS => v.leader as usize,
            _ => self.random_broker(),
        }
    }

    /// Applies one fault, holds it, heals it and waits for the cluster to settle.
    fn inject(&mut self, index: usize, kind: FaultKind) -> FaultOutcome {
        self.sample_memory();
        let mut nodes = match kind {
            FaultKind::KillPartitionLeader => vec![self.partition_leader()],
            FaultKind::KillCoordinator | FaultKind::IsolateCoordinator => vec![self.coordinator()],
            FaultKind::KillController | FaultKind::IsolateController => vec![self.controller()],
            FaultKind::KillRandom
            | FaultKind::PauseRandom
            | FaultKind::IsolateRandom
            | FaultKind::DiskFull => vec![self.random_broker()],
            FaultKind::KillTwo | FaultKind::OneWayDrop => {
                let a = self.random_broker();
                let b = (a + 1 + self.rng.below(BROKERS as u64 - 1) as usize) % BROKERS;
                vec![a, b]
            }
        };
        let hold = match kind {
            // Past the consumers' session timeout and the brokers' (the longer one).
            FaultKind::PauseRandom => {
                Duration::from_millis(u64::from(workload::SESSION_TIMEOUT_MS) + 1_000)
                    + self.rng.millis(0, 3_000)
            }
            FaultKind::KillPartitionLeader
            | FaultKind::KillCoordinator
            | FaultKind::KillController
            | FaultKind::KillRandom
            | FaultKind::KillTwo => self.rng.millis(500, 5_000),
            _ => self.rng.millis(4_000, 10_000),
        };
        let started = Instant::now();
        let mut note = String::new();
        match kind {
            FaultKind::KillPartitionLeader
            | FaultKind::KillCoordinator
            | FaultKind::KillController
            | FaultKind::KillRandom
            | FaultKind::KillTwo => {
                for &n in &nodes {
                    self.cluster.kill9(n);
                }
            }
            FaultKind::PauseRandom => self.cluster.brokers[nodes[0]].pause(),
            FaultKind::IsolateRandom
            | FaultKind::IsolateController
            | FaultKind::IsolateCoordinator => self
                .network
                .as_mut()
                .expect("network faults need the network")
                .isolate(nodes[0]),
            FaultKind::OneWayDrop => self
                .network
                .as_mut()
                .expect("network faults need the network")
                .drop_from(nodes[0], nodes[1]),
            FaultKind::DiskFull => {
                let disk = &self.disks[nodes[0]];
                let filled = disk.fill();
                note = format!(
                    "filled {} MiB of {} MiB",
                    filled >> 20,
                    disk.size_bytes() >> 20
                );
            }
        }
        self.hold(hold);
        let healed = Instant::now();
        match kind {
            FaultKind::PauseRandom => self.cluster.brokers[nodes[0]].resume(),
            FaultKind::IsolateRandom
            | FaultKind::IsolateController
            | FaultKind::IsolateCoordinator
            | FaultKind::OneWayDrop => self.network.as_mut().expect("network").heal(),
            FaultKind::DiskFull => self.disks[nodes[0]].free(),
            _ => {}
        }
        self.restart_down_brokers(&format!("fault #{index} ({})", kind.name()));
        let settled = self.wait_settled(healed, HEAL_TIMEOUT.max(self.settings.assign_bound));
        let assignments = self.workload().assignments();
        nodes.dedup();
        FaultOutcome {
            index,
            kind,
            nodes,
            note,
            started,
            healed,
            settled,
            assignments,
        }
    }

    fn workload(&self) -> &Workload {
        self.workload.as_ref().expect("the workload runs")
    }

    /// Holds a fault for `duration`, sampling memory meanwhile.
    fn hold(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            self.sample_memory();
            std::thread::sleep(
                SAMPLE_INTERVAL.min(until.saturating_duration_since(Instant::now())),
            );
        }
    }

    /// Restarts every broker that is down: those the fault killed, and any that exited by
    /// itself (noted as an event). Two at once restart together: a broker gets ready only
    /// with a quorum.
    fn restart_down_brokers(&mut self, during: &str) {
        for (i, b) in self.cluster.brokers.iter_mut().enumerate() {
            if !self.cluster.down[i] && !b.is_alive() {
                let log = b.stderr_log();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                self.events
                    .push(format!("broker {i} exited by itself during {during}; last log lines (newest first): {tail}"));
                b.kill9();
                self.cluster.down[i] = true;
            }
        }
        let down: Vec<usize> = (0..BROKERS).filter(|i| self.cluster.down[*i]).collect();
        let failed: Vec<usize> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .cluster
                .brokers
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| down.contains(i))
                .map(|(i, b)| (i, scope.spawn(move || b.restart())))
                .collect();
            handles
                .into_iter()
                .filter_map(|(i, h)| h.join().is_err().then_some(i))
                .collect()
        });
        for i in down {
            self.cluster.down[i] = failed.contains(&i);
        }
        if !failed.is_empty() {
            self.aborted = Some(format!(
                "broker(s) {failed:?} did not get ready again within {:?} after {during}",
                crate::broker::START_TIMEOUT
            ));
        }
    }

    /// Waits until every partition has a leader and its full ISR, a write was acknowledged
    /// after `since`, and every member holds partitions with all partitions held, or until
    /// `timeout`; returns when each of those was first seen.
    fn wait_settled(&mut self, since: Instant, timeout: Duration) -> Settled {
        let deadline = Instant::now() + timeout;
        let all: BTreeSet<i32> = (0..self.target.partitions).collect();
        let mut settled = Settled::default();
        loop {
            self.sample_memory();
            let now = Instant::now();
            if settled.acked.is_none() {
                settled.acked = self.workload().last_ack().filter(|t| *t > since);
            }
            if settled.grouped.is_none() {
                let assignments = self.workload().assignments();
                let held: BTreeSet<i32> = assignments.iter().flatten().copied().collect();
                if held == all && assignments.iter().all(|a| !a.is_empty()) {
                    settled.grouped = Some(now);
                }
            }
            if settled.full_isr.is_none() && self.full_isr() {
                settled.full_isr = Some(now);
            }
            if settled.all() || now >= deadline {
                return settled;
            }
            std::thread::sleep(SAMPLE_INTERVAL);
        }
    }

    fn full_isr(&self) -> bool {
        let Some(metadata) = self.cluster.metadata(&self.target.topic) else {
            return false;
        };
        let Some(topic) = metadata.topics.first() else {
            return false;
        };
        topic.partitions.len() == self.target.partitions as usize
            && topic
                .partitions
                .iter()
                .all(|p| p.leader_id.0 >= 0 && p.isr_nodes.len() == BROKERS)
    }

    /// Notes each running broker's peak resident memory (VmHWM), at most every
    /// [`SAMPLE_INTERVAL`].
    /// Samples memory until `commits()` reaches every partition's high watermark, at most
    /// 120 s; whether it did.
    fn wait_committed_to(
        &mut self,
        high_watermarks: &BTreeMap<i32, i64>,
        commits: impl Fn() -> BTreeMap<i32, i64>,
    ) -> bool {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            self.sample_memory();
            let commits = commits();
            let done = high_watermarks
                .iter()
                .all(|(p, hw)| commits.get(p).is_some_and(|c| c >= hw));
            if done || Instant::now() >= deadline {
                return done;
            }
            std::thread::sleep(SAMPLE_INTERVAL);
        }
    }

    fn sample_memory(&mut self) {
        if self.last_sample.elapsed() < SAMPLE_INTERVAL {
            return;
        }
        self.last_sample = Instant::now();
        for (i, b) in self.cluster.brokers.iter().enumerate() {
            if self.cluster.down[i] {
                continue;
            }
            if let Some((rss, hwm)) = b.memory() {
                self.peak_memory[i] = self.peak_memory[i].max(rss).max(hwm);
            }
        }
    }

    /// Stops the workload, checks everything and returns the report.
    fn finish(mut self) -> Report {
        let mut workload = self.workload.take().expect("the workload runs");
        workload.stop_producer();
        let ended_producing = Instant::now();
        // Let the group consume and commit everything: the last commit per partition reaches
        // the high watermark (a stuck member shows here too).
        let high_watermarks = checker::high_watermarks(&self.cluster, &self.target);
        let caught_up = self.wait_committed_to(&high_watermarks, || workload.last_commits());
        if !caught_up {
            self.events.push(format!(
                "the group did not commit up to the high watermarks {high_watermarks:?} within 120 s of the end; last commits {:?}",
                workload.last_commits()
            ));
        }
        let mut processors = self.processors.take().expect("the processors run");
        let txn_caught_up =
            self.wait_committed_to(&high_watermarks, || processors.committed_offsets());
        workload.stop_consumers();
        processors.stop();
        self.sample_memory();
        let record = std::mem::take(&mut *workload.record.lock().unwrap());
        let txn_record = std::mem::take(&mut *processors.record.lock().unwrap());
        let final_commits = checker::final_commits(&self.target);
        let partitions = checker::read_partitions(&self.cluster, &self.target);
        // Replicas: full ISR, then the log files of every replica converge to equal bytes.
        let healed = self.wait_full_isr(Duration::from_secs(120));
        let replicas =
            checker::compare_replicas(&self.cluster, &self.target, Duration::from_secs(60));
        let mut report = Report::build(checker::Inputs {
            settings: self.settings.clone(),
            started: self.started,
            ended_producing,
            record,
            outcomes: std::mem::take(&mut self.outcomes),
            final_commits,
            partitions: partitions.clone(),
            replicas,
            healed_at_end: healed,
            peak_memory: self.peak_memory.clone(),
            events: std::mem::take(&mut self.events),
            skipped: std::mem::take(&mut self.skipped),
            caught_up,
        });
        let (text, failures) = self.check_transactions(&txn_record, &partitions, txn_caught_up);
        report.add_section(&text, failures);
        if !report.failures.is_empty() || std::env::var_os("WEIR_NEMESIS_KEEP_LOGS").is_some() {
            self.keep_broker_logs(&mut report);
        }
        report
    }

    /// The transactional loop's checks, on the healed cluster (see [`txn_check`]).
    fn check_transactions(
        &self,
        record: &txn::TxnRecord,
        input: &std::collections::BTreeMap<i32, Vec<(i64, u64)>>,
        caught_up: bool,
    ) -> (String, Vec<String>) {
        let t = &self.txn_target;
        let final_offsets = crate::wait_until(
            Duration::from_secs(60),
            "the transactional group's final OffsetFetch",
            || {
                let (_, addr) = probe::find_coordinator(&t.input.brokers, &t.group)?;
                let mut client = probe::connect(addr)?;
                probe::committed_offsets(&mut client, &t.group, &t.input.topic, t.input.partitions)
            },
        );
        let partitions = t.input.partitions;
        let stable = txn_check::wait_stable(
            &self.cluster,
            &t.output_topic,
            partitions,
            Duration::from_secs(60),
        );
        let committed =
            txn_check::read_output(&self.cluster, &t.output_topic, partitions, "read_committed");
        let uncommitted = txn_check::read_output(
            &self.cluster,
            &t.output_topic,
            partitions,
            "read_uncommitted",
        );
        txn_check::check(txn_check::TxnInputs {
            record,
            input,
            final_offsets: &final_offsets,
            committed: &committed,
            uncommitted: &uncommitted,
            stable,
            caught_up,
        })
    }

    /// A failed run (any run with `WEIR_NEMESIS_KEEP_LOGS` set) keeps every broker's log (the brokers' scratch directories go when the
    /// harness drops them): copied into a directory named in the report.
    fn keep_broker_logs(&self, report: &mut Report) {
        let dir = std::env::temp_dir().join(format!(
            "weir-nemesis-seed{}-pid{}",
            self.settings.seed,
            std::process::id()
        ));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            report
                .text
                .push_str(&format!("\ncould not keep the broker logs: {e}\n"));
            return;
        }
        for (i, broker) in self.cluster.brokers.iter().enumerate() {
            let path = dir.join(format!("broker-{i}.log"));
            if let Err(e) = std::fs::write(&path, broker.stderr_log()) {
                report
                    .text
                    .push_str(&format!("\ncould not keep {}: {e}\n", path.display()));
            }
        }
        report
            .text
            .push_str(&format!("\nbroker logs kept in {}\n", dir.display()));
    }

    fn wait_full_isr(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.full_isr() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(SAMPLE_INTERVAL);
        }
        true
    }
}

/// Creates a workload topic (replication factor 3, `min.insync.replicas=2`) and waits for
/// every partition's full ISR.
fn create_topic(cluster: &Cluster, brokers: &[SocketAddr], topic: &str, partitions: i32) {
    let config = |name: &str, value: &str| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_string(name.to_string()))
            .with_value(Some(StrBytes::from_string(value.to_string())))
    };
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(raw::topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(BROKERS as i16)
            .with_configs(vec![config("min.insync.replicas", "2")])])
        .with_timeout_ms(30_000);
    let mut client = RawClient::connect(brokers[0]);
    let version = client.version::<CreateTopicsRequest>(7);
    // INVALID_REPLICATION_FACTOR while not every broker has registered with the
    // controller yet, just after the cluster started: asked again until all have.
    let code = crate::wait::wait_until(
        Duration::from_secs(60),
        "all brokers registered to create the topic",
        || {
            let code = client
                .request(&request, version)
                .expect("CreateTopics")
                .topics[0]
                .error_code;
            (code != ResponseError::InvalidReplicationFactor.code()).then_some(code)
        },
    );
    assert_eq!(code, 0, "CreateTopics {topic}");
    for p in 0..partitions {
        cluster.wait_partition(
            topic,
            p,
            Duration::from_secs(60),
            "the workload topic's full ISR",
            |v| v.leader >= 0 && v.isr.len() == BROKERS,
        );
    }
}
