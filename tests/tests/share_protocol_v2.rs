//! Share groups at the versions Kafka 4.2+ clients use, on the bare wire: ShareFetch and
//! ShareAcknowledge v2 (KIP-1206's acquire modes, KIP-1222's renew acknowledgements) and
//! DescribeShareGroupOffsets v1 (KIP-1226's lag). What clients rely on: a renewed record stays
//! with its member and is not redelivered, a renew-only ShareFetch acquires nothing, a Renew
//! the request did not announce is refused with INVALID_REQUEST and changes nothing,
//! record-limit mode never hands out more than `MaxRecords`, and the lag is the records
//! produced and not yet acknowledged or archived, acknowledged out of order included; and an
//! ApiVersions at a version Weir does not know lists the share-group APIs.

use std::time::Duration;

use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch as FetchAckBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::{
    describe_share_group_offsets_request as describe, ApiKey, FindCoordinatorRequest, GroupId,
    ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
    ShareGroupHeartbeatRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_tests::raw::{record_batch, RawClient};
use weir_tests::wait::wait_until;
use weir_tests::{unique_topic, Broker, BrokerOptions};

const INVALID_REQUEST: i16 = 42;
const INVALID_RECORD_STATE: i16 = 121;
const ACCEPT: i8 = 1;
const RENEW: i8 = 4;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// One share member speaking the protocol itself.
struct Member {
    client: RawClient,
    group: String,
    id: String,
    /// The assigned topic (its id) with no partitions yet, as ShareFetch and ShareAcknowledge
    /// name it.
    fetch_topic: FetchTopic,
    ack_topic: AcknowledgeTopic,
    epoch: i32,
}

impl Member {
    /// Joins `group` subscribed to `topic` and waits for partition 0 to be assigned.
    fn join(broker: &Broker, group: &str, topic: &str) -> Member {
        let mut client = RawClient::connect(broker.kafka_addr());
        static MEMBERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = MEMBERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("member-{}-{n}", std::process::id());
        let mut epoch = 0;
        let (fetch_topic, ack_topic) =
            wait_until(Duration::from_secs(60), "a share assignment", || {
                // As a client does: find the coordinator (which creates `__consumer_offsets`).
                let found = client
                    .request(&FindCoordinatorRequest::default().with_key(text(group)), 3)
                    .expect("FindCoordinator");
                if found.error_code != 0 {
                    return None;
                }
                let request = ShareGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(text(group)))
                    .with_member_id(text(&id))
                    .with_member_epoch(epoch)
                    .with_subscribed_topic_names(Some(vec![TopicName(text(topic))]));
                let response = client.request(&request, 1).expect("ShareGroupHeartbeat");
                if response.error_code != 0 {
                    return None;
                }
                epoch = response.member_epoch;
                let assignment = response.assignment?;
                assignment
                    .topic_partitions
                    .iter()
                    .find(|t| t.partitions.contains(&0))
                    .map(|t| {
                        (
                            FetchTopic::default().with_topic_id(t.topic_id),
                            AcknowledgeTopic::default().with_topic_id(t.topic_id),
                        )
                    })
            });
        Member {
            client,
            group: group.to_string(),
            id,
            fetch_topic,
            ack_topic,
            epoch: 0,
        }
    }

    /// A ShareFetch v2 in the member's session epoch, as `build` shapes it.
    fn fetch(
        &mut self,
        build: impl FnOnce(ShareFetchRequest) -> ShareFetchRequest,
    ) -> ShareFetchResponse {
        let request = build(
            ShareFetchRequest::default()
                .with_group_id(Some(GroupId(text(&self.group))))
                .with_member_id(Some(text(&self.id)))
                .with_share_session_epoch(self.epoch)
                .with_max_wait_ms(2_000)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_max_records(100)
                .with_batch_size(100),
        );
        let response = self.client.request(&request, 2).expect("ShareFetch v2");
        if response.error_code == 0 {
            self.epoch += 1;
        }
        response
    }

    fn partition(&self, acks: Vec<(i64, i64, Vec<i8>)>) -> FetchTopic {
        self.fetch_topic
            .clone()
            .with_partitions(vec![FetchPartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(
                    acks.into_iter()
                        .map(|(first, last, types)| {
                            FetchAckBatch::default()
                                .with_first_offset(first)
                                .with_last_offset(last)
                                .with_acknowledge_types(types)
                        })
                        .collect(),
                )])
    }

    /// A ShareAcknowledge of partition 0 at `version`; the partition's error code and the
    /// response.
    fn acknowledge(
        &mut self,
        version: i16,
        renew: bool,
        acks: Vec<(i64, i64, Vec<i8>)>,
    ) -> (i16, ShareAcknowledgeResponse) {
        let request = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(text(&self.group))))
            .with_member_id(Some(text(&self.id)))
            .with_share_session_epoch(self.epoch)
            .with_is_renew_ack(renew)
            .with_topics(vec![self.ack_topic.clone().with_partitions(vec![
                AcknowledgePartition::default()
                    .with_partition_index(0)
                    .with_acknowledgement_batches(
                        acks.into_iter()
                            .map(|(first, last, types)| {
                                AckBatch::default()
                                    .with_first_offset(first)
                                    .with_last_offset(last)
                                    .with_acknowledge_types(types)
                            })
                            .collect(),
                    ),
            ])]);
        let response = self
            .client
            .request(&request, version)
            .expect("ShareAcknowledge");
        assert_eq!(response.error_code, 0, "ShareAcknowledge top-level error");
        self.epoch += 1;
        let code = response.responses[0].partitions[0].error_code;
        (code, response)
    }
}

/// Offsets acquired in a ShareFetch answer: (first, last, delivery count).
fn acquired(response: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

fn count(runs: &[(i64, i64, i16)]) -> i64 {
    runs.iter().map(|(f, l, _)| l - f + 1).sum()
}

/// DescribeShareGroupOffsets v1 of partition 0: (start offset, lag).
fn describe_offsets(client: &mut RawClient, group: &str, topic: &str) -> (i64, i64) {
    let request = kafka_protocol::messages::DescribeShareGroupOffsetsRequest::default()
        .with_groups(vec![
            describe::DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(text(group)))
                .with_topics(Some(vec![
                    describe::DescribeShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(TopicName(text(topic)))
                        .with_partitions(vec![0]),
                ])),
        ]);
    let response = client
        .request(&request, 1)
        .expect("DescribeShareGroupOffsets v1");
    let group = &response.groups[0];
    assert_eq!(group.error_code, 0, "DescribeShareGroupOffsets group error");
    let p = &group.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "DescribeShareGroupOffsets partition error");
    (p.start_offset, p.lag)
}

fn produce(client: &mut RawClient, topic: &str, n: usize) {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    let produced = client.produce(topic, 0, record_batch(&refs, None), -1);
    assert_eq!(produced.error_code, 0, "Produce");
}

#[test]
fn renew_acquire_modes_and_lag_at_kafka_4_3_versions() {
    let broker = Broker::start(
        BrokerOptions::default()
            .set("group.share.enable", "true")
            .set("share.auto.offset.reset", "earliest"),
    );
    let mut admin = RawClient::connect(broker.kafka_addr());
    assert_eq!(admin.advertised(ApiKey::ShareFetch), Some((1, 2)));
    assert_eq!(admin.advertised(ApiKey::ShareAcknowledge), Some((1, 2)));
    assert_eq!(
        admin.advertised(ApiKey::DescribeShareGroupOffsets),
        Some((0, 1))
    );
    let topic = unique_topic("share-v2");
    admin.create_topic_ok(&topic, 1);
    produce(&mut admin, &topic, 10);

    let group = "share-v2-group";
    let mut member = Member::join(&broker, group, &topic);
    let topics = vec![member.partition(vec![])];
    let response = member.fetch(|r| r.with_topics(topics));
    assert_eq!(response.error_code, 0);
    assert_eq!(acquired(&response), vec![(0, 9, 1)]);

    // Unknown acquire mode; renew flag with fetch parameters: INVALID_REQUEST, whole request.
    let response = member.fetch(|r| r.with_share_acquire_mode(2));
    assert_eq!(response.error_code, INVALID_REQUEST);
    let response = member.fetch(|r| r.with_is_renew_ack(true));
    assert_eq!(response.error_code, INVALID_REQUEST);

    // A Renew that v1 cannot announce: INVALID_REQUEST, and the records stay held.
    let (code, _) = member.acknowledge(1, false, vec![(0, 9, vec![RENEW])]);
    assert_eq!(code, INVALID_REQUEST);

    // A renew-only ShareFetch: acknowledges, acquires nothing.
    let topics = vec![member.partition(vec![(0, 4, vec![RENEW])])];
    let response = member.fetch(|r| {
        r.with_is_renew_ack(true)
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(0)
            .with_max_records(0)
            .with_topics(topics)
    });
    assert_eq!(response.error_code, 0);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.acknowledge_error_code, 0);
    assert!(partition.acquired_records.is_empty());
    assert!(response.acquisition_lock_timeout_ms > 0);

    // Out-of-order acknowledgement: 5..9 accepted while 0..4 are held (renewed, and renewed
    // again with ShareAcknowledge v2, which reports the lock length).
    let (code, response) = member.acknowledge(2, true, vec![(0, 4, vec![RENEW])]);
    assert_eq!(code, 0);
    assert!(response.acquisition_lock_timeout_ms > 0);
    let (code, _) = member.acknowledge(2, false, vec![(5, 9, vec![ACCEPT])]);
    assert_eq!(code, 0);
    // A second member gets nothing: 0..4 are still held by the first.
    let mut other = Member::join(&broker, group, &topic);
    let topics = vec![other.partition(vec![])];
    let response = other.fetch(|r| r.with_max_wait_ms(200).with_topics(topics));
    assert_eq!(acquired(&response), vec![]);
    // Renewing what one does not hold is refused.
    let (code, _) = other.acknowledge(2, true, vec![(0, 0, vec![RENEW])]);
    assert_eq!(code, INVALID_RECORD_STATE);

    // Lag: 10 produced, 5 acknowledged past the start offset 0.
    assert_eq!(describe_offsets(&mut admin, group, &topic), (0, 5));
    let (code, _) = member.acknowledge(2, false, vec![(0, 4, vec![ACCEPT, 1, 1, 1, 1])]);
    assert_eq!(code, 0);
    assert_eq!(describe_offsets(&mut admin, group, &topic), (10, 0));
    produce(&mut admin, &topic, 7);
    assert_eq!(describe_offsets(&mut admin, group, &topic), (10, 7));

    // Record-limit mode: never more than MaxRecords, over the whole request.
    let response = member.fetch(|r| r.with_share_acquire_mode(1).with_max_records(3));
    assert_eq!(response.error_code, 0);
    assert_eq!(acquired(&response), vec![(10, 12, 1)]);
    let response = other.fetch(|r| r.with_share_acquire_mode(0).with_max_records(2));
    assert_eq!(count(&acquired(&response)), 2);
    // Acquired but not acknowledged records are still lag.
    assert_eq!(describe_offsets(&mut admin, group, &topic), (10, 7));
}

/// A client that opens with an ApiVersions version Weir does not know (franz-go sends v5)
/// gets Kafka's v0 UNSUPPORTED_VERSION answer with the ranges, and keeps them: they list the
/// share-group APIs at the versions a supported ApiVersions shows, or the client finds the
/// share APIs missing.
#[test]
fn api_versions_at_an_unknown_version_lists_the_share_group_apis() {
    use kafka_protocol::messages::{ApiVersionsResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;

    let broker = Broker::start(BrokerOptions::default().set("group.share.enable", "true"));
    let mut client = RawClient::connect_without_handshake(broker.kafka_addr());
    let mut payload = Vec::new();
    payload.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    payload.extend_from_slice(&127i16.to_be_bytes());
    payload.extend_from_slice(&7i32.to_be_bytes());
    payload.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    client.write_bytes(&frame).unwrap();
    let mut response = client.read_frame().expect("an answer to ApiVersions v127");
    let header = ResponseHeader::decode(&mut response, 0).unwrap();
    assert_eq!(header.correlation_id, 7);
    let body = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(body.error_code, 35, "UNSUPPORTED_VERSION");
    let range = |api: ApiKey| {
        body.api_keys
            .iter()
            .find(|k| k.api_key == api as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(ApiKey::ShareGroupHeartbeat), Some((1, 1)));
    assert_eq!(range(ApiKey::ShareFetch), Some((1, 2)));
    assert_eq!(range(ApiKey::ShareAcknowledge), Some((1, 2)));
    assert_eq!(range(ApiKey::DescribeShareGroupOffsets), Some((0, 1)));
}
