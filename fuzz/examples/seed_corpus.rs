//! Writes valid request frames (header + body, no length prefix) as a seed corpus for the
//! `decode_request` target, so fuzzing starts from requests the decoder accepts and mutates
//! them from there: `cargo run --example seed_corpus -- <dir>` (scripts/fuzz.sh does this).

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, DescribeConfigsRequest, FetchRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest,
    ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn frame<R: Request>(request: &R, version: i16) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("seed")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, R::header_version(version)).unwrap();
    request.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("seed-topic"))
}

fn batch(compression: Compression) -> Bytes {
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 1000,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

fn produce(compression: Compression) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(compression)))])])
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: seed_corpus <dir>"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    let api_versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("seed"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    seeds.push(("api_versions_v0", frame(&api_versions, 0)));
    seeds.push(("api_versions_v3", frame(&api_versions, 3)));

    let metadata = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic())),
    ]));
    seeds.push(("metadata_v1", frame(&metadata, 1)));
    seeds.push(("metadata_v12", frame(&metadata, 12)));

    seeds.push(("produce_v3", frame(&produce(Compression::None), 3)));
    seeds.push(("produce_v9", frame(&produce(Compression::None), 9)));
    seeds.push(("produce_v9_gzip", frame(&produce(Compression::Gzip), 9)));
    seeds.push(("produce_v9_zstd", frame(&produce(Compression::Zstd), 9)));

    let fetch = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic())
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    seeds.push(("fetch_v4", frame(&fetch, 4)));
    seeds.push(("fetch_v12", frame(&fetch, 12)));

    let list_offsets = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic())
            .with_partitions(vec![
                ListOffsetsPartition::default().with_timestamp(-1)
            ])]);
    seeds.push(("list_offsets_v1", frame(&list_offsets, 1)));
    seeds.push(("list_offsets_v7", frame(&list_offsets, 7)));

    let create_topics = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic())
            .with_num_partitions(3)
            .with_replication_factor(1)]);
    seeds.push(("create_topics_v2", frame(&create_topics, 2)));
    seeds.push(("create_topics_v5", frame(&create_topics, 5)));

    let init_producer_id = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    seeds.push(("init_producer_id_v4", frame(&init_producer_id, 4)));

    let describe_configs =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("seed-topic"))]);
    seeds.push(("describe_configs_v4", frame(&describe_configs, 4)));

    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("seed-topic"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str("1000")))]),
    ]);
    seeds.push(("incremental_alter_configs_v1", frame(&alter, 1)));

    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    println!("wrote {} seeds to {}", seeds.len(), dir.display());
}
