//! A tiny Kafka wire-protocol client over a blocking `TcpStream`, for tests that need exact
//! control: chosen producer ids and sequences, duplicate batches, raw garbage, precise
//! long-poll timing.
//!
//! Frames are `[i32 length][request header][body]`, encoded and decoded with the
//! `kafka-protocol` crate. [`RawClient::connect`] asks ApiVersions first and every typed
//! request then uses the highest version both sides support, capped where newer versions
//! switch from topic names to topic ids.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, FetchRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Kafka error codes the tests assert on.
pub mod error_code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_CONFIG: i16 = 40;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
}

/// Produce v13 and Fetch v13+ address topics by id only; the tests address them by name.
pub const MAX_PRODUCE_VERSION: i16 = 12;
pub const MAX_FETCH_VERSION: i16 = 12;

/// Read timeout for one response (long-poll fetches pass their own, longer, wait).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection to the broker.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    next_correlation_id: i32,
    /// Broker-advertised (min, max) version per API key; empty before the handshake.
    versions: HashMap<i16, (i16, i16)>,
}

impl RawClient {
    /// Connects and performs the ApiVersions handshake (v0, which every broker answers).
    pub fn connect(addr: SocketAddr) -> RawClient {
        let mut client = RawClient::connect_without_handshake(addr);
        let response: ApiVersionsResponse = client
            .request(&ApiVersionsRequest::default(), 0)
            .expect("ApiVersions v0");
        assert_eq!(response.error_code, 0, "ApiVersions v0 error");
        client.versions = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, (api.min_version, api.max_version)))
            .collect();
        client
    }

    /// Connects and performs the ApiVersions handshake, or says why it could not.
    pub fn try_connect(addr: SocketAddr) -> io::Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut client = RawClient {
            stream,
            next_correlation_id: 1,
            versions: HashMap::new(),
        };
        let response: ApiVersionsResponse = client.request(&ApiVersionsRequest::default(), 0)?;
        if response.error_code != 0 {
            return Err(invalid_data(format!(
                "ApiVersions error {}",
                response.error_code
            )));
        }
        client.versions = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, (api.min_version, api.max_version)))
            .collect();
        Ok(client)
    }

    /// Connects without any request: for garbage and framing tests.
    pub fn connect_without_handshake(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT)).unwrap();
        RawClient {
            stream,
            next_correlation_id: 1,
            versions: HashMap::new(),
        }
    }

    /// The broker's advertised (min, max) versions of `api`, if it advertises it.
    pub fn advertised(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.versions.get(&(api as i16)).copied()
    }

    /// The highest version of `R` both sides support, at most `cap`. Panics when there is
    /// none (the broker does not implement a version the test can speak).
    pub fn version<R: Request>(&self, cap: i16) -> i16 {
        let (broker_min, broker_max) = *self
            .versions
            .get(&R::KEY)
            .unwrap_or_else(|| panic!("broker does not advertise API key {}", R::KEY));
        let version = broker_max.min(R::VERSIONS.max).min(cap);
        assert!(
            version >= broker_min.max(R::VERSIONS.min),
            "no common version for API key {}: broker {broker_min}..={broker_max}, test client {}",
            R::KEY,
            R::VERSIONS
        );
        version
    }

    /// Sends `request` at `version` and reads its response.
    pub fn request<R: Request>(&mut self, request: &R, version: i16) -> io::Result<R::Response> {
        let correlation_id = self.send(request, version)?;
        self.receive::<R>(version, correlation_id)
    }

    /// Sends one request frame; returns its correlation id.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> io::Result<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("weir-raw-client")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(invalid_data)?;
        request.encode(&mut body, version).map_err(invalid_data)?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.write_bytes(&frame)?;
        Ok(correlation_id)
    }

    /// Reads the response to the request sent with `correlation_id`.
    pub fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> io::Result<R::Response> {
        let mut frame = self.read_frame()?;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(invalid_data)?;
        if header.correlation_id != correlation_id {
            return Err(invalid_data(format!(
                "response correlation id {} does not match request {correlation_id}",
                header.correlation_id
            )));
        }
        let response = R::Response::decode(&mut frame, version).map_err(invalid_data)?;
        if frame.has_remaining() {
            return Err(invalid_data(format!(
                "{} bytes left after decoding the response to API key {} v{version}",
                frame.remaining(),
                R::KEY
            )));
        }
        Ok(response)
    }

    pub fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads one length-prefixed frame and returns it without the prefix.
    pub fn read_frame(&mut self) -> io::Result<Bytes> {
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length)?;
        let length = i32::from_be_bytes(length);
        if !(0..=256 * 1024 * 1024).contains(&length) {
            return Err(invalid_data(format!("response frame length {length}")));
        }
        let mut frame = vec![0u8; length as usize];
        self.stream.read_exact(&mut frame)?;
        Ok(Bytes::from(frame))
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// Half-closes the connection: the broker sees end of stream.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Waits until the broker closes the connection, discarding whatever it sends first
    /// (an error response is fine). Returns false if it is still open after `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buffer = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buffer) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true, // reset by peer
            }
        }
    }

    // ----- typed helpers -------------------------------------------------------------------

    /// CreateTopics with replication factor 1; returns the topic's error code.
    pub fn create_topic(&mut self, topic: &str, partitions: i32) -> i16 {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1)])
            .with_timeout_ms(30_000);
        let version = self.version::<CreateTopicsRequest>(i16::MAX);
        let response = self
            .request(&request, version)
            .expect("CreateTopics round trip");
        response.topics[0].error_code
    }

    /// Creates a topic and panics unless it succeeded.
    pub fn create_topic_ok(&mut self, topic: &str, partitions: i32) {
        let code = self.create_topic(topic, partitions);
        assert_eq!(code, error_code::NONE, "CreateTopics {topic} error code");
    }

    /// InitProducerId for an idempotent (non-transactional) producer: (producer id, epoch).
    pub fn init_producer_id(&mut self) -> (i64, i16) {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let version = self.version::<InitProducerIdRequest>(i16::MAX);
        let response = self
            .request(&request, version)
            .expect("InitProducerId round trip");
        assert_eq!(response.error_code, 0, "InitProducerId error code");
        assert!(
            response.producer_id.0 >= 0,
            "InitProducerId gave a negative producer id"
        );
        (response.producer_id.0, response.producer_epoch)
    }

    /// Produces one record batch (v2 bytes) to one partition with `acks`.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
    ) -> PartitionProduceResponse {
        let request = produce_request(topic, partition, batch, acks);
        let version = self.version::<ProduceRequest>(MAX_PRODUCE_VERSION);
        let response = self.request(&request, version).expect("Produce round trip");
        assert_eq!(response.responses.len(), 1, "Produce response topics");
        let topic_response = &response.responses[0];
        assert_eq!(topic_response.partition_responses.len(), 1);
        topic_response.partition_responses[0].clone()
    }

    /// One Fetch for one partition; returns that partition's data.
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait: Duration,
        min_bytes: i32,
    ) -> PartitionData {
        let request = FetchRequest::default()
            .with_max_wait_ms(max_wait.as_millis() as i32)
            .with_min_bytes(min_bytes)
            .with_max_bytes(64 * 1024 * 1024)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(32 * 1024 * 1024)])]);
        let version = self.version::<FetchRequest>(MAX_FETCH_VERSION);
        self.set_read_timeout(max_wait + RESPONSE_TIMEOUT);
        let response = self.request(&request, version).expect("Fetch round trip");
        self.set_read_timeout(RESPONSE_TIMEOUT);
        assert_eq!(response.error_code, 0, "Fetch top-level error code");
        assert_eq!(response.responses.len(), 1, "Fetch response topics");
        let partitions = &response.responses[0].partitions;
        assert_eq!(partitions.len(), 1, "Fetch response partitions");
        partitions[0].clone()
    }

    /// ListOffsets for one partition at `timestamp` (-1 latest, -2 earliest):
    /// (error code, offset).
    pub fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> (i16, i64) {
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)])]);
        let version = self.version::<ListOffsetsRequest>(i16::MAX);
        let response = self
            .request(&request, version)
            .expect("ListOffsets round trip");
        let answer = &response.topics[0].partitions[0];
        (answer.error_code, answer.offset)
    }

    /// IncrementalAlterConfigs on one topic: `Some(value)` sets a config, `None` deletes it
    /// (back to the default). Returns the topic's error code.
    pub fn alter_topic_configs(&mut self, topic: &str, changes: &[(&str, Option<&str>)]) -> i16 {
        let configs = changes
            .iter()
            .map(|(name, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(name.to_string()))
                    .with_config_operation(if value.is_some() { 0 } else { 1 })
                    .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configs(configs),
        ]);
        let version = self.version::<IncrementalAlterConfigsRequest>(i16::MAX);
        let response = self
            .request(&request, version)
            .expect("IncrementalAlterConfigs round trip");
        assert_eq!(response.responses.len(), 1);
        response.responses[0].error_code
    }

    /// The log end offset (high watermark on a single broker) of one partition.
    pub fn log_end_offset(&mut self, topic: &str, partition: i32) -> i64 {
        let (code, offset) = self.list_offset(topic, partition, -1);
        assert_eq!(
            code, 0,
            "ListOffsets latest error code for {topic}-{partition}"
        );
        offset
    }
}

/// A Produce request of one record batch (v2 bytes) to one partition with `acks`, 30 s timeout.
pub fn produce_request(topic: &str, partition: i32, batch: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])])
}

pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn invalid_data(error: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

/// Which producer writes a batch: `None` for a plain (non-idempotent) producer.
#[derive(Debug, Clone, Copy)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence of the batch's first record.
    pub base_sequence: i32,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Encodes `values` (no keys, no headers) as one record batch v2, with the current time as
/// every record's timestamp.
pub fn record_batch(values: &[&[u8]], producer: Option<ProducerIdentity>) -> Bytes {
    record_batch_at(values, producer, now_ms())
}

/// [`record_batch`] with `timestamp` (ms since the epoch) on every record.
pub fn record_batch_at(
    values: &[&[u8]],
    producer: Option<ProducerIdentity>,
    timestamp: i64,
) -> Bytes {
    encode_batch(values, producer, timestamp, Compression::None, false)
}

/// A transactional record batch v2 of `values` (attribute bit 4) from `producer`.
pub fn transactional_batch(values: &[&[u8]], producer: ProducerIdentity) -> Bytes {
    encode_batch(values, Some(producer), now_ms(), Compression::None, true)
}

/// One record batch v2 of `values`, compressed with `compression`.
pub fn record_batch_compressed(values: &[&[u8]], compression: Compression) -> Bytes {
    encode_batch(values, None, now_ms(), compression, false)
}

fn encode_batch(
    values: &[&[u8]],
    producer: Option<ProducerIdentity>,
    timestamp: i64,
    compression: Compression,
    transactional: bool,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(index, value)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.map_or(-1, |p| p.producer_id),
            producer_epoch: producer.map_or(-1, |p| p.producer_epoch),
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            sequence: producer.map_or(-1, |p| p.base_sequence + index as i32),
            timestamp,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: Default::default(),
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
    .expect("encoding a record batch");
    buf.freeze()
}

/// Decodes every complete record batch in `bytes` (a Fetch response's records); a partial
/// batch at the end, which brokers may send, is ignored.
pub fn decode_records(bytes: &Bytes) -> Vec<Record> {
    let mut records = Vec::new();
    let mut rest = bytes.clone();
    while rest.len() >= 12 {
        let batch_length = i32::from_be_bytes(rest[8..12].try_into().unwrap());
        let total = 12 + batch_length as usize;
        if batch_length < 0 || total > rest.len() {
            break;
        }
        let mut batch = rest.split_to(total);
        let set = RecordBatchDecoder::decode(&mut batch).expect("decoding a fetched batch");
        records.extend(set.records);
    }
    records
}
