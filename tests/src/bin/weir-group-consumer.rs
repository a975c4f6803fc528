//! A librdkafka group consumer as its own process, for the consumer-group tests: a member can
//! be killed with SIGKILL (a crash: no LeaveGroup) or stopped cleanly (stdin closed: commit,
//! close, LeaveGroup for dynamic members).
//!
//! It subscribes to `--topic` in `--group` and prints one line per event on stdout, flushed
//! at once, which `weir_tests::group_consumer` parses:
//!
//! ```text
//! ASSIGN topic:partition ...     partitions added (after librdkafka applied them)
//! REVOKE topic:partition ...     partitions taken away
//! RECORD topic partition offset value
//! CLOSED
//! ```
//!
//! `--commit` commits each record's offset synchronously right after printing it.
//! `--group-protocol consumer` joins with KIP-848's protocol: the broker assigns, and the
//! session and heartbeat settings are the broker's (librdkafka refuses them client-side), so
//! those flags are then ignored. A `--topic` starting with `^` is a regex subscription.
//! Flags: --bootstrap --topic --group [--instance-id ID] [--assignor NAME]
//! [--session-timeout-ms N] [--heartbeat-interval-ms N] [--group-protocol P] [--commit]

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, TopicPartitionList};

/// Prints rebalance events once librdkafka has applied them.
struct Events;

impl ClientContext for Events {}

impl ConsumerContext for Events {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => emit(&format!("ASSIGN{}", partitions(tpl))),
            Rebalance::Revoke(tpl) => emit(&format!("REVOKE{}", partitions(tpl))),
            Rebalance::Error(e) => eprintln!("rebalance error: {e}"),
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!(" {}:{}", e.topic(), e.partition()))
        .collect()
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut config = ClientConfig::new();
    config
        .set("broker.address.family", "v4")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    let mut topic = String::new();
    let mut commit = false;
    let mut consumer_protocol = false;
    while let Some(flag) = args.next() {
        if flag == "--commit" {
            commit = true;
            continue;
        }
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--bootstrap" => config.set("bootstrap.servers", value),
            "--topic" => {
                topic = value;
                &mut config
            }
            "--group" => config.set("group.id", value),
            "--instance-id" => config.set("group.instance.id", value),
            "--assignor" => config.set("partition.assignment.strategy", value),
            "--session-timeout-ms" => config.set("session.timeout.ms", value),
            "--heartbeat-interval-ms" => config.set("heartbeat.interval.ms", value),
            "--group-protocol" => {
                consumer_protocol = value == "consumer";
                config.set("group.protocol", value)
            }
            other => panic!("unknown flag {other}"),
        };
    }
    if consumer_protocol {
        for key in [
            "session.timeout.ms",
            "heartbeat.interval.ms",
            "partition.assignment.strategy",
        ] {
            config.remove(key);
        }
    }
    let consumer: BaseConsumer<Events> = config
        .create_with_context(Events)
        .expect("creating the consumer");
    consumer.subscribe(&[&topic]).expect("subscribing");

    // Stdin closing (or a "stop" line) asks for a clean shutdown.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_reader = stop.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) if l.trim() == "stop" => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        stop_reader.store(true, Ordering::SeqCst);
    });

    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = m
                    .payload()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                emit(&format!(
                    "RECORD {} {} {} {value}",
                    m.topic(),
                    m.partition(),
                    m.offset()
                ));
                if commit {
                    if let Err(e) = consumer.commit_message(&m, CommitMode::Sync) {
                        eprintln!("commit failed: {e}");
                    }
                }
            }
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => {}
        }
    }
    // Closing leaves the group (dynamic members) before the process exits.
    drop(consumer);
    emit("CLOSED");
}
