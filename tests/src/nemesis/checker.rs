//! The checks at the end of a run and the report. Everything here compares what clients were
//! told (acknowledged records and commits, from [`super::workload`]) with what the healed
//! cluster holds:
//!
//! - every acknowledged record at its acknowledged offset, once, and each partition's
//!   sequence numbers rising with its offsets (read from the start with a plain consumer);
//! - every replica of a partition holding the same log bytes (once the ISR is full and
//!   nothing is produced);
//! - no committed offset seen going backwards by the OffsetFetch watcher, and the final
//!   OffsetFetch at or above the last acknowledged commit of every partition;
//! - every member holding partitions again within the bound after every fault;
//! - every broker's peak resident memory under the limit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::faults::FaultKind;
use super::workload::{Record, Target};
use super::{probe, Settings};
use crate::cluster::Cluster;
use crate::segments::log_bytes;

/// When each sign of a healed cluster was first seen after a fault was healed; `None` for
/// one not seen within the harness's bound.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settled {
    /// A write acknowledged.
    pub acked: Option<Instant>,
    /// Every member holding partitions, and every partition held.
    pub grouped: Option<Instant>,
    /// Every partition with a leader and its full ISR.
    pub full_isr: Option<Instant>,
}

impl Settled {
    pub fn all(&self) -> bool {
        self.acked.is_some() && self.grouped.is_some() && self.full_isr.is_some()
    }

    /// When the last of the three was seen.
    pub fn at(&self) -> Option<Instant> {
        Some(self.acked?.max(self.grouped?).max(self.full_isr?))
    }
}

/// What happened to one fault.
#[derive(Debug, Clone)]
pub struct FaultOutcome {
    pub index: usize,
    pub kind: FaultKind,
    pub nodes: Vec<usize>,
    pub note: String,
    pub started: Instant,
    pub healed: Instant,
    /// When the cluster and the group were seen back after healing.
    pub settled: Settled,
    /// Each member's partitions when the harness stopped waiting.
    pub assignments: Vec<BTreeSet<i32>>,
}

impl FaultOutcome {
    pub fn summary(&self, run_start: Instant) -> String {
        format!(
            "fault #{} {} on {:?} at {:.1}s, held {:.1}s, {} {}",
            self.index,
            self.kind.name(),
            self.nodes,
            secs(self.started, run_start),
            (self.healed - self.started).as_secs_f64(),
            {
                let after = |t: Option<Instant>| match t {
                    Some(t) => format!(
                        "{:.1}s",
                        t.saturating_duration_since(self.healed).as_secs_f64()
                    ),
                    None => "NEVER".to_string(),
                };
                format!(
                    "after healing: write acked {}, group assigned {}, full ISR {}; assignments {:?}",
                    after(self.settled.acked),
                    after(self.settled.grouped),
                    after(self.settled.full_isr),
                    self.assignments
                )
            },
            self.note
        )
    }
}

fn secs(t: Instant, start: Instant) -> f64 {
    t.saturating_duration_since(start).as_secs_f64()
}

/// The high watermark of every partition, from the first broker that answers.
pub fn high_watermarks(cluster: &Cluster, target: &Target) -> BTreeMap<i32, i64> {
    let consumer = reader(cluster);
    (0..target.partitions)
        .map(|p| {
            let (_, high) = crate::wait_until(
                Duration::from_secs(60),
                "the workload topic's watermarks",
                || {
                    consumer
                        .fetch_watermarks(&target.topic, p, Duration::from_secs(5))
                        .ok()
                },
            );
            (p, high)
        })
        .collect()
}

fn reader(cluster: &Cluster) -> BaseConsumer {
    let mut config: ClientConfig = cluster.client_config();
    config
        .set("group.id", crate::unique_topic("nemesis-reader"))
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true")
        .set("fetch.wait.max.ms", "100");
    config.create().expect("a reading consumer")
}

/// The group's committed offsets once the run is over (retried until a coordinator answers).
pub fn final_commits(target: &Target) -> BTreeMap<i32, i64> {
    crate::wait_until(Duration::from_secs(60), "a final OffsetFetch", || {
        let (_, addr) = probe::find_coordinator(&target.brokers, &target.group)?;
        let mut client = probe::connect(addr)?;
        probe::committed_offsets(&mut client, &target.group, &target.topic, target.partitions)
    })
}

/// Every partition's records, offset → sequence number, read from the log start to the high
/// watermark. A value that is not the producer's is kept as `u64::MAX`.
pub fn read_partitions(cluster: &Cluster, target: &Target) -> BTreeMap<i32, Vec<(i64, u64)>> {
    let highs = high_watermarks(cluster, target);
    let mut out = BTreeMap::new();
    for (p, high) in highs {
        let consumer = reader(cluster);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&target.topic, p, Offset::Beginning)
            .expect("a partition");
        consumer.assign(&tpl).expect("assigning a partition");
        let mut records: Vec<(i64, u64)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while records.last().map_or(0, |r| r.0 + 1) < high {
            assert!(
                Instant::now() < deadline,
                "reading {}-{p}: reached offset {:?} of high watermark {high} within 120 s",
                target.topic,
                records.last()
            );
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let seq = super::workload::value_seq(m.payload()).unwrap_or(u64::MAX);
                records.push((m.offset(), seq));
            }
        }
        out.insert(p, records);
    }
    out
}

/// Partitions whose replicas still differ after `timeout`, with what differs. The brokers
/// run and nothing is produced: the log files of the replicas of a partition must converge to
/// the same bytes (followers copy the leader's batches as they are).
pub fn compare_replicas(cluster: &Cluster, target: &Target, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut mismatches = Vec::new();
        for p in 0..target.partitions {
            let logs: Vec<(usize, Vec<u8>)> = cluster
                .brokers
                .iter()
                .enumerate()
                .map(|(i, b)| (i, log_bytes(&b.partition_dir(&target.topic, p))))
                .collect();
            let (first_id, first) = &logs[0];
            for (id, bytes) in &logs[1..] {
                if bytes != first {
                    let common = first.iter().zip(bytes).take_while(|(a, b)| a == b).count();
                    mismatches.push(format!(
                        "{}-{p}: broker {first_id} holds {} bytes, broker {id} {} bytes, equal for the first {common}",
                        target.topic,
                        first.len(),
                        bytes.len()
                    ));
                }
            }
        }
        if mismatches.is_empty() || Instant::now() >= deadline {
            return mismatches;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Everything the report is built from.
#[derive(Debug)]
pub struct Inputs {
    pub settings: Settings,
    pub started: Instant,
    pub ended_producing: Instant,
    pub record: Record,
    pub outcomes: Vec<FaultOutcome>,
    pub final_commits: BTreeMap<i32, i64>,
    pub partitions: BTreeMap<i32, Vec<(i64, u64)>>,
    pub replicas: Vec<String>,
    pub healed_at_end: bool,
    pub peak_memory: Vec<u64>,
    pub events: Vec<String>,
    pub skipped: Vec<String>,
    pub caught_up: bool,
}

/// The outcome of a run: counts for the table and every violation, described precisely.
#[derive(Debug)]
pub struct Report {
    pub text: String,
    /// Each violation as a sentence; empty when the run passed.
    pub failures: Vec<String>,
}

impl Report {
    /// The report of a run that could not reach its checks: the faults so far and why.
    pub fn aborted(
        seed: u64,
        started: Instant,
        outcomes: &[FaultOutcome],
        events: &[String],
        reason: &str,
    ) -> Report {
        let mut text = format!("==== nemesis report (seed {seed}): ABORTED ====\n");
        for o in outcomes {
            let _ = writeln!(text, "{}", o.summary(started));
        }
        for e in events {
            let _ = writeln!(text, "event: {e}");
        }
        let failure = format!("the run stopped after {} faults: {reason}", outcomes.len());
        let _ = writeln!(text, "FAILURE: {failure}");
        Report {
            text,
            failures: vec![failure],
        }
    }

    pub fn build(inputs: Inputs) -> Report {
        let Inputs {
            settings,
            started,
            ended_producing,
            record,
            outcomes,
            final_commits,
            partitions,
            replicas,
            healed_at_end,
            peak_memory,
            events,
            skipped,
            caught_up,
        } = inputs;
        let at = |t: Instant| secs(t, started);
        let mut failures = Vec::new();

        // Records.
        let mut lost = Vec::new();
        let mut misplaced = 0usize;
        for a in &record.acked {
            let log = &partitions[&a.partition];
            let found = log
                .binary_search_by_key(&a.offset, |r| r.0)
                .ok()
                .map(|i| log[i].1);
            if found != Some(a.seq) {
                if found.is_some() {
                    misplaced += 1;
                }
                lost.push(format!(
                    "record n{} acknowledged at partition {}@{} ({:.1}s); the log holds {:?} there",
                    a.seq,
                    a.partition,
                    a.offset,
                    at(a.at),
                    found.map(|s| format!("n{s}"))
                ));
            }
        }
        let mut where_seen: HashMap<u64, (i32, i64)> = HashMap::new();
        let mut duplicated = Vec::new();
        let mut reordered = Vec::new();
        let mut offset_gaps = Vec::new();
        for (p, log) in &partitions {
            for w in log.windows(2) {
                if w[1].0 != w[0].0 + 1 {
                    offset_gaps.push(format!("partition {p}: offsets {} then {}", w[0].0, w[1].0));
                }
                if w[1].1 <= w[0].1 && w[1].1 != u64::MAX {
                    reordered.push(format!(
                        "partition {p}: n{} at {} after n{} at {}",
                        w[1].1, w[1].0, w[0].1, w[0].0
                    ));
                }
            }
            for (offset, seq) in log {
                if let Some((q, o)) = where_seen.insert(*seq, (*p, *offset)) {
                    duplicated.push(format!(
                        "n{seq} at partition {q}@{o} and partition {p}@{offset}"
                    ));
                }
            }
        }
        fail(&mut failures, "lost acknowledged records", &lost);
        fail(&mut failures, "duplicated records", &duplicated);
        fail(&mut failures, "records out of order", &reordered);
        fail(&mut failures, "offset gaps", &offset_gaps);
        fail(&mut failures, "replicas that differ", &replicas);
        if !healed_at_end {
            failures.push(
                "the cluster did not get back to a full ISR on every partition at the end".into(),
            );
        }

        // Commits.
        let mut last_commit: BTreeMap<i32, (i64, Instant, usize)> = BTreeMap::new();
        for c in &record.commits {
            let e = last_commit
                .entry(c.partition)
                .or_insert((c.offset, c.at, c.member));
            if c.offset >= e.0 {
                *e = (c.offset, c.at, c.member);
            }
        }
        let lost_commits: Vec<String> = last_commit
            .iter()
            .filter(|(p, (o, _, _))| final_commits.get(p).is_none_or(|f| f < o))
            .map(|(p, (o, t, m))| {
                format!(
                    "partition {p}: commit of offset {o} acknowledged to member {m} at {:.1}s, final OffsetFetch reads {:?}",
                    at(*t),
                    final_commits.get(p)
                )
            })
            .collect();
        let backwards: Vec<String> = record
            .backwards
            .iter()
            .map(|b| {
                // Whether a member's commit put the lower offset there (a client committing
                // an old position) or no acknowledged commit did (the coordinator's state).
                let by: Vec<String> = record
                    .commits
                    .iter()
                    .filter(|c| c.partition == b.partition && c.offset == b.to)
                    .map(|c| format!("member {} at {:.1}s", c.member, at(c.at)))
                    .collect();
                let by = if by.is_empty() {
                    "no acknowledged commit of it".to_string()
                } else {
                    format!("committed by {}", by.join(", "))
                };
                // A member moved back by librdkafka (an offset reset) shortly before.
                let tag = format!("[{}]", b.partition);
                let resets: Vec<String> = record
                    .member_resets
                    .iter()
                    .filter(|(_, t, line)| {
                        line.contains(&tag)
                            && *t <= b.at
                            && b.from_at.saturating_duration_since(*t) < Duration::from_secs(10)
                    })
                    .map(|(m, t, line)| format!("member {m} at {:.1}s: {line}", at(*t)))
                    .collect();
                let by = if resets.is_empty() {
                    format!("{by}; no offset reset logged by a member")
                } else {
                    format!("{by}; offset resets: {}", resets.join(" | "))
                };
                format!(
                    "partition {}: committed offset {} (seen at {:.1}s from coordinator {}) then {} at {:.1}s from coordinator {} ({by})",
                    b.partition,
                    b.from,
                    at(b.from_at),
                    b.from_coordinator,
                    b.to,
                    at(b.at),
                    b.coordinator
                )
            })
            .collect();
        fail(&mut failures, "acknowledged commits lost", &lost_commits);
        fail(
            &mut failures,
            "committed offsets that went backwards",
            &backwards,
        );

        // Members and healing.
        let describe = |o: &FaultOutcome, what: &str| {
            format!(
                "fault #{} ({} on {:?}, healed at {:.1}s): {what}; member assignments then {:?}",
                o.index,
                o.kind.name(),
                o.nodes,
                at(o.healed),
                o.assignments
            )
        };
        let stuck: Vec<String> = outcomes
            .iter()
            .filter(|o| {
                o.settled
                    .grouped
                    .is_none_or(|t| t - o.healed > settings.assign_bound)
            })
            .map(|o| describe(o, &format!("a member held no partitions (or a partition had no member) {:?} after healing", settings.assign_bound)))
            .collect();
        let unhealed: Vec<String> = outcomes
            .iter()
            .filter(|o| o.settled.acked.is_none() || o.settled.full_isr.is_none())
            .map(|o| {
                describe(
                    o,
                    &format!(
                        "no acknowledged write ({:?}) or no full ISR ({:?}) in time",
                        o.settled.acked.map(|t| t - o.healed),
                        o.settled.full_isr.map(|t| t - o.healed)
                    ),
                )
            })
            .collect();
        fail(&mut failures, "stuck members", &stuck);
        fail(
            &mut failures,
            "faults the cluster did not recover from",
            &unhealed,
        );
        if !caught_up {
            failures
                .push("the group did not consume and commit to the end of every partition".into());
        }
        fail(
            &mut failures,
            "fatal producer errors",
            &record.producer_fatal,
        );

        // Memory.
        let over: Vec<String> = peak_memory
            .iter()
            .enumerate()
            .filter(|(_, m)| **m > settings.memory_limit_bytes)
            .map(|(i, m)| format!("broker {i}: {} MiB", m >> 20))
            .collect();
        fail(
            &mut failures,
            &format!("brokers above {} MiB", settings.memory_limit_bytes >> 20),
            &over,
        );

        // The table.
        let mut latencies = record.commit_latencies.clone();
        latencies.sort();
        let median = latencies
            .get(latencies.len() / 2)
            .copied()
            .unwrap_or_default();
        let slowest = latencies.last().copied().unwrap_or_default();
        let ack_times: Vec<Instant> = {
            let mut t: Vec<Instant> = record.acked.iter().map(|a| a.at).collect();
            t.sort();
            t
        };
        let mut by_kind: BTreeMap<FaultKind, (usize, Duration, Duration)> = BTreeMap::new();
        for o in &outcomes {
            let end = o.settled.at().unwrap_or(ended_producing);
            let gap = longest_gap(&ack_times, o.started, end);
            let e = by_kind.entry(o.kind).or_default();
            e.0 += 1;
            e.1 = e.1.max(gap);
            e.2 += gap;
        }
        let mut text = String::new();
        let _ = writeln!(text, "==== nemesis report (seed {}) ====", settings.seed);
        for s in &skipped {
            let _ = writeln!(text, "skipped: {s}");
        }
        let _ = writeln!(
            text,
            "{:<28} {:>6} {:>14} {:>14}",
            "fault kind", "count", "longest no-ack", "mean no-ack"
        );
        for (kind, (count, longest, total)) in &by_kind {
            let _ = writeln!(
                text,
                "{:<28} {count:>6} {:>13.1}s {:>13.1}s",
                kind.name(),
                longest.as_secs_f64(),
                total.as_secs_f64() / *count as f64
            );
        }
        let row = |text: &mut String, k: &str, v: String| {
            let _ = writeln!(text, "{k:<40} {v}");
        };
        row(&mut text, "faults", outcomes.len().to_string());
        row(
            &mut text,
            "acknowledged records",
            record.acked.len().to_string(),
        );
        row(
            &mut text,
            "failed deliveries (not acknowledged)",
            record.delivery_failures.to_string(),
        );
        for (error, n) in &record.delivery_errors {
            row(&mut text, "  failed with", format!("{n}: {error}"));
        }
        row(
            &mut text,
            "lost",
            format!(
                "{} ({misplaced} with another record at the offset)",
                lost.len()
            ),
        );
        row(&mut text, "duplicated", duplicated.len().to_string());
        row(&mut text, "out of order", reordered.len().to_string());
        row(&mut text, "offset gaps", offset_gaps.len().to_string());
        row(&mut text, "replicas differing", replicas.len().to_string());
        row(
            &mut text,
            "acknowledged commits",
            record.commits.len().to_string(),
        );
        row(
            &mut text,
            "commit calls ok / failed",
            format!("{} / {}", latencies.len(), record.commit_failures.len()),
        );
        row(
            &mut text,
            "commit latency median / slowest",
            format!(
                "{:.0} ms / {:.0} ms",
                median.as_secs_f64() * 1e3,
                slowest.as_secs_f64() * 1e3
            ),
        );
        row(
            &mut text,
            "commits unanswered after 30 s",
            record.commits_unanswered.len().to_string(),
        );
        row(&mut text, "lost commits", lost_commits.len().to_string());
        row(
            &mut text,
            "commits gone backwards",
            backwards.len().to_string(),
        );
        row(&mut text, "stuck members (faults)", stuck.len().to_string());
        row(
            &mut text,
            "faults not recovered from",
            unhealed.len().to_string(),
        );
        for (i, m) in peak_memory.iter().enumerate() {
            row(
                &mut text,
                &format!("peak RSS broker {i}"),
                format!("{} MiB", m >> 20),
            );
        }
        row(
            &mut text,
            "run time",
            format!("{:.0} s", started.elapsed().as_secs_f64()),
        );
        for e in &events {
            let _ = writeln!(text, "event: {e}");
        }
        for f in &failures {
            let _ = writeln!(text, "FAILURE: {f}");
        }
        Report { text, failures }
    }

    /// Adds a section (the transactional loop's) with its violations.
    pub fn add_section(&mut self, text: &str, failures: Vec<String>) {
        self.text.push_str(text);
        for f in &failures {
            let _ = writeln!(self.text, "FAILURE: {f}");
        }
        self.failures.extend(failures);
    }
}

/// Adds one failure naming `what` and listing up to 20 `items`.
pub(super) fn fail(failures: &mut Vec<String>, what: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let shown: Vec<&str> = items.iter().take(20).map(String::as_str).collect();
    failures.push(format!(
        "{} {what}: {}{}",
        items.len(),
        shown.join("; "),
        if items.len() > 20 { "; ..." } else { "" }
    ));
}

/// The longest stretch without an acknowledgement that begins between `start` and `end`
/// (`acks` sorted); the stretch open at `end` lasts until the next acknowledgement, or until
/// `end` when none came.
fn longest_gap(acks: &[Instant], start: Instant, end: Instant) -> Duration {
    let first = acks.partition_point(|t| *t < start);
    let mut previous = start;
    let mut longest = Duration::ZERO;
    for t in &acks[first..] {
        longest = longest.max(*t - previous);
        previous = *t;
        if *t > end {
            return longest;
        }
    }
    longest.max(end.saturating_duration_since(previous))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_gap_counts_the_stretch_open_when_the_window_ends() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let acks = [ms(0), ms(100), ms(150), ms(900), ms(1000)];
        // Window 120..500: stretches 120→150, then 150→900 (open at 500, ends at the next ack).
        assert_eq!(
            longest_gap(&acks, ms(120), ms(500)),
            Duration::from_millis(750)
        );
        // No acknowledgement after the window: the stretch lasts until its end.
        assert_eq!(
            longest_gap(&acks, ms(1000), ms(1300)),
            Duration::from_millis(300)
        );
        assert_eq!(longest_gap(&[], ms(0), ms(40)), Duration::from_millis(40));
    }
}
