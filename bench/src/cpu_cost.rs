//! Broker CPU per byte on the rows where Weir was not ≥ 1.5x Apache Kafka (issue 18): 100-byte
//! records into one partition (`acks=1`, uncompressed) and one consumer catching up over 16
//! partitions of 1 KiB records.
//!
//! On a small shared machine wall-clock throughput swings with whatever else runs, but the CPU
//! a broker spends per byte it moves hardly does, and on two cores every CPU second the broker
//! takes is one the client does not get. So each case reads the broker's `utime + stime`
//! (`/proc/<pid>/stat`, every thread, see [`crate::procstat`]) immediately before and after the
//! client's work and divides by the payload bytes moved (10^9 bytes per GB). Wall-clock
//! throughput is recorded too, with that caveat.
//!
//! Per round and system, a fresh single broker: first the unmeasured warm-up (a tenth of the
//! 100-byte records, so a JIT is not measured cold), then the measured 100-byte producer on a
//! fresh one-partition topic; then a 16-partition topic is filled with 1 KiB records (not
//! measured), read once from the beginning unmeasured, and read `catch_up_reads` more times
//! measured. Systems alternate within a round (Weir, the optional baseline Weir, Kafka), so
//! drift on the machine hits all of them.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cases::{Acks, Compression, ProduceCase, Topology};
use crate::payload::Payload;
use crate::process::{Launcher, RunningBrokers};
use crate::results::BrokerKind;
use crate::{client, consume, machine, produce, stats};

/// The comments that delimit this section of docs/BENCHMARKS.md.
pub const BEGIN_MARKER: &str = "<!-- weir-bench:cpu:begin -->";
pub const END_MARKER: &str = "<!-- weir-bench:cpu:end -->";

/// How the baseline Weir binary is named in points and tables.
pub const BASELINE: &str = "Weir baseline";

/// A broker under test: Weir (the launcher's binary, or the baseline binary) or Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    pub name: String,
    pub kind: BrokerKind,
    /// For Weir: the binary; `None` for the launcher's.
    pub weir_broker: Option<PathBuf>,
}

impl System {
    pub fn weir() -> System {
        System {
            name: BrokerKind::Weir.name().to_string(),
            kind: BrokerKind::Weir,
            weir_broker: None,
        }
    }

    pub fn baseline(weir_broker: PathBuf) -> System {
        System {
            name: BASELINE.to_string(),
            kind: BrokerKind::Weir,
            weir_broker: Some(weir_broker),
        }
    }

    pub fn kafka() -> System {
        System {
            name: BrokerKind::Kafka.name().to_string(),
            kind: BrokerKind::Kafka,
            weir_broker: None,
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct CpuOptions {
    pub launcher: Launcher,
    /// In the order they run within a round.
    pub systems: Vec<System>,
    pub rounds: usize,
    /// 100-byte records of the producer case.
    pub records_100b: u64,
    /// 1 KiB records of the 16-partition topic the catch-up reads.
    pub catch_up_records: u64,
    /// Measured reads of the whole topic.
    pub catch_up_reads: u32,
}

/// The two cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Case {
    /// 100 B, acks=1, uncompressed, 1 partition.
    Produce100B,
    /// One consumer, `assign()`, 16 partitions of 1 KiB records from the beginning.
    CatchUp16,
}

impl Case {
    pub const ALL: [Case; 2] = [Case::Produce100B, Case::CatchUp16];

    pub fn title(self) -> &'static str {
        match self {
            Case::Produce100B => "producer, 100 B, acks=1, 1 partition",
            Case::CatchUp16 => "catch-up, 1 KiB, 16 partitions",
        }
    }
}

/// One case on one broker start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CpuPoint {
    pub system: String,
    pub round: usize,
    pub case: Case,
    /// Payload bytes moved while measured.
    pub bytes: u64,
    /// The broker's CPU seconds (user + system) over the measured work.
    pub cpu_seconds: f64,
    /// Wall-clock seconds of the measured work.
    pub seconds: f64,
    /// The one-minute load average when the case ended.
    pub load_average: Option<f64>,
}

impl CpuPoint {
    /// CPU seconds per 10^9 payload bytes.
    pub fn cpu_per_gb(&self) -> f64 {
        self.cpu_seconds / (self.bytes as f64 / 1e9)
    }

    /// Payload megabytes (10^6 bytes) per wall-clock second.
    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }
}

fn produce_case(records: u64) -> ProduceCase {
    ProduceCase {
        record_size: 100,
        acks: Acks::Leader,
        compression: Compression::None,
        partitions: 1,
        records,
    }
}

fn fill_case(records: u64) -> ProduceCase {
    ProduceCase {
        record_size: 1024,
        acks: Acks::Leader,
        compression: Compression::None,
        partitions: 16,
        records,
    }
}

/// Runs every round; `on_point` sees each point as it is measured (to save progress).
pub fn run(
    options: &CpuOptions,
    mut on_point: impl FnMut(&[CpuPoint]) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<CpuPoint>> {
    let payload = Payload::new(1024);
    let mut points = Vec::new();
    for round in 0..options.rounds {
        for system in &options.systems {
            let measured = broker_start(options, system, round, &payload)?;
            for point in measured {
                eprintln!(
                    "  round {round} {}: {} — {:.3} CPU s over {:.2} s, {:.2} CPU s/GB, {:.1} MB/s",
                    point.system,
                    point.case.title(),
                    point.cpu_seconds,
                    point.seconds,
                    point.cpu_per_gb(),
                    point.megabytes_per_second()
                );
                points.push(point);
            }
            on_point(&points)?;
        }
    }
    Ok(points)
}

fn broker_start(
    options: &CpuOptions,
    system: &System,
    round: usize,
    payload: &Payload,
) -> anyhow::Result<Vec<CpuPoint>> {
    let mut launcher = options.launcher.clone();
    if let Some(binary) = &system.weir_broker {
        launcher.weir_broker = binary.clone();
    }
    let label = format!(
        "cpu-{}-{round}",
        system.name.to_lowercase().replace(' ', "-")
    );
    let mut broker = launcher.start(system.kind, &label, &Topology::SINGLE_NODE)?;
    crate::scale::wait_ready(&mut broker)?;
    let outcome = measure(options, system, round, payload, &broker);
    broker.stop()?;
    outcome
}

/// The broker's CPU seconds over `work`, and the work's wall-clock seconds and payload bytes.
fn cpu_around(
    broker: &RunningBrokers,
    work: impl FnOnce() -> anyhow::Result<u64>,
) -> anyhow::Result<(f64, f64, u64)> {
    let before = broker.usage()?.cpu_seconds;
    let started = Instant::now();
    let bytes = work()?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = broker.usage()?.cpu_seconds - before;
    Ok((cpu, seconds, bytes))
}

fn measure(
    options: &CpuOptions,
    system: &System,
    round: usize,
    payload: &Payload,
    broker: &RunningBrokers,
) -> anyhow::Result<Vec<CpuPoint>> {
    let bootstrap = broker.bootstrap();
    let topology = Topology::SINGLE_NODE;
    let point = |case: Case, (cpu_seconds, seconds, bytes): (f64, f64, u64)| CpuPoint {
        system: system.name.clone(),
        round,
        case,
        bytes,
        cpu_seconds,
        seconds,
        load_average: machine::load_average(),
    };
    let mut points = Vec::new();

    let warm_up = produce_case((options.records_100b / 10).max(1));
    produce::run(&bootstrap, "cpu-warm-up", &warm_up, &topology, payload)?;
    let case = produce_case(options.records_100b);
    client::create_topic(&bootstrap, "cpu-produce-100b", 1, &topology)?;
    let measured = cpu_around(broker, || {
        Ok(produce::fill(&bootstrap, "cpu-produce-100b", &case, payload)?.bytes)
    })?;
    points.push(point(Case::Produce100B, measured));

    let fill = fill_case(options.catch_up_records);
    let topic = "cpu-catch-up-16p";
    produce::run(&bootstrap, topic, &fill, &topology, payload)?;
    consume::catch_up(&bootstrap, topic, fill.partitions, fill.records)?;
    let measured = cpu_around(broker, || {
        let mut bytes = 0;
        for _ in 0..options.catch_up_reads {
            bytes += consume::catch_up(&bootstrap, topic, fill.partitions, fill.records)?.bytes;
        }
        Ok(bytes)
    })?;
    points.push(point(Case::CatchUp16, measured));
    Ok(points)
}

fn median_of(
    points: &[CpuPoint],
    system: &str,
    case: Case,
    value: impl Fn(&CpuPoint) -> f64,
) -> Option<f64> {
    let values: Vec<f64> = points
        .iter()
        .filter(|p| p.system == system && p.case == case)
        .map(value)
        .collect();
    stats::median(&values)
}

/// The tables: CPU s/GB medians per case and system with Weir's over Kafka's (and over the
/// baseline's, when there is one), then wall-clock MB/s, then every round.
pub fn render(points: &[CpuPoint], conditions: &str) -> String {
    let weir = BrokerKind::Weir.name();
    let kafka = BrokerKind::Kafka.name();
    let has_baseline = points.iter().any(|p| p.system == BASELINE);
    let show = |v: Option<f64>, digits: usize| v.map_or("–".into(), |v| format!("{v:.digits$}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "–".to_string(),
    };
    let rounds = |system: &str, case| {
        points
            .iter()
            .filter(|p| p.system == system && p.case == case)
            .count()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{conditions}\n");
    let baseline_head = if has_baseline {
        " Weir baseline | Weir/baseline |"
    } else {
        ""
    };
    let baseline_rule = if has_baseline { "---:|---:|" } else { "" };
    let _ = writeln!(
        out,
        "| row | Weir CPU s/GB |{baseline_head} Kafka CPU s/GB | Weir/Kafka | Weir MB/s | Kafka MB/s | rounds |"
    );
    let _ = writeln!(out, "|---|---:|{baseline_rule}---:|---:|---:|---:|---:|");
    for case in Case::ALL {
        let cpu = |system| median_of(points, system, case, CpuPoint::cpu_per_gb);
        let mb = |system| median_of(points, system, case, CpuPoint::megabytes_per_second);
        let baseline = if has_baseline {
            format!(
                " {} | {} |",
                show(cpu(BASELINE), 2),
                ratio(cpu(weir), cpu(BASELINE))
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} |{baseline} {} | {} | {} | {} | {} |",
            case.title(),
            show(cpu(weir), 2),
            show(cpu(kafka), 2),
            ratio(cpu(weir), cpu(kafka)),
            show(mb(weir), 1),
            show(mb(kafka), 1),
            rounds(weir, case),
        );
    }
    let _ = writeln!(
        out,
        "\nEvery round (CPU s/GB, MB/s, load average at its end):\n\n\
         | round | system | row | CPU s | seconds | CPU s/GB | MB/s | load |\n\
         |---:|---|---|---:|---:|---:|---:|---:|"
    );
    for p in points {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.3} | {:.2} | {:.2} | {:.1} | {} |",
            p.round,
            p.system,
            p.case.title(),
            p.cpu_seconds,
            p.seconds,
            p.cpu_per_gb(),
            p.megabytes_per_second(),
            show(p.load_average, 1),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(system: &str, round: usize, case: Case, cpu_seconds: f64) -> CpuPoint {
        CpuPoint {
            system: system.to_string(),
            round,
            case,
            bytes: 500_000_000,
            cpu_seconds,
            seconds: 2.0,
            load_average: Some(3.0),
        }
    }

    #[test]
    fn cpu_per_gb_is_seconds_over_billions_of_bytes() {
        let p = point("Weir", 0, Case::Produce100B, 1.0);
        assert_eq!(p.cpu_per_gb(), 2.0);
        assert_eq!(p.megabytes_per_second(), 250.0);
    }

    #[test]
    fn the_table_holds_medians_and_ratios() {
        let mut points = Vec::new();
        for (round, (w, k)) in [(0.5, 2.0), (0.6, 2.2), (0.4, 1.8)].into_iter().enumerate() {
            points.push(point("Weir", round, Case::CatchUp16, w));
            points.push(point("Kafka", round, Case::CatchUp16, k));
        }
        let table = render(&points, "conditions");
        // Medians: Weir 0.5 s over 0.5 GB = 1.00 s/GB, Kafka 2.0 / 0.5 = 4.00; ratio 0.25x.
        assert!(
            table.contains("| catch-up, 1 KiB, 16 partitions | 1.00 | 4.00 | 0.25x |"),
            "{table}"
        );
        assert!(!table.contains("baseline |"), "{table}");
        // No producer points: dashes, not a panic.
        assert!(
            table.contains("| producer, 100 B, acks=1, 1 partition | – | – | – |"),
            "{table}"
        );
    }

    #[test]
    fn a_baseline_gets_its_own_columns() {
        let points = vec![
            point("Weir", 0, Case::Produce100B, 0.5),
            point(BASELINE, 0, Case::Produce100B, 1.0),
            point("Kafka", 0, Case::Produce100B, 2.0),
        ];
        let table = render(&points, "");
        assert!(
            table.contains(
                "| producer, 100 B, acks=1, 1 partition | 1.00 | 2.00 | 0.50x | 4.00 | 0.25x |"
            ),
            "{table}"
        );
    }
}
