//! The CI smoke run: every scenario of the harness, small, against Weir only, in a few
//! seconds. It fails (non-zero exit) when a scenario errors, a count is off, a measurement is
//! missing or implausible, or the broker does not shut down cleanly, so the harness cannot rot
//! between full comparisons.
//!
//! After the single-node throughput and latency runs, the TLS scenario ([`crate::tls`]) runs
//! small on single brokers: a producer over PLAINTEXT, SSL and SASL_SSL, and a second of new
//! TLS connections on each TLS listener.
//!
//! Last, one start of a three-broker cluster runs the cluster plan's latency case, small: the
//! cluster launch, replicated topics, `acks=all` and the stop of every broker, in one start.
//! It checks that records arrive and are measured, not how fast: timings are for the full
//! comparison (a lost follower wake-up is caught by `tests/tests/acks_all_latency.rs`).
//!
//! Then a second three-broker start kills its partition leader once ([`crate::failover::smoke`],
//! a 3 s session timeout): acknowledgements must resume within a bound and the killed broker
//! must rejoin the in-sync replicas.

use anyhow::{ensure, Context};

use crate::cases::{Plan, PlanSizes, Topology};
use crate::payload::Payload;
use crate::process::Launcher;
use crate::report;
use crate::results::{BrokerKind, BrokerRun, Results};
use crate::round::{self, Phase};

/// The smoke latency reference rate: its fraction is low enough for a debug build on a busy
/// machine.
const SMOKE_REFERENCE_RATE: f64 = 1000.0;
/// The cluster's latency runs at a fraction of this (its first case: half, 200 records/s).
const SMOKE_CLUSTER_REFERENCE_RATE: f64 = 400.0;

pub fn run(launcher: &Launcher) -> anyhow::Result<()> {
    let plan = Plan::smoke();
    let payload = Payload::new(1024);
    let throughput = round::run(
        launcher,
        BrokerKind::Weir,
        0,
        &plan,
        Phase::Throughput,
        &payload,
    )
    .context("smoke throughput run")?;
    check_throughput(&plan, &throughput)?;
    let latency = round::run(
        launcher,
        BrokerKind::Weir,
        0,
        &plan,
        Phase::Latency {
            reference_rate: SMOKE_REFERENCE_RATE,
        },
        &payload,
    )
    .context("smoke latency run")?;
    check_latency(&plan, &latency)?;
    tls(launcher)?;
    cluster(launcher, &payload)?;
    let failover = crate::failover::smoke(launcher).context("smoke failover run")?;
    println!(
        "cluster of 3, leader {:?} killed: acks=all acknowledged again after {:.2}s",
        failover.victims, failover.gap_seconds
    );
    let results = Results {
        machine: crate::machine::describe(),
        plan,
        weir_version: "smoke".to_string(),
        kafka_version: "not run".to_string(),
        kafka_heap: "-".to_string(),
        command: "weir-bench smoke".to_string(),
        latency_reference_rate: Some(SMOKE_REFERENCE_RATE),
        runs: vec![throughput, latency],
    };
    println!("{}", report::render(&results));
    println!("weir-bench smoke: ok");
    Ok(())
}

/// The TLS scenario, small, on Weir: each protocol's producer and both handshake loops must
/// complete every record and connection.
fn tls(launcher: &Launcher) -> anyhow::Result<()> {
    use crate::tls::{self, Protocol, TlsOptions};
    let options = TlsOptions {
        launcher: launcher.clone(),
        systems: vec![BrokerKind::Weir],
        protocols: Protocol::ALL.to_vec(),
        rounds: 1,
        records: 2000,
        connectors: 2,
        warmup: std::time::Duration::from_millis(200),
        window: std::time::Duration::from_secs(1),
    };
    let points = tls::run(&options).context("smoke TLS run")?;
    ensure!(points.len() == Protocol::ALL.len(), "TLS cases missing");
    for point in &points {
        ensure!(
            point.records == 2000 && point.records_per_second > 0.0,
            "{point:?}"
        );
        if point.protocol != Protocol::Plaintext {
            let handshake = point.handshake.as_ref().context("no handshake rate")?;
            ensure!(
                handshake.connections > 0 && handshake.failed == 0,
                "{:?}: {handshake:?}",
                point.protocol
            );
        }
    }
    println!("{}", tls::render(&points, "smoke: Weir only"));
    Ok(())
}

/// The cluster plan's first latency case, small, on three brokers.
fn cluster(launcher: &Launcher, payload: &Payload) -> anyhow::Result<()> {
    let sizes = PlanSizes {
        records_100b: 0,
        records_1k: 0,
        records_catch_up: 0,
        latency_seconds: 3.0,
    };
    let mut plan = Plan::cluster(&sizes, Topology::cluster(3));
    plan.produce.clear();
    plan.latency.truncate(1);
    let run = round::run(
        launcher,
        BrokerKind::Weir,
        0,
        &plan,
        Phase::Latency {
            reference_rate: SMOKE_CLUSTER_REFERENCE_RATE,
        },
        payload,
    )
    .context("smoke cluster latency run")?;
    check_latency(&plan, &run)?;
    for measured in &run.latency {
        let l = &measured.latency;
        println!(
            "cluster of 3, {} at {:.0}/s: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            measured.case.key(),
            l.target_rate,
            l.p50_ms,
            l.p99_ms,
            l.p999_ms
        );
    }
    Ok(())
}

fn check_throughput(plan: &Plan, run: &BrokerRun) -> anyhow::Result<()> {
    ensure!(
        run.start_to_first_produce_seconds > 0.0,
        "no start-to-first-produce time"
    );
    for (cases, measured, client) in [
        (&plan.produce, &run.produce, "librdkafka"),
        (&plan.wire_produce, &run.wire_produce, "wire client"),
    ] {
        ensure!(
            measured.len() == cases.len(),
            "{client}: produce cases missing"
        );
        for (case, measured) in cases.iter().zip(measured) {
            ensure!(
                measured.throughput.records == case.records && measured.throughput.seconds > 0.0,
                "{client} {}: {:?}",
                case.key(),
                measured.throughput
            );
        }
    }
    ensure!(
        run.consume.len() == plan.consume.len()
            && run.wire_consume.len() == plan.wire_consume.len(),
        "consume cases missing"
    );
    for measured in run.consume.iter().chain(&run.wire_consume) {
        let fill = measured.case.fill();
        ensure!(
            measured.throughput.records == fill.records
                && measured.throughput.bytes == fill.bytes(),
            "{}: read {:?}, wrote {} records of {} bytes",
            measured.case.key(),
            measured.throughput,
            fill.records,
            fill.record_size
        );
    }
    let resources = run.resources.context("no resource reading")?;
    ensure!(
        resources.peak_rss_bytes > 1 << 20,
        "implausible peak RSS {}",
        resources.peak_rss_bytes
    );
    ensure!(
        resources.workload_cpu_seconds > 0.0 && resources.bytes_moved > 0,
        "no CPU time or bytes counted: {resources:?}"
    );
    Ok(())
}

fn check_latency(plan: &Plan, run: &BrokerRun) -> anyhow::Result<()> {
    if let Some(failed) = run.failed_latency.first() {
        anyhow::bail!("{}: {}", failed.case.key(), failed.error);
    }
    ensure!(
        run.latency.len() == plan.latency.len(),
        "latency cases missing"
    );
    for measured in &run.latency {
        let l = &measured.latency;
        let expected = l.target_rate * (measured.case.seconds - measured.case.warmup_seconds);
        ensure!(
            l.measured as f64 >= expected * 0.5,
            "{}: only {} latencies recorded, expected about {expected:.0}",
            measured.case.key(),
            l.measured
        );
        ensure!(
            0.0 < l.p50_ms
                && l.p50_ms <= l.p99_ms
                && l.p99_ms <= l.p999_ms
                && l.p999_ms <= l.max_ms,
            "{}: percentiles out of order: {l:?}",
            measured.case.key()
        );
    }
    Ok(())
}
