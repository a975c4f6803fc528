//! Online migration of a live consumer group with real clients: three Java `KafkaConsumer`s
//! (tests/java/MigrateMember.java) with `group.protocol=classic` consume a 6-partition topic
//! while a producer keeps producing numbered records; they are restarted one at a time with
//! `group.protocol=consumer` (a clean close, then a new process), then back to classic one at
//! a time. The group is upgraded by the first consumer-protocol member and downgraded when the
//! last one leaves.
//!
//! Checked: every produced record is consumed; after each step all partitions are held by
//! the live members, none twice; committed offsets (polled with OffsetFetch throughout)
//! never go backwards; and a record consumed twice is one its first reader had not committed
//! (what Kafka allows when partitions move).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::ListGroupsRequest;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use weir_tests::raw::RawClient;
use weir_tests::wait::wait_until;
use weir_tests::{clients, java, unique_topic, Broker, BrokerOptions};

const PARTITIONS: i32 = 6;
const STEP: Duration = Duration::from_secs(90);

/// One line a member printed, numbered in the order the test read it across all members.
#[derive(Debug, Clone)]
struct Event {
    seq: u64,
    member: usize,
    line: String,
}

type Events = Arc<Mutex<Vec<Event>>>;

/// What every member is started with, and where their lines go.
struct Launch {
    bootstrap: String,
    topic: String,
    group: String,
    classpath: String,
    events: Events,
    seq: Arc<AtomicU64>,
}

/// A running MigrateMember process.
struct Member {
    id: usize,
    protocol: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Member {
    fn start(id: usize, protocol: &'static str, launch: &Launch) -> Member {
        let program =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("java/MigrateMember.java");
        let mut child = Command::new("java")
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .args(["-cp", launch.classpath.as_str()])
            .arg(program)
            .args([
                launch.bootstrap.as_str(),
                launch.topic.as_str(),
                launch.group.as_str(),
                protocol,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting java");
        let stdout = child.stdout.take().unwrap();
        let (events, seq) = (launch.events.clone(), launch.seq.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut events = events.lock().unwrap();
                let seq = seq.fetch_add(1, Ordering::SeqCst);
                events.push(Event {
                    seq,
                    member: id,
                    line,
                });
            }
        });
        let stdin = child.stdin.take();
        Member {
            id,
            protocol,
            child,
            stdin,
        }
    }

    /// A clean close: "stop", then the process exits after leaving the group.
    fn stop(&mut self, events: &Events) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "stop");
        }
        let id = self.id;
        wait_until(STEP, "a member closes cleanly", || {
            lines(events, id)
                .iter()
                .any(|l| l == "CLOSED")
                .then_some(())
        });
        let status = self.child.wait().expect("waiting for java");
        assert!(status.success(), "member {id} ({}) failed", self.protocol);
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(events: &Events, member: usize) -> Vec<String> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.member == member)
        .map(|e| e.line.clone())
        .collect()
}

/// The partitions a member says it holds now (its last OWNED line).
fn owned(events: &Events, member: usize) -> BTreeSet<i32> {
    lines(events, member)
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("OWNED "))
        .map(|l| l.split(',').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Values consumed by anyone.
fn consumed_values(events: &Events) -> BTreeSet<String> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| e.line.strip_prefix("REC "))
        .filter_map(|l| l.split(' ').nth(2).map(str::to_string))
        .collect()
}

/// Waits until the live members hold every partition, none twice, each at least one, and
/// records produced from now on reach them.
fn wait_settled(events: &Events, live: &[&Member], produced: &Arc<Mutex<Vec<String>>>) {
    wait_until(
        STEP,
        "all partitions held by the live members, once each",
        || {
            let mut all = Vec::new();
            for m in live {
                let mine = owned(events, m.id);
                if mine.is_empty() {
                    return None;
                }
                all.extend(mine);
            }
            let distinct: BTreeSet<i32> = all.iter().copied().collect();
            (all.len() == PARTITIONS as usize && distinct.len() == PARTITIONS as usize)
                .then_some(())
        },
    );
    let mark = produced.lock().unwrap().len();
    wait_until(STEP, "records produced after the step are consumed", || {
        let produced = produced.lock().unwrap();
        let seen = consumed_values(events);
        (produced.len() > mark + 30 && produced[..mark + 30].iter().all(|v| seen.contains(v)))
            .then_some(())
    });
}

/// The group's type and state as ListGroups (v5) reports them.
fn listed(broker: &Broker, group: &str) -> Option<(String, String)> {
    let mut raw = RawClient::connect(broker.kafka_addr());
    let version = raw.version::<ListGroupsRequest>(5);
    let response = raw
        .request(&ListGroupsRequest::default(), version)
        .expect("ListGroups");
    response
        .groups
        .into_iter()
        .find(|g| g.group_id.as_str() == group)
        .map(|g| (g.group_type.to_string(), g.group_state.to_string()))
}

/// Waits up to `pace` for the stop signal of a background thread (its sender dropped); true
/// while it should go on.
fn running(stop: &std::sync::mpsc::Receiver<()>, pace: Duration) -> bool {
    matches!(
        stop.recv_timeout(pace),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
    )
}

#[test]
fn a_live_group_migrates_to_the_consumer_protocol_and_back_one_member_at_a_time() {
    let Some(classpath) = java::client_classpath() else {
        return;
    };
    let options = BrokerOptions::default()
        .set("group.consumer.min.heartbeat.interval.ms", "100")
        .set("group.consumer.heartbeat.interval.ms", "500")
        .set("group.consumer.min.session.timeout.ms", "1000")
        .set("group.consumer.session.timeout.ms", "6000")
        .set("group.initial.rebalance.delay.ms", "0");
    let broker = Broker::start(options);
    let topic = unique_topic("migrate");
    let group = unique_topic("migrate-group");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(clients::create_topic(&broker, &topic, PARTITIONS));

    // The producer: numbered records, round robin, acknowledged before they count.
    let produced = Arc::new(Mutex::new(Vec::<String>::new()));
    // Each background thread runs until its stop sender is dropped; it paces itself by
    // waiting on the receiver, so a stop is seen at once.
    let (stop_producing, producing) = std::sync::mpsc::channel::<()>();
    let producer_thread = {
        let producer: FutureProducer = clients::producer(&broker, &[]);
        let (topic, produced) = (topic.clone(), produced.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let mut i = 0u64;
            // A steady trickle rather than a flood: the test is about the group.
            while running(&producing, Duration::from_millis(5)) {
                let value = format!("r{i:07}");
                let partition = (i % PARTITIONS as u64) as i32;
                let sent = rt.block_on(
                    producer.send(
                        FutureRecord::<(), String>::to(&topic)
                            .partition(partition)
                            .payload(&value),
                        Duration::from_secs(30),
                    ),
                );
                assert!(sent.is_ok(), "producing {value}: {sent:?}");
                produced.lock().unwrap().push(value);
                i += 1;
            }
        })
    };

    // Committed offsets, polled all along: they must never go backwards.
    let (stop_watching, watching) = std::sync::mpsc::channel::<()>();
    let regressions = Arc::new(Mutex::new(Vec::<String>::new()));
    let watcher = {
        let consumer: BaseConsumer = clients::consumer_config(&broker)
            .set("group.id", &group)
            .create()
            .unwrap();
        let (topic, regressions) = (topic.clone(), regressions.clone());
        std::thread::spawn(move || {
            let mut tpl = TopicPartitionList::new();
            for p in 0..PARTITIONS {
                tpl.add_partition(&topic, p);
            }
            let mut last: BTreeMap<i32, i64> = BTreeMap::new();
            let mut polls = 0u64;
            // Polled every 100 ms until stopped.
            loop {
                if let Ok(committed) =
                    consumer.committed_offsets(tpl.clone(), Duration::from_secs(5))
                {
                    for e in committed.elements() {
                        if let Offset::Offset(o) = e.offset() {
                            let before = last.insert(e.partition(), o).unwrap_or(-1);
                            if o < before {
                                regressions.lock().unwrap().push(format!(
                                    "partition {} went back from {before} to {o}",
                                    e.partition()
                                ));
                            }
                        }
                    }
                    polls += 1;
                }
                if !running(&watching, Duration::from_millis(100)) {
                    break;
                }
            }
            polls
        })
    };

    let launch = Launch {
        bootstrap: broker.bootstrap(),
        topic: topic.clone(),
        group: group.clone(),
        classpath,
        events: Arc::new(Mutex::new(Vec::new())),
        seq: Arc::new(AtomicU64::new(0)),
    };
    let events = launch.events.clone();
    let mut next_id = 0;
    let mut start = |protocol: &'static str| {
        next_id += 1;
        Member::start(next_id, protocol, &launch)
    };
    let mut members: Vec<Member> = (0..3).map(|_| start("classic")).collect();
    wait_settled(&events, &members.iter().collect::<Vec<_>>(), &produced);
    assert_eq!(
        listed(&broker, &group).map(|(t, _)| t).as_deref(),
        Some("classic")
    );
    println!("3 classic members settled");

    for protocol in ["consumer", "classic"] {
        for slot in 0..3 {
            members[slot].stop(&events);
            members[slot] = start(protocol);
            wait_settled(&events, &members.iter().collect::<Vec<_>>(), &produced);
            let protocols: Vec<&str> = members.iter().map(|m| m.protocol).collect();
            // A consumer group as long as one member uses the consumer protocol (upgraded by
            // the first, downgraded when the last leaves), a classic group otherwise.
            let expected = if protocols.contains(&"consumer") {
                "consumer"
            } else {
                "classic"
            };
            let (group_type, state) = listed(&broker, &group).expect("the group is listed");
            assert_eq!(group_type, expected, "with members {protocols:?}");
            println!("settled with {protocols:?}: a {group_type} group, {state}");
        }
    }

    drop(stop_producing);
    producer_thread.join().unwrap();
    let produced = produced.lock().unwrap().clone();
    wait_until(STEP, "every produced record is consumed", || {
        let seen = consumed_values(&events);
        produced.iter().all(|v| seen.contains(v)).then_some(())
    });
    // Still all partitions held at the end, by the three classic members.
    let mut final_owned = BTreeSet::new();
    for m in &members {
        final_owned.extend(owned(&events, m.id));
    }
    assert_eq!(final_owned, (0..PARTITIONS).collect::<BTreeSet<_>>());
    for m in &mut members {
        m.stop(&events);
    }
    drop(stop_watching);
    let polls = watcher.join().unwrap();
    assert!(
        polls > 10,
        "the committed offsets were polled {polls} times"
    );
    let regressions = regressions.lock().unwrap().clone();
    assert!(
        regressions.is_empty(),
        "committed offsets went backwards: {regressions:?}"
    );

    // Records consumed twice: allowed only past what their first reader had committed when
    // they were read again.
    let events = events.lock().unwrap().clone();
    let mut reads: BTreeMap<(i32, i64), Vec<&Event>> = BTreeMap::new();
    let mut commits: Vec<(u64, usize, i32, i64)> = Vec::new();
    for e in &events {
        let parts: Vec<&str> = e.line.split(' ').collect();
        match parts.as_slice() {
            ["REC", p, o, _] => reads
                .entry((p.parse().unwrap(), o.parse().unwrap()))
                .or_default()
                .push(e),
            ["COMMIT", p, o] => {
                commits.push((e.seq, e.member, p.parse().unwrap(), o.parse().unwrap()))
            }
            _ => {}
        }
    }
    let mut twice = 0;
    for ((partition, offset), readers) in &reads {
        for pair in readers.windows(2) {
            twice += 1;
            let (first, again) = (pair[0], pair[1]);
            let committed_past = commits.iter().any(|(seq, member, p, o)| {
                *member == first.member && *p == *partition && *o > *offset && *seq < again.seq
            });
            assert!(
                !committed_past,
                "partition {partition} offset {offset} was read again by member {} after member {} committed past it",
                again.member, first.member
            );
        }
    }
    let failed_commits = events
        .iter()
        .filter(|e| e.line.starts_with("COMMITFAIL"))
        .count();
    println!(
        "migration: {} records produced, all consumed; {twice} consumed twice (each past its first reader's last commit); {} commits, {failed_commits} refused; {polls} offset polls, no regression",
        produced.len(),
        commits.len()
    );
}
