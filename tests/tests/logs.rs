//! What a newcomer sees in a broker's log: Weir's own lines, not its dependencies' (openraft
//! logs votes and state dumps at INFO, and once filled 20 of a broker's first 29 lines), unless
//! asked for with `WEIR_LOG`; and a SIGTERM or SIGINT ends the log with a clean shutdown.

use nix::sys::signal::Signal;
use weir_tests::broker::{BrokerOptions, STOP_TIMEOUT};
use weir_tests::wait::wait_for;
use weir_tests::Broker;

/// How many of a fresh broker's first lines are looked at.
const FIRST_LINES: usize = 40;

/// One `tracing` line of the broker's stderr: its level and target
/// (`2026-01-01T00:00:00.000000Z  INFO weir_broker::app: message`).
struct LogLine {
    level: String,
    target: String,
    text: String,
}

/// The broker's log lines of its latest start, without the harness's own lines.
fn log_lines(broker: &Broker) -> Vec<LogLine> {
    let log = broker.stderr_log();
    let latest = log.rsplit("===== weir-tests: start #").next().unwrap_or("");
    latest
        .lines()
        .skip(1) // the rest of the harness's header line
        .filter(|line| !line.starts_with("[stdout]"))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let _timestamp = words.next()?;
            let level = words.next()?.to_string();
            let target = words.next()?.trim_end_matches(':').to_string();
            Some(LogLine {
                level,
                target,
                text: line.to_string(),
            })
        })
        .collect()
}

fn is_weir(line: &LogLine) -> bool {
    line.target.starts_with("weir_")
}

/// Starts a broker with `env` and waits until it has logged that it joined its cluster of one
/// (its start-up lines are all written by then).
fn started(env: &[(&str, &str)]) -> Broker {
    let broker = Broker::start(BrokerOptions {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..BrokerOptions::default()
    });
    wait_for(STOP_TIMEOUT, "the broker to log that it joined", || {
        broker.stderr_log().contains("joined the cluster")
    });
    broker
}

fn describe(lines: &[LogLine]) -> String {
    lines
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_fresh_broker_logs_its_own_lines_and_only_warnings_of_its_dependencies() {
    let broker = started(&[]);
    let lines: Vec<LogLine> = log_lines(&broker).into_iter().take(FIRST_LINES).collect();
    let all = describe(&lines);
    let dependencies_below_warn: Vec<&LogLine> = lines
        .iter()
        .filter(|l| !is_weir(l) && !matches!(l.level.as_str(), "WARN" | "ERROR"))
        .collect();
    assert!(
        dependencies_below_warn.is_empty(),
        "{} of the first {} lines are a dependency's below WARN:\n{all}",
        dependencies_below_warn.len(),
        lines.len()
    );
    assert!(
        lines
            .iter()
            .any(|l| is_weir(l) && l.text.contains("serving")),
        "the broker's own `serving` line is missing:\n{all}"
    );
}

#[test]
fn weir_log_naming_a_dependency_adds_its_lines_and_keeps_weirs() {
    let broker = started(&[("WEIR_LOG", "openraft=info")]);
    let lines = log_lines(&broker);
    let all = describe(&lines);
    assert!(
        lines
            .iter()
            .any(|l| l.target.starts_with("openraft") && l.level == "INFO"),
        "WEIR_LOG=openraft=info shows no openraft INFO line:\n{all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| is_weir(l) && l.text.contains("serving")),
        "WEIR_LOG=openraft=info hid the broker's own lines:\n{all}"
    );
}

/// Sends `signal`, asserts the broker exits 0 within the harness's deadline, and that its log
/// ends with the clean shutdown line.
fn stops_cleanly_on(signal: Signal) {
    let mut broker = started(&[]);
    broker.stop_with(signal);
    let lines = log_lines(&broker);
    let last = lines.last().map(|l| l.text.as_str()).unwrap_or("");
    assert!(
        last.contains("shut down cleanly"),
        "after {signal} the log does not end with the clean shutdown line:\n{}",
        describe(&lines)
    );
}

#[test]
fn sigterm_stops_the_broker_cleanly() {
    stops_cleanly_on(Signal::SIGTERM);
}

#[test]
fn sigint_stops_the_broker_cleanly() {
    stops_cleanly_on(Signal::SIGINT);
}
