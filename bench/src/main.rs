//! `weir-bench`: drives a Kafka-compatible broker with librdkafka and prints what it measured.
//!
//! This first cut measures producer throughput: N records of a fixed size, as fast as one
//! librdkafka producer sends them, waiting for every delivery report. The side-by-side
//! harness against Apache Kafka (latency, consumer catch-up, RSS, CPU) builds on it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts delivery reports, so a run that lost records says so instead of reporting speed.
#[derive(Debug, Default)]
struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Producer throughput against one broker.
#[derive(Debug, Parser)]
#[command(name = "weir-bench", about)]
struct Args {
    /// Bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic to produce to; created (or re-created) with --partitions.
    #[arg(long, default_value = "weir-bench")]
    topic: String,
    /// Number of partitions of the topic.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Records to send per run.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Producer acks: 0, 1 or all.
    #[arg(long, default_value = "1")]
    acks: String,
    /// Compression codec: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let mut results = Vec::new();
    for run in 0..args.runs {
        let topic = format!("{}-{run}", args.topic);
        rt.block_on(create_topic(&args.brokers, &topic, args.partitions))?;
        let (elapsed, sent) = produce(&args, &topic)?;
        let secs = elapsed.as_secs_f64();
        let rps = sent as f64 / secs;
        let mbps = sent as f64 * args.record_size as f64 / secs / 1_000_000.0;
        println!("run {run}: {sent} records in {secs:.2}s = {rps:.0} records/s, {mbps:.1} MB/s");
        results.push((rps, mbps));
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (rps, mbps) = results[results.len() / 2];
    println!();
    println!(
        "| records | size | acks | compression | partitions | records/s (median) | MB/s (median) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {} | {} B | {} | {} | {} | {rps:.0} | {mbps:.1} |",
        args.records, args.record_size, args.acks, args.compression, args.partitions
    );
    Ok(())
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating admin client")?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let _ = admin.delete_topics(&[topic], &opts).await;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &opts,
        )
        .await?;
    for r in results {
        if let Err((name, code)) = r {
            bail!("creating topic {name}: {code}");
        }
    }
    Ok(())
}

fn produce(args: &Args, topic: &str) -> anyhow::Result<(Duration, u64)> {
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("acks", &args.acks)
        .set("compression.codec", &args.compression)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("enable.idempotence", "false")
        .create_with_context(Deliveries::default())
        .context("creating producer")?;
    // Values differ per record only in their first bytes, which is enough to keep codecs honest
    // without generating random data on the hot loop.
    let mut value = vec![b'x'; args.record_size];
    let start = Instant::now();
    for i in 0..args.records {
        let stamp = i.to_be_bytes();
        let n = stamp.len().min(value.len());
        value[..n].copy_from_slice(&stamp[..n]);
        let mut record = BaseRecord::<(), [u8]>::to(topic).payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("send failed: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let elapsed = start.elapsed();
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if producer.in_flight_count() != 0 || failed != 0 {
        bail!(
            "{} records still in flight, {failed} failed delivery",
            producer.in_flight_count()
        );
    }
    Ok((elapsed, args.records))
}
