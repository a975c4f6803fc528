//! A Kafka Streams application against Weir: Apache Kafka's own WordCountDemo (from the
//! `kafka-streams-examples` jar on Maven, run with `java`), at-least-once. It splits lines into
//! words, repartitions them by word through an internal topic and counts them in a RocksDB
//! store backed by a compacted changelog topic. Checked: exact counts; after a restart with its
//! local state wiped, it restores the counts from the changelog and goes on exactly; its
//! repartition topic is purged with DeleteRecords. `scripts/install-test-deps.sh` copies the
//! jars to `target/kafka-streams-deps`; without them (or without `java`) the test says so and
//! passes, unless `WEIR_REQUIRE_JAVA=1` or `CI` is set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_tests::cluster::send_all;
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::{clients, unique_topic, wait_until, Broker};

const INPUT: &str = "streams-plaintext-input";
const OUTPUT: &str = "streams-wordcount-output";
const TIMEOUT: Duration = Duration::from_secs(120);
const WORDS: &[&str] = &["weir", "kafka", "stream", "log", "raft", "broker", "offset"];

fn streams_classpath() -> Option<String> {
    KafkaTools::find_in("kafka-streams-deps", &["kafka-streams-examples-4.0.0.jar"])
        .map(|jars| jars.classpath().to_string())
}

/// The WordCountDemo process.
struct App {
    child: Option<Child>,
    log: PathBuf,
}

impl App {
    fn start(
        classpath: &str,
        bootstrap: &str,
        app_id: &str,
        state_dir: &Path,
        log: PathBuf,
    ) -> App {
        Self::start_with(classpath, bootstrap, app_id, state_dir, log, "")
    }

    /// [`App::start`] with more Kafka Streams properties (`key=value` lines).
    fn start_with(
        classpath: &str,
        bootstrap: &str,
        app_id: &str,
        state_dir: &Path,
        log: PathBuf,
        extra: &str,
    ) -> App {
        let properties = state_dir.with_extension("properties");
        std::fs::write(
            &properties,
            format!(
                "bootstrap.servers={bootstrap}\n\
                 application.id={app_id}\n\
                 state.dir={}\n\
                 commit.interval.ms=200\n\
                 repartition.purge.interval.ms=500\n{extra}",
                state_dir.display()
            ),
        )
        .unwrap();
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("java")
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .args(["-cp", classpath])
            .arg("org.apache.kafka.streams.examples.wordcount.WordCountDemo")
            .arg(&properties)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("starting WordCountDemo");
        App {
            child: Some(child),
            log,
        }
    }

    /// SIGTERM: the demo's shutdown hook closes Kafka Streams (commits, flushes the store).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Lines `from..to` of the input: a deterministic mix of [`WORDS`].
fn lines(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| {
            (0..1 + i % 4)
                .map(|j| WORDS[(i * 7 + j * 3) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn counts(lines: &[String]) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for word in lines.iter().flat_map(|l| l.split_whitespace()) {
        *counts.entry(word.to_string()).or_insert(0) += 1;
    }
    counts
}

/// Reads the output topic until the latest count of every word equals `expected`.
fn wait_for_counts(
    consumer: &BaseConsumer,
    latest: &mut BTreeMap<String, i64>,
    expected: &BTreeMap<String, i64>,
    app: &App,
) {
    wait_until(TIMEOUT, "the word counts", || {
        while let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let Ok(m) = m else { continue };
            let word = String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap();
            let value: [u8; 8] = m.payload().unwrap_or_default().try_into().expect("a long");
            latest.insert(word, i64::from_be_bytes(value));
        }
        (latest == expected
            || latest
                .iter()
                .any(|(w, c)| expected.get(w).is_none_or(|e| c > e)))
        .then_some(())
    });
    assert_eq!(latest, expected, "{}", app.log_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_is_exact_restores_from_its_changelog_and_purges_its_repartition_topic() {
    let Some(classpath) = streams_classpath() else {
        return;
    };
    let broker = Broker::start_default();
    clients::create_topic(&broker, INPUT, 2).await;
    clients::create_topic(&broker, OUTPUT, 2).await;
    let producer = clients::producer(&broker, &[]);
    let first = lines(0, 600);
    for (p, chunk) in first.chunks(300).enumerate() {
        assert_eq!(
            send_all(&producer, INPUT, p as i32, chunk).await.len(),
            chunk.len()
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let app_id = unique_topic("wordcount");
    let mut app = App::start(
        &classpath,
        &broker.bootstrap(),
        &app_id,
        &dir.path().join("state-1"),
        dir.path().join("app-1.log"),
    );
    let consumer: BaseConsumer = clients::consumer_config(&broker).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(OUTPUT, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut latest = BTreeMap::new();
    wait_for_counts(&consumer, &mut latest, &counts(&first), &app);

    // Its internal topics: a compacted changelog, and a repartition topic purged as consumed.
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    let internal: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| n.starts_with(&app_id))
        .collect();
    let repartition = internal
        .iter()
        .find(|n| n.ends_with("-repartition"))
        .unwrap_or_else(|| panic!("no repartition topic among {internal:?}"))
        .clone();
    assert!(
        internal.iter().any(|n| n.ends_with("-changelog")),
        "{internal:?}"
    );
    wait_until(
        TIMEOUT,
        "the repartition topic purged by DeleteRecords",
        || {
            (0..metadata
                .topics()
                .iter()
                .find(|t| t.name() == repartition)
                .map_or(0, |t| t.partitions().len() as i32))
                .any(|p| clients::watermarks(&broker, &repartition, p).0 > 0)
                .then_some(())
        },
    );

    // Stopped and restarted with its local state gone: it restores from the changelog.
    app.stop();
    let second = lines(600, 1_000);
    for (p, chunk) in second.chunks(200).enumerate() {
        assert_eq!(
            send_all(&producer, INPUT, p as i32, chunk).await.len(),
            chunk.len()
        );
    }
    let app = App::start(
        &classpath,
        &broker.bootstrap(),
        &app_id,
        &dir.path().join("state-2"),
        dir.path().join("app-2.log"),
    );
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    wait_for_counts(&consumer, &mut latest, &counts(&all), &app);
}

/// Exactly-once (`processing.guarantee=exactly_once_v2`) on three brokers, RF 3: the counts are
/// exact although brokers are SIGKILLed while the application runs (each in turn, so the
/// application's transaction coordinator and its partitions' leaders die mid-transaction),
/// and a `read_committed` reader never sees a count above the true one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_exactly_once_v2_is_exact_while_brokers_are_killed() {
    let Some(classpath) = streams_classpath() else {
        return;
    };
    let mut cluster =
        weir_tests::cluster::Cluster::start(3, &[("replica.lag.time.max.ms", "2000")]);
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        cluster.client_config().create().unwrap();
    let topics: Vec<_> = [INPUT, OUTPUT]
        .iter()
        .map(|t| rdkafka::admin::NewTopic::new(t, 2, rdkafka::admin::TopicReplication::Fixed(3)))
        .collect();
    let created = admin
        .create_topics(&topics, &clients::admin_options())
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: rdkafka::producer::FutureProducer = cluster
        .client_config()
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let batches: Vec<Vec<String>> = vec![lines(0, 400), lines(400, 800), lines(800, 1_200)];
    let dir = tempfile::tempdir().unwrap();
    let app_id = unique_topic("wordcount-eos");
    let app = App::start_with(
        &classpath,
        &cluster.bootstrap(),
        &app_id,
        &dir.path().join("state"),
        dir.path().join("app.log"),
        "processing.guarantee=exactly_once_v2\nreplication.factor=3\n",
    );
    let consumer: BaseConsumer = cluster
        .client_config()
        .set("group.id", unique_topic("eos-reader"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(OUTPUT, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut latest = BTreeMap::new();
    let mut sent: Vec<String> = Vec::new();
    for (round, batch) in batches.iter().enumerate() {
        if round > 0 {
            // Kill a broker while the application processes this batch.
            cluster.kill9(round);
        }
        for (p, chunk) in batch.chunks(batch.len() / 2).enumerate() {
            assert_eq!(
                send_all(&producer, INPUT, p as i32, chunk).await.len(),
                chunk.len()
            );
        }
        sent.extend(batch.iter().cloned());
        wait_for_counts(&consumer, &mut latest, &counts(&sent), &app);
        if round > 0 {
            cluster.restart(round);
        }
    }
    // It ran with transactions: their coordinators' topic exists.
    let metadata = consumer
        .fetch_metadata(Some("__transaction_state"), Duration::from_secs(10))
        .expect("metadata");
    assert!(
        metadata.topics()[0].error().is_none() && !metadata.topics()[0].partitions().is_empty(),
        "no __transaction_state: the application did not use transactions"
    );
}
