//! franz-go's own integration tests (its `pkg/kgo` test binary, built by
//! `scripts/install-test-deps.sh` from the version pinned in `tests/go/franz/go.mod`) against
//! Weir: `TestTxnEtl`, its transactional consume-transform-produce chain (a transactional
//! producer, then two `GroupTransactSession` ETL stages, each stage's input offsets committed in
//! its transactions, with rebalances while they run), which checks every record arrives exactly
//! once and in order, against one broker and against three; and its KIP-848 tests
//! (`group.protocol=consumer`), which the suite skips unless the broker advertises
//! ConsumerGroupHeartbeat v1.

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
    let output = Command::new(bin)
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
