//! Markdown tables from [`Results`]: medians per broker, the Weir/Kafka ratio, the spread of
//! the runs, and where Weir stands against the targets.
//!
//! The rendered section replaces what lies between two marker comments in
//! docs/BENCHMARKS.md, so the prose around it (method, analysis, profiles) is written by hand
//! and survives a re-run. Single-node and cluster results have markers of their own
//! ([`markers`]), so one document holds both. The targets are single-node targets:
//! cluster results report the comparison without them.

use std::fmt::Write as _;

use crate::cases::{Acks, Client, Compression};
use crate::results::{BrokerKind, BrokerRun, Results};
use crate::stats;

use crate::cases::Topology;

pub const BEGIN_MARKER: &str = "<!-- weir-bench:results:begin -->";
pub const END_MARKER: &str = "<!-- weir-bench:results:end -->";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the document has no `{begin}` ... `{end}` section to replace")]
    NoMarkers { begin: String, end: String },
}

/// The comments that delimit the results of `topology` in the document: [`BEGIN_MARKER`] and
/// [`END_MARKER`] for a single node, `weir-bench:results-cluster-N:...` for N brokers.
pub fn markers(topology: &Topology) -> (String, String) {
    if topology.is_cluster() {
        let name = format!("weir-bench:results-cluster-{}", topology.brokers);
        (
            format!("<!-- {name}:begin -->"),
            format!("<!-- {name}:end -->"),
        )
    } else {
        (BEGIN_MARKER.to_string(), END_MARKER.to_string())
    }
}

/// One metric across the runs of both brokers.
pub(crate) struct Row {
    pub(crate) weir: Vec<f64>,
    pub(crate) kafka: Vec<f64>,
}

impl Row {
    pub(crate) fn collect(results: &Results, metric: impl Fn(&BrokerRun) -> Option<f64>) -> Row {
        Row::collect_many(results, |run| metric(run).into_iter().collect())
    }

    pub(crate) fn collect_many(results: &Results, metric: impl Fn(&BrokerRun) -> Vec<f64>) -> Row {
        let of = |kind| {
            results
                .runs
                .iter()
                .filter(|run| run.broker == kind)
                .flat_map(&metric)
                .collect()
        };
        Row {
            weir: of(BrokerKind::Weir),
            kafka: of(BrokerKind::Kafka),
        }
    }

    pub(crate) fn weir(&self) -> Option<f64> {
        stats::median(&self.weir)
    }

    pub(crate) fn kafka(&self) -> Option<f64> {
        stats::median(&self.kafka)
    }

    pub(crate) fn ratio(&self) -> Option<f64> {
        Some(self.weir()? / self.kafka()?)
    }

    pub(crate) fn spread(&self) -> String {
        let one = |values: &[f64]| {
            let failed = values.iter().filter(|v| v.is_infinite()).count();
            if failed == 0 {
                percent(stats::spread(values))
            } else {
                format!("{failed} of {} failed", values.len())
            }
        };
        format!("{} / {}", one(&self.weir), one(&self.kafka))
    }
}

/// A median; infinite when most runs failed (see [`latency_row`]).
pub(crate) fn number(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_infinite() => "failed".to_string(),
        Some(v) => format!("{v:.decimals$}"),
        None => "n/a".to_string(),
    }
}

pub(crate) fn ratio(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.2}x"),
        _ => "n/a".to_string(),
    }
}

fn percent(value: Option<f64>) -> String {
    match value {
        Some(v) => format!("{:.0}%", v * 100.0),
        None => "n/a".to_string(),
    }
}

pub(crate) fn size(bytes: usize) -> String {
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
    let topology = &results.plan.topology;
    let (starts, heap) = if topology.is_cluster() {
        (
            format!(
                "cluster starts of {} brokers each (topics with replication factor {}, \
                 `min.insync.replicas={}`)",
                topology.brokers, topology.replication_factor, topology.min_insync_replicas
            ),
            "heap of each node",
        )
    } else {
        ("broker starts".to_string(), "heap")
    };
    let _ = writeln!(
        out,
        "Weir {} against Apache Kafka {} ({heap} `{}`), {} Weir and {} Kafka {starts}, \
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
    let load = |kind| {
        let loads: Vec<f64> = results
            .runs
            .iter()
            .filter(|r| r.broker == kind)
            .filter_map(|r| r.load_average)
            .collect();
        let min = loads.iter().copied().reduce(f64::min);
        let max = loads.iter().copied().reduce(f64::max);
        match (min, max) {
            (Some(min), Some(max)) => format!("{min:.1}–{max:.1}"),
            _ => "not recorded".to_string(),
        }
    };
    let _ = writeln!(
        out,
        "Load average (1 min) at the end of each run, the run's own brokers and client \
         included: Weir runs {}, Kafka runs {}.\n",
        load(BrokerKind::Weir),
        load(BrokerKind::Kafka)
    );
    let _ = writeln!(out, "Command: `{}`\n", results.command);
    if !topology.is_cluster() {
        targets(&mut out, results);
    }
    produce_table(&mut out, results, Client::Librdkafka);
    if !results.plan.consume.is_empty() {
        consume_table(&mut out, results, Client::Librdkafka);
    }
    if !results.plan.wire_produce.is_empty() {
        produce_table(&mut out, results, Client::Wire);
    }
    if !results.plan.wire_consume.is_empty() {
        consume_table(&mut out, results, Client::Wire);
    }
    latency_table(&mut out, results);
    resources_table(&mut out, results);
    out
}

fn produce_row(results: &Results, client: Client, key: &str, mb: bool) -> Row {
    Row::collect(results, |run| {
        let measured = match client {
            Client::Librdkafka => &run.produce,
            Client::Wire => &run.wire_produce,
        };
        measured.iter().find(|p| p.case.key() == key).map(|p| {
            if mb {
                p.throughput.megabytes_per_second()
            } else {
                p.throughput.records_per_second()
            }
        })
    })
}

/// One percentile of a latency case over the runs; a failed run counts as infinitely slow,
/// so failures move the median instead of vanishing from it.
fn latency_row(
    results: &Results,
    key: &str,
    percentile: fn(&crate::results::LatencySummary) -> f64,
) -> Row {
    Row::collect_many(results, |run| {
        let measured = run
            .latency
            .iter()
            .filter(|l| l.case.key() == key)
            .map(|l| percentile(&l.latency));
        let failed = run
            .failed_latency
            .iter()
            .filter(|f| f.case.key() == key)
            .map(|_| f64::INFINITY);
        measured.chain(failed).collect()
    })
}

fn resources_rows(results: &Results) -> [(String, Row, usize); 3] {
    let topology = &results.plan.topology;
    let (rss, cpu, start) = if topology.is_cluster() {
        let n = topology.brokers;
        (
            format!("peak RSS, sum over the {n} brokers (MiB)"),
            format!("CPU seconds per GB moved, all {n} brokers"),
            format!("start of {n} brokers to first produce (s)"),
        )
    } else {
        (
            "peak RSS (MiB)".to_string(),
            "CPU seconds per GB moved".to_string(),
            "start to first produce (s)".to_string(),
        )
    };
    [
        (
            rss,
            Row::collect(results, |run| {
                run.resources
                    .map(|r| r.peak_rss_bytes as f64 / (1u64 << 20) as f64)
            }),
            0,
        ),
        (
            cpu,
            Row::collect(results, |run| run.resources.map(|r| r.cpu_seconds_per_gb())),
            2,
        ),
        (
            start,
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
        let row = produce_row(results, Client::Librdkafka, &case.key(), true);
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

fn produce_table(out: &mut String, results: &Results, client: Client) {
    let cases = match client {
        Client::Librdkafka => {
            let _ = writeln!(out, "### Producer throughput\n");
            &results.plan.produce
        }
        Client::Wire => {
            let _ = writeln!(
                out,
                "### Producer throughput, broker-bound (the bench's wire client)\n\n\
                 The same rows, sent by weir-bench's own client (`bench/src/wire_client.rs`): \
                 every Produce request (one fresh batch of up to 1,000,000 bytes, lz4 at \
                 librdkafka's fast level) is built before the clock starts, so the clock \
                 measures the broker's side alone; up to 5 requests in flight per connection, \
                 every acknowledgement checked for its offset.\n"
            );
            &results.plan.wire_produce
        }
    };
    let _ = writeln!(
        out,
        "| record | acks | compression | partitions | records | Weir records/s | Kafka records/s | Weir MB/s | Kafka MB/s | Weir/Kafka | spread Weir / Kafka |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for case in cases {
        let records = produce_row(results, client, &case.key(), false);
        let mb = produce_row(results, client, &case.key(), true);
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

fn consume_table(out: &mut String, results: &Results, client: Client) {
    let cases = match client {
        Client::Librdkafka => {
            let _ = writeln!(
                out,
                "### Consumer catch-up (one consumer, `assign()`, from the beginning)\n"
            );
            &results.plan.consume
        }
        Client::Wire => {
            let _ = writeln!(
                out,
                "### Consumer catch-up, broker-bound (the bench's wire client)\n\n\
                 The same topics filled the same way, read by weir-bench's own client: one \
                 Fetch at a time per broker with librdkafka's default sizes, offsets checked as \
                 each response arrives and every batch's CRC while the next Fetch is under way, \
                 records counted from the batch headers.\n"
            );
            &results.plan.wire_consume
        }
    };
    let _ = writeln!(
        out,
        "| record | partitions | records | Weir records/s | Kafka records/s | Weir MB/s | Kafka MB/s | Weir/Kafka | spread Weir / Kafka |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for case in cases {
        let metric = |mb: bool| {
            Row::collect(results, |run| {
                let measured = match client {
                    Client::Librdkafka => &run.consume,
                    Client::Wire => &run.wire_consume,
                };
                measured.iter().find(|c| c.case == *case).map(|c| {
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
        // Of the runs that delivered everything.
        let key = case.key();
        let achieved = Row::collect_many(results, |run| {
            run.latency
                .iter()
                .filter(|l| l.case.key() == key)
                .map(|l| l.latency.achieved_rate)
                .collect()
        });
        let _ = writeln!(
            out,
            "| (rate achieved, records/s) | | | | {} | {} | | |",
            number(achieved.weir(), 0),
            number(achieved.kafka(), 0)
        );
    }
    let _ = writeln!(out);
    let failures: Vec<_> = results
        .runs
        .iter()
        .flat_map(|run| run.failed_latency.iter().map(move |f| (run, f)))
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(
            out,
            "Failed runs (counted as infinitely slow in the medians above):\n"
        );
        for (run, failure) in failures {
            let _ = writeln!(
                out,
                "- {} run {}, {}: {}",
                run.broker.name(),
                run.round,
                failure.case.key(),
                failure.error
            );
        }
        let _ = writeln!(out);
    }
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

/// `doc` with the text between the markers of `topology` replaced by `section`.
/// `doc` with what lies between `begin` and `end` replaced by `section`; the marked block is
/// appended when `doc` has no such markers yet.
pub fn splice_or_append(doc: &str, begin: &str, end: &str, section: &str) -> String {
    let block = format!("{begin}\n{section}{end}");
    match (doc.find(begin), doc.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &doc[..b], &doc[e + end.len()..]),
        _ => format!("{doc}\n{block}\n"),
    }
}

pub fn splice(doc: &str, topology: &Topology, section: &str) -> Result<String, ReportError> {
    let (begin_marker, end_marker) = markers(topology);
    let missing = || ReportError::NoMarkers {
        begin: begin_marker.clone(),
        end: end_marker.clone(),
    };
    let begin = doc.find(&begin_marker).ok_or_else(missing)?;
    let after_begin = begin + begin_marker.len();
    let end = doc[after_begin..].find(&end_marker).ok_or_else(missing)? + after_begin;
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
        let out = splice(&doc, &Topology::SINGLE_NODE, "new table\n").unwrap();
        assert_eq!(
            out,
            format!("# Title\nintro\n{BEGIN_MARKER}\n\nnew table\n{END_MARKER}\nanalysis\n")
        );
        // Splicing again gives the same document.
        assert_eq!(
            splice(&out, &Topology::SINGLE_NODE, "new table\n").unwrap(),
            out
        );
    }

    #[test]
    fn cluster_results_have_their_own_section() {
        let cluster = Topology::cluster(3);
        let (begin, end) = markers(&cluster);
        let doc =
            format!("{BEGIN_MARKER}\nsingle\n{END_MARKER}\ntext\n{begin}\nold cluster\n{end}\n");
        let out = splice(&doc, &cluster, "new cluster\n").unwrap();
        assert_eq!(
            out,
            format!("{BEGIN_MARKER}\nsingle\n{END_MARKER}\ntext\n{begin}\n\nnew cluster\n{end}\n")
        );
        let err = splice("only\n{BEGIN_MARKER}\n{END_MARKER}", &cluster, "x").unwrap_err();
        assert!(err.to_string().contains("results-cluster-3"), "{err}");
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
            // The wire client twice as fast as librdkafka, in every run.
            wire_produce: vec![ProduceMeasurement {
                case,
                throughput: Throughput {
                    records: case.records,
                    bytes: case.bytes(),
                    seconds: seconds / 2.0,
                },
            }],
            wire_consume: Vec::new(),
            resources: Some(Resources {
                peak_rss_bytes: rss_mib << 20,
                workload_cpu_seconds: 1.0,
                bytes_moved: case.bytes(),
            }),
            failed_latency: Vec::new(),
            transactions: Vec::new(),
            transaction_latency: Vec::new(),
            failed_transactions: Vec::new(),
            load_average: Some(2.0 + round as f64),
        }
    }

    /// Weir: 1, 2 and 4 seconds for `case` (median 2 s = 500000 records/s), peak RSS 10, 12,
    /// 14 MiB; Kafka: 4 s twice, 400 MiB.
    fn three_and_two_runs(plan: Plan, case: ProduceCase) -> Results {
        Results {
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
            topology: Topology::SINGLE_NODE,
            warmup_fraction: 0.0,
            produce: vec![case],
            consume: Vec::new(),
            wire_produce: vec![case],
            wire_consume: Vec::new(),
            latency: Vec::new(),
            transactions: Vec::new(),
            transaction_latency: Vec::new(),
        };
        let results = three_and_two_runs(plan, case);
        let out = render(&results);
        assert!(
            out.contains("| 1 KiB | 1 | none | 1 | 1000000 | 500000 | 250000 | 512.0 | 256.0 | 2.00x | 150% / 0% |"),
            "{out}"
        );
        let wire = out
            .split("broker-bound (the bench's wire client)")
            .nth(1)
            .expect("a wire client table");
        assert!(
            wire.contains("| 1 KiB | 1 | none | 1 | 1000000 | 1000000 | 500000 | 1024.0 | 512.0 | 2.00x | 150% / 0% |"),
            "{wire}"
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
    fn cluster_render_names_the_topology_sums_brokers_and_has_no_targets() {
        let case = ProduceCase {
            record_size: 1024,
            acks: Acks::All,
            compression: Compression::None,
            partitions: 16,
            records: 1_000_000,
        };
        let plan = Plan {
            topology: Topology::cluster(3),
            warmup_fraction: 0.0,
            produce: vec![case],
            consume: Vec::new(),
            wire_produce: Vec::new(),
            wire_consume: Vec::new(),
            latency: Vec::new(),
            transactions: Vec::new(),
            transaction_latency: Vec::new(),
        };
        let out = render(&three_and_two_runs(plan, case));
        assert!(!out.contains("Targets"), "{out}");
        assert!(
            out.contains("Weir runs 2.0–4.0, Kafka runs 2.0–3.0."),
            "{out}"
        );
        assert!(!out.contains("catch-up"), "{out}");
        assert!(
            out.contains("3 Weir and 2 Kafka cluster starts of 3 brokers each (topics with replication factor 3, `min.insync.replicas=2`)"),
            "{out}"
        );
        assert!(
            out.contains("| 1 KiB | all | none | 16 | 1000000 | 500000 | 250000 | 512.0 | 256.0 | 2.00x | 150% / 0% |"),
            "{out}"
        );
        assert!(
            out.contains("| peak RSS, sum over the 3 brokers (MiB) | 12 | 400 | 0.03x |"),
            "{out}"
        );
    }

    #[test]
    fn failed_latency_runs_count_as_infinitely_slow() {
        use crate::cases::LatencyCase;
        use crate::results::{LatencyFailure, LatencyMeasurement, LatencySummary};
        let case = LatencyCase {
            record_size: 1024,
            acks: Acks::All,
            compression: Compression::None,
            partitions: 1,
            rate_fraction: 0.5,
            seconds: 20.0,
            warmup_seconds: 4.0,
        };
        let produce = ProduceCase {
            record_size: 1024,
            acks: Acks::All,
            compression: Compression::None,
            partitions: 1,
            records: 10,
        };
        let plan = Plan {
            topology: Topology::cluster(3),
            warmup_fraction: 0.0,
            produce: vec![produce],
            consume: Vec::new(),
            wire_produce: Vec::new(),
            wire_consume: Vec::new(),
            latency: vec![case],
            transactions: Vec::new(),
            transaction_latency: Vec::new(),
        };
        let mut results = three_and_two_runs(plan, produce);
        let summary = |p50_ms| LatencySummary {
            target_rate: 1000.0,
            achieved_rate: 1000.0,
            measured: 100,
            p50_ms,
            p99_ms: p50_ms * 2.0,
            p999_ms: p50_ms * 3.0,
            max_ms: p50_ms * 4.0,
        };
        for (i, run) in results.runs.iter_mut().enumerate() {
            match (run.broker, i) {
                // Weir: one measured run (2 ms), two failed: the median is a failure.
                (BrokerKind::Weir, 0) => run.latency.push(LatencyMeasurement {
                    case,
                    latency: summary(2.0),
                }),
                (BrokerKind::Weir, _) => run.failed_latency.push(LatencyFailure {
                    case,
                    error: "3 records failed delivery".into(),
                }),
                (BrokerKind::Kafka, _) => run.latency.push(LatencyMeasurement {
                    case,
                    latency: summary(4.0),
                }),
            }
        }
        results.latency_reference_rate = Some(2000.0);
        let out = render(&results);
        assert!(
            out.contains("| p50 | failed | 4.00 | n/a | 2 of 3 failed / 0% |"),
            "{out}"
        );
        assert!(
            out.contains("| (rate achieved, records/s) | | | | 1000 | 1000 | | |"),
            "{out}"
        );
        assert!(
            out.contains(
                "- Weir run 1, latency-1024b-acksall-none-1p-at50pct: 3 records failed delivery"
            ),
            "{out}"
        );
    }

    #[test]
    fn splice_without_markers_is_an_error() {
        assert!(splice("no markers here", &Topology::SINGLE_NODE, "x").is_err());
    }
}
