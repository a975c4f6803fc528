//! Dynamic broker settings, as `kafka-configs --entity-type brokers` changes them: per broker
//! and cluster-wide (the empty name), stored in the metadata log, in force without a restart
//! (retention defaults, `message.max.bytes`), reported with their source by DescribeConfigs,
//! kept across a restart, and static settings refused by name.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::FutureRecord;
use weir_tests::raw::RawClient;
use weir_tests::{clients, unique_topic, wait_until, Broker, BrokerOptions};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const DYNAMIC_BROKER: i8 = 2;
const DYNAMIC_DEFAULT: i8 = 3;
const STATIC: i8 = 4;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// IncrementalAlterConfigs of one resource; the error code and message.
fn alter(
    raw: &mut RawClient,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, String) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(
                ops.iter()
                    .map(|(key, op, value)| {
                        AlterableConfig::default()
                            .with_name(s(key))
                            .with_config_operation(*op)
                            .with_value(value.map(s))
                    })
                    .collect(),
            ),
    ]);
    let response = raw.request(&request, 1).expect("IncrementalAlterConfigs");
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// DescribeConfigs of one resource: (name, value, source, read only) of every entry.
fn describe(raw: &mut RawClient, resource_type: i8, name: &str) -> Vec<(String, String, i8, bool)> {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(None)]);
    let response = raw.request(&request, 4).expect("DescribeConfigs");
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    result
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                c.config_source,
                c.read_only,
            )
        })
        .collect()
}

fn entry(entries: &[(String, String, i8, bool)], name: &str) -> (String, i8, bool) {
    let (_, value, source, read_only) = entries
        .iter()
        .find(|e| e.0 == name)
        .unwrap_or_else(|| panic!("{name} not described"));
    (value.clone(), *source, *read_only)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_broker_settings_apply_at_once_persist_and_refuse_static_ones() {
    let mut broker = Broker::start(
        BrokerOptions::default()
            .set("log.retention.ms", 600_000)
            .set("log.segment.bytes", 1024)
            .set("log.retention.check.interval.ms", 100),
    );
    let topic = unique_topic("dynamic-broker");
    clients::create_topic(&broker, &topic, 1).await;
    let producer = clients::producer(&broker, &[]);
    for i in 0..40 {
        let value = format!("{i:-<100}");
        clients::produce_one(&producer, &topic, Some(0), None, value.as_bytes()).await;
    }
    let mut raw = RawClient::connect(broker.kafka_addr());

    // From the file first; static settings are read-only, dynamic ones are not.
    let described = describe(&mut raw, BROKER, "0");
    assert_eq!(
        entry(&described, "log.retention.ms"),
        ("600000".into(), STATIC, false)
    );
    assert!(
        entry(&described, "num.partitions").2,
        "num.partitions is read-only"
    );

    // A cluster-wide retention of one second: the topic (no override) takes it at once.
    assert_eq!(
        alter(
            &mut raw,
            BROKER,
            "",
            &[("log.retention.ms", SET, Some("1000"))]
        ),
        (0, String::new())
    );
    let topic_configs = describe(&mut raw, TOPIC, &topic);
    assert_eq!(
        entry(&topic_configs, "retention.ms"),
        ("1000".into(), DYNAMIC_DEFAULT, false)
    );
    assert_eq!(
        describe(&mut raw, BROKER, ""),
        vec![(
            "log.retention.ms".into(),
            "1000".into(),
            DYNAMIC_DEFAULT,
            false
        )]
    );
    wait_until(
        Duration::from_secs(30),
        "retention deletes the old segments",
        || (clients::watermarks(&broker, &topic, 0).0 > 0).then_some(()),
    );

    // This broker's own setting wins over the cluster's; message.max.bytes applies to produce.
    assert_eq!(
        alter(
            &mut raw,
            BROKER,
            "0",
            &[
                ("log.retention.ms", SET, Some("600000")),
                ("message.max.bytes", SET, Some("2000"))
            ]
        ),
        (0, String::new())
    );
    let described = describe(&mut raw, BROKER, "0");
    assert_eq!(
        entry(&described, "log.retention.ms"),
        ("600000".into(), DYNAMIC_BROKER, false)
    );
    let big = vec![b'x'; 5000];
    let refused = producer
        .send(
            FutureRecord::<(), [u8]>::to(&topic)
                .partition(0)
                .payload(&big[..]),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        matches!(&refused, Err((e, _)) if e.to_string().contains("too large")),
        "a 5000-byte record over message.max.bytes=2000: {refused:?}"
    );

    // Static settings and unknown ones are refused by name; nothing changes.
    let (code, message) = alter(&mut raw, BROKER, "0", &[("num.partitions", SET, Some("3"))]);
    assert_eq!(code, ResponseError::InvalidConfig.code());
    assert!(message.contains("num.partitions"), "{message}");
    let (code, _) = alter(
        &mut raw,
        BROKER,
        "0",
        &[("log.retention.msec", SET, Some("3"))],
    );
    assert_eq!(code, ResponseError::InvalidConfig.code());
    let (code, _) = alter(
        &mut raw,
        BROKER,
        "0",
        &[("log.retention.ms", SET, Some("soon"))],
    );
    assert_eq!(code, ResponseError::InvalidConfig.code());
    let (code, _) = alter(
        &mut raw,
        BROKER,
        "7",
        &[("log.retention.ms", SET, Some("1"))],
    );
    assert_eq!(
        code,
        ResponseError::InvalidRequest.code(),
        "broker 7 does not exist"
    );

    // Kept across a restart.
    drop(raw);
    broker.restart();
    let mut raw = RawClient::connect(broker.kafka_addr());
    let described = describe(&mut raw, BROKER, "0");
    assert_eq!(
        entry(&described, "message.max.bytes"),
        ("2000".into(), DYNAMIC_BROKER, false)
    );
    assert_eq!(
        entry(&describe(&mut raw, TOPIC, &topic), "retention.ms"),
        ("600000".into(), DYNAMIC_BROKER, false)
    );

    // Deleted, the file's value is back; deleting what is not set is fine.
    assert_eq!(
        alter(
            &mut raw,
            BROKER,
            "0",
            &[
                ("log.retention.ms", DELETE, None),
                ("message.max.bytes", DELETE, None),
                (
                    "replica.alter.log.dirs.io.max.bytes.per.second",
                    DELETE,
                    None
                ),
            ]
        ),
        (0, String::new())
    );
    assert_eq!(
        alter(&mut raw, BROKER, "", &[("log.retention.ms", DELETE, None)]),
        (0, String::new())
    );
    let described = describe(&mut raw, BROKER, "0");
    assert_eq!(
        entry(&described, "log.retention.ms"),
        ("600000".into(), STATIC, false)
    );
    assert!(describe(&mut raw, BROKER, "").is_empty());
    let value = vec![b'y'; 5000];
    clients::produce_one(&producer, &topic, Some(0), None, &value).await;
}

/// A `server.properties` carried over from Kafka with its thread and socket-buffer tuning: the
/// broker starts, names each such setting as having no effect, applies the rest, and serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_tuning_settings_are_accepted_named_and_ignored() {
    let broker = Broker::start(
        BrokerOptions::default()
            .set("num.network.threads", 3)
            .set("num.io.threads", 8)
            .set("socket.send.buffer.bytes", 102_400)
            .set("socket.receive.buffer.bytes", 102_400)
            .set("num.partitions", 3),
    );
    let log = broker.stderr_log();
    for key in [
        "num.network.threads",
        "num.io.threads",
        "socket.send.buffer.bytes",
        "socket.receive.buffer.bytes",
    ] {
        assert!(
            log.contains(&format!("`{key}` has no effect in Weir")),
            "{key} not named at start:\n{log}"
        );
    }
    assert!(!log.contains("`num.partitions` has no effect"), "{log}");

    let mut raw = RawClient::connect(broker.kafka_addr());
    let described = describe(&mut raw, BROKER, "0");
    assert_eq!(entry(&described, "num.partitions").0, "3");
    assert!(
        described.iter().all(|e| e.0 != "num.io.threads"),
        "a setting without effect is not reported as one"
    );

    // Auto-created with the file's num.partitions, and it serves records back.
    let topic = unique_topic("kafka-tuning");
    let producer = clients::producer(&broker, &[]);
    let (partition, offset) =
        clients::produce_one(&producer, &topic, Some(2), None, b"carried over").await;
    assert_eq!((partition, offset), (2, 0));
    let read = clients::read_all(&broker, &topic, 2);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].value.as_deref(), Some(&b"carried over"[..]));
}
