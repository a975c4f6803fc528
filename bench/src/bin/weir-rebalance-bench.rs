//! `weir-rebalance-bench`: how long a consumer group takes to rebalance when a third member
//! joins a stable two-member group.
//!
//! It starts nothing itself: point it at running brokers (`--brokers`). Each run uses a fresh
//! group on one topic: two librdkafka members subscribe and settle, then the clock starts as
//! the third member subscribes and stops once all three hold a stable assignment (every
//! partition owned by exactly one member, none of the three empty-handed). It prints every
//! run and the median.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use weir_bench::join::{stable, Member};

/// Rebalance time of a third member joining a two-member group.
#[derive(Debug, Parser)]
#[command(name = "weir-rebalance-bench", about)]
struct Args {
    /// Bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic the group subscribes to; created with --partitions if missing.
    #[arg(long, default_value = "weir-rebalance-bench")]
    topic: String,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Number of measured runs.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// `partition.assignment.strategy` of the members.
    #[arg(long, default_value = "range,roundrobin")]
    assignor: String,
    /// librdkafka `heartbeat.interval.ms` (members learn of a rebalance by heartbeat).
    #[arg(long, default_value_t = 3000)]
    heartbeat_interval_ms: u32,
    /// librdkafka `session.timeout.ms`.
    #[arg(long, default_value_t = 45000)]
    session_timeout_ms: u32,
    /// Give up on a run after this long.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

/// One member of `group`, configured as the arguments say.
fn member(args: &Args, group: &str) -> anyhow::Result<Member> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", &args.assignor)
        .set(
            "heartbeat.interval.ms",
            args.heartbeat_interval_ms.to_string(),
        )
        .set("session.timeout.ms", args.session_timeout_ms.to_string());
    Member::subscribe(&config, &args.topic).context("starting a member")
}

fn wait_stable(members: &[&Member], args: &Args, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    while !stable(members, args.partitions) {
        if Instant::now() >= deadline {
            bail!("{what}: no stable assignment within {}s", args.timeout_secs);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

async fn ensure_topic(args: &Args) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .create()
        .context("creating an admin client")?;
    let topic = NewTopic::new(&args.topic, args.partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .context("CreateTopics")?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating {name}: {code}"),
        }
    }
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.partitions < 3 || args.runs == 0 {
        bail!("need at least 3 partitions and 1 run");
    }
    ensure_topic(&args).await?;
    let mut times = Vec::with_capacity(args.runs);
    for run in 1..=args.runs {
        let group = format!("weir-rebalance-bench-{}-{run}", std::process::id());
        let first = member(&args, &group)?;
        let second = member(&args, &group)?;
        wait_stable(&[&first, &second], &args, "two members")?;
        let started = Instant::now();
        let third = member(&args, &group)?;
        wait_stable(&[&first, &second, &third], &args, "three members")?;
        let took = started.elapsed();
        println!(
            "run {run}: {:.1} ms (assignments {:?} {:?} {:?})",
            took.as_secs_f64() * 1000.0,
            first.assignment(),
            second.assignment(),
            third.assignment()
        );
        times.push(took);
    }
    println!(
        "median rebalance time, third member joining a two-member group ({} runs, {} partitions, heartbeat.interval.ms={}, {}): {:.1} ms",
        args.runs,
        args.partitions,
        args.heartbeat_interval_ms,
        args.assignor,
        median(times).as_secs_f64() * 1000.0
    );
    Ok(())
}
