//! Share-group throughput (issue 17): records consumed and accepted per second by 1, 3 and 10
//! `KafkaShareConsumer`s of one share group on a one-partition topic, Weir and Apache Kafka
//! alternately on the same machine.
//!
//! librdkafka has no share consumer, so the consumers are the Apache Kafka 4.3 Java client's,
//! run by `tests/java/ShareBench.java` (jars from `scripts/install-test-deps.sh` in
//! `target/java-share-client-deps`). Each case: a fresh single broker with share groups on, a
//! topic filled with `records` records of 100 bytes, then the consumers start together, each
//! accepting every record it gets (explicit acknowledgement, `commitSync` after each poll).
//! The rate is `records` over the time from the first record received until every record
//! was accepted (its acknowledgement answered without error): on Weir, persisted in
//! `__share_group_state` first; on Kafka, as its share coordinator does.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::cases::Topology;
use crate::process::Launcher;
use crate::results::BrokerKind;
use crate::scale::wait_ready;
use crate::stats;

/// What to measure.
#[derive(Debug, Clone)]
pub struct ShareOptions {
    pub launcher: Launcher,
    pub systems: Vec<BrokerKind>,
    /// Consumer counts, one case each.
    pub consumers: Vec<usize>,
    pub rounds: usize,
    /// Records per case.
    pub records: u64,
    /// The classpath of the Kafka 4.3 Java client.
    pub classpath: String,
    /// tests/java/ShareBench.java.
    pub program: PathBuf,
}

/// One case's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SharePoint {
    pub system: String,
    pub round: usize,
    pub consumers: usize,
    pub records: u64,
    pub seconds: f64,
    pub records_per_second: f64,
}

/// Broker settings both systems get: share groups on (Kafka 4.3 has `share.version` 1 on a
/// freshly formatted cluster; `group.share.enable` is Weir's switch and Kafka's older one),
/// and, for Weir, which has no group configs, new share partitions starting at the log start.
fn settings(kind: BrokerKind) -> Vec<(&'static str, String)> {
    let mut s = vec![("group.share.enable", "true".to_string())];
    if kind == BrokerKind::Weir {
        s.push(("share.auto.offset.reset", "earliest".to_string()));
    }
    s
}

/// Runs every case: per round, per system, per consumer count, a fresh broker.
pub fn run(options: &ShareOptions) -> anyhow::Result<Vec<SharePoint>> {
    let mut points = Vec::new();
    for round in 0..options.rounds {
        for &kind in &options.systems {
            for &consumers in &options.consumers {
                let label = format!("{}-share-{consumers}-{round}", kind.name().to_lowercase());
                let mut broker = options.launcher.start_with(
                    kind,
                    &label,
                    &Topology::SINGLE_NODE,
                    &settings(kind),
                )?;
                wait_ready(&mut broker)?;
                let point = once(options, &broker.bootstrap(), kind, round, consumers);
                broker.stop()?;
                let point = point?;
                eprintln!("  {point:?}");
                points.push(point);
            }
        }
    }
    Ok(points)
}

fn once(
    options: &ShareOptions,
    bootstrap: &str,
    kind: BrokerKind,
    round: usize,
    consumers: usize,
) -> anyhow::Result<SharePoint> {
    let output = Command::new("java")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .args(["-cp", &options.classpath])
        .arg(&options.program)
        .args([
            bootstrap,
            "share-bench",
            &format!("share-bench-{consumers}"),
            &options.records.to_string(),
            &consumers.to_string(),
        ])
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "ShareBench on {} with {consumers} consumers failed:\n{stdout}\n{}",
        kind.name(),
        String::from_utf8_lossy(&output.stderr)
    );
    let seconds: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("share-bench "))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("seconds="))
        })
        .ok_or_else(|| anyhow::anyhow!("no result line in:\n{stdout}"))?
        .parse()?;
    Ok(SharePoint {
        system: kind.name().to_string(),
        round,
        consumers,
        records: options.records,
        seconds,
        records_per_second: options.records as f64 / seconds.max(1e-9),
    })
}

/// The comments that delimit the share section of docs/BENCHMARKS.md.
pub const BEGIN_MARKER: &str = "<!-- weir-bench:share:begin -->";
pub const END_MARKER: &str = "<!-- weir-bench:share:end -->";

/// The table: per consumer count, the median records/s of the rounds, Weir beside Kafka.
pub fn render(points: &[SharePoint], conditions: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{conditions}\n\n| share consumers | Weir records/s | Kafka records/s | Weir/Kafka | rounds |\n|---:|---:|---:|---:|---:|\n"
    );
    let mut counts: Vec<usize> = points.iter().map(|p| p.consumers).collect();
    counts.sort();
    counts.dedup();
    for consumers in counts {
        let of = |system: &str| -> (Option<f64>, usize) {
            let values: Vec<f64> = points
                .iter()
                .filter(|p| p.consumers == consumers && p.system == system)
                .map(|p| p.records_per_second)
                .collect();
            (stats::median(&values), values.len())
        };
        let (weir, weir_rounds) = of(BrokerKind::Weir.name());
        let (kafka, kafka_rounds) = of(BrokerKind::Kafka.name());
        let show = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}"));
        let ratio = match (weir, kafka) {
            (Some(w), Some(k)) if k > 0.0 => format!("{:.2}x", w / k),
            _ => "–".to_string(),
        };
        let _ = writeln!(
            out,
            "| {consumers} | {} | {} | {ratio} | {}/{} |",
            show(weir),
            show(kafka),
            weir_rounds,
            kafka_rounds
        );
    }
    out
}
