//! The side-by-side comparison: Weir and Apache Kafka alternately (A B A B ...), one broker at
//! a time on the same machine, each start on a fresh data directory.
//!
//! Phase one runs the throughput cases `rounds` times per broker. The latency rates come out
//! of it: each latency case runs at a fraction (a half, a tenth) of Kafka's median maximum on
//! the matching producer row, or of a reference rate given on the command line. Phase two
//! runs the latency cases at those rates, again alternating.
//! A transactions plan (`Plan::transactions`) has only throughput-phase cases: its
//! `read_committed` latency case has a fixed rate and runs in the same broker start.
//! Results are saved as JSON after every broker run and rendered into the document at the end.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::cases::Plan;
use crate::payload::Payload;
use crate::process::Launcher;
use crate::report;
use crate::results::{BrokerKind, Results};
use crate::round::{self, Phase};
use crate::stats;
use crate::transactions;

/// Alternation order within a round.
const ORDER: [BrokerKind; 2] = [BrokerKind::Weir, BrokerKind::Kafka];

#[derive(Debug)]
pub struct CompareOptions {
    pub launcher: Launcher,
    pub plan: Plan,
    /// Runs per broker and phase.
    pub rounds: usize,
    /// Use this instead of Kafka's measured maximum as the latency reference rate.
    pub latency_reference_rate: Option<f64>,
    pub results_path: PathBuf,
    /// docs/BENCHMARKS.md, whose marked section gets the tables.
    pub doc_path: Option<PathBuf>,
    pub weir_version: String,
    pub kafka_version: String,
    pub kafka_heap: String,
    pub command: String,
}

pub fn run(options: CompareOptions) -> anyhow::Result<Results> {
    let payload = Payload::new(
        options
            .plan
            .produce
            .iter()
            .map(|c| c.record_size)
            .chain(options.plan.latency.iter().map(|c| c.record_size))
            .max()
            .unwrap_or(1024),
    );
    let mut results = Results {
        machine: crate::machine::describe(),
        plan: options.plan.clone(),
        weir_version: options.weir_version.clone(),
        kafka_version: options.kafka_version.clone(),
        kafka_heap: options.kafka_heap.clone(),
        command: options.command.clone(),
        latency_reference_rate: options.latency_reference_rate,
        runs: Vec::new(),
    };
    for round in 0..options.rounds {
        for kind in ORDER {
            eprintln!("throughput round {round}: {}", kind.name());
            let run = round::run(
                &options.launcher,
                kind,
                round,
                &options.plan,
                Phase::Throughput,
                &payload,
            )?;
            results.runs.push(run);
            save(&results, &options.results_path)?;
        }
    }
    if !options.plan.latency.is_empty() {
        let reference_rate = match options.latency_reference_rate {
            Some(rate) => rate,
            None => kafka_max(&results)?,
        };
        results.latency_reference_rate = Some(reference_rate);
        for round in 0..options.rounds {
            for kind in ORDER {
                eprintln!(
                    "latency round {round}: {} (reference rate {reference_rate:.0} records/s)",
                    kind.name()
                );
                let run = round::run(
                    &options.launcher,
                    kind,
                    round,
                    &options.plan,
                    Phase::Latency { reference_rate },
                    &payload,
                )?;
                results.runs.push(run);
                save(&results, &options.results_path)?;
            }
        }
    }
    if let Some(doc) = &options.doc_path {
        write_doc(&results, doc)?;
    }
    Ok(results)
}

/// Kafka's median records/s on the producer row matching the first latency case.
fn kafka_max(results: &Results) -> anyhow::Result<f64> {
    let Some(case) = results.plan.latency.first() else {
        bail!("the plan has no latency case");
    };
    let Some(row) = results.plan.produce.iter().find(|p| case.matches(p)) else {
        bail!(
            "no producer row matches latency case {}: give --latency-reference-rate",
            case.key()
        );
    };
    let key = row.key();
    let rates: Vec<f64> = results
        .runs
        .iter()
        .filter(|r| r.broker == BrokerKind::Kafka)
        .flat_map(|r| &r.produce)
        .filter(|p| p.case.key() == key)
        .map(|p| p.throughput.records_per_second())
        .collect();
    match stats::median(&rates) {
        Some(max) => Ok(max),
        None => bail!("no Kafka measurement of {key} to derive the latency rate from"),
    }
}

pub fn save(results: &Results, path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}

pub fn load(path: &Path) -> anyhow::Result<Results> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Replaces the marked sections of `doc` that `results` has cases for (the single-node or the
/// cluster one, as `results` ran, and the transactions one) with its tables.
pub fn write_doc(results: &Results, doc: &Path) -> anyhow::Result<()> {
    let mut text =
        std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
    if has_plain_cases(results) {
        text = report::splice(&text, &results.plan.topology, &report::render(results))
            .with_context(|| format!("updating {}", doc.display()))?;
    }
    if has_transaction_cases(results) {
        text = transactions::report::splice(&text, &transactions::report::render(results))
            .with_context(|| format!("updating {}", doc.display()))?;
    }
    std::fs::write(doc, text).with_context(|| format!("writing {}", doc.display()))
}

/// Every section `results` has cases for, as the document gets them.
pub fn render(results: &Results) -> String {
    let mut out = String::new();
    if has_plain_cases(results) {
        out.push_str(&report::render(results));
    }
    if has_transaction_cases(results) {
        out.push_str(&transactions::report::render(results));
    }
    out
}

fn has_plain_cases(results: &Results) -> bool {
    let plan = &results.plan;
    !(plan.produce.is_empty() && plan.consume.is_empty() && plan.latency.is_empty())
}

fn has_transaction_cases(results: &Results) -> bool {
    let plan = &results.plan;
    !(plan.transactions.is_empty() && plan.transaction_latency.is_empty())
}
