//! franz-go's own integration tests (its `pkg/kgo` test binary, built by
//! `scripts/install-test-deps.sh` from the version pinned in `tests/go/franz/go.mod`) against
//! Weir: `TestTxnEtl`, its transactional consume-transform-produce chain (a transactional
//! producer, then two `GroupTransactSession` ETL stages, each stage's input offsets committed in
//! its transactions, with rebalances while they run), which checks every record arrives exactly
//! once and in order, against one broker and against three; and its KIP-848 tests
//! (`group.protocol=consumer`), which the suite skips unless the broker advertises
//! ConsumerGroupHeartbeat v1; its KIP-932 share-group tests, which it skips unless the broker
//! advertises ShareFetch and ShareAcknowledge v2; and, with the suite's own switches for them (`KGO_TEST_TLS`,
//! `KGO_TEST_SCRAM`), its group ETL with every client over TLS and its SCRAM tests.

use std::path::PathBuf;
use std::process::Command;

use weir_tests::cluster::Cluster;
use weir_tests::Broker;

fn kgo_test_binary() -> Option<PathBuf> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .join("target/franz-go/kgo.test");
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none() && std::env::var_os("WEIR_REQUIRE_GO").is_none(),
        "{} is missing: run scripts/install-test-deps.sh",
        bin.display()
    );
    eprintln!("franz-go test binary missing: skipping (scripts/install-test-deps.sh builds it)");
    None
}

/// Runs franz-go tests matching `pattern` against `seeds` with replication factor `rf`.
fn run_kgo(bin: &PathBuf, pattern: &str, seeds: &str, rf: usize, records: usize) {
    run_kgo_with(bin, pattern, seeds, rf, records, &[]);
}

/// [`run_kgo_with`]'s output says each of `tests` ran and passed: a test the suite skips (a
/// switch it did not see, a feature it found missing) would pass without running.
fn assert_ran(stdout: &str, tests: &[&str]) {
    for test in tests {
        assert!(
            stdout.contains(&format!("--- PASS: {test} ")),
            "franz-go's {test} did not run and pass:\n{stdout}"
        );
    }
}

/// [`run_kgo`] with more of the suite's variables (`KGO_TEST_TLS`, ...).
fn run_kgo_with(
    bin: &PathBuf,
    pattern: &str,
    seeds: &str,
    rf: usize,
    records: usize,
    env: &[(&str, String)],
) -> String {
    let output = Command::new(bin)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["-test.run", pattern, "-test.count", "1", "-test.v"])
        .args(["-test.timeout", "600s"])
        .env("KGO_SEEDS", seeds)
        .env("KGO_TEST_RF", rf.to_string())
        .env("KGO_TEST_RECORDS", records.to_string())
        .env("KGO_LOG_LEVEL", "warn")
        .output()
        .expect("running franz-go's tests");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail = |s: &str| {
        s.lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        output.status.success() && stdout.contains("--- PASS"),
        "franz-go {pattern} failed against {seeds}:\n{}\n{}",
        tail(&stdout),
        tail(&stderr)
    );
    stdout.into_owned()
}

#[test]
fn franz_go_txn_etl_against_one_broker() {
    let Some(bin) = kgo_test_binary() else {
        return;
    };
    let broker = Broker::start_default();
    run_kgo(&bin, "^TestTxnEtl$", &broker.bootstrap(), 1, 50_000);
}

#[test]
fn franz_go_txn_etl_against_three_brokers() {
    let Some(bin) = kgo_test_binary() else {
        return;
    };
    let cluster = Cluster::start(3, &[]);
    run_kgo(&bin, "^TestTxnEtl$", &cluster.bootstrap(), 3, 50_000);
}

/// franz-go's KIP-848 tests, which its suite runs once the broker advertises
/// ConsumerGroupHeartbeat v1: `TestGroupSimple` (classic and 848 subtests),
/// `Test848RegexBrokerResolves` (the broker resolves a regex subscription) and `TestGroupETL`'s
/// chained group consumers, three of them with `group.protocol=consumer` (one static).
#[test]
fn franz_go_kip848_consumer_groups_against_one_broker() {
    let Some(bin) = kgo_test_binary() else {
        return;
    };
    let broker = Broker::start(
        weir_tests::BrokerOptions::default()
            .set("group.consumer.min.heartbeat.interval.ms", "100")
            .set("group.consumer.heartbeat.interval.ms", "500")
            .set("group.initial.rebalance.delay.ms", "0"),
    );
    run_kgo(
        &bin,
        "^(TestGroupSimple|Test848RegexBrokerResolves|TestGroupETL)$",
        &broker.bootstrap(),
        1,
        20_000,
    );
}

/// franz-go's KIP-932 share-group tests, which its suite runs once the broker advertises
/// ShareFetch and ShareAcknowledge v2 (Kafka 4.2's versions, with `group.share.enable=true`):
/// `TestShareGroupETL` (two chained levels of share consumers over a 3-partition and a
/// 1-partition topic, with accept, release, reject, bulk and mixed acknowledgements,
/// short-lived members and rebalances; it checks every record is accepted at least once
/// downstream, rejected ones never, bodies intact and delivery counts sane),
/// `TestShareGroupAckOnClose` (acknowledgements sent by Close are not redelivered),
/// `TestShareGroupOffsetsAdmin` (Alter/Describe/DeleteShareGroupOffsets), `TestShareGroup`
/// and `TestConsumeRegexShareSkipsInternal`. They set the group configs
/// `share.auto.offset.reset` and `share.record.lock.duration.ms` with
/// IncrementalAlterConfigs and read them back with DescribeConfigs.
#[test]
fn franz_go_share_groups_against_one_broker() {
    let Some(bin) = kgo_test_binary() else {
        return;
    };
    let broker = Broker::start(
        weir_tests::BrokerOptions::default()
            .set("group.share.enable", "true")
            .set("group.share.heartbeat.interval.ms", "500")
            .set("group.initial.rebalance.delay.ms", "0"),
    );
    let tests = [
        "TestShareGroupETL",
        "TestShareGroupAckOnClose",
        "TestShareGroupOffsetsAdmin",
        "TestShareGroup",
        "TestConsumeRegexShareSkipsInternal",
    ];
    let stdout = run_kgo_with(
        &bin,
        &format!("^({})$", tests.join("|")),
        &broker.bootstrap(),
        1,
        5_000,
        &[],
    );
    assert_ran(&stdout, &tests);
}

/// franz-go over TLS and SCRAM, with the suite's own switches: every client of `TestGroupETL`
/// (chained group consumers and producers, rebalancing while they run) connects to an SSL
/// listener and checks the broker's certificate against the test CA (`KGO_TEST_TLS`), and
/// `TestSCRAMAuth` / `TestSCRAMAuthBadCredentials` authenticate with SCRAM-SHA-256 against a
/// SASL_PLAINTEXT listener, a user made with Kafka's `kafka-configs` (`KGO_TEST_SCRAM`,
/// `KGO_TEST_SCRAM_SEEDS`): the right password gets metadata, a wrong one is refused.
#[test]
fn franz_go_over_tls_and_scram() {
    let Some(bin) = kgo_test_binary() else {
        return;
    };
    let Some(tools) = weir_tests::kafka_tools::KafkaTools::find() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but Kafka's tools are missing: run scripts/install-test-deps.sh"
        );
        eprintln!("skipping: Kafka's tools not installed (scripts/install-test-deps.sh)");
        return;
    };
    let pki = weir_tests::tls::Pki::new();
    pki.issue("server", "localhost", 1);
    let broker = Broker::start(
        weir_tests::BrokerOptions::default()
            .set(
                "listeners",
                "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
            )
            .set("inter.broker.listener.name", "PLAINTEXT")
            .set("ssl.keystore.location", pki.server())
            .set("sasl.enabled.mechanisms", "SCRAM-SHA-256")
            .set("group.initial.rebalance.delay.ms", "0"),
    );
    tools.run_ok(
        "kafka.admin.ConfigCommand",
        &[
            "--bootstrap-server",
            &broker.bootstrap(),
            "--alter",
            "--add-config",
            "SCRAM-SHA-256=[iterations=4096,password=franz-secret]",
            "--entity-type",
            "users",
            "--entity-name",
            "franz",
        ],
    );
    let stdout = run_kgo_with(
        &bin,
        "^(TestGroupETL|TestSCRAMAuth|TestSCRAMAuthBadCredentials)$",
        &broker.listener_addr("SSL").to_string(),
        1,
        20_000,
        &[
            ("KGO_TEST_TLS", format!("ca:{}", pki.ca())),
            ("KGO_TEST_SCRAM", "franz:franz-secret".to_string()),
            (
                "KGO_TEST_SCRAM_SEEDS",
                broker.listener_addr("SASL_PLAINTEXT").to_string(),
            ),
        ],
    );
    assert_ran(
        &stdout,
        &[
            "TestGroupETL",
            "TestSCRAMAuth",
            "TestSCRAMAuthBadCredentials",
        ],
    );
}
