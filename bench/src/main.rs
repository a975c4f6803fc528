//! `weir-bench`: drives a Kafka-compatible broker with librdkafka and reports what it
//! measured. `compare` is the full Weir-against-Apache-Kafka run behind docs/BENCHMARKS.md
//! (scripts/bench.sh runs it), on single nodes or, with `--cluster 3`, on three-broker
//! clusters with replicated topics; `smoke` is the seconds-long Weir-only run CI does;
//! `produce`, `consume` and `latency` measure one case against any broker or cluster already
//! running.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use weir_bench::cases::{
    Acks, Client, Compression, LatencyCase, Plan, PlanSizes, ProduceCase, Topology,
    TransactionSizes,
};
use weir_bench::compare::{self, CompareOptions};
use weir_bench::payload::Payload;
use weir_bench::process::Launcher;
use weir_bench::results::BrokerKind;
use weir_bench::{consume, latency, produce, smoke, stats, wire_client};

#[derive(Debug, Parser)]
#[command(name = "weir-bench", about, version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Weir and Apache Kafka alternately (A B A B), throughput then latency; writes the tables
    /// into the marked section of --doc (single node or, with --cluster, the cluster's).
    Compare(CompareArgs),
    /// A few seconds of every scenario against Weir only; fails if anything is off.
    Smoke(SmokeArgs),
    /// Availability under faults: three brokers of Weir and of Apache Kafka, a steady
    /// idempotent acks=all producer and a committing group member; the gap each fault kind
    /// costs, side by side (medians, maxima, ratio), written into the failover section of --doc.
    Failover(FailoverArgs),
    /// Re-render the failover table from saved failover results (several files, e.g. one run
    /// per system, are merged) into --doc.
    FailoverReport {
        #[arg(long, required = true)]
        results: Vec<PathBuf>,
        #[arg(long)]
        doc: Option<PathBuf>,
    },
    /// Re-render the tables of --doc from a saved results file.
    Report {
        #[arg(long, default_value = "target/bench/results.json")]
        results: PathBuf,
        #[arg(long, default_value = "docs/BENCHMARKS.md")]
        doc: PathBuf,
    },
    /// How cost grows with the work (issue 18): partitions per broker, client connections and
    /// consumer groups, Weir and Apache Kafka alternately, medians per size; writes the scale
    /// section of --doc.
    Scale(ScaleArgs),
    /// A member joining a live consumer group (issue 17): settle time and the longest pause of
    /// the members already in it, classic (eager, cooperative) and consumer protocol, Weir and
    /// Apache Kafka alternately; writes the join section of --doc.
    Join(JoinArgs),
    /// Share-group throughput (issue 17): records/s consumed and accepted by 1, 3 and 10
    /// KafkaShareConsumers (the Java client 4.3) on one partition, Weir and Apache Kafka
    /// alternately; writes the share section of --doc.
    Share(ShareArgs),
    /// What TLS and SASL_SSL cost (issue 16): the 1 KiB, acks=1, one-partition producer over
    /// PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512) listeners, and new TLS connections per
    /// second, a fresh single broker per case, Weir and Apache Kafka alternately; writes the
    /// TLS section of --doc.
    Tls(TlsArgs),
    /// Broker CPU seconds per GB on the rows still behind (issue 18): 100-byte records into
    /// one partition (acks=1) and one consumer catching up over 16 partitions; a fresh single
    /// broker per round and system (Weir, an optional baseline Weir binary, Apache Kafka);
    /// prints the table (medians, Weir/Kafka) and writes the cpu section of --doc.
    Cpu(CpuArgs),
    /// Producer throughput against a running broker.
    Produce {
        #[command(flatten)]
        case: OneCase,
        /// Name the topic of the first run this (later runs add `-<run>`), so that
        /// `consume --existing-topic` can read it; default: a fresh unique name per run.
        #[arg(long)]
        topic: Option<String>,
    },
    /// Fill a topic, then time one consumer catching up over it.
    Consume {
        #[command(flatten)]
        case: OneCase,
        /// Read this topic (which holds --records records) instead of filling a new one; for
        /// profiling the read path alone.
        #[arg(long)]
        existing_topic: Option<String>,
    },
    /// End-to-end latency at a fixed rate against a running broker.
    Latency {
        #[command(flatten)]
        case: OneCase,
        /// Records per second.
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Seconds at the start that are sent but not counted.
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
    },
}

#[derive(Debug, Args)]
struct Programs {
    /// The weir-broker binary to start.
    #[arg(long, default_value = "target/release/weir-broker")]
    weir_broker: PathBuf,
    /// Where fresh data directories and broker logs go.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
}

#[derive(Debug, Args)]
struct SmokeArgs {
    #[command(flatten)]
    programs: Programs,
}

#[derive(Debug, Args)]
struct FailoverArgs {
    #[command(flatten)]
    programs: Programs,
    /// The script that formats and runs Apache Kafka.
    #[arg(long, default_value = "scripts/kafka.sh")]
    kafka_script: PathBuf,
    /// Rounds of every fault kind per system.
    #[arg(long, default_value_t = 5)]
    repetitions: usize,
    /// Only these systems (default both, Weir first).
    #[arg(long, value_delimiter = ',', value_parser = ["weir", "kafka"])]
    systems: Vec<String>,
    /// Only these faults (default all): leader-kill, controller-kill, leader-pause,
    /// two-brokers-kill, coordinator-kill.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Where the measured faults are saved.
    #[arg(long, default_value = "target/bench/failover.json")]
    results: PathBuf,
    /// The document whose marked failover section receives the table.
    #[arg(long)]
    doc: Option<PathBuf>,
    /// How the report names the Weir build (e.g. a commit).
    #[arg(long, default_value = "(unlabelled build)")]
    weir_version: String,
    /// Which profile the weir-broker binary was built with, as the report states it.
    #[arg(long, default_value = "release")]
    weir_build: String,
    #[arg(long, env = "KAFKA_VERSION", default_value = "4.3.1")]
    kafka_version: String,
}

/// The programs of a side-by-side run and which systems take part.
#[derive(Debug, Args)]
struct SideBySide {
    #[command(flatten)]
    programs: Programs,
    /// The script that formats and runs Apache Kafka.
    #[arg(long, default_value = "scripts/kafka.sh")]
    kafka_script: PathBuf,
    /// Only these systems (default both, Weir first).
    #[arg(long, value_delimiter = ',', value_parser = ["weir", "kafka"])]
    systems: Vec<String>,
}

impl SideBySide {
    fn launcher(&self) -> Launcher {
        Launcher {
            weir_broker: self.programs.weir_broker.clone(),
            kafka_script: self.kafka_script.clone(),
            work_dir: self.programs.work_dir.clone(),
        }
    }

    /// The systems named (default both, Weir first).
    fn systems(&self) -> Vec<BrokerKind> {
        if self.systems.is_empty() {
            return vec![BrokerKind::Weir, BrokerKind::Kafka];
        }
        self.systems
            .iter()
            .map(|s| match s.as_str() {
                "kafka" => BrokerKind::Kafka,
                _ => BrokerKind::Weir,
            })
            .collect()
    }
}

#[derive(Debug, Args)]
struct JoinArgs {
    #[command(flatten)]
    side_by_side: SideBySide,
    /// Broker starts per system; the table reports medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Partitions of the topic the group reads.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Members in the group before one more joins.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Records per second fed to the topic.
    #[arg(long, default_value_t = 600.0)]
    rate: f64,
    /// Where every join's numbers are saved.
    #[arg(long, default_value = "target/bench/results-join.json")]
    results: PathBuf,
    /// The document whose marked join section receives the table.
    #[arg(long)]
    doc: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ShareArgs {
    #[command(flatten)]
    side_by_side: SideBySide,
    /// Broker starts per system and consumer count; the table reports medians.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Share consumers of each case.
    #[arg(long, value_delimiter = ',', default_value = "1,3,10")]
    consumers: Vec<usize>,
    /// Records of 100 bytes each case consumes.
    #[arg(long, default_value_t = 20_000)]
    records: u64,
    /// The Kafka 4.3 Java client's jars (scripts/install-test-deps.sh).
    #[arg(long, default_value = "target/java-share-client-deps")]
    java_client_deps: PathBuf,
    /// The consumers' program.
    #[arg(long, default_value = "tests/java/ShareBench.java")]
    program: PathBuf,
    /// How the report states the conditions (build, load) above the table.
    #[arg(long, default_value = "")]
    conditions: String,
    /// Where every case's numbers are saved.
    #[arg(long, default_value = "target/bench/results-share.json")]
    results: PathBuf,
    /// The document whose marked share section receives the table.
    #[arg(long)]
    doc: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct TlsArgs {
    #[command(flatten)]
    side_by_side: SideBySide,
    /// Broker starts per system and protocol; the tables report medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// 1 KiB records each producer case sends.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Connection loops side by side in the handshake-rate case.
    #[arg(long, default_value_t = 16)]
    connectors: usize,
    /// Seconds of connections before the counted window.
    #[arg(long, default_value_t = 3.0)]
    warmup_seconds: f64,
    /// Seconds of counted connections.
    #[arg(long, default_value_t = 10.0)]
    window_seconds: f64,
    /// How the report states the conditions (build, versions) above the tables.
    #[arg(long, default_value = "")]
    conditions: String,
    /// Where every case's numbers are saved.
    #[arg(long, default_value = "target/bench/results-tls.json")]
    results: PathBuf,
    /// The document whose marked TLS section receives the tables.
    #[arg(long)]
    doc: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CpuArgs {
    #[command(flatten)]
    side_by_side: SideBySide,
    /// Another weir-broker binary measured beside the first in every round (e.g. main's
    /// build, for a before/after in the same session).
    #[arg(long)]
    baseline_broker: Option<PathBuf>,
    /// Broker starts per system; the table reports medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// 100-byte records the producer case sends.
    #[arg(long, default_value_t = 3_000_000)]
    records_100b: u64,
    /// 1 KiB records in the 16-partition topic the catch-up reads.
    #[arg(long, default_value_t = 500_000)]
    catch_up_records: u64,
    /// Measured reads of the whole 16-partition topic (after one unmeasured).
    #[arg(long, default_value_t = 3)]
    catch_up_reads: u32,
    /// How the report states the conditions (build, versions) above the table.
    #[arg(long, default_value = "")]
    conditions: String,
    /// Where every case's numbers are saved.
    #[arg(long, default_value = "target/bench/results-cpu.json")]
    results: PathBuf,
    /// The document whose marked cpu section receives the tables.
    #[arg(long)]
    doc: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ScaleArgs {
    #[command(flatten)]
    side_by_side: SideBySide,
    /// Partitions of the partitions scenario, one run per size (`--partitions` with no sizes:
    /// skip it).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "1000,10000")]
    partitions: Vec<i32>,
    /// Partitions of the partitions scenario on three brokers (replication factor 3,
    /// `min.insync.replicas=2`) with the controller's SIGKILL, one run per size (none: skip
    /// it). Its table has a section of its own in the document.
    #[arg(long, value_delimiter = ',')]
    rf3_partitions: Vec<i32>,
    /// Connections of the connections scenario (no sizes: skip it).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "100,1000,10000")]
    connections: Vec<usize>,
    /// Groups of the groups scenario (no sizes: skip it).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "10,100,1000")]
    groups: Vec<usize>,
    /// Runs per system and size; the tables report medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// 1 KiB records produced across all partitions of the partitions scenario.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Seconds idle CPU is read over, and groups commit for.
    #[arg(long, default_value_t = 10.0)]
    window_seconds: f64,
    /// Where every run's numbers are saved.
    #[arg(long, default_value = "target/bench/results-scale.json")]
    results: PathBuf,
    /// The document whose marked scale section receives the tables.
    #[arg(long)]
    doc: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CompareArgs {
    #[command(flatten)]
    programs: Programs,
    /// The script that formats and runs Apache Kafka.
    #[arg(long, default_value = "scripts/kafka.sh")]
    kafka_script: PathBuf,
    /// Start this many brokers of each system per run (at least 3) instead of one: topics
    /// with replication factor 3 and min.insync.replicas=2, every producer row acks=all.
    #[arg(long, value_parser = clap::value_parser!(u16).range(3..=9))]
    cluster: Option<u16>,
    /// Broker starts per broker and phase; the tables report medians.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Records per 100-byte producer row.
    #[arg(long, default_value_t = 3_000_000)]
    records_100b: u64,
    /// Records per 1 KiB producer row.
    #[arg(long, default_value_t = 1_000_000)]
    records_1k: u64,
    /// 1 KiB records each catch-up reads.
    #[arg(long, default_value_t = 1_000_000)]
    records_catch_up: u64,
    /// Length of each latency run.
    #[arg(long, default_value_t = 20.0)]
    latency_seconds: f64,
    /// The records/s the latency cases run a fraction of (a half, a tenth); default: Apache
    /// Kafka's median maximum on the 1 KiB, acks=1, 1-partition producer row.
    #[arg(long)]
    latency_reference_rate: Option<f64>,
    /// Transactions only (issue 15) instead of the producer matrix: a transactional producer
    /// committing every 100 and every 1,000 records (1 KiB, 16 partitions), then a
    /// read_committed consumer's end-to-end latency behind a fixed-rate transactional producer
    /// (100 records per transaction); writes the Transactions section of --doc.
    #[arg(long)]
    transactions: bool,
    /// With --transactions: transactions per transactional producer row (of 100 and of 1,000
    /// records each).
    #[arg(long, default_value_t = 150)]
    transactions_per_case: u64,
    /// With --transactions: records/s of the read_committed latency case (both systems must
    /// sustain it with 100-record transactions committed one at a time).
    #[arg(long, default_value_t = 250.0)]
    transaction_latency_rate: f64,
    /// Where every run's numbers are saved [default: target/bench/results.json, with
    /// --cluster N target/bench/results-cluster-N.json, with --transactions
    /// target/bench/results-transactions[-cluster-N].json].
    #[arg(long)]
    results: Option<PathBuf>,
    /// The document whose marked section receives the tables.
    #[arg(long)]
    doc: Option<PathBuf>,
    /// How the report names the Weir build (e.g. a commit).
    #[arg(long, default_value = "(unlabelled build)")]
    weir_version: String,
    #[arg(long, env = "KAFKA_VERSION", default_value = "4.3.1")]
    kafka_version: String,
    /// The heap Kafka runs with, as the report states it (scripts/kafka.sh sets it).
    #[arg(
        long,
        env = "KAFKA_HEAP_OPTS",
        default_value = "-Xmx1g -Xms1g",
        allow_hyphen_values = true
    )]
    kafka_heap: String,
}

/// One case against a broker that is already running.
#[derive(Debug, Args)]
struct OneCase {
    /// The broker, or a cluster's brokers comma-separated.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Replicas of the topics created (a cluster's bootstrap is needed above 1).
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// The topics' min.insync.replicas.
    #[arg(long, default_value_t = 1)]
    min_insync_replicas: i32,
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    #[arg(long, value_enum, default_value = "1")]
    acks: Acks,
    #[arg(long, value_enum, default_value = "none")]
    compression: Compression,
    /// Repetitions; the median is printed last.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// The client that produces (and, for `consume`, catches up).
    #[arg(long, value_enum, default_value = "librdkafka")]
    client: Client,
}

impl OneCase {
    fn produce_case(&self) -> ProduceCase {
        ProduceCase {
            record_size: self.record_size,
            acks: self.acks,
            compression: self.compression,
            partitions: self.partitions,
            records: self.records,
        }
    }

    fn topology(&self) -> Topology {
        Topology {
            // Only topic settings matter against brokers this command did not start.
            brokers: self.replication_factor.max(1) as usize,
            replication_factor: self.replication_factor,
            min_insync_replicas: self.min_insync_replicas,
        }
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Compare(args) => {
            let command = std::env::args()
                .map(|arg| shell_quoted(&arg))
                .collect::<Vec<_>>()
                .join(" ");
            let sizes = PlanSizes {
                records_100b: args.records_100b,
                records_1k: args.records_1k,
                records_catch_up: args.records_catch_up,
                latency_seconds: args.latency_seconds,
            };
            let topology = args.cluster.map_or(Topology::SINGLE_NODE, |brokers| {
                Topology::cluster(brokers.into())
            });
            let cluster_suffix = args
                .cluster
                .map_or(String::new(), |brokers| format!("-cluster-{brokers}"));
            let (plan, default_results) = if args.transactions {
                let sizes = TransactionSizes {
                    transactions: args.transactions_per_case,
                    latency_rate: args.transaction_latency_rate,
                    latency_seconds: args.latency_seconds,
                };
                (
                    Plan::transactions(&sizes, topology),
                    format!("target/bench/results-transactions{cluster_suffix}.json"),
                )
            } else if args.cluster.is_some() {
                (
                    Plan::cluster(&sizes, topology),
                    format!("target/bench/results{cluster_suffix}.json"),
                )
            } else {
                (Plan::full(&sizes), "target/bench/results.json".to_string())
            };
            let options = CompareOptions {
                launcher: Launcher {
                    weir_broker: args.programs.weir_broker,
                    kafka_script: args.kafka_script,
                    work_dir: args.programs.work_dir,
                },
                plan,
                rounds: args.rounds,
                latency_reference_rate: args.latency_reference_rate,
                results_path: args.results.unwrap_or_else(|| default_results.into()),
                doc_path: args.doc,
                weir_version: args.weir_version,
                kafka_version: args.kafka_version,
                kafka_heap: args.kafka_heap,
                command,
            };
            let results = compare::run(options)?;
            println!("{}", compare::render(&results));
        }
        Command::Failover(args) => failover(args)?,
        Command::Scale(args) => scale(args)?,
        Command::Join(args) => join(args)?,
        Command::Share(args) => share(args)?,
        Command::Tls(args) => tls(args)?,
        Command::Cpu(args) => cpu(args)?,
        Command::FailoverReport { results, doc } => failover_report(&results, doc.as_deref())?,
        Command::Smoke(args) => smoke::run(&Launcher {
            weir_broker: args.programs.weir_broker,
            kafka_script: PathBuf::from("scripts/kafka.sh"),
            work_dir: args.programs.work_dir,
        })?,
        Command::Report { results, doc } => {
            let results = compare::load(&results)?;
            compare::write_doc(&results, &doc)?;
            println!("{}", compare::render(&results));
        }
        Command::Produce { case: one, topic } => {
            let case = one.produce_case();
            let topology = one.topology();
            let payload = Payload::new(case.record_size);
            let mut rates = Vec::new();
            for run in 0..one.runs {
                let topic = match (&topic, run) {
                    (Some(name), 0) => name.clone(),
                    (Some(name), run) => format!("{name}-{run}"),
                    (None, _) => unique_topic(&case.key()),
                };
                let t = match one.client {
                    Client::Librdkafka => {
                        produce::run(&one.bootstrap, &topic, &case, &topology, &payload)?
                    }
                    Client::Wire => {
                        wire_client::run(&one.bootstrap, &topic, &case, &topology, &payload)?
                    }
                };
                println!(
                    "run {run}: {} records in {:.2}s = {:.0} records/s, {:.1} MB/s",
                    t.records,
                    t.seconds,
                    t.records_per_second(),
                    t.megabytes_per_second()
                );
                rates.push(t.records_per_second());
            }
            print_median(&rates, case.record_size);
        }
        Command::Consume {
            case: one,
            existing_topic,
        } => {
            let case = one.produce_case();
            let topology = one.topology();
            let payload = Payload::new(case.record_size);
            let mut rates = Vec::new();
            for run in 0..one.runs {
                let topic = match &existing_topic {
                    Some(topic) => topic.clone(),
                    None => {
                        let topic = unique_topic(&case.key());
                        produce::run(&one.bootstrap, &topic, &case, &topology, &payload)?;
                        topic
                    }
                };
                let (partitions, records) = (case.partitions, case.records);
                let t = match one.client {
                    Client::Librdkafka => {
                        consume::catch_up(&one.bootstrap, &topic, partitions, records)?
                    }
                    Client::Wire => wire_client::catch_up(
                        &one.bootstrap,
                        &topic,
                        partitions,
                        records,
                        case.record_size,
                    )?,
                };
                println!(
                    "run {run}: read {} records in {:.2}s = {:.0} records/s, {:.1} MB/s",
                    t.records,
                    t.seconds,
                    t.records_per_second(),
                    t.megabytes_per_second()
                );
                rates.push(t.records_per_second());
            }
            print_median(&rates, case.record_size);
        }
        Command::Latency {
            case: one,
            rate,
            seconds,
            warmup,
        } => {
            let case = LatencyCase {
                record_size: one.record_size,
                acks: one.acks,
                compression: one.compression,
                partitions: one.partitions,
                rate_fraction: 1.0,
                seconds,
                warmup_seconds: warmup,
            };
            let topology = one.topology();
            let payload = Payload::new(case.record_size);
            for run in 0..one.runs {
                let topic = unique_topic(&case.key());
                let l = latency::run(&one.bootstrap, &topic, &case, &topology, rate, &payload)
                    .with_context(|| format!("latency run {run}"))?;
                println!(
                    "run {run}: sent {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                    l.achieved_rate, l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
                );
            }
        }
    }
    Ok(())
}

fn failover(args: FailoverArgs) -> anyhow::Result<()> {
    use weir_bench::failover::{self, FailoverOptions, FailoverResults, Fault, Settings};
    use weir_bench::results::BrokerKind;
    let systems = if args.systems.is_empty() {
        vec![BrokerKind::Weir, BrokerKind::Kafka]
    } else {
        args.systems
            .iter()
            .map(|s| match s.as_str() {
                "weir" => BrokerKind::Weir,
                _ => BrokerKind::Kafka,
            })
            .collect()
    };
    let faults = if args.faults.is_empty() {
        Fault::ALL.to_vec()
    } else {
        args.faults
            .iter()
            .map(|name| {
                Fault::ALL
                    .into_iter()
                    .find(|f| f.cli_name() == name)
                    .with_context(|| format!("unknown fault {name}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let machine = weir_bench::machine::describe();
    let mut results = FailoverResults {
        machine: format!(
            "{}, {} cores, {:.0} GiB",
            machine.cpu_model, machine.cores, machine.memory_gib
        ),
        weir_version: args.weir_version,
        kafka_version: args.kafka_version,
        weir_build: args.weir_build,
        settings: Settings::default(),
        repetitions: args.repetitions,
        command: std::env::args()
            .map(|arg| shell_quoted(&arg))
            .collect::<Vec<_>>()
            .join(" "),
        faults: Vec::new(),
    };
    if let Some(parent) = args.results.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let options = FailoverOptions {
        launcher: Launcher {
            weir_broker: args.programs.weir_broker,
            kafka_script: args.kafka_script,
            work_dir: args.programs.work_dir,
        },
        systems,
        faults,
        repetitions: args.repetitions,
        settings: results.settings.clone(),
        results_path: Some(args.results),
    };
    failover::run(&options, &mut results)?;
    write_failover(&results, args.doc.as_deref())
}

fn write_failover(
    results: &weir_bench::failover::FailoverResults,
    doc: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let section = weir_bench::failover::report::render(results);
    if let Some(doc) = doc {
        let text =
            std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
        std::fs::write(doc, weir_bench::failover::report::splice(&text, &section))
            .with_context(|| format!("writing {}", doc.display()))?;
    }
    println!("{section}");
    Ok(())
}

/// The failover results of `paths` as one: the first file's header, every file's faults.
fn failover_report(paths: &[PathBuf], doc: Option<&std::path::Path>) -> anyhow::Result<()> {
    let mut merged: Option<weir_bench::failover::FailoverResults> = None;
    for path in paths {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let results: weir_bench::failover::FailoverResults =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        match &mut merged {
            None => merged = Some(results),
            Some(m) => {
                anyhow::ensure!(
                    m.settings == results.settings,
                    "{} was measured with other settings",
                    path.display()
                );
                m.faults.extend(results.faults);
                m.command = format!("{}; {}", m.command, results.command);
            }
        }
    }
    write_failover(&merged.context("no results")?, doc)
}

/// Saves `results` as JSON and splices `section` between the markers of `doc`.
fn save_and_splice<T: serde::Serialize>(
    results: &T,
    path: &std::path::Path,
    doc: Option<&std::path::Path>,
    (begin, end): (&str, &str),
    section: &str,
) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(results)?)
        .with_context(|| format!("writing {}", path.display()))?;
    if let Some(doc) = doc {
        let text =
            std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
        let spliced = weir_bench::report::splice_or_append(&text, begin, end, section);
        std::fs::write(doc, spliced).with_context(|| format!("writing {}", doc.display()))?;
    }
    println!("{section}");
    Ok(())
}

fn join(args: JoinArgs) -> anyhow::Result<()> {
    use weir_bench::join;
    let options = join::JoinOptions {
        launcher: args.side_by_side.launcher(),
        systems: args.side_by_side.systems(),
        protocols: join::Protocol::ALL.to_vec(),
        rounds: args.rounds,
        partitions: args.partitions,
        members: args.members,
        rate: args.rate,
        timeout: std::time::Duration::from_secs(120),
    };
    let points = join::run(&options)?;
    let line = format!(
        "{} members on a {}-partition topic fed {} records/s, one more joins; medians of {} rounds.",
        args.members, args.partitions, args.rate, args.rounds
    );
    let section = join::render(&points, &line);
    save_and_splice(
        &points,
        &args.results,
        args.doc.as_deref(),
        (join::BEGIN_MARKER, join::END_MARKER),
        &section,
    )
}

fn share(args: ShareArgs) -> anyhow::Result<()> {
    use weir_bench::share;
    let options = share::ShareOptions {
        launcher: args.side_by_side.launcher(),
        systems: args.side_by_side.systems(),
        consumers: args.consumers.clone(),
        rounds: args.rounds,
        records: args.records,
        classpath: format!("{}/*", args.java_client_deps.display()),
        program: args.program,
    };
    let points = share::run(&options)?;
    let line = format!(
        "{} records of 100 bytes on a one-partition topic, every record accepted (explicit \
         acknowledgement, commitSync per poll); medians of {} rounds, a fresh single broker per \
         case. {}",
        args.records, args.rounds, args.conditions
    );
    let section = share::render(&points, line.trim_end());
    save_and_splice(
        &points,
        &args.results,
        args.doc.as_deref(),
        (share::BEGIN_MARKER, share::END_MARKER),
        &section,
    )
}

fn tls(args: TlsArgs) -> anyhow::Result<()> {
    use weir_bench::tls;
    let options = tls::TlsOptions {
        launcher: args.side_by_side.launcher(),
        systems: args.side_by_side.systems(),
        protocols: tls::Protocol::ALL.to_vec(),
        rounds: args.rounds,
        records: args.records,
        connectors: args.connectors,
        warmup: std::time::Duration::from_secs_f64(args.warmup_seconds),
        window: std::time::Duration::from_secs_f64(args.window_seconds),
    };
    let load_before = weir_bench::machine::load_average();
    let points = tls::run(&options)?;
    let loads: Vec<f64> = load_before
        .into_iter()
        .chain(points.iter().filter_map(|p| p.load_average))
        .collect();
    let load = match (
        loads.iter().copied().reduce(f64::min),
        loads.iter().copied().reduce(f64::max),
    ) {
        (Some(min), Some(max)) => format!(" Load average (1 min) {min:.1}–{max:.1} over the run."),
        _ => String::new(),
    };
    let line = format!(
        "{} records of 1 KiB per producer case; handshakes: {} connection loops, {} s counted \
         after {} s of warm-up; medians of {} rounds, a fresh single broker per case.{load} {}",
        args.records,
        args.connectors,
        args.window_seconds,
        args.warmup_seconds,
        args.rounds,
        args.conditions
    );
    let section = tls::render(&points, line.trim_end());
    save_and_splice(
        &points,
        &args.results,
        args.doc.as_deref(),
        (tls::BEGIN_MARKER, tls::END_MARKER),
        &section,
    )
}

fn cpu(args: CpuArgs) -> anyhow::Result<()> {
    use weir_bench::cpu_cost::{self, System};
    let mut systems = Vec::new();
    for kind in args.side_by_side.systems() {
        match kind {
            BrokerKind::Weir => {
                systems.push(System::weir());
                if let Some(baseline) = &args.baseline_broker {
                    systems.push(System::baseline(baseline.clone()));
                }
            }
            BrokerKind::Kafka => systems.push(System::kafka()),
        }
    }
    let options = cpu_cost::CpuOptions {
        launcher: args.side_by_side.launcher(),
        systems,
        rounds: args.rounds,
        records_100b: args.records_100b,
        catch_up_records: args.catch_up_records,
        catch_up_reads: args.catch_up_reads,
    };
    if let Some(parent) = args.results.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let save = |points: &[cpu_cost::CpuPoint]| -> anyhow::Result<()> {
        std::fs::write(&args.results, serde_json::to_string_pretty(points)?)
            .with_context(|| format!("writing {}", args.results.display()))
    };
    let load_before = weir_bench::machine::load_average();
    let points = cpu_cost::run(&options, save)?;
    let loads: Vec<f64> = load_before
        .into_iter()
        .chain(points.iter().filter_map(|p| p.load_average))
        .collect();
    let load = match (
        loads.iter().copied().reduce(f64::min),
        loads.iter().copied().reduce(f64::max),
    ) {
        (Some(min), Some(max)) => format!(" Load average (1 min) {min:.1}–{max:.1} over the run."),
        _ => String::new(),
    };
    let line = format!(
        "Broker CPU (utime + stime from /proc) per 10^9 payload bytes: {} records of 100 B \
         (acks=1, 1 partition, after an unmeasured tenth), and {} reads of {} records of 1 KiB \
         over 16 partitions (after one unmeasured read); medians of {} rounds, a fresh single \
         broker per round and system.{load} {}",
        args.records_100b, args.catch_up_reads, args.catch_up_records, args.rounds, args.conditions
    );
    let section = cpu_cost::render(&points, line.trim_end());
    save_and_splice(
        &points,
        &args.results,
        args.doc.as_deref(),
        (cpu_cost::BEGIN_MARKER, cpu_cost::END_MARKER),
        &section,
    )
}

fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let options = weir_bench::scale::ScaleOptions {
        launcher: args.side_by_side.launcher(),
        systems: args.side_by_side.systems(),
        partitions: args.partitions,
        cluster_partitions: args.rf3_partitions,
        connections: args.connections,
        groups: args.groups,
        rounds: args.rounds,
        records: args.records,
        window_seconds: args.window_seconds,
    };
    let results = weir_bench::scale::run(&options)?;
    // Each form renews only its own section: a run of one keeps the other's tables.
    if weir_bench::scale::measures_single_broker(&options) {
        let section = weir_bench::scale::render(&results);
        save_and_splice(
            &results,
            &args.results,
            args.doc.as_deref(),
            (
                weir_bench::scale::BEGIN_MARKER,
                weir_bench::scale::END_MARKER,
            ),
            &section,
        )?;
    }
    if !options.cluster_partitions.is_empty() {
        let section = weir_bench::scale::render_cluster(&results);
        save_and_splice(
            &results,
            &args.results,
            args.doc.as_deref(),
            (
                weir_bench::scale::CLUSTER_BEGIN_MARKER,
                weir_bench::scale::CLUSTER_END_MARKER,
            ),
            &section,
        )?;
    }
    Ok(())
}

/// `arg` as a POSIX shell would need it, so the command in the report can be pasted.
fn shell_quoted(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn unique_topic(prefix: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{prefix}-{millis}")
}

fn print_median(rates: &[f64], record_size: usize) {
    if let Some(median) = stats::median(rates) {
        println!(
            "median of {}: {median:.0} records/s, {:.1} MB/s",
            rates.len(),
            median * record_size as f64 / 1e6
        );
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{shell_quoted, Cli, Command};

    #[test]
    fn a_scale_run_can_skip_the_single_broker_scenarios() {
        let cli = Cli::try_parse_from([
            "weir-bench",
            "scale",
            "--rf3-partitions",
            "100,1000",
            "--partitions",
            "--connections",
            "--groups",
        ])
        .unwrap();
        let Command::Scale(args) = cli.command else {
            panic!("not scale: {cli:?}");
        };
        assert_eq!(args.rf3_partitions, [100, 1000]);
        assert!(
            args.partitions.is_empty() && args.connections.is_empty() && args.groups.is_empty()
        );
        let Command::Scale(defaults) = Cli::try_parse_from(["weir-bench", "scale"])
            .unwrap()
            .command
        else {
            panic!("not scale");
        };
        assert_eq!(defaults.partitions, [1000, 10000]);
        assert!(defaults.rf3_partitions.is_empty());
    }

    #[test]
    fn quotes_only_what_the_shell_would_split_or_expand() {
        assert_eq!(shell_quoted("--rounds"), "--rounds");
        assert_eq!(
            shell_quoted("--kafka-heap=-Xmx1g -Xms1g"),
            "'--kafka-heap=-Xmx1g -Xms1g'"
        );
        assert_eq!(shell_quoted("it's"), "'it'\\''s'");
        assert_eq!(shell_quoted(""), "''");
    }
}
