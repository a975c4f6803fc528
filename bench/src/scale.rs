//! How a broker's cost grows with the work it holds (issue 18): partitions per broker, client
//! connections and consumer groups, Weir and Apache Kafka alternately on the same machine,
//! each scenario a curve over sizes rather than a point.
//!
//! - **Partitions**: one topic of N partitions (RF 1) on a fresh broker: the time to create it
//!   until every partition has a leader, resident memory and idle CPU once it is settled,
//!   producer throughput spread over all N, then the time until every partition is led again
//!   after a clean restart (SIGTERM) and after SIGKILL.
//! - **Connections**: N client connections opened one after another, each completing an
//!   ApiVersions round trip (so the broker holds a real Kafka connection, not a backlog
//!   entry): the accept rate, resident memory per connection, and the round-trip latency of
//!   one more connection while the N stay open.
//! - **Groups**: N consumer groups each committing an offset every second (OffsetCommit as a
//!   simple consumer: no membership), over a few connections: commit latency and the broker's
//!   CPU while it lasts.
//! - **Partitions on three brokers** ([`cluster`]): the partitions scenario with replication
//!   factor 3, plus the time the loss of the active controller costs at that size.
//!
//! Every run starts its broker on a fresh data directory; a size's row is the median of its
//! rounds, and each row shows Weir's value next to Kafka's and their ratio.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::cases::{Acks, Compression, ProduceCase, Topology};
use crate::client;
use crate::first_produce;
use crate::frames::{connect, decode_response, encode_request, metadata_of, round_trip};
use crate::payload::Payload;
use crate::process::{Launcher, RunningBrokers};
use crate::procstat;
use crate::produce;
use crate::results::BrokerKind;
use crate::stats;

pub mod cluster;

pub use cluster::ClusterPartitionsPoint;

/// How long a broker may take to serve its first produce.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// The topic of the partitions scenario (and of the groups' commits).
const TOPIC: &str = "scale";

/// What to measure and how often.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    pub launcher: Launcher,
    pub systems: Vec<BrokerKind>,
    pub partitions: Vec<i32>,
    /// Sizes of the partitions scenario on three brokers with replication factor 3.
    pub cluster_partitions: Vec<i32>,
    pub connections: Vec<usize>,
    pub groups: Vec<usize>,
    pub rounds: usize,
    /// 1 KiB records produced across the partitions of the partitions scenario.
    pub records: u64,
    /// Seconds the idle CPU is read over, and the groups commit for.
    pub window_seconds: f64,
}

/// One partitions-scenario run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionsPoint {
    pub system: String,
    pub partitions: i32,
    pub create_seconds: f64,
    /// From the CreateTopics request until a record sent to every partition was acknowledged
    /// (0 in results saved before it was measured).
    #[serde(default)]
    pub writable_seconds: f64,
    pub rss_bytes: u64,
    pub idle_cpu_percent: f64,
    pub produce_mb_per_s: f64,
    pub clean_restart_seconds: f64,
    pub unclean_restart_seconds: f64,
    /// From SIGTERM until the process exited, before the clean restart (0 in results saved
    /// before it was measured).
    #[serde(default)]
    pub clean_shutdown_seconds: f64,
}

/// One connections-scenario run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionsPoint {
    pub system: String,
    pub connections: usize,
    pub accepts_per_second: f64,
    pub rss_bytes_per_connection: f64,
    pub round_trip_p50_ms: f64,
    pub round_trip_p99_ms: f64,
}

/// One groups-scenario run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupsPoint {
    pub system: String,
    pub groups: usize,
    pub commits: u64,
    pub commit_p50_ms: f64,
    pub commit_p99_ms: f64,
    pub cpu_percent: f64,
}

/// Everything one `weir-bench scale` run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScaleResults {
    pub partitions: Vec<PartitionsPoint>,
    pub connections: Vec<ConnectionsPoint>,
    pub groups: Vec<GroupsPoint>,
    /// Results saved before the three-broker form existed have none.
    #[serde(default)]
    pub cluster_partitions: Vec<ClusterPartitionsPoint>,
}

/// Raises this process's limit on open files as far as it may (to `fs.nr_open` as root, else
/// to the hard limit), so the brokers it spawns inherit it: Kafka's documentation asks for
/// 100,000 or more, and 10,000 partitions or connections need tens of thousands of files on
/// either broker. Returns the limit the brokers get.
pub fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    if setrlimit(Resource::RLIMIT_NOFILE, nr_open, nr_open).is_err() {
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
    getrlimit(Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft)
}

/// Runs every scenario for every size, systems alternating within each round.
pub fn run(options: &ScaleOptions) -> anyhow::Result<ScaleResults> {
    let limit = raise_open_files_limit();
    eprintln!("open files limit of the brokers: {limit}");
    let mut results = ScaleResults::default();
    for round in 0..options.rounds {
        for &n in &options.partitions {
            for &kind in &options.systems {
                eprintln!("scale round {round}: {} with {n} partitions", kind.name());
                let point = partitions(options, kind, n)?;
                eprintln!("  {point:?}");
                results.partitions.push(point);
            }
        }
        for &n in &options.cluster_partitions {
            for &kind in &options.systems {
                eprintln!(
                    "scale round {round}: {} with {n} partitions on {} brokers (RF 3)",
                    kind.name(),
                    cluster::BROKERS
                );
                let point = cluster::partitions(options, kind, n)?;
                eprintln!("  {point:?}");
                results.cluster_partitions.push(point);
            }
        }
        for &n in &options.connections {
            for &kind in &options.systems {
                eprintln!("scale round {round}: {} with {n} connections", kind.name());
                let point = connections(options, kind, n)?;
                eprintln!("  {point:?}");
                results.connections.push(point);
            }
        }
        for &n in &options.groups {
            for &kind in &options.systems {
                eprintln!("scale round {round}: {} with {n} groups", kind.name());
                let point = groups(options, kind, n)?;
                eprintln!("  {point:?}");
                results.groups.push(point);
            }
        }
    }
    Ok(results)
}

/// A fresh single broker of `kind`, serving produce requests.
fn start(options: &ScaleOptions, kind: BrokerKind, label: &str) -> anyhow::Result<RunningBrokers> {
    let label = format!("{}-{label}", kind.name().to_lowercase());
    let topology = Topology::SINGLE_NODE;
    let mut broker = options.launcher.start(kind, &label, &topology)?;
    wait_ready(&mut broker)?;
    Ok(broker)
}

/// Waits until `broker` serves a produce request (or has exited).
pub fn wait_ready(broker: &mut RunningBrokers) -> anyhow::Result<()> {
    let (addr, spawned_at, bootstrap) = (broker.addrs[0], broker.spawned_at, broker.bootstrap());
    first_produce::measure(addr, &bootstrap, spawned_at, READY_TIMEOUT, || {
        matches!(broker.exited(), Ok(None))
    })?;
    Ok(())
}

fn pid(broker: &RunningBrokers) -> anyhow::Result<i32> {
    broker
        .pids()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the broker is not running"))
}

/// CPU seconds of the broker over `seconds` of wall time, as a percentage of one core.
fn cpu_percent_over(pid: i32, seconds: f64) -> anyhow::Result<f64> {
    Ok(cpu_percents_over(&[pid], seconds)?[0])
}

/// [`cpu_percent_over`] of each of `pids`, over the same window.
fn cpu_percents_over(pids: &[i32], seconds: f64) -> anyhow::Result<Vec<f64>> {
    let cpu = |pid: &i32| procstat::read(*pid).map(|usage| usage.cpu_seconds);
    let before = pids.iter().map(cpu).collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let after = pids.iter().map(cpu).collect::<Result<Vec<_>, _>>()?;
    let elapsed = started.elapsed().as_secs_f64();
    Ok(before
        .iter()
        .zip(after)
        .map(|(before, after)| (after - before) / elapsed * 100.0)
        .collect())
}

fn partitions(options: &ScaleOptions, kind: BrokerKind, n: i32) -> anyhow::Result<PartitionsPoint> {
    let mut broker = start(options, kind, &format!("partitions-{n}"))?;
    let bootstrap = broker.bootstrap();
    let topology = Topology::SINGLE_NODE;
    let case = ProduceCase {
        record_size: 1024,
        acks: Acks::Leader,
        compression: Compression::None,
        partitions: n,
        records: options.records,
    };
    let payload = Payload::new(case.record_size);
    let started = Instant::now();
    client::create_topic(&bootstrap, TOPIC, n, &topology)?;
    let create_seconds = started.elapsed().as_secs_f64();
    // Metadata may name a leader before its log exists (Kafka's brokers publish the image
    // first): what users wait for is every partition taking records.
    produce::one_per_partition(&bootstrap, TOPIC, &case, &payload)?;
    let writable_seconds = started.elapsed().as_secs_f64();
    let pid = pid(&broker)?;
    // Let the start and the creation settle (a JVM compiles its hot paths for a while).
    std::thread::sleep(Duration::from_secs_f64(options.window_seconds));
    let idle_cpu_percent = cpu_percent_over(pid, options.window_seconds)?;
    let rss_bytes = procstat::current_rss(pid)?;
    let produced = produce::fill(&bootstrap, TOPIC, &case, &payload)?;

    // Clean restart: SIGTERM, wait for the exit, start again; until every partition is led.
    let stopping = Instant::now();
    broker.signal(0, Signal::SIGTERM)?;
    broker.wait_node(0)?;
    let clean_shutdown_seconds = stopping.elapsed().as_secs_f64();
    let clean_restart_seconds = restart_until_led(&mut broker, n)?;
    // Unclean: SIGKILL.
    broker.kill_node(0)?;
    let unclean_restart_seconds = restart_until_led(&mut broker, n)?;
    broker.stop()?;
    Ok(PartitionsPoint {
        system: kind.name().to_string(),
        partitions: n,
        create_seconds,
        writable_seconds,
        rss_bytes,
        idle_cpu_percent,
        produce_mb_per_s: produced.megabytes_per_second(),
        clean_restart_seconds,
        unclean_restart_seconds,
        clean_shutdown_seconds,
    })
}

/// Spawns the stopped broker again and times it until every partition of [`TOPIC`] has a
/// leader (and a produce is served).
fn restart_until_led(broker: &mut RunningBrokers, n: i32) -> anyhow::Result<f64> {
    let started = Instant::now();
    broker.restart(0)?;
    let admin = client::admin(&broker.bootstrap())?;
    client::wait_led(&admin, TOPIC, n, &Topology::SINGLE_NODE)?;
    Ok(started.elapsed().as_secs_f64())
}

/// An ApiVersions v0 request frame (api key 18, version 0, no client id, no body).
fn api_versions_frame(correlation_id: i32) -> anyhow::Result<BytesMut> {
    encode_request(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ApiVersionsRequest::default(),
    )
}

/// Whether `metadata` lists `brokers` brokers and all `partitions` partitions of its one topic
/// with a leader and `replicas` in-sync replicas.
fn fully_replicated(
    metadata: &MetadataResponse,
    brokers: usize,
    partitions: i32,
    replicas: usize,
) -> bool {
    metadata.brokers.len() == brokers
        && metadata.topics.len() == 1
        && metadata.topics.iter().all(|t| {
            t.error_code == 0
                && t.partitions.len() == partitions as usize
                && t.partitions.iter().all(|p| {
                    p.error_code == 0 && p.leader_id.0 >= 0 && p.isr_nodes.len() == replicas
                })
        })
}

fn connections(
    options: &ScaleOptions,
    kind: BrokerKind,
    n: usize,
) -> anyhow::Result<ConnectionsPoint> {
    let broker = start(options, kind, &format!("connections-{n}"))?;
    let addr = broker.addrs[0];
    let pid = pid(&broker)?;
    let frame = api_versions_frame(1)?;
    let before = procstat::current_rss(pid)?;
    let started = Instant::now();
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = connect(addr)?;
        round_trip(&mut stream, &frame)?;
        open.push(stream);
    }
    let accepts_per_second = n as f64 / started.elapsed().as_secs_f64();
    let after = procstat::current_rss(pid)?;
    let mut probe = connect(addr)?;
    let mut latencies = Vec::with_capacity(500);
    for i in 0..500 {
        let started = Instant::now();
        round_trip(&mut probe, &api_versions_frame(i)?)?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    drop(open);
    broker.stop()?;
    Ok(ConnectionsPoint {
        system: kind.name().to_string(),
        connections: n,
        accepts_per_second,
        rss_bytes_per_connection: after.saturating_sub(before) as f64 / n as f64,
        round_trip_p50_ms: percentile(&latencies, 0.50),
        round_trip_p99_ms: percentile(&latencies, 0.99),
    })
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Connections the groups' commits are spread over.
const COMMIT_CONNECTIONS: usize = 8;

fn groups(options: &ScaleOptions, kind: BrokerKind, n: usize) -> anyhow::Result<GroupsPoint> {
    let broker = start(options, kind, &format!("groups-{n}"))?;
    let bootstrap = broker.bootstrap();
    let addr = broker.addrs[0];
    let pid = pid(&broker)?;
    client::create_topic(&bootstrap, TOPIC, 1, &Topology::SINGLE_NODE)?;
    // Each group's first commit creates it (and, on Kafka, loads nothing): not timed.
    let window = Duration::from_secs_f64(options.window_seconds);
    let cpu_before = procstat::read(pid)?.cpu_seconds;
    let started = Instant::now();
    let workers: Vec<_> = (0..COMMIT_CONNECTIONS)
        .map(|worker| {
            let mine: Vec<usize> = (worker..n).step_by(COMMIT_CONNECTIONS).collect();
            std::thread::spawn(move || commit_loop(addr, &mine, window))
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        let measured = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a commit thread panicked"))??;
        latencies.extend(measured);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_percent = (procstat::read(pid)?.cpu_seconds - cpu_before) / elapsed * 100.0;
    broker.stop()?;
    latencies.sort_by(f64::total_cmp);
    Ok(GroupsPoint {
        system: kind.name().to_string(),
        groups: n,
        commits: latencies.len() as u64,
        commit_p50_ms: percentile(&latencies, 0.50),
        commit_p99_ms: percentile(&latencies, 0.99),
        cpu_percent,
    })
}

/// One OffsetCommit of `offset` for partition 0 of [`TOPIC`] by `group` as a simple consumer
/// (no membership); the first error code of the response, 0 if none.
fn commit(
    stream: &mut TcpStream,
    correlation_id: i32,
    group: usize,
    offset: i64,
) -> anyhow::Result<i16> {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(format!(
            "scale-group-{group}"
        ))))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let frame = encode_request(ApiKey::OffsetCommit, 8, correlation_id, &request)?;
    let mut body = round_trip(stream, &frame)?;
    let response: OffsetCommitResponse =
        decode_response(&mut body, ApiKey::OffsetCommit, 8, correlation_id)?;
    Ok(response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .find(|&c| c != 0)
        .unwrap_or(0))
}

/// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR: a client retries.
const RETRIABLE_COORDINATOR_ERRORS: [i16; 3] = [14, 15, 16];

/// Commits an offset for each of `groups` once a second for `window` over one connection;
/// returns each commit's latency in milliseconds. Any error code fails the run.
fn commit_loop(addr: SocketAddr, groups: &[usize], window: Duration) -> anyhow::Result<Vec<f64>> {
    let mut stream = connect(addr)?;
    let mut correlation_id = 0;
    // As a client does: find each group's coordinator and commit once, retrying what a client
    // retries (the first lookup creates `__consumer_offsets`, whose partitions take a moment
    // to be led and loaded). Not timed.
    for &group in groups {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            correlation_id += 1;
            let request = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(format!("scale-group-{group}")));
            let frame = encode_request(ApiKey::FindCoordinator, 3, correlation_id, &request)?;
            let mut body = round_trip(&mut stream, &frame)?;
            let response: FindCoordinatorResponse =
                decode_response(&mut body, ApiKey::FindCoordinator, 3, correlation_id)?;
            let mut code = response.error_code;
            if code == 0 {
                correlation_id += 1;
                code = commit(&mut stream, correlation_id, group, 0)?;
                if code == 0 {
                    break;
                }
            }
            anyhow::ensure!(
                RETRIABLE_COORDINATOR_ERRORS.contains(&code) && Instant::now() < deadline,
                "group scale-group-{group}: error code {code} before the commits started"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut second = 1u32;
    while started.elapsed() < window {
        for &group in groups {
            correlation_id += 1;
            let sent = Instant::now();
            let code = commit(&mut stream, correlation_id, group, i64::from(second))?;
            let elapsed = sent.elapsed().as_secs_f64() * 1000.0;
            anyhow::ensure!(code == 0, "OffsetCommit answered error code {code}");
            latencies.push(elapsed);
        }
        // The next second's commits start on the second: a group commits once a second.
        let next = Duration::from_secs(u64::from(second));
        second += 1;
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(latencies)
}

fn median_by<T>(points: &[&T], value: impl Fn(&T) -> f64) -> f64 {
    let values: Vec<f64> = points.iter().map(|p| value(p)).collect();
    stats::median(&values).unwrap_or(f64::NAN)
}

/// A table row's metric: its name, its unit, and how to read it off a run.
type Metric<P> = (&'static str, &'static str, fn(&P) -> f64);

/// One row: a metric's median for Weir and Kafka at one size, and their ratio.
fn row(out: &mut String, size: &str, metric: &str, unit: &str, weir: f64, kafka: f64) {
    let ratio = if kafka > 0.0 && weir.is_finite() && kafka.is_finite() {
        format!("{:.2}x", weir / kafka)
    } else {
        "–".to_string()
    };
    let _ = writeln!(
        out,
        "| {size} | {metric} | {} | {} | {ratio} |",
        fmt(weir, unit),
        fmt(kafka, unit)
    );
}

fn fmt(v: f64, unit: &str) -> String {
    if v == f64::INFINITY && unit == "s" {
        // A wait that never ended: the producer gave up on some records (the median of runs
        // where it mostly did).
        return "some records failed".to_string();
    }
    if !v.is_finite() {
        return "–".to_string();
    }
    match unit {
        "MiB" => format!("{:.1} MiB", v / (1024.0 * 1024.0)),
        "KiB" => format!("{:.1} KiB", v / 1024.0),
        "s" => format!("{v:.2} s"),
        "%" => format!("{v:.1} %"),
        "ms" => format!("{v:.2} ms"),
        "MB/s" => format!("{v:.1} MB/s"),
        "/s" => format!("{v:.0}/s"),
        "" => format!("{v:.0}"),
        _ => format!("{v:.2}"),
    }
}

/// The comments that delimit the scale section of docs/BENCHMARKS.md (the single-broker
/// tables).
pub const BEGIN_MARKER: &str = "<!-- weir-bench:scale:begin -->";
pub const END_MARKER: &str = "<!-- weir-bench:scale:end -->";
/// The comments that delimit the three-broker table, a section of its own so that a run of
/// either form leaves the other's table as it was.
pub const CLUSTER_BEGIN_MARKER: &str = "<!-- weir-bench:scale-cluster-3:begin -->";
pub const CLUSTER_END_MARKER: &str = "<!-- weir-bench:scale-cluster-3:end -->";

/// Whether a run of `options` measures anything on one broker (and so renews that section).
pub fn measures_single_broker(options: &ScaleOptions) -> bool {
    !(options.partitions.is_empty() && options.connections.is_empty() && options.groups.is_empty())
}

/// The three-broker table: per size, medians of the rounds, Weir beside Kafka.
pub fn render_cluster(results: &ScaleResults) -> String {
    let mut out = String::new();
    let metrics: [Metric<ClusterPartitionsPoint>; 10] = [
        ("create until all led, ISR 3", "s", |p| p.create_seconds),
        ("create until every partition took a record", "s", |p| {
            p.writable_seconds.unwrap_or(f64::INFINITY)
        }),
        ("resident memory of the 3, idle", "MiB", |p| {
            p.rss_bytes as f64
        }),
        ("CPU of the 3, idle", "%", |p| p.idle_cpu_percent),
        ("produce 1 KiB acks=all over all", "MB/s", |p| {
            p.produce_mb_per_s
        }),
        ("partitions the controller led", "", |p| {
            p.partitions_led_by_controller as f64
        }),
        ("controller SIGKILL: new controller", "s", |p| {
            p.controller_elected_seconds
        }),
        ("controller SIGKILL: its partitions re-led", "s", |p| {
            p.partitions_re_led_seconds
        }),
        ("killed controller back until ISR 3", "s", |p| {
            p.unclean_rejoin_seconds
        }),
        ("clean restart of a broker until ISR 3", "s", |p| {
            p.clean_rejoin_seconds
        }),
    ];
    table(
        &mut out,
        "Partitions on three brokers (RF 3)",
        "partitions",
        &results.cluster_partitions,
        |p| (p.partitions as usize, p.system.as_str()),
        &metrics,
    );
    out
}

/// The single-broker tables: per scenario and size, medians of the rounds, Weir beside Kafka.
pub fn render(results: &ScaleResults) -> String {
    let mut out = String::new();
    let partitions: [Metric<PartitionsPoint>; 8] = [
        ("create until all led", "s", |p| p.create_seconds),
        ("create until every partition took a record", "s", |p| {
            p.writable_seconds
        }),
        ("resident memory, idle", "MiB", |p| p.rss_bytes as f64),
        ("CPU, idle", "%", |p| p.idle_cpu_percent),
        ("produce 1 KiB over all", "MB/s", |p| p.produce_mb_per_s),
        ("clean shutdown (SIGTERM until exit)", "s", |p| {
            p.clean_shutdown_seconds
        }),
        ("clean restart until all led", "s", |p| {
            p.clean_restart_seconds
        }),
        ("SIGKILL restart until all led", "s", |p| {
            p.unclean_restart_seconds
        }),
    ];
    table(
        &mut out,
        "Partitions on one broker (RF 1)",
        "partitions",
        &results.partitions,
        |p| (p.partitions as usize, p.system.as_str()),
        &partitions,
    );
    let connections: [Metric<ConnectionsPoint>; 4] = [
        ("connections opened (sequential)", "/s", |p| {
            p.accepts_per_second
        }),
        ("resident memory per connection", "KiB", |p| {
            p.rss_bytes_per_connection
        }),
        ("round trip p50, all open", "ms", |p| p.round_trip_p50_ms),
        ("round trip p99, all open", "ms", |p| p.round_trip_p99_ms),
    ];
    table(
        &mut out,
        "Client connections on one broker",
        "connections",
        &results.connections,
        |p| (p.connections, p.system.as_str()),
        &connections,
    );
    let groups: [Metric<GroupsPoint>; 3] = [
        ("commit p50", "ms", |p| p.commit_p50_ms),
        ("commit p99", "ms", |p| p.commit_p99_ms),
        ("broker CPU", "%", |p| p.cpu_percent),
    ];
    table(
        &mut out,
        "Consumer groups committing every second",
        "groups",
        &results.groups,
        |p| (p.groups, p.system.as_str()),
        &groups,
    );
    out
}

/// One scenario's table: per size (ascending) and metric, the medians of Weir's and Kafka's
/// runs and their ratio. Nothing when the scenario did not run.
fn table<P>(
    out: &mut String,
    title: &str,
    unit_of_size: &str,
    points: &[P],
    key: impl Fn(&P) -> (usize, &str),
    metrics: &[Metric<P>],
) {
    if points.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "#### {title}\n\n| size | metric | Weir | Kafka | Weir/Kafka |\n|---|---|---:|---:|---:|\n"
    );
    let mut sizes: Vec<usize> = points.iter().map(|p| key(p).0).collect();
    sizes.sort();
    sizes.dedup();
    for n in sizes {
        let of =
            |system: &str| -> Vec<&P> { points.iter().filter(|p| key(p) == (n, system)).collect() };
        let (w, k) = (of("Weir"), of("Kafka"));
        let size = format!("{n} {unit_of_size}");
        for (metric, unit, value) in metrics {
            row(
                out,
                &size,
                metric,
                unit,
                median_by(&w, value),
                median_by(&k, value),
            );
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks_of_sorted_values() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 51.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_table_has_medians_and_ratios() {
        let point = |system: &str, create: f64| PartitionsPoint {
            system: system.into(),
            partitions: 1000,
            create_seconds: create,
            writable_seconds: create + 1.0,
            rss_bytes: 64 << 20,
            idle_cpu_percent: 1.0,
            produce_mb_per_s: 100.0,
            clean_restart_seconds: 1.0,
            unclean_restart_seconds: 2.0,
            clean_shutdown_seconds: 0.5,
        };
        let results = ScaleResults {
            partitions: vec![
                point("Weir", 1.0),
                point("Weir", 3.0),
                point("Weir", 2.0),
                point("Kafka", 4.0),
            ],
            ..Default::default()
        };
        let table = render(&results);
        assert!(
            table.contains("| 1000 partitions | create until all led | 2.00 s | 4.00 s | 0.50x |"),
            "{table}"
        );
        assert!(table.contains("| 64.0 MiB | 64.0 MiB | 1.00x |"), "{table}");
        assert!(
            table.contains(
                "| create until every partition took a record | 3.00 s | 5.00 s | 0.60x |"
            ),
            "{table}"
        );
    }

    fn cluster_point(system: &str, elected: f64, re_led: f64) -> ClusterPartitionsPoint {
        ClusterPartitionsPoint {
            system: system.into(),
            partitions: 100,
            create_seconds: 1.0,
            writable_seconds: Some(1.5),
            rss_bytes: 3 * (64 << 20),
            idle_cpu_percent: 3.0,
            produce_mb_per_s: 50.0,
            controller: 0,
            partitions_led_by_controller: 33,
            controller_elected_seconds: elected,
            partitions_re_led_seconds: re_led,
            unclean_rejoin_seconds: 4.0,
            clean_rejoin_seconds: 2.0,
        }
    }

    #[test]
    fn the_cluster_table_has_medians_and_ratios_of_both_failover_clocks() {
        let results = ScaleResults {
            cluster_partitions: vec![
                cluster_point("Weir", 0.5, 9.0),
                cluster_point("Weir", 1.5, 11.0),
                cluster_point("Weir", 1.0, 10.0),
                cluster_point("Kafka", 2.0, 20.0),
            ],
            ..Default::default()
        };
        let table = render_cluster(&results);
        assert!(
            table.starts_with("#### Partitions on three brokers (RF 3)\n"),
            "{table}"
        );
        assert!(
            table.contains(
                "| 100 partitions | controller SIGKILL: new controller | 1.00 s | 2.00 s | 0.50x |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| 100 partitions | controller SIGKILL: its partitions re-led | 10.00 s | 20.00 s | 0.50x |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| resident memory of the 3, idle | 192.0 MiB | 192.0 MiB | 1.00x |"),
            "{table}"
        );
        assert!(
            table.contains("| partitions the controller led | 33 | 33 | 1.00x |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| create until every partition took a record | 1.50 s | 1.50 s | 1.00x |"
            ),
            "{table}"
        );
        // A system whose partitions did not all take a record in time.
        let mut timed_out = cluster_point("Kafka", 2.0, 20.0);
        timed_out.writable_seconds = None;
        let table = render_cluster(&ScaleResults {
            cluster_partitions: vec![cluster_point("Weir", 1.0, 10.0), timed_out],
            ..Default::default()
        });
        assert!(
            table.contains(
                "| create until every partition took a record | 1.50 s | some records failed | – |"
            ),
            "{table}"
        );
        // Each form renders only its own tables.
        assert!(!table.contains("one broker"), "{table}");
        assert!(!render(&results).contains("three brokers"));
    }

    #[test]
    fn a_cluster_size_without_kafka_shows_dashes() {
        let results = ScaleResults {
            cluster_partitions: vec![cluster_point("Weir", 1.0, 2.0)],
            ..Default::default()
        };
        let table = render_cluster(&results);
        assert!(
            table.contains(
                "| 100 partitions | controller SIGKILL: new controller | 1.00 s | – | – |"
            ),
            "{table}"
        );
    }

    #[test]
    fn each_form_renews_only_its_own_section() {
        let doc = format!(
            "intro\n{BEGIN_MARKER}\nsingle\n{END_MARKER}\nmiddle\n{CLUSTER_BEGIN_MARKER}\ncluster\n{CLUSTER_END_MARKER}\n"
        );
        let spliced = crate::report::splice_or_append(
            &doc,
            CLUSTER_BEGIN_MARKER,
            CLUSTER_END_MARKER,
            "new cluster\n",
        );
        assert!(spliced.contains("single\n"), "{spliced}");
        assert!(spliced.contains("new cluster\n"), "{spliced}");
        assert!(!spliced.contains("\ncluster\n"), "{spliced}");
        // A document without the cluster markers yet gets them appended, the rest intact.
        let old = format!("{BEGIN_MARKER}\nsingle\n{END_MARKER}\n");
        let appended =
            crate::report::splice_or_append(&old, CLUSTER_BEGIN_MARKER, CLUSTER_END_MARKER, "x\n");
        assert!(appended.starts_with(&old), "{appended}");
        assert!(appended.contains(CLUSTER_END_MARKER), "{appended}");
    }

    #[test]
    fn only_sizes_asked_for_count_as_a_single_broker_run() {
        let options = |partitions: Vec<i32>, cluster: Vec<i32>| ScaleOptions {
            launcher: Launcher {
                weir_broker: "weir-broker".into(),
                kafka_script: "kafka.sh".into(),
                work_dir: "work".into(),
            },
            systems: vec![BrokerKind::Weir],
            partitions,
            cluster_partitions: cluster,
            connections: Vec::new(),
            groups: Vec::new(),
            rounds: 1,
            records: 1,
            window_seconds: 1.0,
        };
        assert!(!measures_single_broker(&options(Vec::new(), vec![100])));
        assert!(measures_single_broker(&options(vec![100], Vec::new())));
    }

    #[test]
    fn results_saved_before_the_cluster_form_still_load() {
        let old = r#"{"partitions":[],"connections":[],"groups":[]}"#;
        let results: ScaleResults = serde_json::from_str(old).unwrap();
        assert!(results.cluster_partitions.is_empty());
    }

    #[test]
    fn fully_replicated_needs_every_broker_and_every_isr_whole() {
        use kafka_protocol::messages::metadata_response::{
            MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
        };
        use kafka_protocol::messages::BrokerId;
        let partition = |index: i32, isr: &[i32]| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(isr[0]))
                .with_isr_nodes(isr.iter().map(|&id| BrokerId(id)).collect())
        };
        let metadata = |brokers: i32, isrs: &[&[i32]]| {
            MetadataResponse::default()
                .with_brokers(
                    (0..brokers)
                        .map(|id| MetadataResponseBroker::default().with_node_id(BrokerId(id)))
                        .collect(),
                )
                .with_topics(vec![MetadataResponseTopic::default().with_partitions(
                    isrs.iter()
                        .enumerate()
                        .map(|(i, isr)| partition(i as i32, isr))
                        .collect(),
                )])
        };
        assert!(fully_replicated(
            &metadata(3, &[&[0, 1, 2], &[1, 2, 0]]),
            3,
            2,
            3
        ));
        assert!(!fully_replicated(
            &metadata(3, &[&[0, 1, 2], &[1, 2]]),
            3,
            2,
            3
        ));
        assert!(!fully_replicated(
            &metadata(2, &[&[0, 1, 2], &[1, 2, 0]]),
            3,
            2,
            3
        ));
        assert!(!fully_replicated(&metadata(3, &[&[0, 1, 2]]), 3, 2, 3));
    }

    #[test]
    fn an_api_versions_frame_is_length_prefixed() {
        let frame = api_versions_frame(7).unwrap();
        let len = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(&frame[4..8], &[0, 18, 0, 0], "api key 18, version 0");
    }
}
