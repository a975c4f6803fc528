//! Topic administration through librdkafka's AdminClient (and IncrementalAlterConfigs over
//! the raw protocol, which rdkafka does not expose): create (and validate-only), describe and
//! alter configs, add partitions, delete, and the Kafka error codes for bad requests.

use std::time::Duration;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::DescribeConfigsRequest;
use rdkafka::admin::{
    AlterConfig, ConfigEntry, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;
use weir_tests::raw::{error_code, topic_name, RawClient};
use weir_tests::{clients, unique_topic, wait_until, Broker};

/// Topic names in the cluster metadata (all topics, so nothing gets auto-created).
fn topic_names(broker: &Broker) -> Vec<String> {
    let metadata = clients::consumer(broker)
        .fetch_metadata(None, clients::CLIENT_TIMEOUT)
        .expect("Metadata for all topics");
    metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect()
}

async fn describe_topic(broker: &Broker, topic: &str) -> Vec<ConfigEntry> {
    let results = clients::admin(broker)
        .describe_configs(
            &[ResourceSpecifier::Topic(topic)],
            &clients::admin_options(),
        )
        .await
        .expect("DescribeConfigs");
    assert_eq!(results.len(), 1);
    match results.into_iter().next().unwrap() {
        Ok(resource) => resource.entries,
        Err(code) => panic!("DescribeConfigs {topic}: {code:?}"),
    }
}

fn entry<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("config {name} missing from DescribeConfigs: {entries:?}"))
}

/// IncrementalAlterConfigs over the raw protocol (rdkafka 0.39 does not expose it).
fn incremental_alter(broker: &Broker, topic: &str, changes: &[(&str, Option<&str>)]) -> i16 {
    RawClient::connect(broker.kafka_addr()).alter_topic_configs(topic, changes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_lifecycle() {
    let broker = Broker::start_default();
    let admin = clients::admin(&broker);
    let options = clients::admin_options();
    let topic = unique_topic("lifecycle");
    let reference = unique_topic("defaults");
    clients::create_topic(&broker, &reference, 1).await;
    let defaults = describe_topic(&broker, &reference).await;

    // validate_only answers like a real create but creates nothing.
    let new_topic =
        NewTopic::new(&topic, 2, TopicReplication::Fixed(1)).set("retention.ms", "3600000");
    let validated = admin
        .create_topics([&new_topic], &clients::admin_options().validate_only(true))
        .await
        .expect("CreateTopics validate_only");
    assert_eq!(validated, vec![Ok(topic.clone())]);
    assert!(
        !topic_names(&broker).contains(&topic),
        "validate_only created the topic"
    );

    let created = admin
        .create_topics([&new_topic], &options)
        .await
        .expect("CreateTopics");
    assert_eq!(created, vec![Ok(topic.clone())]);
    clients::wait_for_partitions(&broker, &topic, 2);
    let again = admin
        .create_topics([&new_topic], &options)
        .await
        .expect("CreateTopics");
    assert_eq!(
        again,
        vec![Err((topic.clone(), RDKafkaErrorCode::TopicAlreadyExists))]
    );

    // DescribeConfigs: the override given at creation, defaults for the rest.
    let entries = describe_topic(&broker, &topic).await;
    let retention = entry(&entries, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.is_default);
    let cleanup = entry(&entries, "cleanup.policy");
    assert_eq!(cleanup.value.as_deref(), Some("delete"));
    assert_ne!(cleanup.source, ConfigSource::DynamicTopic);
    for name in ["segment.bytes", "max.message.bytes", "retention.bytes"] {
        assert_eq!(
            entry(&entries, name).value,
            entry(&defaults, name).value,
            "default {name}"
        );
    }

    // IncrementalAlterConfigs changes only what it names.
    let code = incremental_alter(
        &broker,
        &topic,
        &[
            ("retention.ms", Some("777000")),
            ("max.message.bytes", None),
        ],
    );
    assert_eq!(code, 0, "IncrementalAlterConfigs error code");
    let entries = describe_topic(&broker, &topic).await;
    assert_eq!(
        entry(&entries, "retention.ms").value.as_deref(),
        Some("777000")
    );
    assert_eq!(
        entry(&entries, "max.message.bytes").value,
        entry(&defaults, "max.message.bytes").value,
        "DELETE reverts max.message.bytes to the default"
    );
    assert_eq!(
        incremental_alter(&broker, &topic, &[("segment.bytes", Some("not-a-number"))]),
        error_code::INVALID_CONFIG,
        "IncrementalAlterConfigs with a non-numeric segment.bytes"
    );

    // More partitions: visible in metadata and usable.
    let grown = admin
        .create_partitions([&NewPartitions::new(&topic, 5)], &options)
        .await
        .expect("CreatePartitions");
    assert_eq!(grown, vec![Ok(topic.clone())]);
    clients::wait_for_partitions(&broker, &topic, 5);
    let producer = clients::producer(&broker, &[]);
    assert_eq!(
        clients::produce_one(&producer, &topic, Some(4), None, b"new partition").await,
        (4, 0)
    );
    let shrink = admin
        .create_partitions([&NewPartitions::new(&topic, 3)], &options)
        .await
        .expect("CreatePartitions");
    assert_eq!(
        shrink,
        vec![Err((topic.clone(), RDKafkaErrorCode::InvalidPartitions))]
    );

    // Delete: gone from metadata; deleting again is an unknown topic.
    let deleted = admin
        .delete_topics(&[&topic], &options)
        .await
        .expect("DeleteTopics");
    assert_eq!(deleted, vec![Ok(topic.clone())]);
    wait_until(
        Duration::from_secs(30),
        "the deleted topic to leave metadata",
        || (!topic_names(&broker).contains(&topic)).then_some(()),
    );
    let deleted_again = admin
        .delete_topics(&[&topic], &options)
        .await
        .expect("DeleteTopics");
    assert_eq!(
        deleted_again,
        vec![Err((
            topic.clone(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_kafka_error_codes() {
    let broker = Broker::start_default();
    let admin = clients::admin(&broker);
    let options = clients::admin_options();

    let too_long = "x".repeat(250);
    for bad_name in ["bad topic name!", "..", too_long.as_str()] {
        let result = admin
            .create_topics(
                [&NewTopic::new(bad_name, 1, TopicReplication::Fixed(1))],
                &options,
            )
            .await
            .expect("CreateTopics");
        assert_eq!(
            result,
            vec![Err((bad_name.to_string(), RDKafkaErrorCode::InvalidTopic))],
            "topic name {bad_name:?}"
        );
    }

    let zero = unique_topic("zero-partitions");
    let result = admin
        .create_topics(
            [&NewTopic::new(&zero, 0, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .expect("CreateTopics");
    assert_eq!(
        result,
        vec![Err((zero.clone(), RDKafkaErrorCode::InvalidPartitions))]
    );
    assert!(
        !topic_names(&broker).contains(&zero),
        "a rejected topic was created"
    );

    let unknown = unique_topic("never-created");
    let deleted = admin
        .delete_topics(&[&unknown], &options)
        .await
        .expect("DeleteTopics");
    assert_eq!(
        deleted,
        vec![Err((
            unknown.clone(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
    let grown = admin
        .create_partitions([&NewPartitions::new(&unknown, 3)], &options)
        .await
        .expect("CreatePartitions");
    assert_eq!(
        grown,
        vec![Err((
            unknown.clone(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
    // rdkafka 0.39 drops DescribeConfigs' per-resource error code, so ask over the raw protocol.
    let mut client = RawClient::connect(broker.kafka_addr());
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(topic_name(&unknown).0)]);
    let version = client.version::<DescribeConfigsRequest>(i16::MAX);
    let response = client
        .request(&request, version)
        .expect("DescribeConfigs round trip");
    assert_eq!(
        response.results[0].error_code,
        error_code::UNKNOWN_TOPIC_OR_PARTITION,
        "DescribeConfigs of an unknown topic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_configs_replaces_every_override() {
    // The non-incremental AlterConfigs (what rdkafka's `alter_configs` sends) sets the given
    // configs and reverts every override it does not name.
    let broker = Broker::start_default();
    let admin = clients::admin(&broker);
    let options = clients::admin_options();
    let reference = unique_topic("defaults");
    clients::create_topic(&broker, &reference, 1).await;
    let defaults = describe_topic(&broker, &reference).await;
    let topic = unique_topic("alter");
    clients::create_topic_with(&broker, &topic, 1, &[("retention.ms", "3600000")]).await;

    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("max.message.bytes", "5000");
    let altered = admin
        .alter_configs([&alter], &options)
        .await
        .expect("AlterConfigs");
    assert!(altered[0].is_ok(), "AlterConfigs: {:?}", altered[0]);
    let entries = describe_topic(&broker, &topic).await;
    assert_eq!(
        entry(&entries, "max.message.bytes").value.as_deref(),
        Some("5000")
    );
    assert_eq!(
        entry(&entries, "max.message.bytes").source,
        ConfigSource::DynamicTopic
    );
    assert_eq!(
        entry(&entries, "retention.ms").value,
        entry(&defaults, "retention.ms").value,
        "AlterConfigs (not incremental) must drop overrides it does not name"
    );
}
