//! Markdown tables from [`Results`]: medians per broker, the Weir/Kafka ratio, the spread of
//! the runs, and where Weir stands against the targets.
//!
//! The rendered section replaces what lies between two marker comments in
//! docs/BENCHMARKS.md, so the prose around it (method, analysis, profiles) is written by hand
//! and survives a re-run.

use std::fmt::Write as _;

use crate::cases::{Acks, Compression};
use crate::results::{BrokerKind, BrokerRun, Results};
use crate::stats;

pub const BEGIN_MARKER: &str = "<!-- weir-bench:results:begin -->";
pub const END_MARKER: &str = "<!-- weir-bench:results:end -->";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the document has no `{BEGIN_MARKER}` ... `{END_MARKER}` section to replace")]
    NoMarkers,
}

/// One metric across the runs of both brokers.
struct Row {
    weir: Vec<f64>,
    kafka: Vec<f64>,
}

impl Row {
    fn collect(results: &Results, metric: impl Fn(&BrokerRun) -> Option<f64>) -> Row {
        let of = |kind| {
            results
                .runs
                .iter()
                .filter(|run| run.broker == kind)
                .filter_map(&metric)
                .collect()
        };
        Row {
            weir: of(BrokerKind::Weir),
            kafka: of(BrokerKind::Kafka),
        }
    }

    fn weir(&self) -> Option<f64> {
        stats::median(&self.weir)
    }

    fn kafka(&self) -> Option<f64> {
        stats::median(&self.kafka)
    }

    fn ratio(&self) -> Option<f64> {
        Some(self.weir()? / self.kafka()?)
    }

    fn spread(&self) -> String {
        format!(
            "{} / {}",
            percent(stats::spread(&self.weir)),
            percent(stats::spread(&self.kafka))
        )
    }
}

fn number(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) => format!("{v:.decimals$}"),
        None => "n/a".to_string(),
    }
}

fn ratio(value: Option<f64>) -> String {
    match value {
        Some(v) => format!("{v:.2}x"),
        None => "n/a".to_string(),
    }
}

fn percent(value: Option<f64>) -> String {
    match value {
        Some(v) => format!("{:.0}%", v * 100.0),
        None => "n/a".to_string(),
    }
}

fn size(bytes: usize) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// Renders every table of `results`.
pub fn render(results: &Results) -> String {
    let mut out = String::new();
    let runs_of = |kind| results.runs.iter().filter(|r| r.broker == kind).count();
    let m = &results.machine;
    let _ = writeln!(
        out,
        "Weir {} against Apache Kafka {} (heap `{}`), {} Weir and {} Kafka broker starts, \
         medians of the runs. Machine: {}, {} cores, {:.1} GiB memory, Linux {}, {}.\n",
        results.weir_version,
        results.kafka_version,
        results.kafka_heap,
        runs_of(BrokerKind::Weir),
        runs_of(BrokerKind::Kafka),
        m.cpu_model,
        m.cores,
        m.memory_gib,
        m.kernel,
        m.java
    );
    let _ = writeln!(out, "Command: `{}`\n", results.command);
    targets(&mut out, results);
    produce_table(&mut out, results);
    consume_table(&mut out, results);
    latency_table(&mut out, results);
    resources_table(&mut out, results);
    out
}

fn produce_row(results: &Results, key: &str, mb: bool) -> Row {
    Row::collect(results, |run| {
        run.produce.iter().find(|p| p.case.key() == key).map(|p| {
            if mb {
                p.throughput.megabytes_per_second()
            } else {
                p.throughput.records_per_second()
            }
        })
    })
}

fn latency_row(
    results: &Results,
    key: &str,
    percentile: fn(&crate::results::LatencySummary) -> f64,
) -> Row {
    Row::collect(results, |run| {
        run.latency
            .iter()
            .find(|l| l.case.key() == key)
            .map(|l| percentile(&l.latency))
    })
}

fn resources_rows(results: &Results) -> [(&'static str, Row, usize); 3] {
    [
        (
            "peak RSS (MiB)",
            Row::collect(results, |run| {
                run.resources
                    .map(|r| r.peak_rss_bytes as f64 / (1u64 << 20) as f64)
            }),
            0,
        ),
        (
            "CPU seconds per GB moved",
            Row::collect(results, |run| run.resources.map(|r| r.cpu_seconds_per_gb())),
            2,
        ),
        (
            "start to first produce (s)",
            Row::collect(results, |run| Some(run.start_to_first_produce_seconds)),
            3,
        ),
    ]
}

fn targets(out: &mut String, results: &Results) {
    let _ = writeln!(out, "### Targets (single node)\n");
    let _ = writeln!(out, "| target | Weir | Kafka | Weir/Kafka | goal | met |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | --- | --- |");
    let mut line = |name: String, row: &Row, decimals: usize, higher_is_better: bool, goal: f64| {
        let met = match row.ratio() {
            Some(r) if higher_is_better => {
                if r >= goal {
                    "yes"
                } else {
                    "no"
                }
            }
            Some(r) => {
                if r <= goal {
                    "yes"
                } else {
                    "no"
                }
            }
            None => "n/a",
        };
        let sign = if higher_is_better { "≥" } else { "≤" };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {sign} {goal}x | {met} |",
            number(row.weir(), decimals),
            number(row.kafka(), decimals),
            ratio(row.ratio()),
        );
    };
    for case in results.plan.produce.iter().filter(|c| {
        c.record_size == 1024 && c.acks == Acks::Leader && c.compression == Compression::None
    }) {
        let row = produce_row(results, &case.key(), true);
        line(
            format!(
                "producer MB/s, 1 KiB, acks=1, {} partition(s)",
                case.partitions
            ),
            &row,
            1,
            true,
            1.5,
        );
    }
    // The latency target is at about half of Kafka's maximum.
    for case in results
        .plan
        .latency
        .iter()
        .filter(|c| c.rate_fraction == 0.5)
    {
        let row = latency_row(results, &case.key(), |l| l.p99_ms);
        line(
            format!(
                "p99 end-to-end latency (ms) at half of Kafka's maximum, {}, acks={}, {} partition(s)",
                size(case.record_size),
                case.acks,
                case.partitions
            ),
            &row,
            2,
            false,
            0.5,
        );
    }
    let [rss, _, start] = resources_rows(results);
    line("peak RSS (MiB)".to_string(), &rss.1, 0, false, 0.2);
    line(
        "start to first produce (s)".to_string(),
        &start.1,
        3,
        false,
        0.1,
    );
    let _ = writeln!(out);
}

fn produce_table(out: &mut String, results: &Results) {
    let _ = writeln!(out, "### Producer throughput\n");
    let _ = writeln!(
        out,
        "| record | acks | compression | partitions | records | Weir records/s | Kafka records/s | Weir MB/s | Kafka MB/s | Weir/Kafka | spread Weir / Kafka |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for case in &results.plan.produce {
        let records = produce_row(results, &case.key(), false);
        let mb = produce_row(results, &case.key(), true);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            size(case.record_size),
            case.acks,
            case.compression,
            case.partitions,
            case.records,
            number(records.weir(), 0),
            number(records.kafka(), 0),
            number(mb.weir(), 1),
            number(mb.kafka(), 1),
            ratio(records.ratio()),
            records.spread(),
        );
    }
    let _ = writeln!(out);
}

fn consume_table(out: &mut String, results: &Results) {
    let _ = writeln!(
        out,
        "### Consumer catch-up (one consumer, `assign()`, from the beginning)\n"
    );
    let _ = writeln!(
        out,
        "| record | partitions | records | Weir records/s | Kafka records/s | Weir MB/s | Kafka MB/s | Weir/Kafka | spread Weir / Kafka |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for case in &results.plan.consume {
        let metric = |mb: bool| {
            Row::collect(results, |run| {
                run.consume.iter().find(|c| c.case == *case).map(|c| {
                    if mb {
                        c.throughput.megabytes_per_second()
                    } else {
                        c.throughput.records_per_second()
                    }
                })
            })
        };
        let (records, mb) = (metric(false), metric(true));
        let count = case.records;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            size(case.record_size),
            case.partitions,
            count,
            number(records.weir(), 0),
            number(records.kafka(), 0),
            number(mb.weir(), 1),
            number(mb.kafka(), 1),
            ratio(records.ratio()),
            records.spread(),
        );
    }
    let _ = writeln!(out);
}

fn latency_table(out: &mut String, results: &Results) {
    let reference = results.latency_reference_rate;
    let _ = writeln!(out, "### End-to-end latency at fixed rates\n");
    let _ = writeln!(
        out,
        "Rates are fractions of {} records/s (Apache Kafka's median maximum on the matching \
         producer row); both brokers run at the same rate.\n",
        number(reference, 0)
    );
    let _ = writeln!(
        out,
        "| case | rate, records/s | seconds (warm-up) | percentile | Weir ms | Kafka ms | Weir/Kafka | spread Weir / Kafka |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |"
    );
    type Percentile = fn(&crate::results::LatencySummary) -> f64;
    let percentiles: [(&str, Percentile); 4] = [
        ("p50", |l| l.p50_ms),
        ("p99", |l| l.p99_ms),
        ("p99.9", |l| l.p999_ms),
        ("max", |l| l.max_ms),
    ];
    for case in &results.plan.latency {
        for (name, percentile) in percentiles {
            let row = latency_row(results, &case.key(), percentile);
            let _ = writeln!(
                out,
                "| {}, acks={}, {}, {} partition(s) | {:.0}% = {} | {} ({}) | {name} | {} | {} | {} | {} |",
                size(case.record_size),
                case.acks,
                case.compression,
                case.partitions,
                case.rate_fraction * 100.0,
                number(reference.map(|r| r * case.rate_fraction), 0),
                case.seconds,
                case.warmup_seconds,
                number(row.weir(), 2),
                number(row.kafka(), 2),
                ratio(row.ratio()),
                row.spread(),
            );
        }
        let achieved = latency_row(results, &case.key(), |l| l.achieved_rate);
        let _ = writeln!(
            out,
            "| (rate achieved, records/s) | | | | {} | {} | | |",
            number(achieved.weir(), 0),
            number(achieved.kafka(), 0)
        );
    }
    let _ = writeln!(out);
}

fn resources_table(out: &mut String, results: &Results) {
    let _ = writeln!(out, "### Broker resources\n");
    let _ = writeln!(
        out,
        "| metric | Weir | Kafka | Weir/Kafka | spread Weir / Kafka |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: |");
    for (name, row, decimals) in resources_rows(results) {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            number(row.weir(), decimals),
            number(row.kafka(), decimals),
            ratio(row.ratio()),
            row.spread(),
        );
    }
}

/// `doc` with the text between the markers replaced by `section`.
pub fn splice(doc: &str, section: &str) -> Result<String, ReportError> {
    let begin = doc.find(BEGIN_MARKER).ok_or(ReportError::NoMarkers)?;
    let after_begin = begin + BEGIN_MARKER.len();
    let end = doc[after_begin..]
        .find(END_MARKER)
        .ok_or(ReportError::NoMarkers)?
        + after_begin;
    Ok(format!(
        "{}\n\n{}\n{}",
        &doc[..after_begin],
        section.trim_end(),
        &doc[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_marked_section() {
        let doc = format!("# Title\nintro\n{BEGIN_MARKER}\nold table\n{END_MARKER}\nanalysis\n");
        let out = splice(&doc, "new table\n").unwrap();
        assert_eq!(
            out,
            format!("# Title\nintro\n{BEGIN_MARKER}\n\nnew table\n{END_MARKER}\nanalysis\n")
        );
        // Splicing again gives the same document.
        assert_eq!(splice(&out, "new table\n").unwrap(), out);
    }

    use crate::cases::{Plan, ProduceCase};
    use crate::results::{Machine, ProduceMeasurement, Resources, Throughput};

    fn run(
        broker: BrokerKind,
        round: usize,
        case: ProduceCase,
        seconds: f64,
        rss_mib: u64,
    ) -> BrokerRun {
        BrokerRun {
            broker,
            round,
            start_to_first_produce_seconds: 1.0,
            produce: vec![ProduceMeasurement {
                case,
                throughput: Throughput {
                    records: case.records,
                    bytes: case.bytes(),
                    seconds,
                },
            }],
            consume: Vec::new(),
            latency: Vec::new(),
            resources: Some(Resources {
                peak_rss_bytes: rss_mib << 20,
                workload_cpu_seconds: 1.0,
                bytes_moved: case.bytes(),
            }),
        }
    }

    #[test]
    fn render_reports_medians_ratios_and_targets() {
        let case = ProduceCase {
            record_size: 1024,
            acks: Acks::Leader,
            compression: Compression::None,
            partitions: 1,
            records: 1_000_000,
        };
        let plan = Plan {
            warmup_fraction: 0.0,
            produce: vec![case],
            consume: Vec::new(),
            latency: Vec::new(),
        };
        // Weir: 1, 2 and 4 seconds (median 2 s = 500000 records/s); Kafka: 4 s twice.
        let results = Results {
            machine: Machine {
                cpu_model: "test CPU".into(),
                cores: 2,
                memory_gib: 4.0,
                kernel: "6".into(),
                java: "java".into(),
            },
            plan,
            weir_version: "w".into(),
            kafka_version: "k".into(),
            kafka_heap: "-Xmx1g".into(),
            command: "weir-bench compare".into(),
            latency_reference_rate: None,
            runs: vec![
                run(BrokerKind::Weir, 0, case, 1.0, 10),
                run(BrokerKind::Kafka, 0, case, 4.0, 400),
                run(BrokerKind::Weir, 1, case, 2.0, 12),
                run(BrokerKind::Kafka, 1, case, 4.0, 400),
                run(BrokerKind::Weir, 2, case, 4.0, 14),
            ],
        };
        let out = render(&results);
        assert!(
            out.contains("| 1 KiB | 1 | none | 1 | 1000000 | 500000 | 250000 | 512.0 | 256.0 | 2.00x | 150% / 0% |"),
            "{out}"
        );
        assert!(
            out.contains("| producer MB/s, 1 KiB, acks=1, 1 partition(s) | 512.0 | 256.0 | 2.00x | ≥ 1.5x | yes |"),
            "{out}"
        );
        assert!(
            out.contains("| peak RSS (MiB) | 12 | 400 | 0.03x | ≤ 0.2x | yes |"),
            "{out}"
        );
        // Equal start times: 1.00x misses a "≤ 0.1x" target.
        assert!(
            out.contains("| start to first produce (s) | 1.000 | 1.000 | 1.00x | ≤ 0.1x | no |"),
            "{out}"
        );
    }

    #[test]
    fn splice_without_markers_is_an_error() {
        assert!(splice("no markers here", "x").is_err());
    }
}
