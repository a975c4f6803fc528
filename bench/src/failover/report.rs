//! The failover table: per fault kind, Weir's and Kafka's median and maximum gap and silence,
//! and the Weir/Kafka ratio of the median gaps (below 1: Weir recovers faster). Rendered into
//! the marked failover section of docs/BENCHMARKS.md.

use std::fmt::Write;

use super::{FailoverResults, Fault, Settings};
use crate::results::BrokerKind;
use crate::stats;

pub const BEGIN_MARKER: &str = "<!-- weir-bench:failover:begin -->";
pub const END_MARKER: &str = "<!-- weir-bench:failover:end -->";

/// Median and maximum of one system's values for one fault kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub runs: usize,
    pub median: f64,
    pub max: f64,
}

pub fn summarize(values: &[f64]) -> Option<Summary> {
    Some(Summary {
        runs: values.len(),
        median: stats::median(values)?,
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

fn values(
    results: &FailoverResults,
    kind: BrokerKind,
    fault: Fault,
    pick: fn(&super::FaultResult) -> Option<f64>,
) -> Vec<f64> {
    results
        .faults
        .iter()
        .filter(|f| f.broker == kind && f.fault == fault)
        .filter_map(pick)
        .collect()
}

fn cell(summary: Option<Summary>) -> String {
    match summary {
        Some(s) => format!("{:.2} / {:.2} ({})", s.median, s.max, s.runs),
        None => "–".to_string(),
    }
}

/// A gap cell: as [`cell`], and how many faults saw no acknowledgement at all before the
/// run's timeout (their gap counts as the timeout: a lower bound).
fn gap_cell(summary: Option<Summary>, unrecovered: usize) -> String {
    match unrecovered {
        0 => cell(summary),
        n => format!(
            "{}, {n} not back in {}s",
            cell(summary),
            super::GAP_TIMEOUT.as_secs()
        ),
    }
}

fn ratio(weir: Option<Summary>, kafka: Option<Summary>) -> String {
    match (weir, kafka) {
        (Some(w), Some(k)) if k.median > 0.0 => format!("{:.2}", w.median / k.median),
        _ => "–".to_string(),
    }
}

/// The markdown section: header with settings, then the table.
pub fn render(results: &FailoverResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Measured {} repetitions per fault on {}; Weir {} ({} build), Apache Kafka {}; \
         three brokers of each, one partition with replication factor 3.\n",
        results.repetitions,
        results.machine,
        results.weir_version,
        results.weir_build,
        results.kafka_version
    );
    let _ = writeln!(
        out,
        "- Brokers (both): {}",
        Settings::describe(&results.settings.broker)
    );
    let _ = writeln!(
        out,
        "- Clients (librdkafka, producer and committer): `enable.idempotence=true`, `acks=all`, \
         one 100-byte record every 5 ms, one synchronous commit every 20 ms; {}",
        Settings::describe(&results.settings.client)
    );
    let _ = writeln!(out, "- Command: `{}`\n", results.command);
    let _ = writeln!(
        out,
        "Seconds, median / max (runs). Gap: fault to the first acknowledgement of a request \
         sent after it. Silence: longest time without any acknowledgement around the fault. \
         Ratio: Weir/Kafka median gap. New leader: fault to the first metadata answer naming \
         a new partition leader (detection and election), when the fault moved leadership.\n"
    );
    let _ = writeln!(
        out,
        "| Fault | Weir gap | Kafka gap | Ratio | Weir silence | Kafka silence | Weir new leader | Kafka new leader |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for fault in Fault::ALL {
        let gap = |kind| summarize(&values(results, kind, fault, |f| Some(f.gap_seconds)));
        let silence = |kind| summarize(&values(results, kind, fault, |f| Some(f.silence_seconds)));
        let (wg, kg) = (gap(BrokerKind::Weir), gap(BrokerKind::Kafka));
        let unrecovered = |kind| {
            results
                .faults
                .iter()
                .filter(|f| f.broker == kind && f.fault == fault && !f.recovered)
                .count()
        };
        if wg.is_none() && kg.is_none() {
            continue;
        }
        let elected = |kind| summarize(&values(results, kind, fault, |f| f.new_leader_seconds));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            fault.describe(),
            gap_cell(wg, unrecovered(BrokerKind::Weir)),
            gap_cell(kg, unrecovered(BrokerKind::Kafka)),
            ratio(wg, kg),
            cell(silence(BrokerKind::Weir)),
            cell(silence(BrokerKind::Kafka)),
            cell(elected(BrokerKind::Weir)),
            cell(elected(BrokerKind::Kafka))
        );
        if fault == Fault::CoordinatorKill {
            let produce =
                |kind| summarize(&values(results, kind, fault, |f| f.produce_gap_seconds));
            let (wp, kp) = (produce(BrokerKind::Weir), produce(BrokerKind::Kafka));
            let _ = writeln!(
                out,
                "| … the producer's gap in it | {} | {} | {} | | | | |",
                cell(wp),
                cell(kp),
                ratio(wp, kp)
            );
        }
    }
    let shared: Vec<String> = results
        .faults
        .iter()
        .filter(|f| {
            matches!(f.fault, Fault::ControllerKill | Fault::CoordinatorKill)
                && f.victim_led_partition
        })
        .map(|f| format!("{} {:?} #{}", f.broker.name(), f.fault, f.repetition))
        .collect();
    if !shared.is_empty() {
        let _ = writeln!(
            out,
            "\nThe victim also led the topic's partition in: {}.",
            shared.join(", ")
        );
    }
    out
}

/// Replaces the marked section of `doc` with `section` (appends both markers if absent).
pub fn splice(doc: &str, section: &str) -> String {
    crate::report::splice_or_append(doc, BEGIN_MARKER, END_MARKER, section)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::FaultResult;

    fn result(broker: BrokerKind, fault: Fault, gap: f64) -> FaultResult {
        FaultResult {
            broker,
            fault,
            repetition: 0,
            victims: vec![1],
            recovered: true,
            victim_led_partition: true,
            gap_seconds: gap,
            silence_seconds: gap + 0.1,
            produce_gap_seconds: None,
            new_leader_seconds: None,
            at_unix_ms: 0,
        }
    }

    #[test]
    fn table_has_medians_maxima_and_the_ratio() {
        let results = FailoverResults {
            machine: "test".into(),
            weir_version: "w".into(),
            kafka_version: "k".into(),
            weir_build: "debug".into(),
            settings: Settings::default(),
            repetitions: 3,
            command: "weir-bench failover".into(),
            faults: [1.0, 2.0, 6.0]
                .iter()
                .map(|&g| result(BrokerKind::Weir, Fault::LeaderKill, g))
                .chain(
                    [4.0, 8.0, 9.0]
                        .iter()
                        .map(|&g| result(BrokerKind::Kafka, Fault::LeaderKill, g)),
                )
                .collect(),
        };
        let table = render(&results);
        assert!(
            table.contains(
                "| SIGKILL partition leader | 2.00 / 6.00 (3) | 8.00 / 9.00 (3) | 0.25 |"
            ),
            "{table}"
        );
        assert!(!table.contains("SIGSTOP"), "{table}");
    }

    #[test]
    fn splice_replaces_only_the_marked_section() {
        let doc = format!("a\n{BEGIN_MARKER}\nold\n{END_MARKER}\nb\n");
        assert_eq!(
            splice(&doc, "new\n"),
            format!("a\n{BEGIN_MARKER}\nnew\n{END_MARKER}\nb\n")
        );
        assert!(splice("a\n", "new\n").ends_with(&format!("{BEGIN_MARKER}\nnew\n{END_MARKER}\n")));
    }
}
