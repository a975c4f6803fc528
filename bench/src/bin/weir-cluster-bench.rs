//! Replicated-cluster numbers for the issue notes, measured on real processes:
//!
//! - **failover**: a three-broker cluster (release `weir-broker`, fresh data dirs), a topic with
//!   RF 3 and `min.insync.replicas=2`, an idempotent `acks=all` producer sending one record at
//!   a time. The partition leader is SIGKILLed; the failover time is from the kill to the first
//!   acknowledgement of a record sent after it. The killed broker is restarted and the ISR
//!   allowed to fill before the next run.
//! - **throughput**: on the same cluster, producer throughput to an RF 3 topic with
//!   `acks=all` against an RF 1 topic with `acks=1`, alternating runs.
//!
//! Prints a table of every run and the medians. Nothing here is a test: no threshold fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};

#[derive(Debug, Parser)]
#[command(about = "Failover time and replicated throughput of a local three-broker Weir cluster")]
struct Args {
    /// The weir-broker binary (a release build).
    #[arg(long, default_value = "target/release/weir-broker")]
    broker: PathBuf,
    /// Failover runs.
    #[arg(long, default_value_t = 5)]
    failover_runs: usize,
    /// Throughput runs per configuration.
    #[arg(long, default_value_t = 3)]
    throughput_runs: usize,
    /// Records per throughput run.
    #[arg(long, default_value_t = 300_000)]
    records: usize,
    /// Record size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Broker settings (`key=value`), e.g. broker.session.timeout.ms=2000; Kafka's defaults
    /// otherwise.
    #[arg(long = "set")]
    sets: Vec<String>,
}

struct Node {
    id: usize,
    kafka: u16,
    rpc: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Cluster {
    broker: PathBuf,
    nodes: Vec<Node>,
    voters: String,
    sets: Vec<String>,
}

impl Cluster {
    fn start(broker: PathBuf, sets: Vec<String>) -> Result<Cluster> {
        let mut nodes = Vec::new();
        for id in 0..3 {
            nodes.push(Node {
                id,
                kafka: free_port()?,
                rpc: free_port()?,
                dir: tempfile::tempdir()?,
                child: None,
            });
        }
        let voters = nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.rpc))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            broker,
            nodes,
            voters,
            sets,
        };
        for i in 0..3 {
            cluster.spawn(i)?;
        }
        for i in 0..3 {
            cluster.wait_ready(i)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let n = &mut self.nodes[i];
        let mut cmd = Command::new(&self.broker);
        cmd.arg("--node-id")
            .arg(n.id.to_string())
            .arg("--data-dir")
            .arg(n.dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", n.kafka))
            .arg("--metrics-listen")
            .arg("127.0.0.1:0")
            .arg("--rpc-listen")
            .arg(format!("127.0.0.1:{}", n.rpc))
            .arg("--voters")
            .arg(&self.voters)
            .env("WEIR_LOG", "warn,openraft=off");
        for s in &self.sets {
            cmd.arg("--set").arg(s);
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.broker.display()))?;
        n.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self, i: usize) -> Result<()> {
        let child = self.nodes[i].child.as_mut().context("not running")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next()
            .context("broker exited before it was ready")??;
        if !line.starts_with("weir-broker ready") {
            bail!("unexpected first line {line:?}");
        }
        // Keep draining stdout so the broker never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Ok(())
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self, i: usize) -> Result<()> {
        self.spawn(i)?;
        self.wait_ready(i)
    }

    fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| format!("127.0.0.1:{}", n.kafka))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("broker.address.family", "v4")
            .set("topic.metadata.refresh.interval.ms", "200");
        c
    }

    /// (leader, isr size) of partition 0 of `topic`.
    fn leader(&self, topic: &str) -> Result<(i32, usize)> {
        let p: BaseProducer = self.config().create()?;
        let md = p
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let t = md.topics().first().context("no topic")?;
        let part = t.partitions().first().context("no partition")?;
        Ok((part.leader(), part.isr().len()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
    }
}

async fn create(cluster: &Cluster, topic: &str, rf: i32, min_isr: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = cluster.config().create()?;
    let t =
        NewTopic::new(topic, 1, TopicReplication::Fixed(rf)).set("min.insync.replicas", min_isr);
    for r in admin.create_topics([&t], &AdminOptions::new()).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn failover_run(cluster: &mut Cluster, topic: &str) -> Result<Duration> {
    let mut config = cluster.config();
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "120000")
        .set("retry.backoff.ms", "20")
        .set("retry.backoff.max.ms", "100");
    let producer: FutureProducer = config.create()?;
    let payload = vec![b'x'; 100];
    // Warm: the producer knows the leader and has a producer id.
    for _ in 0..20 {
        send(&producer, topic, &payload).await?;
    }
    let (leader, _) = cluster.leader(topic)?;
    let victim = usize::try_from(leader).context("no leader")?;
    let killed_at = Instant::now();
    cluster.kill9(victim);
    // One record at a time: the first acknowledgement of a record sent after the kill.
    loop {
        let sent_at = Instant::now();
        send(&producer, topic, &payload).await?;
        if sent_at >= killed_at {
            break;
        }
    }
    let failover = killed_at.elapsed();
    cluster.restart(victim)?;
    wait_until(Duration::from_secs(120), || {
        cluster.leader(topic).ok().filter(|(_, isr)| *isr == 3)
    })?;
    Ok(failover)
}

async fn send(producer: &FutureProducer, topic: &str, payload: &[u8]) -> Result<()> {
    producer
        .send(
            FutureRecord::<(), [u8]>::to(topic)
                .partition(0)
                .payload(payload),
            Duration::from_secs(120),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
    Ok(())
}

async fn throughput_run(cluster: &Cluster, topic: &str, acks: &str, args: &Args) -> Result<f64> {
    let mut config = cluster.config();
    config
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000");
    let producer: FutureProducer = config.create()?;
    let payload = vec![b'y'; args.record_size];
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for _ in 0..args.records {
        let f = producer
            .send_result(
                FutureRecord::<(), [u8]>::to(topic)
                    .partition(0)
                    .payload(&payload),
            )
            .map_err(|(e, _)| anyhow::anyhow!("enqueue: {e}"))?;
        pending.push_back(f);
        if pending.len() >= 100_000 {
            if let Some(f) = pending.pop_front() {
                f.await?.map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
            }
        }
    }
    for f in pending {
        f.await?.map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(args.records as f64 / started.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut cluster = Cluster::start(args.broker.clone(), args.sets.clone())?;
    let settings: BTreeMap<&str, &str> =
        args.sets.iter().filter_map(|s| s.split_once('=')).collect();
    println!("# three brokers on loopback, settings {settings:?} (Kafka defaults otherwise)");

    create(&cluster, "failover", 3, "2").await?;
    wait_until(Duration::from_secs(30), || {
        cluster
            .leader("failover")
            .ok()
            .filter(|(l, isr)| *l >= 0 && *isr == 3)
    })?;
    let mut failovers = Vec::new();
    println!("\n| failover run | SIGKILL of the leader → next acks=all ack (ms) |\n|---|---|");
    for run in 1..=args.failover_runs {
        let d = failover_run(&mut cluster, "failover").await?;
        println!("| {run} | {:.0} |", d.as_secs_f64() * 1000.0);
        failovers.push(d.as_secs_f64() * 1000.0);
    }
    println!("| median | {:.0} |", median(&mut failovers));

    create(&cluster, "rf3", 3, "2").await?;
    create(&cluster, "rf1", 1, "1").await?;
    wait_until(Duration::from_secs(30), || {
        cluster
            .leader("rf3")
            .ok()
            .filter(|(l, isr)| *l >= 0 && *isr == 3)
    })?;
    let (mut rf3, mut rf1) = (Vec::new(), Vec::new());
    println!(
        "\n| throughput run | RF 3 acks=all (records/s) | RF 1 acks=1 (records/s) |\n|---|---|---|"
    );
    for run in 1..=args.throughput_runs {
        let a = throughput_run(&cluster, "rf3", "all", &args).await?;
        let b = throughput_run(&cluster, "rf1", "1", &args).await?;
        println!("| {run} | {a:.0} | {b:.0} |");
        rf3.push(a);
        rf1.push(b);
    }
    let (a, b) = (median(&mut rf3), median(&mut rf1));
    let mb = |r: f64| r * args.record_size as f64 / 1e6;
    println!(
        "| median | {a:.0} ({:.0} MB/s) | {b:.0} ({:.0} MB/s) |\n\nRF 3 acks=all / RF 1 acks=1 = {:.2}",
        mb(a),
        mb(b),
        a / b
    );
    Ok(())
}
