//! The Apache Kafka Java client (kafka-clients from Maven Central) against the broker:
//! AdminClient, an idempotent `acks=all` KafkaProducer under every codec, and a KafkaConsumer
//! in a consumer group reading everything back and committing (tests/java/ClientSmoke.java
//! checks bytes, offsets, key placement and that the committed offsets come back). `scripts/install-test-deps.sh` copies the jars to `target/java-client-deps`;
//! without them (or without `java`) the test says so and passes, unless `WEIR_REQUIRE_JAVA=1`
//! (set by `scripts/test.sh`) or `CI` is set.

use std::path::PathBuf;
use std::process::Command;

use weir_tests::{unique_topic, Broker};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The classpath of the Java client jars, if they and `java` are installed.
fn java_client_classpath() -> Option<String> {
    let deps = workspace_root().join("target/java-client-deps");
    let java = Command::new("java").arg("-version").output().is_ok();
    let jars = deps.join("kafka-clients-4.1.1.jar").exists();
    if java && jars {
        return Some(format!("{}/*", deps.display()));
    }
    let required =
        std::env::var_os("WEIR_REQUIRE_JAVA").is_some() || std::env::var_os("CI").is_some();
    assert!(
        !required,
        "java or the Kafka Java client jars are missing: run scripts/install-test-deps.sh"
    );
    eprintln!("java client jars missing: skipping (scripts/install-test-deps.sh installs them)");
    None
}

/// Runs `tests/java/<program>` against a fresh broker and topic; what it printed, after
/// checking it succeeded and printed `expected`.
fn run_java(program: &str, topic_prefix: &str, expected: &str) {
    let Some(classpath) = java_client_classpath() else {
        return;
    };
    let broker = Broker::start_default();
    let topic = unique_topic(topic_prefix);
    let output = Command::new("java")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .args(["-cp", &classpath])
        .arg(workspace_root().join("tests/java").join(program))
        .arg(broker.bootstrap())
        .arg(&topic)
        .output()
        .expect("running java");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(expected),
        "unexpected output:\n{stdout}\n{stderr}"
    );
}

#[test]
fn java_client_produces_and_consumes() {
    run_java(
        "ClientSmoke.java",
        "java",
        "java client OK: 1000 records, committed 1000",
    );
}

#[test]
fn java_client_transactions_commit_abort_send_offsets_and_fence() {
    // The client runs transactions version 2 (KIP-890), which Weir finalizes: each end bumps
    // the producer epoch.
    run_java(
        "TxnSmoke.java",
        "java-txn",
        "java transactions OK: commit, abort, sendOffsetsToTransaction, fencing; transactions version 2: producer epoch 3 after 3 transactions",
    );
}
