//! Kafka's connection limits, as a client meets them: an address at `max.connections.per.ip`
//! (or its override) has one more connection closed at once, and gets it back when one of its
//! connections closes; a listener at its `max.connections` leaves a new connection waiting,
//! unanswered, until another closes, then serves it; `max.connection.creation.rate` spaces new
//! connections out; an address over its `connection_creation_rate` (an `ip` quota, set with
//! Kafka's own `kafka-configs --entity-type ips`) has its new connections closed unanswered
//! until its rate falls back. The broker's only listener is its inter-broker one here, which
//! the broker-wide limits leave alone (as Kafka's): the listener's own settings apply to it.
//! A connection that sends no request for `connections.max.idle.ms` is closed; one that keeps
//! asking stays open.

use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiVersionsRequest;
use weir_tests::http::{get, parse_prometheus};
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::raw::RawClient;
use weir_tests::{wait_until, Broker, BrokerOptions};

const WITHIN: Duration = Duration::from_secs(15);

#[test]
fn an_address_at_its_connection_limit_gets_one_more_closed_until_one_closes() {
    let broker = Broker::start(
        BrokerOptions::default()
            .set("max.connections.per.ip", 100)
            // The override for this address is what holds.
            .set("max.connections.per.ip.overrides", "127.0.0.1:2"),
    );
    let addr = broker.kafka_addr();
    // The start's own readiness probes may still count for a moment after they close.
    let connect = || {
        wait_until(WITHIN, "a connection within the limit", || {
            RawClient::try_connect(addr).ok()
        })
    };
    let first = connect();
    let _second = connect();
    assert!(
        RawClient::try_connect(addr).is_err(),
        "a third connection from 127.0.0.1 was served"
    );
    drop(first);
    // The close is seen by the broker shortly after: then there is room again.
    drop(connect());
}

#[test]
fn a_listener_at_its_connection_limit_serves_a_new_connection_once_another_closes() {
    let broker =
        Broker::start(BrokerOptions::default().set("listener.name.plaintext.max.connections", 2));
    let addr = broker.kafka_addr();
    let first = RawClient::connect(addr);
    let _second = RawClient::connect(addr);
    // The third connects (the kernel's backlog) but is not served.
    let mut waiting = RawClient::connect_without_handshake(addr);
    let correlation_id = waiting
        .send(&ApiVersionsRequest::default(), 0)
        .expect("send ApiVersions");
    waiting.set_read_timeout(Duration::from_secs(1));
    assert!(
        waiting
            .receive::<ApiVersionsRequest>(0, correlation_id)
            .is_err(),
        "a connection beyond the listener's max.connections was served"
    );
    drop(first);
    waiting.set_read_timeout(WITHIN);
    let answer = waiting
        .receive::<ApiVersionsRequest>(0, correlation_id)
        .expect("served once a connection closed");
    assert_eq!(answer.error_code, 0);
}

#[test]
fn connections_are_accepted_no_faster_than_the_creation_rate() {
    let broker = Broker::start(
        BrokerOptions::default().set("listener.name.plaintext.max.connection.creation.rate", 10),
    );
    let addr = broker.kafka_addr();
    let started = Instant::now();
    let clients: Vec<RawClient> = (0..21).map(|_| RawClient::connect(addr)).collect();
    // 21 connections at 10 a second: the last one's turn comes 2 s after the first's.
    assert!(
        started.elapsed() >= Duration::from_millis(1_900),
        "21 connections in {:?} at 10 a second",
        started.elapsed()
    );
    assert_eq!(clients.len(), 21);
}

#[test]
fn an_address_over_its_connection_creation_rate_has_new_connections_closed() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let broker = Broker::start(
        BrokerOptions::default()
            .set("quota.window.num", 2)
            .set("quota.window.size.seconds", 1),
    );
    let configs = |args: &[&str]| {
        tools.run(
            "kafka.admin.ConfigCommand",
            &[&["--bootstrap-server", &broker.bootstrap()], args].concat(),
        )
    };
    let set = configs(&[
        "--alter",
        "--entity-type",
        "ips",
        "--entity-name",
        "127.0.0.1",
        "--add-config",
        "connection_creation_rate=3",
    ]);
    assert!(set.success, "{set:?}");
    let described = configs(&[
        "--describe",
        "--entity-type",
        "ips",
        "--entity-name",
        "127.0.0.1",
    ]);
    assert!(
        described.stdout.contains("connection_creation_rate=3"),
        "{described:?}"
    );
    // Only the connection rate is an ip quota, and ip entities stand alone.
    let refused = configs(&[
        "--alter",
        "--entity-type",
        "ips",
        "--entity-name",
        "127.0.0.1",
        "--add-config",
        "producer_byte_rate=1024",
    ]);
    assert!(!refused.success, "{refused:?}");

    // The tool's own connections count too: wait until the address is under its rate (one
    // connection served), then a quick burst at 3 a second over 2 windows gets at most a few
    // more through before one is closed.
    let addr = broker.kafka_addr();
    let first = wait_until(WITHIN, "a connection under the rate", || {
        RawClient::try_connect(addr).ok()
    });
    let mut held = vec![first];
    let mut closed = 0;
    for _ in 0..20 {
        match RawClient::try_connect(addr) {
            Ok(client) => held.push(client),
            Err(_) => {
                closed += 1;
                break;
            }
        }
    }
    assert_eq!(
        closed, 1,
        "20 connections at once were all served at 3 a second"
    );
    // The ones it let through stay served.
    for client in &mut held {
        client
            .request(&ApiVersionsRequest::default(), 0)
            .expect("an admitted connection keeps working");
    }
    // Once its rate has fallen back, the address connects again.
    drop(wait_until(
        WITHIN,
        "a connection once the rate fell back",
        || RawClient::try_connect(addr).ok(),
    ));
}

#[test]
fn a_connection_idle_for_connections_max_idle_ms_is_closed_and_a_busy_one_is_not() {
    let max_idle = Duration::from_millis(1500);
    let broker = Broker::start(
        BrokerOptions::default().set("connections.max.idle.ms", max_idle.as_millis()),
    );
    let addr = broker.kafka_addr();
    let mut idle = RawClient::connect(addr);
    let idle_since = Instant::now();
    let mut busy = RawClient::connect(addr);

    // The busy connection asks every 200 ms for twice the idle limit; the idle one sends
    // nothing and is still open until the limit has passed.
    let mut closed_at = None;
    while idle_since.elapsed() < max_idle * 2 {
        let answer = busy
            .request(&ApiVersionsRequest::default(), 0)
            .expect("a connection that keeps asking is served");
        assert_eq!(answer.error_code, 0);
        if closed_at.is_none() && idle.wait_closed(Duration::from_millis(200)) {
            closed_at = Some(idle_since.elapsed());
        }
    }
    let closed_at = closed_at.unwrap_or_else(|| {
        assert!(
            idle.wait_closed(WITHIN),
            "an idle connection still open {WITHIN:?} after connections.max.idle.ms"
        );
        idle_since.elapsed()
    });
    assert!(
        closed_at >= max_idle,
        "closed after {closed_at:?}, before connections.max.idle.ms ({max_idle:?})"
    );
    let answer = busy
        .request(&ApiVersionsRequest::default(), 0)
        .expect("the busy connection outlives the idle one");
    assert_eq!(answer.error_code, 0);

    let samples = parse_prometheus(&get(broker.metrics_addr(), "/metrics").body);
    let closed_idle = samples
        .iter()
        .find(|s| s.name == "weir_connections_closed_idle_total")
        .map(|s| s.value);
    // The start's readiness probes close their own connections; only the idle one was closed
    // by the broker.
    assert_eq!(closed_idle, Some(1.0));
}
