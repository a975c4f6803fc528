//! Consumer groups end to end: librdkafka consumers, each its own process
//! (`weir-group-consumer`), in groups coordinated by a real broker. Partitions are shared
//! inside a group and every group sees every record; members that crash, leave, restart or
//! arrive move partitions as Kafka's classic protocol says; committed offsets survive the
//! consumer and the broker.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use weir_tests::group_consumer::{
    all_partitions, wait_for_assignment, GroupMember, GroupRecord, MemberOptions,
};
use weir_tests::{clients, http, unique_topic, wait_until, Broker, BrokerOptions};

/// How long a group may take to settle (several rebalances on a loaded machine).
const SETTLE: Duration = Duration::from_secs(90);

fn broker() -> Broker {
    Broker::start(
        BrokerOptions::default()
            .set("group.initial.rebalance.delay.ms", 300)
            .set("group.min.session.timeout.ms", 1000),
    )
}

/// Produces `count` records `{prefix}-{i}` spread over `partitions` partitions; returns the
/// values per partition in produce order.
async fn produce(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    prefix: &str,
    count: usize,
) -> BTreeMap<i32, Vec<String>> {
    let producer = clients::producer(broker, &[]);
    let mut sent: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let partition = (i % partitions as usize) as i32;
        let value = format!("{prefix}-{i}");
        let delivery = producer
            .send_result(
                FutureRecord::<(), String>::to(topic)
                    .partition(partition)
                    .payload(&value),
            )
            .map_err(|(e, _)| e)
            .expect("enqueueing a record");
        deliveries.push(delivery);
        sent.entry(partition).or_default().push(value);
    }
    for d in deliveries {
        d.await
            .expect("delivery future dropped")
            .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
    }
    sent
}

/// Waits until `members` together consumed `count` records.
fn wait_for_records(members: &[&GroupMember], count: usize) -> Vec<GroupRecord> {
    wait_until(SETTLE, &format!("{count} records consumed"), || {
        let all: Vec<GroupRecord> = members.iter().flat_map(|m| m.records()).collect();
        (all.len() >= count).then_some(all)
    })
}

/// Asserts the records are exactly `sent`: each once, in partition order, at offsets from 0.
fn assert_exactly_once(records: &[GroupRecord], sent: &BTreeMap<i32, Vec<String>>) {
    let mut by_partition: BTreeMap<i32, Vec<&GroupRecord>> = BTreeMap::new();
    for r in records {
        by_partition.entry(r.partition).or_default().push(r);
    }
    for (partition, values) in sent {
        let got = by_partition.remove(partition).unwrap_or_default();
        let got_values: Vec<&str> = got.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(
            got_values, *values,
            "partition {partition}: every record once, in order"
        );
        for (i, r) in got.iter().enumerate() {
            assert_eq!(
                r.offset, i as i64,
                "offset of record #{i} in partition {partition}"
            );
        }
    }
    assert!(
        by_partition.is_empty(),
        "records from unexpected partitions"
    );
}

fn owner_records(records: &[GroupRecord], owned: &BTreeSet<(String, i32)>) -> bool {
    records
        .iter()
        .all(|r| owned.contains(&(r.topic.clone(), r.partition)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_share_six_partitions_and_consume_each_record_once() {
    let broker = broker();
    let topic = unique_topic("share");
    clients::create_topic(&broker, &topic, 6).await;
    let options = MemberOptions::new(&topic, "share-group");
    let members: Vec<GroupMember> = (0..3)
        .map(|i| GroupMember::start(&broker, &format!("m{i}"), &options))
        .collect();
    let refs: Vec<&GroupMember> = members.iter().collect();
    let sets = wait_for_assignment(&refs, &all_partitions(&topic, 6), SETTLE);
    assert!(
        sets.iter().all(|s| s.len() == 2),
        "6 partitions over 3 members: {sets:?}"
    );

    let sent = produce(&broker, &topic, 6, "share", 600).await;
    let records = wait_for_records(&refs, 600);
    assert_exactly_once(&records, &sent);
    for (m, owned) in members.iter().zip(&sets) {
        assert!(
            owner_records(&m.records(), owned),
            "{} consumed outside its partitions {owned:?}",
            m.name
        );
        assert_eq!(
            m.records().len(),
            200,
            "{} consumed its two partitions",
            m.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_member_loses_its_partitions_after_the_session_timeout() {
    let broker = broker();
    let topic = unique_topic("crash");
    clients::create_topic(&broker, &topic, 4).await;
    let mut options = MemberOptions::new(&topic, "crash-group");
    options.session_timeout_ms = 6000;
    options.heartbeat_interval_ms = 500;
    let survivor = GroupMember::start(&broker, "survivor", &options);
    let mut victim = GroupMember::start(&broker, "victim", &options);
    let everything = all_partitions(&topic, 4);
    wait_for_assignment(&[&survivor, &victim], &everything, SETTLE);
    wait_until(SETTLE, "two partitions each", || {
        (survivor.assignment().len() == 2 && victim.assignment().len() == 2).then_some(())
    });

    victim.kill9();
    let killed = Instant::now();
    wait_until(SETTLE, "the survivor owns every partition", || {
        (survivor.assignment() == everything).then_some(())
    });
    let took = killed.elapsed();
    // The broker waits for the session timeout from the victim's last heartbeat (at most one
    // heartbeat interval before the kill) before it moves the partitions.
    assert!(
        took >= Duration::from_millis(6000 - 500 - 100),
        "partitions moved {took:?} after the crash: before the session timeout"
    );

    // A member that leaves cleanly hands its partitions over at once.
    let mut leaver = GroupMember::start(&broker, "leaver", &options);
    wait_until(SETTLE, "the new member got partitions", || {
        (leaver.assignment().len() == 2 && survivor.assignment().len() == 2).then_some(())
    });
    let left = Instant::now();
    leaver.stop();
    wait_until(SETTLE, "the survivor owns every partition again", || {
        (survivor.assignment() == everything).then_some(())
    });
    let took = left.elapsed();
    assert!(
        took < Duration::from_millis(4000),
        "partitions of a member that left cleanly moved only after {took:?}"
    );
}

/// The committed offset of `group` for `topic`-0, read with OffsetFetch.
fn committed(broker: &Broker, group: &str, topic: &str) -> Option<i64> {
    let consumer: BaseConsumer = clients::base_config(broker)
        .set("group.id", group)
        .create()
        .expect("creating a consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(tpl, clients::CLIENT_TIMEOUT)
        .expect("OffsetFetch");
    match committed.elements()[0].offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

fn lag_metric(broker: &Broker, group: &str, topic: &str) -> Option<f64> {
    let page = http::get(broker.metrics_addr(), "/metrics");
    http::parse_prometheus(&page.body)
        .into_iter()
        .find(|s| {
            s.name == "weir_consumer_group_lag"
                && s.label("group") == Some(group)
                && s.label("topic") == Some(topic)
                && s.label("partition") == Some("0")
        })
        .map(|s| s.value)
}

/// Starts a committing member, waits for `count` records and stops it; returns the records.
fn consume_and_stop(broker: &Broker, options: &MemberOptions, count: usize) -> Vec<GroupRecord> {
    let mut member = GroupMember::start(broker, "committer", options);
    let records = wait_for_records(&[&member], count);
    member.stop();
    assert_eq!(
        member.records().len(),
        count,
        "records consumed before the stop"
    );
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_resumes_after_its_last_commit_even_after_a_broker_restart() {
    let mut broker = broker();
    let topic = unique_topic("resume");
    let group = "resume-group";
    clients::create_topic(&broker, &topic, 1).await;
    let mut options = MemberOptions::new(&topic, group);
    options.commit = true;

    produce(&broker, &topic, 1, "first", 50).await;
    let first = consume_and_stop(&broker, &options, 50);
    assert_eq!(first.last().map(|r| r.offset), Some(49));
    assert_eq!(committed(&broker, group, &topic), Some(50));

    produce(&broker, &topic, 1, "second", 30).await;
    wait_until(SETTLE, "lag metric of 30", || {
        (lag_metric(&broker, group, &topic) == Some(30.0)).then_some(())
    });
    let second = consume_and_stop(&broker, &options, 30);
    let offsets: Vec<i64> = second.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (50..80).collect::<Vec<_>>(),
        "resumed right after the commit"
    );
    assert_eq!(second[0].value, "second-0");

    // The broker dies without a clean shutdown; the offsets come back from __consumer_offsets.
    broker.kill9();
    broker.restart();
    wait_until(SETTLE, "committed offset after the broker restart", || {
        (committed(&broker, group, &topic) == Some(80)).then_some(())
    });
    produce(&broker, &topic, 1, "third", 20).await;
    let third = consume_and_stop(&broker, &options, 20);
    let offsets: Vec<i64> = third.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (80..100).collect::<Vec<_>>(),
        "resumed after the broker restart"
    );
    assert_eq!(committed(&broker, group, &topic), Some(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_on_one_topic_each_receive_every_record() {
    let broker = broker();
    let topic = unique_topic("pubsub");
    clients::create_topic(&broker, &topic, 3).await;
    let a = GroupMember::start(&broker, "a", &MemberOptions::new(&topic, "group-a"));
    let b1 = GroupMember::start(&broker, "b1", &MemberOptions::new(&topic, "group-b"));
    let b2 = GroupMember::start(&broker, "b2", &MemberOptions::new(&topic, "group-b"));
    let everything = all_partitions(&topic, 3);
    wait_for_assignment(&[&a], &everything, SETTLE);
    wait_for_assignment(&[&b1, &b2], &everything, SETTLE);

    let sent = produce(&broker, &topic, 3, "pubsub", 300).await;
    assert_exactly_once(&wait_for_records(&[&a], 300), &sent);
    assert_exactly_once(&wait_for_records(&[&b1, &b2], 300), &sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_beyond_the_partition_count_idle_until_a_member_leaves() {
    let broker = broker();
    let topic = unique_topic("extra");
    clients::create_topic(&broker, &topic, 2).await;
    let options = MemberOptions::new(&topic, "extra-group");
    let mut members: Vec<GroupMember> = (0..3)
        .map(|i| GroupMember::start(&broker, &format!("m{i}"), &options))
        .collect();
    let everything = all_partitions(&topic, 2);
    let refs: Vec<&GroupMember> = members.iter().collect();
    let sets = wait_for_assignment(&refs, &everything, SETTLE);
    let idle = sets
        .iter()
        .position(BTreeSet::is_empty)
        .expect("one idle member");
    assert_eq!(sets.iter().filter(|s| s.len() == 1).count(), 2, "{sets:?}");

    let busy = (0..3).find(|i| *i != idle).unwrap();
    members[busy].stop();
    let rest: Vec<&GroupMember> = (0..3).filter(|i| *i != busy).map(|i| &members[i]).collect();
    wait_for_assignment(&rest, &everything, SETTLE);
    wait_until(SETTLE, "the idle member took a partition", || {
        (members[idle].assignment().len() == 1).then_some(())
    });
    let sent = produce(&broker, &topic, 2, "extra", 100).await;
    assert_exactly_once(&wait_for_records(&rest, 100), &sent);
}

fn rebalances(broker: &Broker) -> f64 {
    let page = http::get(broker.metrics_addr(), "/metrics");
    http::parse_prometheus(&page.body)
        .into_iter()
        .find(|s| s.name == "weir_group_rebalances_total")
        .map(|s| s.value)
        .expect("weir_group_rebalances_total is exported")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarting_within_the_session_timeout_gets_its_partitions_back() {
    let broker = broker();
    let topic = unique_topic("static");
    clients::create_topic(&broker, &topic, 4).await;
    let static_member = |instance: &str| {
        let mut options = MemberOptions::new(&topic, "static-group");
        options.instance_id = Some(instance.to_string());
        options.assignor = Some("range".to_string());
        options.session_timeout_ms = 20_000;
        options
    };
    let stays = GroupMember::start(&broker, "stays", &static_member("stays"));
    let mut restarts = GroupMember::start(&broker, "restarts", &static_member("restarts"));
    let everything = all_partitions(&topic, 4);
    wait_for_assignment(&[&stays, &restarts], &everything, SETTLE);
    wait_until(SETTLE, "two partitions each", || {
        (stays.assignment().len() == 2 && restarts.assignment().len() == 2).then_some(())
    });
    let before = restarts.assignment();
    let events_before = stays.events().len();
    let rebalances_before = rebalances(&broker);

    // A static member's close sends no LeaveGroup: the broker keeps its place.
    restarts.stop();
    let again = GroupMember::start(&broker, "restarted", &static_member("restarts"));
    wait_until(
        SETTLE,
        "the restarted member holds its old partitions",
        || (again.assignment() == before).then_some(()),
    );
    assert_eq!(
        rebalances(&broker),
        rebalances_before,
        "the restart caused a rebalance"
    );
    assert_eq!(
        stays.events().len(),
        events_before,
        "the other member saw rebalance events: {:?}",
        stays.events()
    );
    // Records produced now reach both members as before.
    let sent = produce(&broker, &topic, 4, "static", 80).await;
    assert_exactly_once(&wait_for_records(&[&stays, &again], 80), &sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_rebalance_keeps_the_partitions_that_do_not_move() {
    let broker = broker();
    let topic = unique_topic("coop");
    clients::create_topic(&broker, &topic, 6).await;
    let mut options = MemberOptions::new(&topic, "coop-group");
    options.assignor = Some("cooperative-sticky".to_string());
    let first = GroupMember::start(&broker, "first", &options);
    let second = GroupMember::start(&broker, "second", &options);
    let everything = all_partitions(&topic, 6);
    wait_for_assignment(&[&first, &second], &everything, SETTLE);
    wait_until(SETTLE, "three partitions each", || {
        (first.assignment().len() == 3 && second.assignment().len() == 3).then_some(())
    });
    let before = [first.assignment(), second.assignment()];
    let events_before = [first.events().len(), second.events().len()];

    let third = GroupMember::start(&broker, "third", &options);
    let sets = wait_for_assignment(&[&first, &second, &third], &everything, SETTLE);
    assert!(sets.iter().all(|s| s.len() == 2), "{sets:?}");
    for (i, member) in [&first, &second].into_iter().enumerate() {
        assert!(
            sets[i].is_subset(&before[i]),
            "{} kept {:?} of {:?}: sticky assignment moves nothing else",
            member.name,
            sets[i],
            before[i]
        );
        // Incremental: only the partitions that moved were ever revoked.
        for event in &member.events()[events_before[i]..] {
            assert!(
                event.assigned || event.partitions.iter().all(|p| !sets[i].contains(p)),
                "{} had {:?} revoked although it kept them",
                member.name,
                event.partitions
            );
        }
    }
    let sent = produce(&broker, &topic, 6, "coop", 120).await;
    assert_exactly_once(&wait_for_records(&[&first, &second, &third], 120), &sent);
}
