//! Apache Kafka's admin tools against Weir, run as an operator would: `kafka-delete-records`,
//! `kafka-configs --entity-type brokers` (per broker and cluster-wide) and
//! `kafka-reassign-partitions` (generate, execute with `--throttle`, verify, which removes the
//! throttles), on one broker and on a three-broker cluster.

use std::time::Duration;

use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use weir_tests::cluster::{send_all, Cluster};
use weir_tests::http::{get, parse_prometheus};
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::{clients, unique_topic, wait_until, Broker, BrokerOptions};

const DELETE_RECORDS: &str = "org.apache.kafka.tools.DeleteRecordsCommand";
const CONFIGS: &str = "kafka.admin.ConfigCommand";
const REASSIGN: &str = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";
const TIMEOUT: Duration = Duration::from_secs(60);

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("writing a tool's input file");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_delete_records_and_kafka_configs_on_brokers() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let broker = Broker::start(BrokerOptions::default().set("log.retention.ms", 604_800_000));
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("tools-delete");
    clients::create_topic(&broker, &topic, 1).await;
    let producer = clients::producer(&broker, &[]);
    let values: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    assert_eq!(send_all(&producer, &topic, 0, &values).await.len(), 50);

    // kafka-delete-records --offset-json-file
    let dir = tempfile::tempdir().unwrap();
    let offsets = write_file(
        &dir,
        "offsets.json",
        &format!(
            r#"{{"partitions":[{{"topic":"{topic}","partition":0,"offset":30}}],"version":1}}"#
        ),
    );
    let out = tools.run_ok(
        DELETE_RECORDS,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--offset-json-file",
            &offsets,
        ],
    );
    assert!(
        out.contains(&format!("partition: {topic}-0\tlow_watermark: 30")),
        "{out}"
    );
    assert_eq!(clients::watermarks(&broker, &topic, 0), (30, 50));

    // kafka-configs --entity-default: a cluster-wide dynamic setting.
    let brokers = ["--bootstrap-server", &bootstrap, "--entity-type", "brokers"];
    let out = tools.run_ok(
        CONFIGS,
        &[
            &brokers[..],
            &[
                "--entity-default",
                "--alter",
                "--add-config",
                "log.retention.ms=3600000",
            ],
        ]
        .concat(),
    );
    assert!(
        out.contains("Completed updating default config for brokers"),
        "{out}"
    );
    let out = tools.run_ok(
        CONFIGS,
        &[&brokers[..], &["--entity-default", "--describe"]].concat(),
    );
    assert!(out.contains("log.retention.ms=3600000"), "{out}");

    // Per broker, with the layers listed as synonyms.
    let out = tools.run_ok(
        CONFIGS,
        &[
            &brokers[..],
            &[
                "--entity-name",
                "0",
                "--alter",
                "--add-config",
                "log.cleaner.backoff.ms=2000,message.max.bytes=3000000",
            ],
        ]
        .concat(),
    );
    assert!(
        out.contains("Completed updating config for broker 0"),
        "{out}"
    );
    let out = tools.run_ok(
        CONFIGS,
        &[&brokers[..], &["--entity-name", "0", "--describe"]].concat(),
    );
    assert!(out.contains("Dynamic configs for broker 0 are:"), "{out}");
    assert!(out.contains("message.max.bytes=3000000"), "{out}");
    assert!(
        out.contains("DYNAMIC_BROKER_CONFIG:log.cleaner.backoff.ms=2000"),
        "{out}"
    );
    let all = tools.run_ok(
        CONFIGS,
        &[&brokers[..], &["--entity-name", "0", "--describe", "--all"]].concat(),
    );
    assert!(
        all.contains("log.retention.ms=3600000")
            && all.contains("DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000")
            && all.contains("STATIC_BROKER_CONFIG:log.retention.ms=604800000"),
        "{all}"
    );
    // The topic picked the new default up.
    let topic_out = tools.run_ok(
        CONFIGS,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--entity-type",
            "topics",
            "--entity-name",
            &topic,
            "--describe",
            "--all",
        ],
    );
    assert!(topic_out.contains("retention.ms=3600000"), "{topic_out}");

    // A static setting is refused by name.
    let refused = tools.run(
        CONFIGS,
        &[
            &brokers[..],
            &[
                "--entity-name",
                "0",
                "--alter",
                "--add-config",
                "num.partitions=3",
            ],
        ]
        .concat(),
    );
    assert!(!refused.success);
    assert!(
        format!("{}{}", refused.stdout, refused.stderr).contains("num.partitions"),
        "{refused:?}"
    );

    // --delete-config brings the earlier values back.
    tools.run_ok(
        CONFIGS,
        &[
            &brokers[..],
            &[
                "--entity-name",
                "0",
                "--alter",
                "--delete-config",
                "log.cleaner.backoff.ms,message.max.bytes",
            ],
        ]
        .concat(),
    );
    tools.run_ok(
        CONFIGS,
        &[
            &brokers[..],
            &[
                "--entity-default",
                "--alter",
                "--delete-config",
                "log.retention.ms",
            ],
        ]
        .concat(),
    );
    let out = tools.run_ok(
        CONFIGS,
        &[&brokers[..], &["--entity-name", "0", "--describe"]].concat(),
    );
    assert!(!out.contains("message.max.bytes"), "{out}");
    let topic_out = tools.run_ok(
        CONFIGS,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--entity-type",
            "topics",
            "--entity-name",
            &topic,
            "--describe",
            "--all",
        ],
    );
    assert!(topic_out.contains("retention.ms=604800000"), "{topic_out}");
}

fn metric(cluster: &Cluster, node: usize, name: &str) -> f64 {
    let body = get(cluster.brokers[node].metrics_addr(), "/metrics").body;
    parse_prometheus(&body)
        .iter()
        .find(|s| s.name == name)
        .map_or(0.0, |s| s.value)
}

/// The follower-side throttle in force on `node`.
fn throttle_rate(cluster: &Cluster, node: usize) -> f64 {
    metric(cluster, node, "weir_reassignment_throttle_bytes_per_second")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_reassign_partitions_generates_executes_with_a_throttle_and_verifies() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("tools-reassign");
    // Two partitions, both on broker 0 only.
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    let new = NewTopic::new(&topic, 2, TopicReplication::Variable(&[&[0], &[0]]));
    for r in admin
        .create_topics([&new], &clients::admin_options())
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    for p in 0..2 {
        cluster.wait_partition(&topic, p, TIMEOUT, "a leader", |v| v.leader == 0);
    }
    let mut config = cluster.client_config();
    config.set("acks", "all");
    let producer = config.create().expect("producer");
    let values: Vec<String> = (0..200).map(|i| format!("{i:-<1000}")).collect();
    for p in 0..2 {
        assert_eq!(send_all(&producer, &topic, p, &values).await.len(), 200);
    }

    let dir = tempfile::tempdir().unwrap();
    let topics = write_file(
        &dir,
        "topics.json",
        &format!(r#"{{"topics":[{{"topic":"{topic}"}}],"version":1}}"#),
    );
    let out = tools.run_ok(
        REASSIGN,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topics-to-move-json-file",
            &topics,
            "--broker-list",
            "1,2",
            "--generate",
        ],
    );
    let proposed = out
        .split("Proposed partition reassignment configuration")
        .nth(1)
        .and_then(|rest| rest.lines().map(str::trim).find(|l| l.starts_with('{')))
        .unwrap_or_else(|| panic!("no proposal in:\n{out}"))
        .to_string();
    let plan: serde_json::Value = serde_json::from_str(&proposed).expect("the proposal is JSON");
    for p in plan["partitions"].as_array().expect("partitions") {
        let replicas: Vec<i64> = p["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_i64().unwrap())
            .collect();
        assert_eq!(replicas.len(), 1);
        assert!(replicas[0] == 1 || replicas[0] == 2, "{proposed}");
    }
    let plan_file = write_file(&dir, "plan.json", &proposed);

    let out = tools.run_ok(
        REASSIGN,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--reassignment-json-file",
            &plan_file,
            "--execute",
            "--throttle",
            "10000000",
        ],
    );
    assert!(
        out.contains("Successfully started partition reassignment"),
        "{out}"
    );
    assert!(out.contains("10000000 B/s"), "{out}");
    // Every broker of the reassignment runs with the rates the tool set, until --verify: the
    // new replicas fetch under the follower rate, the old leader serves them under its leader
    // rate (the tool lists the existing replicas in leader.replication.throttled.replicas).
    for node in 0..3 {
        wait_until(TIMEOUT, "the throttle rates in force", || {
            (throttle_rate(&cluster, node) == 10_000_000.0
                && metric(
                    &cluster,
                    node,
                    "weir_replication_leader_throttle_bytes_per_second",
                ) == 10_000_000.0)
                .then_some(())
        });
    }

    // --verify until complete; it removes the throttles.
    let verified = wait_until(TIMEOUT, "the reassignment completes", || {
        let out = tools.run_ok(
            REASSIGN,
            &[
                "--bootstrap-server",
                &bootstrap,
                "--reassignment-json-file",
                &plan_file,
                "--verify",
            ],
        );
        (out.matches("is completed").count() == 2).then_some(out)
    });
    assert!(
        verified.contains("Clearing broker-level throttles"),
        "{verified}"
    );
    assert!(
        verified.contains("Clearing topic-level throttles"),
        "{verified}"
    );
    for node in 0..3 {
        let out = tools.run_ok(
            CONFIGS,
            &[
                "--bootstrap-server",
                &bootstrap,
                "--entity-type",
                "brokers",
                "--entity-name",
                &node.to_string(),
                "--describe",
            ],
        );
        assert!(!out.contains("throttled.rate"), "broker {node}: {out}");
        assert_eq!(throttle_rate(&cluster, node), 0.0, "broker {node}");
        assert_eq!(
            metric(
                &cluster,
                node,
                "weir_replication_leader_throttle_bytes_per_second"
            ),
            0.0,
            "broker {node}"
        );
    }
    let topic_out = tools.run_ok(
        CONFIGS,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--entity-type",
            "topics",
            "--entity-name",
            &topic,
            "--describe",
        ],
    );
    assert!(!topic_out.contains("throttled.replicas"), "{topic_out}");

    // Every record is on the new replicas, which now lead.
    for p in 0..2 {
        let view = cluster.wait_partition(&topic, p, TIMEOUT, "led by its new replica", |v| {
            v.leader == 1 || v.leader == 2
        });
        assert_eq!(view.replicas.len(), 1);
        let records =
            clients::read_partition(&cluster.brokers[view.leader as usize], &topic, p, 0, 200);
        let read: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
            .collect();
        assert_eq!(read, values, "partition {p}");
    }
}
