//! One broker start (or one cluster start: the plan's topology) and what is measured on it.
//!
//! Every run starts the broker on a fresh data directory, times the first produce and warms
//! up (every produce case once, small and unmeasured). A throughput run then runs every
//! produce case and every catch-up (fill a topic, then time one consumer reading it), and
//! reads the process's peak RSS and CPU time (summed over a cluster's brokers) before
//! stopping it. A latency run runs only the fixed-rate latency cases after the warm-up, so the
//! rate cannot be disturbed by a backlog of earlier cases; a latency case the brokers cannot
//! sustain (records not delivered in time) is kept as a failed run, not a number, and the next
//! case runs. The transactional cases run in the throughput phase (their plan has no plain
//! cases): the transactional producer cases, counted in the resources, then the fixed-rate
//! `read_committed` latency case, which no earlier case leaves a backlog for (every transaction
//! has committed); a transactional case that fails while the brokers are up is kept as a
//! failure with the client's error. Every topic is created with the topology's replication.
//! Progress goes to stderr, one line per case.

use std::path::PathBuf;
use std::time::Duration;

use crate::cases::{Plan, ProduceCase, TransactionCase};
use crate::consume::{self, ConsumeError};
use crate::first_produce::{self, FirstProduceError};
use crate::latency::{self, LatencyError};
use crate::payload::Payload;
use crate::process::{Launcher, ProcessError, RunningBrokers, Stopped};
use crate::produce::{self, ProduceError};
use crate::results::Throughput;
use crate::results::{
    BrokerKind, BrokerRun, ConsumeMeasurement, LatencyFailure, LatencyMeasurement,
    ProduceMeasurement, Resources, TransactionFailure, TransactionLatencyMeasurement,
};
use crate::transactions::{self, TransactionError};
use crate::wire_client;

/// How long a broker may take from spawn to its first acknowledged produce.
const FIRST_PRODUCE_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, thiserror::Error)]
#[error("{broker} run {round} (broker output: {})", logs.iter().map(|l| l.display().to_string()).collect::<Vec<_>>().join(", "))]
pub struct RoundError {
    broker: &'static str,
    round: usize,
    logs: Vec<PathBuf>,
    #[source]
    source: Box<CaseError>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("first produce")]
    FirstProduce(#[from] FirstProduceError),
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    #[error(transparent)]
    Latency(#[from] LatencyError),
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    #[error("the wire client")]
    Wire(#[source] anyhow::Error),
    #[error("the broker exited ({status}) during the run, and the client failed")]
    Exited {
        status: std::process::ExitStatus,
        source: Box<CaseError>,
    },
    #[error("broker {node} (in node order) did not stop cleanly on SIGTERM: {status}{}", if *by_itself { "" } else { ", killed after the stop timeout" })]
    UncleanStop {
        node: usize,
        status: std::process::ExitStatus,
        by_itself: bool,
    },
}

/// Which cases of the plan a run executes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Produce and catch-up cases, plus resources.
    Throughput,
    /// Latency cases, each at its fraction of this many records/s.
    Latency { reference_rate: f64 },
}

/// Starts `kind`, runs `phase` of `plan` on it and stops it.
pub fn run(
    launcher: &Launcher,
    kind: BrokerKind,
    round: usize,
    plan: &Plan,
    phase: Phase,
    payload: &Payload,
) -> Result<BrokerRun, RoundError> {
    let label = match phase {
        Phase::Throughput => format!("{}-throughput-{round}", kind.name().to_lowercase()),
        Phase::Latency { .. } => format!("{}-latency-{round}", kind.name().to_lowercase()),
    };
    let mut logs = vec![launcher.work_dir.join("logs").join(format!("{label}*.log"))];
    let result = launcher
        .start(kind, &label, &plan.topology)
        .map_err(CaseError::from)
        .and_then(|mut broker| {
            logs = broker.logs.clone();
            let measured = match measure(&mut broker, kind, round, plan, phase, payload) {
                // A client error is often the symptom of a broker that died: say so.
                Err(source) => match broker.exited() {
                    Ok(Some(status)) => Err(CaseError::Exited {
                        status,
                        source: Box::new(source),
                    }),
                    _ => Err(source),
                },
                Ok(run) => Ok(run),
            };
            let stopped = broker.stop()?;
            for (node, end) in stopped.iter().enumerate() {
                eprintln!("  {} broker {node} stopped: {}", kind.name(), end.status);
            }
            // The JVM exits 143 on SIGTERM after its shutdown hooks; Weir exits 0.
            let clean = |end: &Stopped| {
                end.by_itself && (kind == BrokerKind::Kafka || end.status.success())
            };
            match (measured, stopped.iter().position(|end| !clean(end))) {
                // A JVM that outlives the stop timeout on a loaded machine says nothing about
                // what was measured before the stop: keep the run, say so. Weir stays strict,
                // as an unclean stop of Weir is a Weir bug.
                (Ok(run), Some(node)) if kind == BrokerKind::Kafka => {
                    eprintln!(
                        "  Kafka broker {node} was killed after the stop timeout ({}); the run's measurements are kept",
                        stopped[node].status
                    );
                    Ok(run)
                }
                (Ok(_), Some(node)) => Err(CaseError::UncleanStop {
                    node,
                    status: stopped[node].status,
                    by_itself: stopped[node].by_itself,
                }),
                (measured, _) => measured,
            }
        });
    result.map_err(|source| RoundError {
        broker: kind.name(),
        round,
        logs,
        source: Box::new(source),
    })
}

fn measure(
    broker: &mut RunningBrokers,
    kind: BrokerKind,
    round: usize,
    plan: &Plan,
    phase: Phase,
    payload: &Payload,
) -> Result<BrokerRun, CaseError> {
    let (addr, spawned_at, bootstrap) = (broker.addrs[0], broker.spawned_at, broker.bootstrap());
    let first =
        first_produce::measure(addr, &bootstrap, spawned_at, FIRST_PRODUCE_TIMEOUT, || {
            matches!(broker.exited(), Ok(None))
        })?;
    eprintln!(
        "  {} run {round}: first produce acknowledged {:.3}s after spawn",
        kind.name(),
        first.as_secs_f64()
    );
    let mut run = BrokerRun {
        broker: kind,
        round,
        start_to_first_produce_seconds: first.as_secs_f64(),
        produce: Vec::new(),
        consume: Vec::new(),
        latency: Vec::new(),
        wire_produce: Vec::new(),
        wire_consume: Vec::new(),
        failed_latency: Vec::new(),
        transactions: Vec::new(),
        transaction_latency: Vec::new(),
        failed_transactions: Vec::new(),
        resources: None,
        load_average: None,
    };
    let topology = &plan.topology;
    match phase {
        Phase::Throughput => {
            warm_up(&bootstrap, plan, payload)?;
            eprintln!("  {} warmed up", kind.name());
            let cpu_before = broker.usage()?.cpu_seconds;
            let mut bytes_moved = 0u64;
            for case in &plan.produce {
                let throughput = produce::run(&bootstrap, &case.key(), case, topology, payload)?;
                progress(kind, &case.key(), &throughput);
                bytes_moved += throughput.bytes;
                run.produce.push(ProduceMeasurement {
                    case: *case,
                    throughput,
                });
            }
            for case in &plan.wire_produce {
                let topic = format!("wire-{}", case.key());
                let throughput = wire_client::run(&bootstrap, &topic, case, topology, payload)
                    .map_err(CaseError::Wire)?;
                progress(kind, &topic, &throughput);
                bytes_moved += throughput.bytes;
                run.wire_produce.push(ProduceMeasurement {
                    case: *case,
                    throughput,
                });
            }
            for (case, wire) in plan
                .consume
                .iter()
                .map(|c| (c, false))
                .chain(plan.wire_consume.iter().map(|c| (c, true)))
            {
                let fill = case.fill();
                let topic = if wire {
                    format!("wire-{}", case.key())
                } else {
                    case.key()
                };
                // Both clients read a topic the librdkafka producer filled.
                let filled = produce::run(&bootstrap, &topic, &fill, topology, payload)?;
                bytes_moved += filled.bytes;
                let (partitions, records) = (case.partitions, case.records);
                let throughput = if wire {
                    wire_client::catch_up(&bootstrap, &topic, partitions, records, fill.record_size)
                        .map_err(CaseError::Wire)?
                } else {
                    consume::catch_up(&bootstrap, &topic, partitions, records)?
                };
                progress(kind, &topic, &throughput);
                bytes_moved += throughput.bytes;
                let measured = ConsumeMeasurement {
                    case: *case,
                    throughput,
                };
                if wire {
                    run.wire_consume.push(measured);
                } else {
                    run.consume.push(measured);
                }
            }
            for case in &plan.transactions {
                let key = case.key();
                let id = format!("{key}-{}-{round}", kind.name().to_lowercase());
                match transactions::produce::run(&bootstrap, &key, &id, case, topology, payload) {
                    Ok(measured) => {
                        eprintln!(
                            "  {} {key}: {:.0} records/s, {:.1} MB/s, {} transactions, commit p50 {:.1} ms (flush p50 {:.1} ms), p99 {:.1} ms",
                            kind.name(),
                            measured.throughput.records_per_second(),
                            measured.throughput.megabytes_per_second(),
                            measured.transactions,
                            measured.commit_p50_ms,
                            measured.flush_p50_ms.unwrap_or(f64::NAN),
                            measured.commit_p99_ms
                        );
                        bytes_moved += measured.throughput.bytes;
                        run.transactions.push(measured);
                    }
                    // With the brokers up, a failed case is a result (the section lists it
                    // with the client's error); the next case runs on the same brokers.
                    Err(error) if matches!(broker.exited(), Ok(None)) => {
                        let error = error_chain(&error);
                        eprintln!("  {} {key} failed: {error}", kind.name());
                        run.failed_transactions
                            .push(TransactionFailure { case: key, error });
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            let usage = broker.usage()?;
            run.resources = Some(Resources {
                peak_rss_bytes: usage.peak_rss_bytes,
                workload_cpu_seconds: usage.cpu_seconds - cpu_before,
                bytes_moved,
            });
            eprintln!(
                "  {} peak RSS {:.0} MiB, {:.2} CPU s over {:.2} GB",
                kind.name(),
                usage.peak_rss_bytes as f64 / (1 << 20) as f64,
                usage.cpu_seconds - cpu_before,
                bytes_moved as f64 / 1e9
            );
            // After the resources: the fixed-rate case moves little and mostly waits.
            for case in &plan.transaction_latency {
                let key = case.key();
                let id = format!("{key}-{}-{round}", kind.name().to_lowercase());
                match transactions::latency::run(&bootstrap, &key, &id, case, topology, payload) {
                    Ok(latency) => {
                        eprintln!(
                            "  {} {key} (sent {:.0}/s): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                            kind.name(),
                            latency.achieved_rate,
                            latency.p50_ms,
                            latency.p99_ms,
                            latency.p999_ms,
                            latency.max_ms
                        );
                        run.transaction_latency.push(TransactionLatencyMeasurement {
                            case: *case,
                            latency,
                        });
                    }
                    Err(error) if matches!(broker.exited(), Ok(None)) => {
                        let error = error_chain(&error);
                        eprintln!("  {} {key} failed: {error}", kind.name());
                        run.failed_transactions
                            .push(TransactionFailure { case: key, error });
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Phase::Latency { reference_rate } => {
            warm_up(&bootstrap, plan, payload)?;
            eprintln!("  {} warmed up", kind.name());
            for case in &plan.latency {
                let rate = reference_rate * case.rate_fraction;
                let latency =
                    match latency::run(&bootstrap, &case.key(), case, topology, rate, payload) {
                        Ok(latency) => latency,
                        // A broker that is up but cannot sustain the rate (records undelivered
                        // within the timeouts) is a result: the tables show the run as failed.
                        Err(error) if matches!(broker.exited(), Ok(None)) => {
                            let error = error_chain(&error);
                            eprintln!(
                                "  {} {} at {rate:.0}/s failed: {error}",
                                kind.name(),
                                case.key()
                            );
                            run.failed_latency
                                .push(LatencyFailure { case: *case, error });
                            continue;
                        }
                        Err(error) => return Err(error.into()),
                    };
                eprintln!(
                    "  {} {} at {:.0}/s (sent {:.0}/s): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
                    kind.name(),
                    case.key(),
                    rate,
                    latency.achieved_rate,
                    latency.p50_ms,
                    latency.p99_ms,
                    latency.p999_ms
                );
                run.latency.push(LatencyMeasurement {
                    case: *case,
                    latency,
                });
            }
        }
    }
    run.load_average = crate::machine::load_average();
    Ok(run)
}

/// One progress line per measured case.
fn progress(kind: BrokerKind, key: &str, throughput: &Throughput) {
    eprintln!(
        "  {} {key}: {:.0} records/s, {:.1} MB/s",
        kind.name(),
        throughput.records_per_second(),
        throughput.megabytes_per_second()
    );
}

/// Every produce and transactional case once with the plan's warm-up fraction of its records,
/// unmeasured, on topics of its own: neither system is timed while cold (above all Kafka's JIT compiler,
/// which on three JVMs sharing two cores takes tens of seconds of work to settle).
fn warm_up(bootstrap: &str, plan: &Plan, payload: &Payload) -> Result<(), CaseError> {
    for case in &plan.produce {
        let warmup = ProduceCase {
            records: (case.records as f64 * plan.warmup_fraction) as u64,
            ..*case
        };
        if warmup.records > 0 {
            let topic = format!("warmup-{}", case.key());
            produce::run(bootstrap, &topic, &warmup, &plan.topology, payload)?;
        }
    }
    for case in &plan.transactions {
        // At least one whole transaction, so the warm-up commits.
        let records = ((case.records as f64 * plan.warmup_fraction) as u64)
            .max(case.records_per_transaction)
            .min(case.records);
        let warmup = TransactionCase { records, ..*case };
        let topic = format!("warmup-{}", case.key());
        transactions::produce::run(bootstrap, &topic, &topic, &warmup, &plan.topology, payload)?;
    }
    Ok(())
}

/// `error` and its sources on one line, as a report can quote it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
