//! The Transactions section of docs/BENCHMARKS.md: transactional producer throughput and
//! `read_committed` end-to-end latency, Weir against Apache Kafka, medians of the runs.
//!
//! It lives between its own markers ([`BEGIN_MARKER`], [`END_MARKER`]), so a transactions run
//! leaves the other sections alone. A failed case is listed with the client's error under the
//! tables and counted in the "failed" column; the medians are of the runs that completed.

use std::fmt::Write as _;

use crate::report::{number, ratio, size, Row};
use crate::results::{BrokerKind, Results};

pub const BEGIN_MARKER: &str = "<!-- weir-bench:transactions:begin -->";
pub const END_MARKER: &str = "<!-- weir-bench:transactions:end -->";

/// Renders the section for `results` (a run of [`crate::cases::Plan::transactions`]).
pub fn render(results: &Results) -> String {
    let mut out = String::new();
    header(&mut out, results);
    throughput_table(&mut out, results);
    latency_table(&mut out, results);
    failures(&mut out, results);
    out
}

fn header(out: &mut String, results: &Results) {
    let m = &results.machine;
    let t = &results.plan.topology;
    let runs_of = |kind| results.runs.iter().filter(|r| r.broker == kind).count();
    let _ = writeln!(
        out,
        "Weir {} against Apache Kafka {} (heap of each node `{}`), {} Weir and {} Kafka starts \
         of {} brokers each, alternating, fresh data directories; medians of the runs. Topics \
         with replication factor {}, `min.insync.replicas={}`. Machine: {}, {} cores, {:.1} GiB \
         memory, Linux {}, {}.\n",
        results.weir_version,
        results.kafka_version,
        results.kafka_heap,
        runs_of(BrokerKind::Weir),
        runs_of(BrokerKind::Kafka),
        t.brokers,
        t.replication_factor,
        t.min_insync_replicas,
        m.cpu_model,
        m.cores,
        m.memory_gib,
        m.kernel,
        m.java
    );
    let _ = writeln!(
        out,
        "Client: librdkafka (rdkafka crate) for both systems. Producer: `transactional.id` \
         (so idempotent, `acks=all`), `linger.ms=5`, `batch.size=1000000`, no compression, \
         no key (sticky partitions); each transaction is `begin_transaction`, N sends, a \
         flush in 1 ms steps, `commit_transaction`, and the next begins when the commit \
         returns. Latency: the same producer with `linger.ms=1` at a fixed rate, a \
         `read_committed` consumer (`assign()`) in the same process, from the time a record falls due on the schedule to its receipt; a \
         record waits for the rest of its transaction to be sent before the commit, on average \
         half a transaction's worth of the rate, so the wait beyond that is what the systems \
         add. Every run starts with an unmeasured warm-up ({:.0}% of each throughput case).\n",
        results.plan.warmup_fraction * 100.0
    );
    for case in &results.plan.transaction_latency {
        let _ = writeln!(
            out,
            "At {:.0} records/s and {} records per transaction, the wait for the transaction to \
             fill is {:.0} ms on average and {:.0} ms at most.\n",
            case.rate,
            case.records_per_transaction,
            fill_ms(case.rate, case.records_per_transaction) / 2.0,
            fill_ms(case.rate, case.records_per_transaction)
        );
    }
    let loads: Vec<f64> = results.runs.iter().filter_map(|r| r.load_average).collect();
    if let (Some(min), Some(max)) = (
        loads.iter().copied().reduce(f64::min),
        loads.iter().copied().reduce(f64::max),
    ) {
        let _ = writeln!(
            out,
            "Load average (1 min) at the end of the runs: {min:.1}–{max:.1}.\n"
        );
    }
    let _ = writeln!(out, "Command: `{}`\n", results.command);
}

/// How long a transaction of `records` records takes to be sent at `rate` records/s.
fn fill_ms(rate: f64, records: u64) -> f64 {
    records as f64 / rate * 1_000.0
}

fn failed_count(results: &Results, key: &str) -> String {
    let of = |kind| {
        results
            .runs
            .iter()
            .filter(|r| r.broker == kind)
            .flat_map(|r| &r.failed_transactions)
            .filter(|f| f.case == key)
            .count()
    };
    format!("{} / {}", of(BrokerKind::Weir), of(BrokerKind::Kafka))
}

fn throughput_table(out: &mut String, results: &Results) {
    if results.plan.transactions.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Transactional producer throughput\n");
    let _ = writeln!(
        out,
        "| record | records per transaction | partitions | records | Weir records/s | Kafka records/s | Weir MiB/s | Kafka MiB/s | Weir/Kafka | commit p50 ms Weir / Kafka | of which flush p50 ms Weir / Kafka | commit p99 ms Weir / Kafka | spread Weir / Kafka | failed runs Weir / Kafka |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for case in &results.plan.transactions {
        let key = case.key();
        let metric = |f: fn(&crate::results::TransactionMeasurement) -> f64| {
            Row::collect(results, |run| {
                run.transactions.iter().find(|t| t.case.key() == key).map(f)
            })
        };
        let records = metric(|t| t.throughput.records_per_second());
        let mib =
            metric(|t| t.throughput.bytes as f64 / (1u64 << 20) as f64 / t.throughput.seconds);
        let commit_p50 = metric(|t| t.commit_p50_ms);
        let commit_p99 = metric(|t| t.commit_p99_ms);
        let flush_p50 = Row::collect(results, |run| {
            run.transactions
                .iter()
                .find(|t| t.case.key() == key)
                .and_then(|t| t.flush_p50_ms)
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} | {} |",
            size(case.record_size),
            case.records_per_transaction,
            case.partitions,
            case.records,
            number(records.weir(), 0),
            number(records.kafka(), 0),
            number(mib.weir(), 1),
            number(mib.kafka(), 1),
            ratio(records.ratio()),
            number(commit_p50.weir(), 1),
            number(commit_p50.kafka(), 1),
            number(flush_p50.weir(), 1),
            number(flush_p50.kafka(), 1),
            number(commit_p99.weir(), 1),
            number(commit_p99.kafka(), 1),
            records.spread(),
            failed_count(results, &key),
        );
    }
    let _ = writeln!(out);
}

fn latency_table(out: &mut String, results: &Results) {
    if results.plan.transaction_latency.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "### End-to-end latency seen by a `read_committed` consumer\n"
    );
    let _ = writeln!(
        out,
        "| case | rate, records/s | seconds (warm-up) | percentile | Weir ms | Kafka ms | Weir/Kafka | spread Weir / Kafka | failed runs Weir / Kafka |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"
    );
    type Percentile = fn(&crate::results::LatencySummary) -> f64;
    let percentiles: [(&str, Percentile); 4] = [
        ("p50", |l| l.p50_ms),
        ("p99", |l| l.p99_ms),
        ("p99.9", |l| l.p999_ms),
        ("max", |l| l.max_ms),
    ];
    for case in &results.plan.transaction_latency {
        let key = case.key();
        for (name, percentile) in percentiles {
            let row = Row::collect(results, |run| {
                run.transaction_latency
                    .iter()
                    .find(|l| l.case.key() == key)
                    .map(|l| percentile(&l.latency))
            });
            let _ = writeln!(
                out,
                "| {}, {} records per transaction, {} partition(s) | {:.0} | {} ({}) | {name} | {} | {} | {} | {} | {} |",
                size(case.record_size),
                case.records_per_transaction,
                case.partitions,
                case.rate,
                case.seconds,
                case.warmup_seconds,
                number(row.weir(), 2),
                number(row.kafka(), 2),
                ratio(row.ratio()),
                row.spread(),
                failed_count(results, &key),
            );
        }
        let achieved = Row::collect(results, |run| {
            run.transaction_latency
                .iter()
                .find(|l| l.case.key() == key)
                .map(|l| l.latency.achieved_rate)
        });
        let _ = writeln!(
            out,
            "| (rate achieved, records/s) | | | | {} | {} | | | |",
            number(achieved.weir(), 0),
            number(achieved.kafka(), 0)
        );
    }
    let _ = writeln!(out);
}

fn failures(out: &mut String, results: &Results) {
    let failed: Vec<_> = results
        .runs
        .iter()
        .flat_map(|run| run.failed_transactions.iter().map(move |f| (run, f)))
        .collect();
    if failed.is_empty() {
        return;
    }
    let _ = writeln!(out, "Failed runs (not in the medians above):\n");
    for (run, failure) in failed {
        let _ = writeln!(
            out,
            "- {} run {}, {}: {}",
            run.broker.name(),
            run.round,
            failure.case,
            failure.error
        );
    }
    let _ = writeln!(out);
}

/// `doc` with the text between the transactions markers replaced by `section`.
pub fn splice(doc: &str, section: &str) -> Result<String, crate::report::ReportError> {
    let missing = || crate::report::ReportError::NoMarkers {
        begin: BEGIN_MARKER.to_string(),
        end: END_MARKER.to_string(),
    };
    let begin = doc.find(BEGIN_MARKER).ok_or_else(missing)?;
    let after_begin = begin + BEGIN_MARKER.len();
    let end = doc[after_begin..].find(END_MARKER).ok_or_else(missing)? + after_begin;
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
    use crate::cases::{Plan, Topology, TransactionSizes};
    use crate::results::{
        BrokerRun, LatencySummary, Machine, Throughput, TransactionFailure,
        TransactionLatencyMeasurement, TransactionMeasurement,
    };

    fn run(broker: BrokerKind, round: usize, plan: &Plan, seconds: f64) -> BrokerRun {
        let case = plan.transactions[0];
        let latency = plan.transaction_latency[0];
        BrokerRun {
            broker,
            round,
            start_to_first_produce_seconds: 1.0,
            produce: Vec::new(),
            consume: Vec::new(),
            latency: Vec::new(),
            wire_produce: Vec::new(),
            wire_consume: Vec::new(),
            failed_latency: Vec::new(),
            transactions: vec![TransactionMeasurement {
                case,
                throughput: Throughput {
                    records: case.records,
                    bytes: case.bytes(),
                    seconds,
                },
                transactions: case.transactions(),
                commit_p50_ms: seconds,
                commit_p99_ms: seconds * 2.0,
                flush_p50_ms: Some(seconds / 2.0),
            }],
            transaction_latency: vec![TransactionLatencyMeasurement {
                case: latency,
                latency: LatencySummary {
                    target_rate: latency.rate,
                    achieved_rate: latency.rate,
                    measured: 100,
                    p50_ms: 10.0 * seconds,
                    p99_ms: 20.0 * seconds,
                    p999_ms: 30.0 * seconds,
                    max_ms: 40.0 * seconds,
                },
            }],
            failed_transactions: Vec::new(),
            resources: None,
            load_average: Some(1.5),
        }
    }

    #[test]
    fn renders_medians_ratio_and_failures() {
        let mut plan = Plan::transactions(
            &TransactionSizes {
                transactions: 1024,
                latency_rate: 5_000.0,
                latency_seconds: 20.0,
            },
            Topology::cluster(3),
        );
        plan.transactions[0].records = 1024;
        let mut weir_failed = run(BrokerKind::Weir, 1, &plan, 1.0);
        weir_failed.transactions.clear();
        weir_failed.failed_transactions.push(TransactionFailure {
            case: plan.transactions[0].key(),
            error: "commit_transaction of transaction 3: timed out".into(),
        });
        let results = Results {
            machine: Machine {
                cpu_model: "test CPU".into(),
                cores: 2,
                memory_gib: 4.0,
                kernel: "6".into(),
                java: "java".into(),
            },
            plan: plan.clone(),
            weir_version: "w".into(),
            kafka_version: "k".into(),
            kafka_heap: "-Xmx1g".into(),
            command: "weir-bench compare --transactions".into(),
            latency_reference_rate: None,
            runs: vec![
                run(BrokerKind::Weir, 0, &plan, 1.0),
                run(BrokerKind::Kafka, 0, &plan, 2.0),
                weir_failed,
                run(BrokerKind::Kafka, 1, &plan, 2.0),
            ],
        };
        let out = render(&results);
        // 1024 records of 1 KiB in 1 s: 1 MiB/s; Kafka in 2 s.
        assert!(
            out.contains("| 1 KiB | 100 | 16 | 1024 | 1024 | 512 | 1.0 | 0.5 | 2.00x | 1.0 / 2.0 | 0.5 / 1.0 | 2.0 / 4.0 | 0% / 0% | 1 / 0 |"),
            "{out}"
        );
        assert!(
            out.contains("| 1 KiB, 100 records per transaction, 1 partition(s) | 5000 | 20 (4) | p99 | 20.00 | 40.00 | 0.50x |"),
            "{out}"
        );
        assert!(
            out.contains("- Weir run 1, txn-1024b-16p-100pertxn: commit_transaction of transaction 3: timed out"),
            "{out}"
        );
        assert!(
            out.contains("2 Weir and 2 Kafka starts of 3 brokers each"),
            "{out}"
        );
    }

    #[test]
    fn splice_replaces_only_the_transactions_section() {
        let doc = format!("a\n{BEGIN_MARKER}\nold\n{END_MARKER}\nb\n");
        let out = splice(&doc, "new\n").unwrap();
        assert_eq!(out, format!("a\n{BEGIN_MARKER}\n\nnew\n{END_MARKER}\nb\n"));
        assert!(splice("nothing", "x").is_err());
    }
}
