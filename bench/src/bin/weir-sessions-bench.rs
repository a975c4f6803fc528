//! `weir-sessions-bench`: what one consumer on many partitions costs, with and without fetch
//! sessions (KIP-227), Weir beside Apache Kafka in the same run.
//!
//! Per round and system (Weir with its default session cache, Weir with
//! `max.incremental.fetch.session.cache.slots=0`, Apache Kafka), a fresh single broker gets a
//! topic of `--partitions` partitions (RF 1); one Java consumer
//! (bench/java/ManyPartitionsConsumer.java: the Apache Kafka client, which fetches through
//! sessions whenever the broker grants one) is assigned all of them, and a librdkafka producer
//! trickles `--rate` 100-byte records per second round-robin over them. After a warm-up the
//! consumer measures for `--seconds`: the bytes it sent (fetch requests, nearly all of it),
//! its fetch count and each record's end-to-end latency; the broker's CPU time over the same
//! window comes from `/proc`. Prints every run, then medians and the ratio to Kafka.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use weir_bench::cases::Topology;
use weir_bench::client::{base_config, create_topic};
use weir_bench::process::Launcher;
use weir_bench::results::BrokerKind;
use weir_bench::stats::median;

#[derive(Debug, Parser)]
#[command(name = "weir-sessions-bench", about)]
struct Args {
    #[arg(long, default_value = "target/release/weir-broker")]
    weir_broker: PathBuf,
    #[arg(long, default_value = "scripts/kafka.sh")]
    kafka_script: PathBuf,
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    /// Rounds of each system; the table shows medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 1000)]
    partitions: i32,
    /// Records per second, spread round-robin over the partitions.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds polled before measuring.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

/// One system's setup.
#[derive(Debug, Clone, Copy)]
struct System {
    label: &'static str,
    kind: BrokerKind,
    slots: Option<u32>,
}

const SYSTEMS: [System; 3] = [
    System {
        label: "Weir, sessions",
        kind: BrokerKind::Weir,
        slots: None,
    },
    System {
        label: "Weir, slots=0",
        kind: BrokerKind::Weir,
        slots: Some(0),
    },
    System {
        label: "Apache Kafka",
        kind: BrokerKind::Kafka,
        slots: None,
    },
];

/// One measured run.
#[derive(Debug, Clone, Copy)]
struct Run {
    request_bytes_per_second: f64,
    fetches_per_second: f64,
    /// Request bytes per fetch: what sessions shrink, whatever the fetch rate.
    bytes_per_fetch: f64,
    cpu_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let launcher = Launcher {
        weir_broker: args.weir_broker.clone(),
        kafka_script: args.kafka_script.clone(),
        work_dir: args.work_dir.clone(),
    };
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); SYSTEMS.len()];
    for round in 0..args.rounds {
        for (i, system) in SYSTEMS.iter().enumerate() {
            let run = measure(&launcher, &args, system, round)
                .with_context(|| format!("{} round {round}", system.label))?;
            println!(
                "round {round} {}: {:.0} B/s fetch requests ({:.1} fetches/s, {:.0} B each), {:.3} CPU s/s, e2e p50 {:.0} ms p99 {:.0} ms",
                system.label,
                run.request_bytes_per_second,
                run.fetches_per_second,
                run.bytes_per_fetch,
                run.cpu_per_second,
                run.p50_ms,
                run.p99_ms
            );
            runs[i].push(run);
        }
    }
    print_table(&args, &runs);
    Ok(())
}

fn measure(launcher: &Launcher, args: &Args, system: &System, round: usize) -> anyhow::Result<Run> {
    let settings: Vec<(&str, String)> = system
        .slots
        .map(|s| vec![("max.incremental.fetch.session.cache.slots", s.to_string())])
        .unwrap_or_default();
    let label = format!(
        "sessions-{}-{round}",
        system.label.replace([',', ' ', '='], "-")
    );
    let brokers = launcher.start_with(system.kind, &label, &Topology::SINGLE_NODE, &settings)?;
    let bootstrap = brokers.bootstrap();
    let topic = "many-partitions";
    create_topic(&bootstrap, topic, args.partitions, &Topology::SINGLE_NODE)?;
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, stop, rate, partitions) =
            (bootstrap.clone(), stop.clone(), args.rate, args.partitions);
        std::thread::spawn(move || trickle(&bootstrap, topic, partitions, rate, &stop))
    };
    let deps = PathBuf::from("target/java-client-deps");
    let mut consumer = Command::new("java")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .args(["-cp", &format!("{}/*", deps.display())])
        .arg("bench/java/ManyPartitionsConsumer.java")
        .args([
            bootstrap.clone(),
            topic.to_string(),
            args.partitions.to_string(),
            args.warmup.to_string(),
            args.seconds.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting java (scripts/install-test-deps.sh installs the client jars)")?;
    let mut lines = BufReader::new(consumer.stdout.take().context("consumer stdout")?).lines();
    let mut cpu_start = None;
    let mut result = None;
    for line in lines.by_ref() {
        let line = line?;
        if line == "START" {
            cpu_start = Some((brokers.usage()?.cpu_seconds, Instant::now()));
        } else if let Some(rest) = line.strip_prefix("RESULT ") {
            let cpu_end = brokers.usage()?.cpu_seconds;
            result = Some((rest.to_string(), cpu_end));
            break;
        }
    }
    let _ = consumer.wait();
    stop.store(true, Ordering::Relaxed);
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    brokers.stop()?;
    let (Some((cpu0, started)), Some((rest, cpu1))) = (cpu_start, result) else {
        bail!("the consumer ended without a result");
    };
    let elapsed = started.elapsed().as_secs_f64().max(1.0);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|f| f.parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("consumer result {rest:?}"))?;
    let [bytes, fetches, _records, p50, p99] = fields[..] else {
        bail!("consumer result {rest:?}");
    };
    let seconds = args.seconds as f64;
    Ok(Run {
        request_bytes_per_second: bytes / seconds,
        fetches_per_second: fetches / seconds,
        bytes_per_fetch: bytes / fetches.max(1.0),
        cpu_per_second: (cpu1 - cpu0) / elapsed,
        p50_ms: p50,
        p99_ms: p99,
    })
}

/// Sends 100-byte records at `rate` per second round-robin over the partitions until `stop`.
fn trickle(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    rate: f64,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let producer: BaseProducer = base_config(bootstrap)
        .set("linger.ms", "0")
        .set("acks", "1")
        .create()?;
    let value = [b'x'; 100];
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = start + interval * sent as u32;
        let now = Instant::now();
        if due > now {
            producer.poll(due - now);
            continue;
        }
        let partition = (sent % partitions as u64) as i32;
        // A full queue waits for deliveries, then tries the same record again.
        if producer
            .send(
                BaseRecord::<(), [u8]>::to(topic)
                    .partition(partition)
                    .payload(&value),
            )
            .is_ok()
        {
            sent += 1;
        } else {
            producer.poll(Duration::from_millis(10));
        }
    }
    // The measurement is over: records still queued on a loaded machine do not matter.
    if let Err(e) = producer.flush(Duration::from_secs(10)) {
        eprintln!("trickle producer: {e} (ignored: the window was already measured)");
    }
    Ok(())
}

fn print_table(args: &Args, runs: &[Vec<Run>]) {
    let med = |i: usize, f: fn(&Run) -> f64| {
        median(&runs[i].iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let kafka = SYSTEMS.len() - 1;
    println!(
        "\nOne consumer on {} partitions, {} records/s of 100 B; medians of {} rounds ({} s each)\n",
        args.partitions, args.rate, args.rounds, args.seconds
    );
    println!("| | fetch request bytes/s | fetches/s | bytes per fetch | broker CPU s/s | e2e p50 ms | e2e p99 ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let columns: [fn(&Run) -> f64; 6] = [
        |r| r.request_bytes_per_second,
        |r| r.fetches_per_second,
        |r| r.bytes_per_fetch,
        |r| r.cpu_per_second,
        |r| r.p50_ms,
        |r| r.p99_ms,
    ];
    for (i, system) in SYSTEMS.iter().enumerate() {
        let cells: Vec<String> = columns
            .iter()
            .map(|f| {
                let (value, reference) = (med(i, *f), med(kafka, *f));
                if i == kafka {
                    format!("{value:.3}")
                } else {
                    format!("{value:.3} ({:.2}x)", value / reference)
                }
            })
            .collect();
        println!("| {} | {} |", system.label, cells.join(" | "));
    }
}
