//! KIP-932 share groups with the Apache Kafka 4.3 Java client's `KafkaShareConsumer`
//! (tests/java/ShareConsumers.java) against Weir brokers with `group.share.enable=true`:
//! three share consumers on one partition each get distinct records and together every record
//! once, with the bytes produced; released records and records whose acquisition lock ran out
//! are redelivered with a growing delivery count and archived after
//! `group.share.delivery.count.limit`.
//!
//! `scripts/install-test-deps.sh` copies the 4.3 jars to `target/java-share-client-deps`;
//! without them (or without `java`) the tests say so and pass, unless `CI` or
//! `WEIR_REQUIRE_JAVA=1` is set.

use weir_tests::{java, unique_topic, Broker, BrokerOptions};

/// A broker serving share groups, starting new share partitions at the log start, with short
/// acquisition locks and a delivery limit of 3 so redelivery shows quickly.
fn share_broker() -> Broker {
    Broker::start(
        BrokerOptions::default()
            .set("group.share.enable", "true")
            .set("share.auto.offset.reset", "earliest")
            .set("group.share.record.lock.duration.ms", "2000")
            .set("group.share.delivery.count.limit", "3"),
    )
}

#[test]
fn three_share_consumers_on_one_partition_get_each_record_once() {
    let Some(classpath) = java::share_client_classpath() else {
        return;
    };
    let broker = share_broker();
    let topic = unique_topic("share-once");
    let out = java::run_with(
        &classpath,
        "ShareConsumers.java",
        &[
            "exactly-once".to_string(),
            broker.bootstrap(),
            topic,
            "share-once".to_string(),
            "2000".to_string(),
        ],
        "share exactly-once OK: 2000 records",
    );
    eprintln!("{out}");
}

#[test]
fn released_and_expired_records_are_redelivered_then_archived() {
    let Some(classpath) = java::share_client_classpath() else {
        return;
    };
    let broker = share_broker();
    let topic = unique_topic("share-redeliver");
    java::run_with(
        &classpath,
        "ShareConsumers.java",
        &[
            "redelivery".to_string(),
            broker.bootstrap(),
            topic,
            "share-redeliver".to_string(),
            "3".to_string(),
        ],
        "share redelivery OK: release counts [1, 2, 3], archived after 3, redelivered after lock expiry\nlate acknowledgement refused: true",
    );
}
