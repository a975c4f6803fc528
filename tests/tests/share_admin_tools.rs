//! Apache Kafka's `kafka-share-groups` (ShareGroupCommand from the 4.3 kafka-tools jar) on a Weir
//! share group that the Kafka 4.3 Java client's `KafkaShareConsumer` consumed from
//! (tests/java/ShareConsumers.java): `--list`, `--describe` (state, start offsets, lag),
//! `--reset-offsets` to earliest and latest (refused while a member is live, with
//! Kafka's message), `--delete-offsets` and `--delete`; and the Admin client's
//! `alterShareGroupOffsets` to an offset. What users rely on: the start offset
//! described is where the accepted records end, and the lag is the records produced and not
//! yet acknowledged since that point (KIP-1226); after a reset a new consumer gets the records
//! again from the reset point, with the bytes and offsets produced; after a delete the group
//! is gone and a new consumer starts where `share.auto.offset.reset` says. The share metrics
//! count what the consumers accepted.
//!
//! Without `java` or the jars (`scripts/install-test-deps.sh` copies them to
//! `target/kafka-share-tools-deps` and `target/java-share-client-deps`) the test says so and passes,
//! unless `CI` or `WEIR_REQUIRE_JAVA=1` is set.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use weir_tests::http;
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::wait::wait_for;
use weir_tests::{java, unique_topic, Broker, BrokerOptions};

const SHARE_GROUP_COMMAND: &str = "org.apache.kafka.tools.consumer.group.ShareGroupCommand";
const RECORDS: usize = 10;

fn share_consumers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("java/ShareConsumers.java")
}

/// `kafka-share-groups --bootstrap-server BROKER ARGS...`: (succeeded, stdout + stderr).
fn share_groups(tools: &KafkaTools, broker: &Broker, args: &[&str]) -> (bool, String) {
    let bootstrap = broker.bootstrap();
    let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
    all.extend_from_slice(args);
    let out = tools.run(SHARE_GROUP_COMMAND, &all);
    (out.success, format!("{}{}", out.stdout, out.stderr))
}

fn share_groups_ok(tools: &KafkaTools, broker: &Broker, args: &[&str]) -> String {
    let (ok, out) = share_groups(tools, broker, args);
    assert!(ok, "kafka-share-groups {args:?} failed:\n{out}");
    out
}

/// The start offset `--describe` shows for partition 0 of `topic`, if a row has one.
fn described_start_offset(out: &str, group: &str, topic: &str) -> Option<i64> {
    out.lines().find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() >= 4 && cols[0] == group && cols[1] == topic && cols[2] == "0")
            .then(|| cols[3].parse().ok())
            .flatten()
    })
}

/// The LAG `--describe` shows for partition 0 of `topic` (`None` for "-" or no row).
fn described_lag(out: &str, group: &str, topic: &str) -> Option<i64> {
    out.lines().find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() >= 5 && cols[0] == group && cols[1] == topic && cols[2] == "0")
            .then(|| cols[4].parse().ok())
            .flatten()
    })
}

/// The `record OFFSET COUNT VALUE` lines a consumer printed, as (offset, value).
fn records(out: &str) -> Vec<(i64, String)> {
    out.lines()
        .filter_map(|l| l.strip_prefix("record "))
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let offset = parts.next().unwrap().parse().unwrap();
            let _count = parts.next();
            (offset, parts.next().unwrap_or_default().to_string())
        })
        .collect()
}

fn consume(
    classpath: &str,
    broker: &Broker,
    topic: &str,
    group: &str,
    n: usize,
) -> Vec<(i64, String)> {
    let out = java::run_with(
        classpath,
        "ShareConsumers.java",
        &[
            "consume-print".to_string(),
            broker.bootstrap(),
            topic.to_string(),
            group.to_string(),
            n.to_string(),
        ],
        &format!("consume-print done: {n}"),
    );
    records(&out)
}

#[test]
fn kafka_share_groups_lists_describes_resets_and_deletes() {
    let share_tools = || KafkaTools::find_in("kafka-share-tools-deps", &["kafka-tools-4.3.2.jar"]);
    let (Some(classpath), Some(tools)) = (java::share_client_classpath(), share_tools()) else {
        return;
    };
    let broker = Broker::start(
        BrokerOptions::default()
            .set("group.share.enable", "true")
            .set("share.auto.offset.reset", "earliest"),
    );
    let topic = unique_topic("share-admin");
    let group = "share-admin-group";
    java::run_with(
        &classpath,
        "ShareConsumers.java",
        &[
            "produce".to_string(),
            broker.bootstrap(),
            topic.clone(),
            RECORDS.to_string(),
        ],
        "produced 10",
    );

    // Everything accepted: the share-partition start offset is past the last record.
    let first = consume(&classpath, &broker, &topic, group, RECORDS);
    assert_eq!(
        first.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..RECORDS as i64).collect::<Vec<_>>()
    );
    let listed = share_groups_ok(&tools, &broker, &["--list"]);
    assert!(listed.lines().any(|l| l.trim() == group), "{listed}");
    let described = share_groups_ok(&tools, &broker, &["--describe", "--group", group]);
    assert_eq!(
        described_start_offset(&described, group, &topic),
        Some(RECORDS as i64),
        "{described}"
    );
    assert_eq!(
        described_lag(&described, group, &topic),
        Some(0),
        "{described}"
    );
    let state = share_groups_ok(
        &tools,
        &broker,
        &["--describe", "--group", group, "--state"],
    );
    assert!(state.contains("Empty"), "{state}");

    // Reset to earliest: a new consumer gets every record again, same offsets and bytes.
    let reset = share_groups_ok(
        &tools,
        &broker,
        &[
            "--reset-offsets",
            "--to-earliest",
            "--execute",
            "--group",
            group,
            "--topic",
            &topic,
        ],
    );
    assert!(reset.contains(&topic), "{reset}");
    let described = share_groups_ok(&tools, &broker, &["--describe", "--group", group]);
    assert_eq!(
        described_start_offset(&described, group, &topic),
        Some(0),
        "{described}"
    );
    // Produced 10, none acknowledged since the reset.
    assert_eq!(
        described_lag(&described, group, &topic),
        Some(RECORDS as i64),
        "{described}"
    );
    let again = consume(&classpath, &broker, &topic, group, RECORDS);
    assert_eq!(again, first, "records after the reset to earliest");
    let described = share_groups_ok(&tools, &broker, &["--describe", "--group", group]);
    assert_eq!(
        described_lag(&described, group, &topic),
        Some(0),
        "{described}"
    );

    // A live member: resetting is refused with Kafka's message, and nothing changes.
    let mut member = Command::new("java")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .args(["-cp", &classpath])
        .arg(share_consumers())
        .args(["member", &broker.bootstrap(), &topic, group])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running java");
    let mut member_out = BufReader::new(member.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("member polling") {
        line.clear();
        assert!(
            member_out.read_line(&mut line).unwrap() > 0,
            "the share member exited before polling"
        );
    }
    wait_for(
        Duration::from_secs(60),
        "the share group to be Stable",
        || {
            share_groups_ok(
                &tools,
                &broker,
                &["--describe", "--group", group, "--state"],
            )
            .contains("Stable")
        },
    );
    let (ok, refused) = share_groups(
        &tools,
        &broker,
        &[
            "--reset-offsets",
            "--to-latest",
            "--execute",
            "--group",
            group,
            "--topic",
            &topic,
        ],
    );
    assert!(!ok, "a reset with a live member succeeded:\n{refused}");
    assert!(
        refused.contains(&format!("Share group '{group}' is not empty.")),
        "{refused}"
    );
    drop(member.stdin.take());
    let status = member.wait().expect("waiting for the share member");
    assert!(status.success());
    wait_for(
        Duration::from_secs(60),
        "the share group to be Empty",
        || {
            share_groups_ok(
                &tools,
                &broker,
                &["--describe", "--group", group, "--state"],
            )
            .contains("Empty")
        },
    );

    // Reset to latest, then to an offset: a consumer gets the records from there.
    share_groups_ok(
        &tools,
        &broker,
        &[
            "--reset-offsets",
            "--to-latest",
            "--execute",
            "--group",
            group,
            "--topic",
            &topic,
        ],
    );
    let described = share_groups_ok(&tools, &broker, &["--describe", "--group", group]);
    assert_eq!(
        described_start_offset(&described, group, &topic),
        Some(RECORDS as i64),
        "{described}"
    );
    // kafka-share-groups has no --to-offset: the Admin client's alterShareGroupOffsets.
    java::run_with(
        &classpath,
        "ShareConsumers.java",
        &[
            "alter-offset".to_string(),
            broker.bootstrap(),
            group.to_string(),
            topic.clone(),
            "6".to_string(),
        ],
        "altered to 6",
    );
    let described = share_groups_ok(&tools, &broker, &["--describe", "--group", group]);
    assert_eq!(
        described_lag(&described, group, &topic),
        Some(RECORDS as i64 - 6),
        "{described}"
    );
    let tail = consume(&classpath, &broker, &topic, group, RECORDS - 6);
    assert_eq!(
        tail,
        first[6..].to_vec(),
        "records after the reset to offset 6"
    );

    // Deleting the topic's offsets: the group has no offset information left.
    let deleted = share_groups_ok(
        &tools,
        &broker,
        &["--delete-offsets", "--group", group, "--topic", &topic],
    );
    assert!(deleted.contains("Successful"), "{deleted}");
    let described = share_groups_ok(&tools, &broker, &["--describe", "--group", group]);
    assert_eq!(
        described_start_offset(&described, group, &topic),
        None,
        "{described}"
    );

    // Deleting the group: gone from the list; a new consumer starts at the log start
    // (share.auto.offset.reset=earliest), not where the deleted group was.
    let consumed = consume(&classpath, &broker, &topic, group, RECORDS);
    assert_eq!(consumed, first, "records after deleting the offsets");
    let deleted = share_groups_ok(&tools, &broker, &["--delete", "--group", group]);
    assert!(deleted.contains("was successful"), "{deleted}");
    let listed = share_groups_ok(&tools, &broker, &["--list"]);
    assert!(!listed.lines().any(|l| l.trim() == group), "{listed}");
    let after_delete = consume(&classpath, &broker, &topic, group, RECORDS);
    assert_eq!(after_delete, first, "records after deleting the group");

    // The share metrics: every record of each pass accepted once (10 + 10 + 4 + 10 + 10),
    // none rejected, nothing left in flight once the consumers closed.
    let accepted = (4 * RECORDS + (RECORDS - 6)) as f64;
    wait_for(
        Duration::from_secs(30),
        "the share metrics to settle",
        || {
            let page = http::get(broker.metrics_addr(), "/metrics");
            let samples = http::parse_prometheus(&page.body);
            let value = |name: &str, ack_type: Option<&str>| {
                samples
                    .iter()
                    .find(|s| s.name == name && s.label("ack_type") == ack_type)
                    .map(|s| s.value)
            };
            let acks = "kafka_server_share_group_metrics_record_acknowledgement_total";
            value(acks, Some("Accept")) == Some(accepted)
                && value(acks, Some("Reject")) == Some(0.0)
                && value("weir_share_in_flight_records", None) == Some(0.0)
        },
    );
}

/// The share-group offsets APIs with the bare protocol: advertised only with
/// `group.share.enable=true`, and Kafka's error codes for an unknown group, an unknown topic
/// and a negative start offset.
#[test]
fn share_offsets_apis_are_advertised_with_share_groups_and_answer_kafka_errors() {
    use kafka_protocol::messages::{
        alter_share_group_offsets_request as alter, delete_share_group_offsets_request as delete,
        describe_share_group_offsets_request as describe, AlterShareGroupOffsetsRequest, ApiKey,
        DeleteShareGroupOffsetsRequest, DescribeShareGroupOffsetsRequest, FindCoordinatorRequest,
        GroupId, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use weir_tests::raw::RawClient;

    let apis = [
        ApiKey::InitializeShareGroupState,
        ApiKey::DeleteShareGroupState,
        ApiKey::ReadShareGroupStateSummary,
        ApiKey::DescribeShareGroupOffsets,
        ApiKey::AlterShareGroupOffsets,
        ApiKey::DeleteShareGroupOffsets,
    ];
    let plain = Broker::start_default();
    let client = RawClient::connect(plain.kafka_addr());
    for api in apis {
        assert_eq!(client.advertised(api), None, "{api:?} without share groups");
    }
    drop(plain);

    let broker = Broker::start(BrokerOptions::default().set("group.share.enable", "true"));
    let mut client = RawClient::connect(broker.kafka_addr());
    for api in apis {
        // Kafka 4.3's versions: the lag (KIP-1226) in DescribeShareGroupOffsets v1 and the
        // delivery-complete count it is made of in ReadShareGroupStateSummary v1.
        let max = match api {
            ApiKey::DescribeShareGroupOffsets | ApiKey::ReadShareGroupStateSummary => 1,
            _ => 0,
        };
        assert_eq!(client.advertised(api), Some((0, max)), "{api:?}");
    }
    let text = |s: &str| StrBytes::from_string(s.to_string());
    let group_id_not_found = 69;
    let unknown_topic = 3;
    let invalid_request = 42;

    // As a client does: find the coordinator first (which creates `__consumer_offsets`),
    // then ask until it has loaded.
    client
        .request(
            &FindCoordinatorRequest::default().with_key(text("no-such-share-group")),
            3,
        )
        .expect("FindCoordinator");
    let not_ready = [14, 15, 16];
    let described =
        weir_tests::wait_until(Duration::from_secs(30), "the group coordinator", || {
            let described = client
                .request(
                    &DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                        describe::DescribeShareGroupOffsetsRequestGroup::default()
                            .with_group_id(GroupId(text("no-such-share-group")))
                            .with_topics(None),
                    ]),
                    0,
                )
                .expect("DescribeShareGroupOffsets");
            (!not_ready.contains(&described.groups[0].error_code)).then_some(described)
        });
    assert_eq!(described.groups[0].error_code, group_id_not_found);

    let deleted = client
        .request(
            &DeleteShareGroupOffsetsRequest::default()
                .with_group_id(GroupId(text("no-such-share-group")))
                .with_topics(vec![delete::DeleteShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(text("t")))]),
            0,
        )
        .expect("DeleteShareGroupOffsets");
    assert_eq!(deleted.error_code, group_id_not_found);

    // An unknown topic, and (on a topic that exists) a negative start offset.
    let topic = unique_topic("share-admin-raw");
    client.create_topic_ok(&topic, 1);
    let altered = client
        .request(
            &AlterShareGroupOffsetsRequest::default()
                .with_group_id(GroupId(text("share-admin-raw")))
                .with_topics(vec![
                    alter::AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(TopicName(text("no-such-topic")))
                        .with_partitions(vec![
                            alter::AlterShareGroupOffsetsRequestPartition::default()
                                .with_partition_index(0)
                                .with_start_offset(0),
                        ]),
                    alter::AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(TopicName(text(&topic)))
                        .with_partitions(vec![
                            alter::AlterShareGroupOffsetsRequestPartition::default()
                                .with_partition_index(0)
                                .with_start_offset(-5),
                        ]),
                ]),
            0,
        )
        .expect("AlterShareGroupOffsets");
    assert_eq!(altered.error_code, 0);
    assert_eq!(altered.responses[0].partitions[0].error_code, unknown_topic);
    assert_eq!(
        altered.responses[1].partitions[0].error_code,
        invalid_request
    );
}
