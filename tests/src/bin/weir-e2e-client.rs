//! A Kafka client for the real-node end-to-end test, run inside a pod (from a test image) so
//! that it reaches the brokers the way applications do: through the cluster's client Service
//! and the brokers' pod DNS names. librdkafka (the `rdkafka` crate) does the work.
//!
//! ```text
//! weir-e2e-client produce --bootstrap B --topic T --prefix P --count N [--rate R]
//!     idempotent, acks=all; record i has key "P-i" and value "P-i"; exits 0 once all N are
//!     acknowledged, printing `PRODUCED N`; exits 1 on the first failed delivery. With R, R
//!     records a second (a producer that spans something the test does meanwhile), printing
//!     `FIRST ACKNOWLEDGED` once the first record is.
//! weir-e2e-client consume --bootstrap B --topic T --group G --prefix P --count N [--timeout-secs S]
//!     reads from the earliest offset in group G until every "P-0".."P-(N-1)" was seen, checks
//!     that key = value and that offsets only grow within each partition, commits, and prints
//!     `CONSUMED N DUPLICATES D`; exits 1 when S seconds pass first (printing what is missing).
//! weir-e2e-client load --bootstrap B --topic T --group G [--rate R]
//!     a producer (R records a second) and a consumer group member that commits, forever: the
//!     traffic the monitoring test's dashboards are queried against.
//! ```
//!
//! Each takes `--sasl-username U --sasl-password-file F --ca-file C` to connect over SASL_SSL
//! with SCRAM-SHA-512 (the password as a `User`'s Secret holds it, the brokers checked
//! against the cluster CA bundle `C`).

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

struct Args {
    mode: String,
    flags: BTreeMap<String, String>,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut raw = std::env::args().skip(1);
        let mode = raw
            .next()
            .ok_or("usage: weir-e2e-client produce|consume|load --flag value ...")?;
        let mut flags = BTreeMap::new();
        while let Some(flag) = raw.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("expected a --flag, got {flag}"))?;
            let value = raw
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            flags.insert(name.to_string(), value);
        }
        Ok(Self { mode, flags })
    }

    fn get(&self, name: &str) -> Result<&str, String> {
        self.flags
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn number(&self, name: &str, default: Option<u64>) -> Result<u64, String> {
        match (self.flags.get(name), default) {
            (Some(v), _) => v
                .parse()
                .map_err(|_| format!("--{name}: not a number: {v}")),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("--{name} is required")),
        }
    }
}

/// The connection settings: the bootstrap servers, and SASL_SSL when a user is given.
fn connection(args: &Args) -> Result<ClientConfig, String> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", args.get("bootstrap")?);
    if let Some(user) = args.flags.get("sasl-username") {
        let file = args.get("sasl-password-file")?;
        let password = std::fs::read_to_string(file)
            .map_err(|e| format!("reading the password in {file}: {e}"))?;
        config
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanisms", "SCRAM-SHA-512")
            .set("sasl.username", user)
            .set("sasl.password", password.trim_end())
            .set("ssl.ca.location", args.get("ca-file")?);
    }
    Ok(config)
}

fn producer(args: &Args) -> Result<FutureProducer, String> {
    connection(args)?
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "120000")
        .set("linger.ms", "5")
        .create()
        .map_err(|e| format!("creating the producer: {e}"))
}

fn consumer(args: &Args, group: &str) -> Result<BaseConsumer, String> {
    connection(args)?
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .create()
        .map_err(|e| format!("creating the consumer: {e}"))
}

async fn produce(args: &Args) -> Result<(), String> {
    let topic = args.get("topic")?;
    let prefix = args.get("prefix")?;
    let count = args.number("count", None)?;
    let rate = args
        .flags
        .get("rate")
        .map(|_| args.number("rate", None))
        .transpose()?;
    let producer = producer(args)?;
    let mut pacing =
        rate.map(|r| tokio::time::interval(Duration::from_micros(1_000_000 / r.max(1))));
    let mut pending = Vec::with_capacity(count as usize);
    for i in 0..count {
        if let Some(interval) = pacing.as_mut() {
            interval.tick().await;
        }
        let payload = format!("{prefix}-{i}");
        let record = FutureRecord::to(topic).key(&payload).payload(&payload);
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| format!("enqueueing record {i}: {e}"))?;
        if i == 0 && rate.is_some() {
            match delivery.await {
                Ok(Ok(_)) => println!("FIRST ACKNOWLEDGED"),
                Ok(Err((e, _))) => return Err(format!("record 0 was not acknowledged: {e}")),
                Err(_) => return Err("record 0: delivery report lost".into()),
            }
            continue;
        }
        pending.push((i, delivery));
    }
    for (i, delivery) in pending {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(format!("record {i} was not acknowledged: {e}")),
            Err(_) => return Err(format!("record {i}: delivery report lost")),
        }
    }
    println!("PRODUCED {count}");
    Ok(())
}

fn consume(args: &Args) -> Result<(), String> {
    let topic = args.get("topic")?;
    let prefix = args.get("prefix")?;
    let count = args.number("count", None)?;
    let deadline = Instant::now() + Duration::from_secs(args.number("timeout-secs", Some(180))?);
    let consumer = consumer(args, args.get("group")?)?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| format!("subscribing: {e}"))?;
    let mut missing: BTreeSet<u64> = (0..count).collect();
    let mut duplicates = 0u64;
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    while !missing.is_empty() {
        if Instant::now() > deadline {
            let first: Vec<_> = missing.iter().take(10).collect();
            return Err(format!(
                "{} of {count} records never arrived (first: {first:?})",
                missing.len()
            ));
        }
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.map_err(|e| format!("consuming: {e}"))?;
        let partition = message.partition();
        if let Some(previous) = last_offset.insert(partition, message.offset()) {
            if message.offset() <= previous {
                return Err(format!(
                    "partition {partition}: offset {} after {previous}",
                    message.offset()
                ));
            }
        }
        let value = std::str::from_utf8(message.payload().unwrap_or_default())
            .map_err(|_| "a value that is not UTF-8".to_string())?;
        let key = std::str::from_utf8(message.key().unwrap_or_default()).unwrap_or_default();
        if key != value {
            return Err(format!("key {key:?} does not match value {value:?}"));
        }
        let Some(index) = value
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue; // another run's records
        };
        if !missing.remove(&index) && index < count {
            duplicates += 1;
        }
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .map_err(|e| format!("committing: {e}"))?;
    println!("CONSUMED {count} DUPLICATES {duplicates}");
    Ok(())
}

async fn load(args: &Args) -> Result<(), String> {
    let topic = args.get("topic")?.to_string();
    let rate = args.number("rate", Some(50))?.max(1);
    let producer = producer(args)?;
    let consumer = consumer(args, args.get("group")?)?;
    consumer
        .subscribe(&[&topic])
        .map_err(|e| format!("subscribing: {e}"))?;
    let consuming = std::thread::spawn(move || {
        let mut read = 0u64;
        loop {
            if let Some(Ok(_)) = consumer.poll(Duration::from_millis(200)) {
                read += 1;
                if read.is_multiple_of(100) {
                    let _ = consumer.commit_consumer_state(CommitMode::Async);
                    println!("CONSUMED {read}");
                }
            }
        }
    });
    let mut interval = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut sent = 0u64;
    loop {
        interval.tick().await;
        let payload = format!("load-{sent}");
        let record = FutureRecord::to(&topic).key(&payload).payload(&payload);
        if let Err((e, _)) = producer.send_result(record) {
            eprintln!("enqueueing: {e}");
        }
        sent += 1;
        if sent.is_multiple_of(500) {
            println!("PRODUCED {sent}");
        }
        if consuming.is_finished() {
            return Err("the consumer stopped".into());
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let result = match Args::parse() {
        Ok(args) => match args.mode.as_str() {
            "produce" => produce(&args).await,
            "consume" => consume(&args),
            "load" => load(&args).await,
            other => Err(format!("unknown mode {other}: produce, consume or load")),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir-e2e-client: {e}");
            ExitCode::FAILURE
        }
    }
}
