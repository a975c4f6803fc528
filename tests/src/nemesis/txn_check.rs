//! The checks of the transactional loop ([`super::txn`]), once the cluster is healed and the
//! processors stopped. The output topic is read from its start with a `read_committed`
//! consumer and compared with the input topic, the group's final committed offsets and the
//! transactions as the processors were told they ended:
//!
//! - no input record (partition and offset, the output record's key) twice in the output (no
//!   duplicate; an input value the idempotent producer wrote twice is two input records);
//! - every input record below the group's committed offset of its partition in the output,
//!   and nothing at or above it (output and offsets commit together);
//! - every record of an acknowledged commit in the output;
//! - nothing visible whose every transaction was aborted (values retried in a later
//!   committed transaction appear once);
//! - the group's final committed offsets at or above those of the last acknowledged commit;
//! - the last stable offset back at the high watermark on every output partition.
//!
//! The same topic read with `read_uncommitted` gives the number of aborted records in the
//! log (informational).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::txn::{Outcome, TxnRecord};
use crate::cluster::Cluster;

/// Where an input record is: partition and offset (the output record's key, `p@o`).
pub type InputPosition = (i32, i64);

/// One output record: its partition and offset, the input record it came from and that
/// record's sequence number (for the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputRecord {
    pub partition: i32,
    pub offset: i64,
    pub input: InputPosition,
    pub seq: u64,
}

/// The input position in an output record's key, `(-1, -1)` if it is not one.
fn input_position(key: Option<&[u8]>) -> InputPosition {
    key.and_then(|k| std::str::from_utf8(k).ok())
        .and_then(|k| k.split_once('@'))
        .and_then(|(p, o)| Some((p.parse().ok()?, o.parse().ok()?)))
        .unwrap_or((-1, -1))
}

/// How long reading the output may take.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

fn output_reader(cluster: &Cluster, isolation: &str) -> BaseConsumer {
    let mut config: ClientConfig = cluster.client_config();
    config
        .set("group.id", crate::unique_topic("nemesis-txn-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .set("check.crcs", "true")
        .set("fetch.wait.max.ms", "100");
    config.create().expect("a reading consumer")
}

/// Waits until every partition's last stable offset (ListOffsets under `read_committed`)
/// equals its high watermark, i.e. no transaction is open; `false` after `timeout`.
pub fn wait_stable(cluster: &Cluster, topic: &str, partitions: i32, timeout: Duration) -> bool {
    let committed = output_reader(cluster, "read_committed");
    let uncommitted = output_reader(cluster, "read_uncommitted");
    let deadline = Instant::now() + timeout;
    loop {
        let stable = (0..partitions).all(|p| {
            let t = Duration::from_secs(5);
            match (
                committed.fetch_watermarks(topic, p, t),
                uncommitted.fetch_watermarks(topic, p, t),
            ) {
                (Ok((_, lso)), Ok((_, high))) => lso == high,
                _ => false,
            }
        });
        if stable || Instant::now() >= deadline {
            return stable;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every record of `topic` from its start to its end under `isolation`.
pub fn read_output(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> Vec<OutputRecord> {
    let consumer = output_reader(cluster, isolation);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("a partition");
    }
    consumer.assign(&tpl).expect("assigning the output topic");
    let mut records = Vec::new();
    let mut at_end = HashSet::new();
    let deadline = Instant::now() + READ_TIMEOUT;
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "reading {topic} ({isolation}): only partitions {at_end:?} reached their end within {READ_TIMEOUT:?}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let seq = super::workload::value_seq(m.payload()).unwrap_or(u64::MAX);
                records.push(OutputRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    input: input_position(m.key()),
                    seq,
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    records
}

/// Everything the transactional checks need.
#[derive(Debug)]
pub struct TxnInputs<'a> {
    pub record: &'a TxnRecord,
    /// The input topic: partition → (offset, sequence number), read from its start.
    pub input: &'a BTreeMap<i32, Vec<(i64, u64)>>,
    /// The group's committed offsets at the end (OffsetFetch).
    pub final_offsets: &'a BTreeMap<i32, i64>,
    pub committed: &'a [OutputRecord],
    pub uncommitted: &'a [OutputRecord],
    /// No open transaction on the output at the end.
    pub stable: bool,
    /// The processors committed up to the input's high watermarks before they stopped.
    pub caught_up: bool,
}

/// The report section of the transactional loop and its violations.
pub fn check(inputs: TxnInputs<'_>) -> (String, Vec<String>) {
    let TxnInputs {
        record,
        input,
        final_offsets,
        committed,
        uncommitted,
        stable,
        caught_up,
    } = inputs;
    let mut failures = Vec::new();

    // How every input record's transactions ended.
    let mut committed_in: HashSet<InputPosition> = HashSet::new();
    let mut unknown_in: HashSet<InputPosition> = HashSet::new();
    let mut aborted_in: HashSet<InputPosition> = HashSet::new();
    let (mut n_committed, mut n_aborted, mut n_unknown) = (0usize, 0usize, 0usize);
    for t in &record.txns {
        let set = match t.outcome {
            Outcome::Committed => {
                n_committed += 1;
                &mut committed_in
            }
            Outcome::Aborted(_) => {
                n_aborted += 1;
                &mut aborted_in
            }
            Outcome::Unknown(_) => {
                n_unknown += 1;
                &mut unknown_in
            }
        };
        set.extend(t.inputs.iter().map(|i| (i.partition, i.offset)));
    }

    // The output under read_committed.
    let mut seen: HashMap<InputPosition, (i32, i64)> = HashMap::new();
    let mut duplicates = Vec::new();
    for r in committed {
        if let Some((q, first)) = seen.insert(r.input, (r.partition, r.offset)) {
            duplicates.push(format!(
                "input {}@{} (n{}) at output {q}@{first} and {}@{}",
                r.input.0, r.input.1, r.seq, r.partition, r.offset
            ));
        }
    }
    let aborted_visible: Vec<String> = committed
        .iter()
        .filter(|r| !committed_in.contains(&r.input) && !unknown_in.contains(&r.input))
        .map(|r| {
            let why = if aborted_in.contains(&r.input) {
                "only in aborted transactions"
            } else {
                "in no transaction"
            };
            format!(
                "input {}@{} (n{}) at output {}@{}: {why}",
                r.input.0, r.input.1, r.seq, r.partition, r.offset
            )
        })
        .collect();
    let mut missing = Vec::new();
    let mut first_missing: Option<InputPosition> = None;
    let mut ahead = Vec::new();
    for (p, log) in input {
        let committed_offset = final_offsets.get(p).copied().unwrap_or(-1).max(0);
        for (offset, seq) in log {
            let present = seen.get(&(*p, *offset));
            if *offset < committed_offset && present.is_none() {
                first_missing.get_or_insert((*p, *offset));
                missing.push(format!(
                    "input {p}@{offset} (n{seq}) below the group's committed offset {committed_offset}, not in the output"
                ));
            }
            if *offset >= committed_offset {
                if let Some((q, o)) = present {
                    ahead.push(format!(
                        "input {p}@{offset} (n{seq}) at output {q}@{o}, at or above the group's committed offset {committed_offset}"
                    ));
                }
            }
        }
    }
    let committed_lost: Vec<String> = record
        .txns
        .iter()
        .filter(|t| t.outcome == Outcome::Committed)
        .flat_map(|t| t.inputs.iter().map(move |i| (t.processor, i)))
        .filter(|(_, i)| !seen.contains_key(&(i.partition, i.offset)))
        .map(|(processor, i)| {
            format!(
                "n{} (input {}@{}) committed by processor {processor}, not in the output",
                i.seq, i.partition, i.offset
            )
        })
        .collect();
    let offsets_lost: Vec<String> = record
        .committed_offsets()
        .iter()
        .filter(|(p, o)| final_offsets.get(p).is_none_or(|f| f < o))
        .map(|(p, o)| {
            format!(
                "partition {p}: offset {o} committed in a transaction, the final OffsetFetch reads {:?}",
                final_offsets.get(p)
            )
        })
        .collect();

    super::checker::fail(&mut failures, "duplicated output records", &duplicates);
    super::checker::fail(
        &mut failures,
        "input records below the committed offset missing from the output",
        &missing,
    );
    let missing_detail = first_missing.map(|first| {
        // Where the first missing record went: the transactions that took it, and the
        // committed ones that moved its partition's offset past it.
        let took: Vec<String> = record
            .txns
            .iter()
            .filter(|t| t.inputs.iter().any(|i| (i.partition, i.offset) == first))
            .map(|t| {
                format!(
                    "processor {} {:?} offsets {:?}",
                    t.processor, t.outcome, t.offsets
                )
            })
            .collect();
        let past: Vec<String> = record
            .txns
            .iter()
            .filter(|t| t.outcome == Outcome::Committed)
            .filter(|t| t.offsets.get(&first.0).is_some_and(|o| *o > first.1))
            .take(1)
            .map(|t| {
                let from = t.inputs.iter().find(|i| i.partition == first.0);
                format!(
                    "first committed past it: processor {} from {:?} offsets {:?}",
                    t.processor,
                    from.map(|i| i.offset),
                    t.offsets
                )
            })
            .collect();
        format!(
            "input {}@{} was taken by {} transaction(s): {}; {}",
            first.0,
            first.1,
            took.len(),
            took.join("; "),
            past.join("")
        )
    });
    super::checker::fail(
        &mut failures,
        "output records of input not covered by the committed offsets",
        &ahead,
    );
    super::checker::fail(
        &mut failures,
        "records of acknowledged transactions missing from the output",
        &committed_lost,
    );
    super::checker::fail(
        &mut failures,
        "aborted records visible to read_committed",
        &aborted_visible,
    );
    super::checker::fail(
        &mut failures,
        "transactional offset commits lost",
        &offsets_lost,
    );
    if !stable {
        failures.push(
            "the output's last stable offset did not reach its high watermark at the end".into(),
        );
    }
    if !caught_up {
        failures.push(
            "the transactional processors did not commit up to the input's end within 120 s".into(),
        );
    }
    // A processor whose librdkafka call has not returned when the run ends is treated as one
    // stuck during the run (replaced there, reported, not a failure): the work itself is
    // judged above (every input committed within the bound, the output exactly once). It is
    // reported below with its call and how long it has been in it.
    let not_closed: Vec<String> = record
        .not_closed
        .iter()
        .map(|(i, call, d)| format!("{i} (in {call} for {:.1}s)", d.as_secs_f64()))
        .collect();

    let mut text = String::new();
    let row = |text: &mut String, k: &str, v: String| {
        let _ = writeln!(text, "{k:<40} {v}");
    };
    let _ = writeln!(text, "---- transactional consume-process-produce ----");
    row(
        &mut text,
        "transactions committed / aborted / unknown",
        format!("{n_committed} / {n_aborted} / {n_unknown}"),
    );
    row(&mut text, "fenced producers", record.fenced.to_string());
    row(
        &mut text,
        "processors stuck in a call (replaced)",
        record.stuck.len().to_string(),
    );
    row(
        &mut text,
        "processors in a call at the end",
        if not_closed.is_empty() {
            "0".to_string()
        } else {
            not_closed.join(", ")
        },
    );
    row(
        &mut text,
        "input records committed (final offsets)",
        final_offsets
            .values()
            .map(|o| (*o).max(0))
            .sum::<i64>()
            .to_string(),
    );
    row(
        &mut text,
        "output records (read_committed)",
        committed.len().to_string(),
    );
    row(
        &mut text,
        "aborted records in the log",
        format!(
            "{} (read_uncommitted reads {})",
            uncommitted.len().saturating_sub(committed.len()),
            uncommitted.len()
        ),
    );
    row(&mut text, "duplicates", duplicates.len().to_string());
    row(&mut text, "missing", missing.len().to_string());
    if let Some(detail) = &missing_detail {
        row(&mut text, "  first missing", detail.clone());
    }
    row(
        &mut text,
        "ahead of the committed offsets",
        ahead.len().to_string(),
    );
    row(
        &mut text,
        "committed but missing",
        committed_lost.len().to_string(),
    );
    row(
        &mut text,
        "aborted visible",
        aborted_visible.len().to_string(),
    );
    row(
        &mut text,
        "lost offset commits",
        offsets_lost.len().to_string(),
    );
    row(
        &mut text,
        "went below an acknowledged commit",
        record.went_back.len().to_string(),
    );
    for what in record.went_back.iter().take(6) {
        row(&mut text, "  ", what.clone());
    }
    if !record.went_back.is_empty() {
        for (at, processor, partitions) in &record.assignments {
            row(
                &mut text,
                "  assignment",
                format!("processor {processor} at {at:.1}s: {partitions:?}"),
            );
        }
    }
    for s in &record.stuck {
        let _ = writeln!(
            text,
            "stuck: processor {} in {} for {:.0} s, replaced",
            s.processor,
            s.call,
            (s.replaced_at - s.since).as_secs_f64()
        );
    }
    let mut errors: Vec<(&String, &u64)> = record.errors.iter().collect();
    errors.sort_by(|a, b| b.1.cmp(a.1));
    for (error, n) in errors.iter().take(12) {
        row(&mut text, "  error", format!("{n}: {error}"));
    }
    (text, failures)
}
