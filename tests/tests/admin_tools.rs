//! Apache Kafka's admin tools (kafka-tools 4.1.1) that read the cluster's state, run against
//! one broker and against a 3-broker cluster as an operator would: `kafka-log-dirs`
//! (LogDirsCommand), `kafka-features describe` (FeatureCommand), `kafka-metadata-quorum
//! describe` (MetadataQuorumCommand) and `kafka-acls --list` (AclCommand); and
//! DescribeUserScramCredentials through the raw client. Without java or the jars the tests say so and pass, unless
//! `WEIR_REQUIRE_JAVA=1` or `CI` is set (see [`weir_tests::kafka_tools`]).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use weir_tests::cluster::Cluster;
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::{clients, unique_topic, wait_until, Broker};

const TIMEOUT: Duration = Duration::from_secs(30);

/// One replica as `kafka-log-dirs --describe` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReplicaDir {
    log_dir: String,
    size: i64,
    offset_lag: i64,
    is_future: bool,
}

/// Runs `kafka-log-dirs --describe` for `brokers` and returns, per broker, its replicas by
/// `topic-partition` name; panics unless every log dir reports no error.
fn log_dirs(
    tools: &KafkaTools,
    bootstrap: &str,
    brokers: &[i32],
) -> BTreeMap<i32, BTreeMap<String, ReplicaDir>> {
    let list = brokers
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let stdout = tools.run_ok(
        "org.apache.kafka.tools.LogDirsCommand",
        &[
            "--describe",
            "--bootstrap-server",
            bootstrap,
            "--broker-list",
            &list,
        ],
    );
    let json = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in kafka-log-dirs' output:\n{stdout}"));
    let parsed: serde_json::Value = serde_json::from_str(json).expect("kafka-log-dirs JSON");
    let mut out = BTreeMap::new();
    for broker in parsed["brokers"].as_array().expect("brokers") {
        let id = broker["broker"].as_i64().expect("broker id") as i32;
        let dirs = broker["logDirs"].as_array().expect("logDirs");
        assert_eq!(dirs.len(), 1, "one log dir per Weir broker: {json}");
        let mut replicas = BTreeMap::new();
        for dir in dirs {
            assert!(dir["error"].is_null(), "log dir error: {json}");
            let log_dir = dir["logDir"].as_str().expect("logDir").to_string();
            for p in dir["partitions"].as_array().expect("partitions") {
                replicas.insert(
                    p["partition"].as_str().expect("partition").to_string(),
                    ReplicaDir {
                        log_dir: log_dir.clone(),
                        size: p["size"].as_i64().expect("size"),
                        offset_lag: p["offsetLag"].as_i64().expect("offsetLag"),
                        is_future: p["isFuture"].as_bool().expect("isFuture"),
                    },
                );
            }
        }
        out.insert(id, replicas);
    }
    out
}

/// Produces `count` records of `value_len` bytes to `topic`/`partition`.
async fn produce(producer: &FutureProducer, topic: &str, partition: i32, count: usize) {
    let value = vec![b'x'; 1000];
    for _ in 0..count {
        clients::produce_one(producer, topic, Some(partition), None, &value).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_log_dirs_describes_one_broker() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let broker = Broker::start_default();
    let topic = unique_topic("log-dirs");
    clients::create_topic(&broker, &topic, 2).await;
    let producer = clients::producer(&broker, &[]);
    produce(&producer, &topic, 0, 20).await;

    let dirs = log_dirs(&tools, &broker.bootstrap(), &[0]);
    let replicas = &dirs[&0];
    let p0 = &replicas[&format!("{topic}-0")];
    let p1 = &replicas[&format!("{topic}-1")];
    let data_dir = std::fs::canonicalize(broker.data_dir()).unwrap();
    assert_eq!(
        std::fs::canonicalize(&p0.log_dir).unwrap(),
        data_dir,
        "the broker's data dir"
    );
    // 20 records of 1000 bytes, plus batch and record headers.
    assert!(
        (20_000..40_000).contains(&p0.size),
        "size of {topic}-0: {}",
        p0.size
    );
    assert_eq!((p0.offset_lag, p0.is_future), (0, false));
    assert_eq!(
        (p1.size, p1.offset_lag),
        (0, 0),
        "nothing produced to {topic}-1"
    );
    // The size is what is on disk.
    let on_disk: u64 = std::fs::read_dir(broker.partition_dir(&topic, 0))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(p0.size as u64, on_disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_log_dirs_describes_every_replica_of_a_cluster() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let cluster = Cluster::start(3, &[]);
    let topic = unique_topic("log-dirs");
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    let new = NewTopic::new(&topic, 2, TopicReplication::Fixed(3));
    for r in admin
        .create_topics([&new], &clients::admin_options())
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    for p in 0..2 {
        cluster.wait_partition(&topic, p, TIMEOUT, "a full ISR", |v| {
            v.leader >= 0 && v.isr.len() == 3
        });
    }
    let producer: FutureProducer = cluster
        .client_config()
        .set("acks", "all")
        .create()
        .expect("producer");
    produce(&producer, &topic, 0, 20).await;

    // Followers copy the batches as the leader stored them: once caught up, every replica of
    // the partition has the same size.
    let bootstrap = cluster.bootstrap();
    let dirs = wait_until(TIMEOUT, "every replica of partition 0 caught up", || {
        let dirs = log_dirs(&tools, &bootstrap, &[0, 1, 2]);
        let sizes: Vec<i64> = dirs
            .values()
            .filter_map(|replicas| replicas.get(&format!("{topic}-0")).map(|r| r.size))
            .collect();
        (sizes.len() == 3 && sizes.iter().all(|s| *s == sizes[0])).then_some(dirs)
    });
    assert_eq!(dirs.len(), 3);
    for (broker, replicas) in &dirs {
        let p0 = &replicas[&format!("{topic}-0")];
        let p1 = &replicas[&format!("{topic}-1")];
        assert!(
            (20_000..40_000).contains(&p0.size),
            "broker {broker}: {p0:?}"
        );
        assert_eq!((p0.offset_lag, p0.is_future), (0, false), "broker {broker}");
        assert_eq!(p1.size, 0, "broker {broker}");
        let data_dir = std::fs::canonicalize(cluster.brokers[*broker as usize].data_dir()).unwrap();
        assert_eq!(std::fs::canonicalize(&p0.log_dir).unwrap(), data_dir);
    }
}

/// `kafka-features describe`'s line for each feature: name → its `Key: value` fields.
fn features(tools: &KafkaTools, bootstrap: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let stdout = tools.run_ok(
        "org.apache.kafka.tools.FeatureCommand",
        &["--bootstrap-server", bootstrap, "describe"],
    );
    stdout
        .lines()
        .filter(|l| l.starts_with("Feature:"))
        .map(|line| {
            let fields: BTreeMap<String, String> = line
                .split('\t')
                .filter_map(|f| f.split_once(": "))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            (fields["Feature"].clone(), fields)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_features_describes_the_finalized_features_and_cannot_change_them() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let broker = Broker::start_default();
    let described = features(&tools, &broker.bootstrap());
    let names: Vec<&str> = described.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "group.version",
            "kraft.version",
            "metadata.version",
            "transaction.version"
        ],
        "{described:?}"
    );
    let mv = &described["metadata.version"];
    assert_eq!(mv["SupportedMinVersion"], "4.1-IV1", "{mv:?}");
    assert_eq!(mv["SupportedMaxVersion"], "4.1-IV1", "{mv:?}");
    assert_eq!(mv["FinalizedVersionLevel"], "4.1-IV1", "{mv:?}");
    let epoch: i64 = mv["Epoch"].parse().expect("epoch");
    assert!(epoch > 0, "the applied metadata offset: {mv:?}");
    // The levels cannot change: asking for the one Weir has succeeds, any other says why not.
    let bootstrap = broker.bootstrap();
    let feature_command = |args: &[&str]| {
        let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
        all.extend_from_slice(args);
        tools.run("org.apache.kafka.tools.FeatureCommand", &all)
    };
    let same = feature_command(&["upgrade", "--feature", "kraft.version=1"]);
    assert!(same.success, "{same:?}");
    let downgrade = feature_command(&["downgrade", "--metadata", "4.0"]);
    let stdout = &downgrade.stdout;
    assert!(!downgrade.success, "{stdout}");
    assert!(
        stdout.contains("Could not downgrade metadata.version to 25")
            && stdout.contains("metadata.version at level 27 only"),
        "{stdout}"
    );
    let kraft = &described["kraft.version"];
    assert_eq!(
        (
            kraft["SupportedMinVersion"].as_str(),
            kraft["SupportedMaxVersion"].as_str(),
            kraft["FinalizedVersionLevel"].as_str()
        ),
        ("1", "1", "1"),
        "{kraft:?}"
    );
    // KIP-890's transactions version 2, with Kafka's supported range.
    let tv = &described["transaction.version"];
    assert_eq!(
        (
            tv["SupportedMinVersion"].as_str(),
            tv["SupportedMaxVersion"].as_str(),
            tv["FinalizedVersionLevel"].as_str()
        ),
        ("0", "2", "2"),
        "{tv:?}"
    );
}

/// `kafka-metadata-quorum describe --status`: its `Key: value` lines.
fn quorum_status(tools: &KafkaTools, bootstrap: &str) -> BTreeMap<String, String> {
    let stdout = tools.run_ok(
        "org.apache.kafka.tools.MetadataQuorumCommand",
        &["--bootstrap-server", bootstrap, "describe", "--status"],
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// One row of `kafka-metadata-quorum describe --replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QuorumRow {
    node_id: i32,
    log_end_offset: i64,
    lag: i64,
    last_fetch_ms: i64,
    last_caught_up_ms: i64,
    status: String,
}

fn quorum_replication(tools: &KafkaTools, bootstrap: &str) -> Vec<QuorumRow> {
    let stdout = tools.run_ok(
        "org.apache.kafka.tools.MetadataQuorumCommand",
        &["--bootstrap-server", bootstrap, "describe", "--replication"],
    );
    let mut lines = stdout.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NodeId",
            "DirectoryId",
            "LogEndOffset",
            "Lag",
            "LastFetchTimestamp",
            "LastCaughtUpTimestamp",
            "Status"
        ],
        "{stdout}"
    );
    let mut rows: Vec<QuorumRow> = lines
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| -> i64 { cols[i].parse().unwrap_or_else(|_| panic!("{l}")) };
            QuorumRow {
                node_id: n(0) as i32,
                log_end_offset: n(2),
                lag: n(3),
                last_fetch_ms: n(4),
                last_caught_up_ms: n(5),
                status: cols[6].to_string(),
            }
        })
        .collect();
    rows.sort_by_key(|r| r.node_id);
    rows
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_metadata_quorum_describes_a_lone_voter() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let started = now_ms();
    let broker = Broker::start_default();
    let status = quorum_status(&tools, &broker.bootstrap());
    assert_eq!(status["LeaderId"], "0", "{status:?}");
    assert!(
        status["LeaderEpoch"].parse::<i64>().unwrap() >= 1,
        "{status:?}"
    );
    assert!(
        status["HighWatermark"].parse::<i64>().unwrap() > 0,
        "{status:?}"
    );
    assert_eq!(status["MaxFollowerLag"], "0", "{status:?}");
    assert_eq!(status["CurrentObservers"], "[]", "{status:?}");
    let voters = &status["CurrentVoters"];
    assert!(voters.contains("\"id\": 0"), "{voters}");
    assert!(
        voters.contains(&format!("PLAINTEXT://{}", broker.bootstrap())),
        "{voters}"
    );
    let rows = quorum_replication(&tools, &broker.bootstrap());
    assert_eq!(rows.len(), 1, "{rows:?}");
    let leader = &rows[0];
    assert_eq!(
        (leader.node_id, leader.lag, leader.status.as_str()),
        (0, 0, "Leader")
    );
    assert!(leader.log_end_offset > 0, "{leader:?}");
    assert!(leader.last_fetch_ms >= started, "{leader:?}");
    assert!(leader.last_caught_up_ms >= started, "{leader:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_metadata_quorum_describes_three_voters_from_any_broker() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let started = now_ms();
    let cluster = Cluster::start(3, &[]);
    // Some metadata to replicate.
    let topic = unique_topic("quorum");
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    let new = NewTopic::new(&topic, 3, TopicReplication::Fixed(3));
    for r in admin
        .create_topics([&new], &clients::admin_options())
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    for broker in &cluster.brokers {
        let bootstrap = broker.bootstrap();
        // Every voter catches up with the leader (heartbeats keep them there).
        let rows = wait_until(TIMEOUT, "three voters caught up", || {
            let rows = quorum_replication(&tools, &bootstrap);
            (rows.len() == 3 && rows.iter().all(|r| r.lag == 0)).then_some(rows)
        });
        let status = quorum_status(&tools, &bootstrap);
        let leader: i32 = status["LeaderId"].parse().unwrap();
        assert!((0..3).contains(&leader), "{status:?}");
        assert!(
            status["LeaderEpoch"].parse::<i64>().unwrap() >= 1,
            "{status:?}"
        );
        let high_watermark: i64 = status["HighWatermark"].parse().unwrap();
        assert!(high_watermark > 0, "{status:?}");
        assert_eq!(status["CurrentObservers"], "[]", "{status:?}");
        for id in 0..3 {
            assert!(
                status["CurrentVoters"].contains(&format!("\"id\": {id}")),
                "{status:?}"
            );
        }
        let ids: Vec<i32> = rows.iter().map(|r| r.node_id).collect();
        assert_eq!(ids, [0, 1, 2]);
        for row in &rows {
            let expected = if row.node_id == leader {
                "Leader"
            } else {
                "Follower"
            };
            assert_eq!(row.status, expected, "{row:?}");
            assert!(row.log_end_offset >= high_watermark, "{row:?}");
            assert!(row.last_fetch_ms >= started, "{row:?}");
            assert!(row.last_caught_up_ms >= started, "{row:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_authorizer_kafka_acls_reports_security_disabled() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let broker = Broker::start_default();
    let output = tools.run(
        "org.apache.kafka.tools.AclCommand",
        &["--bootstrap-server", &broker.bootstrap(), "--list"],
    );
    assert!(
        output
            .stdout
            .contains("SecurityDisabledException: no authorizer is configured"),
        "kafka-acls --list: {output:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_user_scram_credentials_knows_no_users() {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use kafka_protocol::messages::DescribeUserScramCredentialsRequest;
    use kafka_protocol::protocol::StrBytes;

    let broker = Broker::start_default();
    let mut raw = weir_tests::raw::RawClient::connect(broker.kafka_addr());
    let all = raw
        .request(
            &DescribeUserScramCredentialsRequest::default().with_users(None),
            0,
        )
        .expect("DescribeUserScramCredentials");
    assert_eq!(all.error_code, 0);
    assert!(all.results.is_empty(), "{all:?}");
    let named = raw
        .request(
            &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                UserName::default().with_name(StrBytes::from_static_str("alice")),
            ])),
            0,
        )
        .expect("DescribeUserScramCredentials");
    assert_eq!(named.results.len(), 1);
    assert_eq!(
        named.results[0].error_code,
        ResponseError::ResourceNotFound.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_metadata_quorum_lists_brokers_that_do_not_vote_as_observers() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let cluster = Cluster::start_with_voters(3, 1, &[]);
    // Asked of an observer, which gets the answer from the active controller (node 0).
    let bootstrap = cluster.brokers[2].bootstrap();
    let rows = wait_until(TIMEOUT, "two observers caught up", || {
        let rows = quorum_replication(&tools, &bootstrap);
        (rows.len() == 3 && rows.iter().all(|r| r.lag == 0)).then_some(rows)
    });
    let statuses: Vec<(i32, &str)> = rows
        .iter()
        .map(|r| (r.node_id, r.status.as_str()))
        .collect();
    assert_eq!(statuses, [(0, "Leader"), (1, "Observer"), (2, "Observer")]);
    let status = quorum_status(&tools, &bootstrap);
    assert_eq!(status["LeaderId"], "0", "{status:?}");
    for id in [1, 2] {
        assert!(
            status["CurrentObservers"].contains(&format!("\"id\": {id}")),
            "{status:?}"
        );
    }
    assert!(!status["CurrentVoters"].contains("\"id\": 1"), "{status:?}");
}
