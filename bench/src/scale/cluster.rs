//! The partitions curve on three brokers (issue 18): one topic of N partitions with replication
//! factor 3 and `min.insync.replicas=2`, leaders spread as CreateTopics places them, and what
//! the loss of the active controller costs at that size.
//!
//! Per size and system, on three fresh brokers (Weir: three voters; Kafka: three combined
//! KRaft nodes), with the failover bench's broker settings ([`Settings`]: Kafka's defaults,
//! stated, so neither system runs on a default of its own):
//! 1. create the topic, timed until every partition has a leader and all 3 replicas in sync,
//!    and until an `acks=all` producer has had one record acknowledged by every partition;
//! 2. summed resident memory and idle CPU of the three once settled;
//! 3. `acks=all` throughput of 1 KiB records spread over all N;
//! 4. SIGKILL of the metadata quorum's leader (found as the failover bench finds it: Weir's
//!    Metadata `controller_id`, Kafka's `quorum-state` files), then, from the kill, two clocks
//!    side by side: until a new controller is elected, and until every partition the victim
//!    led has another leader in Metadata (what producers wait for);
//! 5. the victim spawned again, timed until every partition again has 3 in-sync replicas;
//! 6. SIGTERM of one other broker, spawned again once it has exited, timed the same way.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::{cpu_percents_over, fully_replicated, metadata_of, ScaleOptions, READY_TIMEOUT, TOPIC};
use crate::cases::{Acks, Compression, ProduceCase, Topology};
use crate::client;
use crate::failover::observer::{self, Observer};
use crate::failover::{self, Settings};
use crate::payload::Payload;
use crate::process::RunningBrokers;
use crate::procstat;
use crate::produce;
use crate::results::BrokerKind;

/// Brokers of the cluster form.
pub const BROKERS: usize = 3;
/// The least any wait of this form gets; it grows with the partitions ([`timeout_for`]).
const BASE_TIMEOUT: Duration = Duration::from_secs(120);

/// One run of the partitions scenario on three brokers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterPartitionsPoint {
    pub system: String,
    pub partitions: i32,
    /// CreateTopics until every partition has a leader and 3 in-sync replicas.
    pub create_seconds: f64,
    /// CreateTopics until every partition has acknowledged one record with `acks=all` (a
    /// broker may name a leader and an ISR before the replicas' logs exist); `None` if the
    /// producer failed to deliver some of them (results saved before this was measured read
    /// as that too).
    #[serde(default)]
    pub writable_seconds: Option<f64>,
    /// `VmRSS` of the three brokers, summed, once idle.
    pub rss_bytes: u64,
    /// CPU of the three brokers, summed, once idle (percent of one core).
    pub idle_cpu_percent: f64,
    /// `acks=all`, 1 KiB records spread over all partitions.
    pub produce_mb_per_s: f64,
    /// Node id of the killed controller.
    pub controller: i32,
    /// Partitions the killed controller led when it was killed.
    pub partitions_led_by_controller: usize,
    /// SIGKILL of the controller until a live broker names another one.
    pub controller_elected_seconds: f64,
    /// SIGKILL of the controller until Metadata names another leader for every partition it
    /// led.
    pub partitions_re_led_seconds: f64,
    /// Spawning the killed controller again until every partition has 3 in-sync replicas.
    pub unclean_rejoin_seconds: f64,
    /// Spawning a broker stopped with SIGTERM again until every partition has 3 in-sync
    /// replicas.
    pub clean_rejoin_seconds: f64,
}

/// How long a step on `n` partitions may take: [`BASE_TIMEOUT`], and 20 ms per partition
/// beyond that (a loaded 2-core machine creates a few hundred partitions a second).
fn timeout_for(n: i32) -> Duration {
    BASE_TIMEOUT + Duration::from_millis(20 * n.max(0) as u64)
}

/// One run of `kind` with `n` partitions on three fresh brokers.
pub fn partitions(
    options: &ScaleOptions,
    kind: BrokerKind,
    n: i32,
) -> anyhow::Result<ClusterPartitionsPoint> {
    let topology = Topology::cluster(BROKERS);
    let label = format!("{}-rf3-partitions-{n}", kind.name().to_lowercase());
    let settings = Settings::default();
    let mut brokers =
        options
            .launcher
            .start_with(kind, &label, &topology, &settings.broker_pairs())?;
    let logs = brokers.logs.clone();
    let outcome = measure(options, kind, n, &topology, &mut brokers);
    let _ = brokers.stop();
    outcome.with_context(|| {
        format!(
            "{} with {n} partitions on {BROKERS} brokers; broker logs: {}",
            kind.name(),
            logs.iter()
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn measure(
    options: &ScaleOptions,
    kind: BrokerKind,
    n: i32,
    topology: &Topology,
    brokers: &mut RunningBrokers,
) -> anyhow::Result<ClusterPartitionsPoint> {
    super::wait_ready(brokers)?;
    let bootstrap = brokers.bootstrap();
    let observer = Observer::new(&bootstrap)?;
    wait_until(READY_TIMEOUT, "every broker to be registered", || {
        observer.live_brokers() == Some(BROKERS)
    })?;
    let timeout = timeout_for(n);

    let started = Instant::now();
    client::create_topic_within(&bootstrap, TOPIC, n, topology, timeout)?;
    let create_seconds = started.elapsed().as_secs_f64();
    let case = ProduceCase {
        record_size: 1024,
        acks: Acks::All,
        compression: Compression::None,
        partitions: n,
        records: options.records,
    };
    let payload = Payload::new(case.record_size);
    // A system whose producer fails some of these records (a partition it could not write)
    // is a result of this row, not a failed run.
    let writable_seconds = match produce::one_per_partition(&bootstrap, TOPIC, &case, &payload) {
        Ok(_) => Some(started.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!(
                "  {}: not every partition took a record after {:.0} s: {e}",
                kind.name(),
                started.elapsed().as_secs_f64()
            );
            None
        }
    };

    // Let the start and the creation settle (a JVM compiles its hot paths for a while).
    std::thread::sleep(Duration::from_secs_f64(options.window_seconds));
    let pids = brokers.pids();
    let idle_cpu_percent = cpu_percents_over(&pids, options.window_seconds)?
        .iter()
        .sum();
    let rss_bytes = pids
        .iter()
        .map(|&pid| procstat::current_rss(pid))
        .sum::<Result<u64, _>>()?;

    let produced = produce::fill(&bootstrap, TOPIC, &case, &payload)?;

    // The controller's loss, with leaders as the creation spread them (and the producer's
    // acknowledgements in every replica: the ISR is whole again before the kill).
    let admin = client::admin(&bootstrap)?;
    client::wait_led_within(&admin, TOPIC, n, topology, timeout)?;
    let controller = failover::controller(kind, brokers)?;
    let victim = brokers
        .node_of(controller)
        .with_context(|| format!("no broker {controller}"))?;
    let led_before = leaders(&observer, n).context("no metadata for the topic")?;
    let led_by_victim: Vec<usize> = (0..led_before.len())
        .filter(|&p| led_before[p] == controller)
        .collect();
    let killed_at = Instant::now();
    brokers.kill_node(victim)?;
    let brokers_now: &RunningBrokers = brokers;
    let (elected, re_led) = std::thread::scope(|scope| {
        let elected = scope.spawn(|| {
            wait_for(timeout, || {
                another_controller(kind, brokers_now, controller).map(|_| killed_at.elapsed())
            })
        });
        let re_led = wait_for(timeout, || {
            let now = leaders(&observer, n)?;
            led_by_victim
                .iter()
                .all(|&p| now[p] >= 0 && now[p] != controller)
                .then(|| killed_at.elapsed())
        });
        (elected.join(), re_led)
    });
    let elected = elected
        .map_err(|_| anyhow::anyhow!("the controller watch panicked"))?
        .with_context(|| format!("no new controller within {timeout:?} of killing {controller}"))?;
    let re_led = re_led.with_context(|| {
        format!(
            "the {} partitions {controller} led had no new leaders within {timeout:?}",
            led_by_victim.len()
        )
    })?;

    let started = Instant::now();
    brokers.restart(victim)?;
    wait_whole_everywhere(brokers, n, timeout)?;
    let unclean_rejoin_seconds = started.elapsed().as_secs_f64();

    // A clean restart of a broker that is not the controller now.
    let controller_now = failover::controller(kind, brokers)?;
    let stopped = (0..BROKERS)
        .find(|&node| brokers.node_id(node) != controller_now)
        .context("every broker is the controller")?;
    brokers.signal(stopped, Signal::SIGTERM)?;
    brokers.wait_node(stopped)?;
    let started = Instant::now();
    brokers.restart(stopped)?;
    wait_whole_everywhere(brokers, n, timeout)?;
    let clean_rejoin_seconds = started.elapsed().as_secs_f64();

    Ok(ClusterPartitionsPoint {
        system: kind.name().to_string(),
        partitions: n,
        create_seconds,
        writable_seconds,
        rss_bytes,
        idle_cpu_percent,
        produce_mb_per_s: produced.megabytes_per_second(),
        controller,
        partitions_led_by_controller: led_by_victim.len(),
        controller_elected_seconds: elected.as_secs_f64(),
        partitions_re_led_seconds: re_led.as_secs_f64(),
        unclean_rejoin_seconds,
        clean_rejoin_seconds,
    })
}

/// Until every broker, asked itself, lists all [`BROKERS`] and every one of the `n` partitions
/// with 3 in-sync replicas. Asking one broker is not enough after a restart: a broker whose
/// metadata lags can still show the ISRs from before the kill, a rejoin that has not happened.
fn wait_whole_everywhere(
    brokers: &RunningBrokers,
    n: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_until(timeout, "every broker to see every ISR whole", || {
        brokers.addrs.iter().all(|&addr| {
            metadata_of(addr, TOPIC)
                .is_ok_and(|metadata| fully_replicated(&metadata, BROKERS, n, BROKERS))
        })
    })
}

/// A controller other than `killed`, as soon as any broker knows one: for Weir, any live
/// broker whose Metadata names another quorum leader (not only the first to answer, which may
/// not have heard of the election yet); for Kafka, the newest epoch's leader in the nodes'
/// `quorum-state` files, once that is another node.
fn another_controller(kind: BrokerKind, brokers: &RunningBrokers, killed: i32) -> Option<i32> {
    match kind {
        BrokerKind::Weir => brokers.addrs.iter().find_map(|&addr| {
            observer::weir_controller(addr)
                .ok()
                .filter(|&id| id >= 0 && id != killed)
        }),
        BrokerKind::Kafka => {
            let dirs: Vec<PathBuf> = (0..brokers.addrs.len())
                .map(|node| brokers.kafka_node_dir(node))
                .collect();
            observer::kafka_controller(dirs.iter().map(PathBuf::as_path)).filter(|&id| id != killed)
        }
    }
}

/// The leader of each of the `n` partitions of [`TOPIC`] in one metadata answer (`-1`: none,
/// or an error for that partition); `None` if metadata did not answer with all of them.
fn leaders(observer: &Observer, n: i32) -> Option<Vec<i32>> {
    let partitions = observer.partitions(TOPIC)?;
    if partitions.len() != n as usize {
        return None;
    }
    let mut leaders = vec![-1; n as usize];
    for (id, leader) in partitions {
        *leaders.get_mut(usize::try_from(id).ok()?)? = leader;
    }
    Some(leaders)
}

fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    wait_for(timeout, || done().then_some(()))
        .with_context(|| format!("timed out after {timeout:?} waiting for {what}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_with_the_partitions() {
        assert_eq!(timeout_for(0), BASE_TIMEOUT);
        assert_eq!(
            timeout_for(50_000),
            BASE_TIMEOUT + Duration::from_secs(1000)
        );
    }
}
