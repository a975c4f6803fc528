//! Apache Kafka's own `kafka-consumer-groups` (ConsumerGroupCommand from the kafka-tools jar)
//! against the broker, as docs/consumer-groups.md tells users to inspect groups: list, lag per
//! partition, state and members of a live group, offset reset and group deletion.
//! `scripts/install-test-deps.sh` copies the jars to `target/kafka-tools-deps`; without them
//! (or without `java`) the test says so and passes, unless `WEIR_REQUIRE_JAVA=1` (set by
//! `scripts/test.sh`) or `CI` is set.

use weir_tests::group_consumer::{all_partitions, wait_for_assignment, GroupMember, MemberOptions};
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::{clients, unique_topic, wait_until, Broker, BrokerOptions};

/// Runs `kafka-consumer-groups --bootstrap-server BROKER ARGS...`; returns stdout.
fn consumer_groups(tools: &KafkaTools, broker: &Broker, args: &[&str]) -> String {
    let bootstrap = broker.bootstrap();
    tools.run_ok(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &[&["--bootstrap-server", bootstrap.as_str()][..], args].concat(),
    )
}

/// (partition, current offset, log end offset, lag) rows of `--describe` for `topic`.
fn lag_rows(describe: &str, topic: &str) -> Vec<(i32, String, String, String)> {
    let mut rows: Vec<_> = describe
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() >= 6 && cols[1] == topic)
        .map(|cols| {
            (
                cols[2].parse().expect("partition column"),
                cols[3].to_string(),
                cols[4].to_string(),
                cols[5].to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn row(partition: i32, current: &str, end: &str, lag: &str) -> (i32, String, String, String) {
    (partition, current.into(), end.into(), lag.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consumer_groups_lists_describes_resets_and_deletes() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let broker =
        Broker::start(BrokerOptions::default().set("group.initial.rebalance.delay.ms", 300));
    let topic = unique_topic("tools");
    let group = "tools-group";
    clients::create_topic(&broker, &topic, 2).await;
    let producer = clients::producer(&broker, &[]);
    for i in 0..30 {
        clients::produce_one(&producer, &topic, Some(i % 2), None, b"v").await;
    }

    // A member consumes and commits everything, then leaves: the group is Empty.
    let mut options = MemberOptions::new(&topic, group);
    options.commit = true;
    let mut member = GroupMember::start(&broker, "committer", &options);
    wait_until(clients::READ_TIMEOUT, "30 records consumed", || {
        (member.records().len() == 30).then_some(())
    });
    member.stop();
    for _ in 0..10 {
        clients::produce_one(&producer, &topic, Some(0), None, b"late").await;
    }

    let listed = consumer_groups(&tools, &broker, &["--list"]);
    assert!(
        listed.lines().any(|l| l.trim() == group),
        "--list:\n{listed}"
    );
    let described = consumer_groups(&tools, &broker, &["--describe", "--group", group]);
    assert_eq!(
        lag_rows(&described, &topic),
        vec![row(0, "15", "25", "10"), row(1, "15", "15", "0")],
        "--describe:\n{described}"
    );

    // A live member: Stable, one member holding both partitions.
    let live = GroupMember::start(&broker, "live", &MemberOptions::new(&topic, group));
    wait_for_assignment(&[&live], &all_partitions(&topic, 2), clients::READ_TIMEOUT);
    let state = consumer_groups(
        &tools,
        &broker,
        &["--describe", "--group", group, "--state"],
    );
    let state_row: Vec<&str> = state
        .lines()
        .find(|l| l.starts_with(group))
        .unwrap_or_else(|| panic!("--state:\n{state}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        &state_row[state_row.len() - 3..],
        ["range", "Stable", "1"],
        "--state:\n{state}"
    );
    let members = consumer_groups(
        &tools,
        &broker,
        &["--describe", "--group", group, "--members"],
    );
    let member_row = members
        .lines()
        .find(|l| l.starts_with(group))
        .unwrap_or_else(|| panic!("--members:\n{members}"));
    assert!(member_row.contains("/127.0.0.1"), "--members:\n{members}");
    assert_eq!(
        member_row.split_whitespace().last(),
        Some("2"),
        "--members:\n{members}"
    );
    drop(live); // killed: no LeaveGroup, so the group stays non-empty until its session ends

    // Offsets can be reset and the group deleted once it is empty again.
    let mut leaver = GroupMember::start(&broker, "leaver", &MemberOptions::new(&topic, "tools-2"));
    wait_for_assignment(
        &[&leaver],
        &all_partitions(&topic, 2),
        clients::READ_TIMEOUT,
    );
    leaver.stop();
    let topic_arg = format!("{topic}:0");
    consumer_groups(
        &tools,
        &broker,
        &[
            "--group",
            "tools-2",
            "--topic",
            &topic_arg,
            "--reset-offsets",
            "--to-offset",
            "7",
            "--execute",
        ],
    );
    let described = consumer_groups(&tools, &broker, &["--describe", "--group", "tools-2"]);
    assert_eq!(
        lag_rows(&described, &topic),
        vec![row(0, "7", "25", "18")],
        "--describe after --reset-offsets:\n{described}"
    );
    consumer_groups(&tools, &broker, &["--delete", "--group", "tools-2"]);
    let listed = consumer_groups(&tools, &broker, &["--list"]);
    assert!(
        !listed.lines().any(|l| l.trim() == "tools-2"),
        "--list after --delete:\n{listed}"
    );
}
