//! Group consumers as separate processes (`weir-group-consumer`, built from
//! `tests/src/bin/`), so a test can crash one with SIGKILL — no LeaveGroup, as a real crash —
//! or stop it cleanly. Each process's stdout is parsed on a thread into its current
//! assignment, its rebalance events and the records it consumed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::Broker;

/// How long a clean stop (commit, close, LeaveGroup) may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A topic and partition.
pub type TopicPartition = (String, i32);

/// How to start a member.
#[derive(Debug, Clone)]
pub struct MemberOptions {
    pub topic: String,
    pub group: String,
    /// `group.instance.id` for static membership.
    pub instance_id: Option<String>,
    /// `partition.assignment.strategy` (librdkafka's default is `range,roundrobin`).
    pub assignor: Option<String>,
    pub session_timeout_ms: u32,
    pub heartbeat_interval_ms: u32,
    /// Commit each record's offset synchronously after consuming it.
    pub commit: bool,
    /// `group.protocol`: `consumer` for KIP-848 (the broker's session and heartbeat settings
    /// apply then), None for librdkafka's default (`classic`).
    pub group_protocol: Option<String>,
}

impl MemberOptions {
    pub fn new(topic: &str, group: &str) -> Self {
        Self {
            topic: topic.to_string(),
            group: group.to_string(),
            instance_id: None,
            assignor: None,
            session_timeout_ms: 6000,
            heartbeat_interval_ms: 500,
            commit: false,
            group_protocol: None,
        }
    }
}

/// One consumed record as the member printed it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// One rebalance event: partitions assigned (`true`) or revoked (`false`), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebalanceEvent {
    pub assigned: bool,
    pub partitions: Vec<TopicPartition>,
}

#[derive(Debug, Default)]
struct State {
    assignment: BTreeSet<TopicPartition>,
    events: Vec<RebalanceEvent>,
    records: Vec<GroupRecord>,
    closed: bool,
}

/// A running member process. Dropping it kills the process.
#[derive(Debug)]
pub struct GroupMember {
    pub name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    state: Arc<Mutex<State>>,
    reader: Option<JoinHandle<()>>,
}

impl GroupMember {
    /// Starts a member against `broker`; it subscribes at once.
    pub fn start(broker: &Broker, name: &str, options: &MemberOptions) -> GroupMember {
        let mut command = Command::new(consumer_bin());
        command
            .args(["--bootstrap", &broker.bootstrap()])
            .args(["--topic", &options.topic])
            .args(["--group", &options.group])
            .args([
                "--session-timeout-ms",
                &options.session_timeout_ms.to_string(),
            ])
            .args([
                "--heartbeat-interval-ms",
                &options.heartbeat_interval_ms.to_string(),
            ]);
        if let Some(id) = &options.instance_id {
            command.args(["--instance-id", id]);
        }
        if let Some(assignor) = &options.assignor {
            command.args(["--assignor", assignor]);
        }
        if options.commit {
            command.arg("--commit");
        }
        if let Some(protocol) = &options.group_protocol {
            command.args(["--group-protocol", protocol]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {:?}: {e}", command.get_program()));
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                parse_line(&line, &mut shared.lock().unwrap());
            }
        });
        GroupMember {
            name: name.to_string(),
            child: Some(child),
            stdin,
            state,
            reader: Some(reader),
        }
    }

    /// The partitions it holds now.
    pub fn assignment(&self) -> BTreeSet<TopicPartition> {
        self.state.lock().unwrap().assignment.clone()
    }

    /// Every rebalance event so far.
    pub fn events(&self) -> Vec<RebalanceEvent> {
        self.state.lock().unwrap().events.clone()
    }

    /// Every record consumed so far, in consumption order.
    pub fn records(&self) -> Vec<GroupRecord> {
        self.state.lock().unwrap().records.clone()
    }

    /// Clean stop: closes stdin; the member commits (if asked to), closes the consumer
    /// (LeaveGroup unless static) and exits. Panics if it does not within [`STOP_TIMEOUT`].
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "stop");
        }
        let mut child = self.child.take().expect("member is running");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "member {} exited with {status}",
                    self.name
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member {} did not stop within {STOP_TIMEOUT:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        assert!(
            self.state.lock().unwrap().closed,
            "member {} did not close its consumer",
            self.name
        );
    }

    /// SIGKILL: the member vanishes without leaving the group.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("member is running");
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn parse_line(line: &str, state: &mut State) {
    let mut words = line.split(' ');
    match words.next() {
        Some(kind @ ("ASSIGN" | "REVOKE")) => {
            let partitions: Vec<TopicPartition> = words
                .filter_map(|w| {
                    let (topic, partition) = w.rsplit_once(':')?;
                    Some((topic.to_string(), partition.parse().ok()?))
                })
                .collect();
            let assigned = kind == "ASSIGN";
            for tp in &partitions {
                if assigned {
                    state.assignment.insert(tp.clone());
                } else {
                    state.assignment.remove(tp);
                }
            }
            state.events.push(RebalanceEvent {
                assigned,
                partitions,
            });
        }
        Some("RECORD") => {
            let mut parts = line.splitn(5, ' ').skip(1);
            let (Some(topic), Some(partition), Some(offset)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return;
            };
            state.records.push(GroupRecord {
                topic: topic.to_string(),
                partition: partition.parse().unwrap_or(-1),
                offset: offset.parse().unwrap_or(-1),
                value: parts.next().unwrap_or_default().to_string(),
            });
        }
        Some("CLOSED") => state.closed = true,
        _ => {}
    }
}

/// The `weir-group-consumer` binary next to the test executable (cargo builds a package's
/// binaries before its integration tests), or `$WEIR_GROUP_CONSUMER_BIN`.
pub fn consumer_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("WEIR_GROUP_CONSUMER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // Test binaries live in <target>/<profile>/deps/.
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("weir-group-consumer"))
        .expect("target directory layout");
    assert!(
        path.is_file(),
        "{} not found: build it with `cargo build -p weir-tests --bins`",
        path.display()
    );
    path
}

/// Waits until `members` hold disjoint assignments covering exactly `expected`, balanced (no
/// member holds two partitions more than another, as every built-in assignor ends up), and
/// returns them (one set per member). Balance excludes the passing states of an eager
/// rebalance, where old members still hold everything and a new one nothing.
pub fn wait_for_assignment(
    members: &[&GroupMember],
    expected: &BTreeSet<TopicPartition>,
    timeout: Duration,
) -> Vec<BTreeSet<TopicPartition>> {
    crate::wait_until(timeout, "a complete, disjoint, balanced assignment", || {
        let sets: Vec<_> = members.iter().map(|m| m.assignment()).collect();
        let total: usize = sets.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<_> = sets.iter().flatten().cloned().collect();
        let most = sets.iter().map(BTreeSet::len).max().unwrap_or(0);
        let least = sets.iter().map(BTreeSet::len).min().unwrap_or(0);
        (total == expected.len() && &union == expected && most - least <= 1).then_some(sets)
    })
}

/// Every partition of `topic`.
pub fn all_partitions(topic: &str, partitions: i32) -> BTreeSet<TopicPartition> {
    (0..partitions).map(|p| (topic.to_string(), p)).collect()
}
