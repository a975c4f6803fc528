//! The Apache Kafka Java client (kafka-clients from Maven Central) against the broker:
//! AdminClient, an idempotent `acks=all` KafkaProducer under every codec, and a KafkaConsumer
//! in a consumer group reading everything back and committing (tests/java/ClientSmoke.java
//! checks bytes, offsets, key placement and that the committed offsets come back). `scripts/install-test-deps.sh` copies the jars to `target/java-client-deps`;
//! without them (or without `java`) the test says so and passes, unless `WEIR_REQUIRE_JAVA=1`
//! (set by `scripts/test.sh`) or `CI` is set.

use weir_tests::{java, unique_topic, Broker};

/// Runs `tests/java/<program>` against a fresh broker and topic, checking that it succeeded
/// and printed `expected`.
fn run_java(program: &str, topic_prefix: &str, expected: &str) {
    if java::client_classpath().is_none() {
        return;
    }
    let broker = Broker::start_default();
    let topic = unique_topic(topic_prefix);
    java::run_program(program, &[broker.bootstrap(), topic], expected);
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
