//! KIP-848 consumer groups (`group.protocol=consumer`) with real clients: the Java client 4.x
//! (tests/java/ConsumerProtocol.java: shares, exactly-once consumption with commits, a member
//! joining and one leaving, Admin's describe/list/offsets), librdkafka members as processes
//! (`weir-group-consumer --group-protocol consumer`: everything consumed, a SIGKILLed member's
//! partitions move after the broker's session timeout), a regex subscription that picks up a
//! topic created later, a coordinator failover in a three-broker cluster that keeps the
//! group's members, epochs and committed offsets, and Kafka's `kafka-consumer-groups`
//! describing such a group.
//!
//! The brokers run with short consumer-group timers (`group.consumer.heartbeat.interval.ms`
//! 500, `group.consumer.session.timeout.ms` 6000) so the rebalances take seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, GroupId};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{NewTopic, TopicReplication};
use weir_tests::cluster::{send_all, Cluster};
use weir_tests::group_consumer::{all_partitions, GroupMember, GroupRecord, MemberOptions};
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::raw::RawClient;
use weir_tests::wait::wait_for;
use weir_tests::{clients, http, java, unique_topic, wait_until, Broker, BrokerOptions};

const TIMEOUT: Duration = Duration::from_secs(90);

/// The broker settings of these tests: Kafka's bounds lowered so that heartbeats come every
/// 500 ms and a dead member is noticed after 6 s.
const FAST_GROUPS: [(&str, &str); 5] = [
    ("group.consumer.min.heartbeat.interval.ms", "100"),
    ("group.consumer.heartbeat.interval.ms", "500"),
    ("group.consumer.min.session.timeout.ms", "1000"),
    ("group.consumer.session.timeout.ms", "6000"),
    ("group.initial.rebalance.delay.ms", "0"),
];

fn broker() -> Broker {
    let mut options = BrokerOptions::default();
    for (key, value) in FAST_GROUPS {
        options = options.set(key, value);
    }
    Broker::start(options)
}

fn member_options(topic: &str, group: &str) -> MemberOptions {
    MemberOptions {
        commit: true,
        group_protocol: Some("consumer".to_string()),
        ..MemberOptions::new(topic, group)
    }
}

/// Every record the members consumed, by value, with how often.
fn consumed(members: &[&GroupMember]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for m in members {
        for GroupRecord { value, .. } in m.records() {
            *seen.entry(value).or_insert(0) += 1;
        }
    }
    seen
}

/// Produces `values` round robin over `partitions` partitions of `topic`.
async fn produce(bootstrap_broker: &Broker, topic: &str, partitions: i32, values: &[String]) {
    let producer = clients::producer(bootstrap_broker, &[]);
    for p in 0..partitions {
        let mine: Vec<String> = values
            .iter()
            .skip(p as usize)
            .step_by(partitions as usize)
            .cloned()
            .collect();
        assert_eq!(send_all(&producer, topic, p, &mine).await.len(), mine.len());
    }
}

/// ConsumerGroupDescribe of `group` from `broker` (its coordinator).
fn describe(broker: &Broker, group: &str) -> DescribedGroup {
    let mut raw = RawClient::connect(broker.kafka_addr());
    let request = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let version = raw.version::<ConsumerGroupDescribeRequest>(1);
    let mut response = raw
        .request(&request, version)
        .expect("ConsumerGroupDescribe");
    response.groups.remove(0)
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

#[test]
fn java_consumer_protocol_members_share_consume_once_and_rebalance() {
    if java::client_classpath().is_none() {
        return;
    }
    let broker = broker();
    let topic = unique_topic("kip848-java");
    let group = unique_topic("kip848-java-group");
    java::run_program(
        "ConsumerProtocol.java",
        &[broker.bootstrap(), topic, group],
        "consumer protocol OK: 900 records exactly once, 4 members, 1 left",
    );
}

/// librdkafka members: each gets a share, everything is consumed exactly once while they
/// live; one is SIGKILLed (no leave) and after the session timeout its partitions move to the
/// others, which consume everything produced since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_members_consume_everything_and_a_killed_members_partitions_move() {
    let broker = broker();
    let topic = unique_topic("kip848-rdkafka");
    let group = unique_topic("kip848-rdkafka-group");
    clients::create_topic(&broker, &topic, 6).await;
    let options = member_options(&topic, &group);
    let mut a = GroupMember::start(&broker, "a", &options);
    let b = GroupMember::start(&broker, "b", &options);
    let c = GroupMember::start(&broker, "c", &options);
    let everything = all_partitions(&topic, 6);
    let first = values("first", 300);
    produce(&broker, &topic, 6, &first).await;
    wait_for(TIMEOUT, "the first 300 records consumed", || {
        consumed(&[&a, &b, &c]).len() == 300
    });
    let shares =
        weir_tests::group_consumer::wait_for_assignment(&[&a, &b, &c], &everything, TIMEOUT);
    assert!(shares.iter().all(|s| s.len() == 2), "{shares:?}");
    let once = consumed(&[&a, &b, &c]);
    assert!(once.values().all(|&n| n == 1), "consumed twice: {once:?}");
    // A KIP-848 group, not a classic one: ConsumerGroupDescribe knows its three members.
    let described = describe(&broker, &group);
    assert_eq!(described.error_code, 0, "{described:?}");
    assert_eq!(described.members.len(), 3, "{described:?}");
    // Counted by Kafka's consumer-group-count metric, and its lag exported like a classic
    // group's: every commit is in.
    wait_for(
        TIMEOUT,
        "the group Stable in the metrics, with no lag",
        || {
            let page = http::get(broker.metrics_addr(), "/metrics");
            let samples = http::parse_prometheus(&page.body);
            let stable = samples.iter().any(|s| {
                s.name == "kafka_coordinator_group_consumer_group_count"
                    && s.label("state") == Some("Stable")
                    && s.value >= 1.0
            });
            let lags: Vec<f64> = samples
                .iter()
                .filter(|s| s.name == "weir_consumer_group_lag" && s.label("group") == Some(&group))
                .map(|s| s.value)
                .collect();
            stable && lags.len() == 6 && lags.iter().all(|&l| l == 0.0)
        },
    );

    let held_by_a = a.assignment();
    a.kill9();
    let moved = wait_until(TIMEOUT, "a's partitions held by b and c", || {
        let held: BTreeSet<_> = b.assignment().union(&c.assignment()).cloned().collect();
        (held == everything).then_some(held)
    });
    assert!(moved.is_superset(&held_by_a));
    let second = values("second", 300);
    produce(&broker, &topic, 6, &second).await;
    wait_for(
        TIMEOUT,
        "the second 300 records consumed by b and c",
        || {
            let seen = consumed(&[&b, &c]);
            second.iter().all(|v| seen.contains_key(v))
        },
    );
    // Everything exactly once, except what a consumed and could not commit before it died.
    let all = consumed(&[&a, &b, &c]);
    let twice: Vec<_> = all.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        twice.len() <= held_by_a.len(),
        "more redelivered than a's uncommitted last records: {twice:?}"
    );
    assert!(second.iter().all(|v| all[v] == 1));
}

/// A regex subscription (librdkafka sends `^...` patterns as `subscribed_topic_regex`) picks up
/// a topic created after the member joined; ConsumerGroupDescribe shows the member's regex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_subscription_picks_up_a_topic_created_later() {
    let broker = broker();
    let prefix = unique_topic("kip848-regex");
    let group = unique_topic("kip848-regex-group");
    let early = format!("{prefix}-early");
    clients::create_topic(&broker, &early, 2).await;
    let options = member_options(&format!("^{prefix}-.*"), &group);
    let member = GroupMember::start(&broker, "regex", &options);
    wait_for(TIMEOUT, "the early topic assigned", || {
        member.assignment() == all_partitions(&early, 2)
    });
    let late = format!("{prefix}-late");
    clients::create_topic(&broker, &late, 3).await;
    let expected: BTreeSet<_> = all_partitions(&early, 2)
        .union(&all_partitions(&late, 3))
        .cloned()
        .collect();
    wait_for(TIMEOUT, "the late topic assigned too", || {
        member.assignment() == expected
    });
    let records = values("late", 30);
    produce(&broker, &late, 3, &records).await;
    wait_for(TIMEOUT, "the late topic's records consumed", || {
        let seen = consumed(&[&member]);
        records.iter().all(|v| seen.contains_key(v))
    });
    let g = &describe(&broker, &group);
    assert_eq!(g.error_code, 0, "{g:?}");
    assert_eq!(g.group_state.as_str(), "Stable", "{g:?}");
    assert_eq!(g.members.len(), 1);
    let m = &g.members[0];
    let assigned: usize = m
        .assignment
        .topic_partitions
        .iter()
        .map(|t| t.partitions.len())
        .sum();
    assert_eq!(assigned, 5, "{m:?}");
    // librdkafka resolves nothing itself: it sends its patterns (each in parentheses, joined
    // with `|`) and the broker matched them.
    assert_eq!(
        m.subscribed_topic_regex.as_ref().map(|r| r.to_string()),
        Some(format!("(^{prefix}-.*)")),
        "{m:?}"
    );
}

/// SIGKILL of the group's coordinator in a three-broker cluster: the next coordinator loads
/// the group's records and offsets, the members go on (same group, their commits kept), and a
/// member that joins afterwards starts from the committed offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_failover_keeps_the_group_and_its_committed_offsets() {
    let mut sets = vec![
        ("offsets.topic.replication.factor", "3"),
        ("offsets.topic.num.partitions", "3"),
    ];
    sets.extend(FAST_GROUPS);
    let mut cluster = Cluster::start(3, &sets);
    let topic = unique_topic("kip848-failover");
    let group = unique_topic("kip848-failover-group");
    let created = clients::admin(&cluster.brokers[0])
        .create_topics(
            &[NewTopic::new(&topic, 4, TopicReplication::Fixed(3))],
            &clients::admin_options(),
        )
        .await
        .expect("CreateTopics");
    assert!(created[0].is_ok(), "{created:?}");
    for partition in 0..4 {
        cluster.wait_partition(
            &topic,
            partition,
            TIMEOUT,
            "the topic on every broker",
            |v| v.leader >= 0 && v.isr.len() == 3,
        );
    }
    let coordinator = cluster.group_coordinator(&group, None, TIMEOUT) as usize;
    let survivor = (coordinator + 1) % 3;
    let options = member_options(&topic, &group);
    let a = GroupMember::start(&cluster.brokers[survivor], "a", &options);
    let b = GroupMember::start(&cluster.brokers[survivor], "b", &options);
    let first = values("before", 200);
    produce(&cluster.brokers[survivor], &topic, 4, &first).await;
    wait_for(TIMEOUT, "the first records consumed", || {
        consumed(&[&a, &b]).len() == 200
    });

    cluster.kill9(coordinator);
    let next = cluster.group_coordinator(&group, Some(coordinator as i32), TIMEOUT);
    assert_ne!(next as usize, coordinator);
    let second = values("after", 200);
    produce(&cluster.brokers[survivor], &topic, 4, &second).await;
    wait_for(
        TIMEOUT,
        "the records produced after the failover consumed",
        || {
            let seen = consumed(&[&a, &b]);
            second.iter().all(|v| seen.contains_key(v))
        },
    );
    let all = consumed(&[&a, &b]);
    assert!(
        all.values().all(|&n| n == 1),
        "the members went on without re-reading: {:?}",
        all.iter().filter(|(_, &n)| n > 1).collect::<Vec<_>>()
    );
    // The members kept their ids: the group has exactly them, no rejoin left strays.
    let mut raw = RawClient::connect(cluster.brokers[next as usize].kafka_addr());
    let describe = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.clone()))]);
    let described = wait_until(
        TIMEOUT,
        "the group described by its new coordinator",
        || {
            let version = raw.version::<ConsumerGroupDescribeRequest>(1);
            let r = raw.request(&describe, version).ok()?;
            (r.groups[0].error_code == 0 && r.groups[0].group_state.as_str() == "Stable")
                .then(|| r.groups[0].clone())
        },
    );
    assert_eq!(described.members.len(), 2, "{described:?}");

    // A member joining after both left starts where the group committed.
    drop(a);
    drop(b);
    let late = GroupMember::start(&cluster.brokers[survivor], "late", &options);
    let third = values("third", 40);
    produce(&cluster.brokers[survivor], &topic, 4, &third).await;
    wait_for(TIMEOUT, "the late member reads the third batch", || {
        let seen = consumed(&[&late]);
        third.iter().all(|v| seen.contains_key(v))
    });
    let reread: Vec<_> = consumed(&[&late])
        .into_keys()
        .filter(|v| !v.starts_with("third"))
        .collect();
    // Only what a and b consumed and had not committed when they were killed (dropped) may
    // come again: at most one record per partition.
    assert!(reread.len() <= 4, "{reread:?}");
}

/// Apache Kafka's `kafka-consumer-groups` (4.1.1) on a consumer-protocol group: it describes
/// it through ConsumerGroupDescribe and OffsetFetch, with no lag once everything is committed,
/// its assignor and state, and both members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consumer_groups_describes_a_consumer_protocol_group() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let broker = broker();
    let topic = unique_topic("kip848-tools");
    let group = unique_topic("kip848-tools-group");
    clients::create_topic(&broker, &topic, 2).await;
    let options = member_options(&topic, &group);
    let a = GroupMember::start(&broker, "a", &options);
    let b = GroupMember::start(&broker, "b", &options);
    let records = values("tools", 20);
    produce(&broker, &topic, 2, &records).await;
    wait_for(TIMEOUT, "the records consumed", || {
        consumed(&[&a, &b]).len() == 20
    });
    let bootstrap = broker.bootstrap();
    let run = |args: &[&str]| {
        tools.run_ok(
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            &[&["--bootstrap-server", bootstrap.as_str()][..], args].concat(),
        )
    };
    // A partition moving from the first member to the second (revoked, not yet assigned)
    // shows no member for a moment: wait for the settled group.
    let rows = wait_until(
        TIMEOUT,
        "both partitions committed, no lag, each with its member",
        || {
            let described = run(&["--describe", "--group", &group]);
            let rows: Vec<Vec<String>> = described
                .lines()
                .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .filter(|cols| cols.len() >= 7 && cols[1] == topic)
                .collect();
            (rows.len() == 2
                && rows
                    .iter()
                    .all(|r| r[3] == "10" && r[4] == "10" && r[5] == "0" && r[6] != "-"))
            .then_some(rows)
        },
    );
    assert_ne!(
        rows[0][6], rows[1][6],
        "uniform gives each member one partition: {rows:?}"
    );
    let state = run(&["--describe", "--group", &group, "--state"]);
    let state_row = state
        .lines()
        .find(|l| l.starts_with(group.as_str()))
        .unwrap_or_else(|| panic!("--state:\n{state}"));
    assert!(
        state_row.contains("uniform") && state_row.contains("Stable"),
        "--state:\n{state}"
    );
    let members = run(&["--describe", "--group", &group, "--members"]);
    assert_eq!(
        members
            .lines()
            .filter(|l| l.starts_with(group.as_str()))
            .count(),
        2,
        "--members:\n{members}"
    );
}
