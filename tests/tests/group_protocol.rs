//! The group APIs on the wire, request by request, with the raw protocol client: the error
//! codes Kafka's classic protocol returns at each step (MEMBER_ID_REQUIRED, ILLEGAL_GENERATION,
//! UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, NON_EMPTY_GROUP, GROUP_SUBSCRIBED_TO_TOPIC, ...),
//! batched keys and members, several groups per OffsetFetch, and the internal topic's rules.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use weir_tests::raw::{self, RawClient};
use weir_tests::wait::wait_until;
use weir_tests::{Broker, BrokerOptions};

const MEMBER_ID_REQUIRED: i16 = 79;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const FENCED_INSTANCE_ID: i16 = 82;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const NOT_COORDINATOR: i16 = 16;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn broker() -> Broker {
    Broker::start(
        BrokerOptions::default()
            .set("group.initial.rebalance.delay.ms", 0)
            .set("offsets.topic.num.partitions", 5),
    )
}

/// A consumer-protocol subscription (v0) to `topic`, as clients put in JoinGroup metadata.
fn subscription(topic: &str) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![s(topic)])
        .encode(&mut buf, 0)
        .unwrap();
    buf.freeze()
}

fn join(group: &str, member: &str, instance: Option<&str>, topic: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(subscription(topic))])
}

/// Sends the first JoinGroup of a group until its coordinator has loaded the group's
/// `__consumer_offsets` partition: FindCoordinator names the leader of that partition as soon
/// as it leads it, and the load that follows answers COORDINATOR_LOAD_IN_PROGRESS meanwhile
/// (retriable, as Kafka's; clients retry it).
fn join_when_loaded(c: &mut RawClient, request: &JoinGroupRequest) -> JoinGroupResponse {
    wait_until(
        std::time::Duration::from_secs(10),
        "the group's coordinator to load",
        || {
            let response = c.request(request, 9).unwrap();
            (response.error_code != COORDINATOR_LOAD_IN_PROGRESS).then_some(response)
        },
    )
}

fn heartbeat(
    c: &mut RawClient,
    group: &str,
    generation: i32,
    member: &str,
    instance: Option<&str>,
) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s));
    c.request(&request, 4).unwrap().error_code
}

fn commit(
    c: &mut RawClient,
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offset: i64,
) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(raw::topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(0)
                .with_committed_metadata(Some(s("checkpoint-a")))])]);
    c.request(&request, 9).unwrap().topics[0].partitions[0].error_code
}

#[test]
fn a_member_goes_through_the_classic_protocol_with_kafkas_error_codes() {
    let broker = broker();
    let mut c = RawClient::connect(broker.kafka_addr());
    c.create_topic_ok("orders", 2);

    // FindCoordinator with a batch of keys (v4+): this broker for each.
    let found = c
        .request(
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g"), s("other")]),
            6,
        )
        .unwrap();
    assert_eq!(found.coordinators.len(), 2);
    for coordinator in &found.coordinators {
        assert_eq!(coordinator.error_code, 0);
        assert_eq!(coordinator.port, i32::from(broker.kafka_addr().port()));
    }

    // A session timeout outside the broker's bounds is refused.
    let bad = join("g", "", None, "orders").with_session_timeout_ms(10);
    assert_eq!(
        join_when_loaded(&mut c, &bad).error_code,
        INVALID_SESSION_TIMEOUT
    );

    // First join: MEMBER_ID_REQUIRED and an id; the second join forms generation 1.
    let first = c.request(&join("g", "", None, "orders"), 9).unwrap();
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let member = first.member_id.to_string();
    assert!(!member.is_empty());
    let joined = c.request(&join("g", &member, None, "orders"), 9).unwrap();
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader.as_str(), member);
    assert_eq!(
        joined.protocol_name.as_ref().map(|p| p.as_str()),
        Some("range")
    );
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, subscription("orders"));

    let assignment = Bytes::from_static(b"orders-0-and-1");
    let synced = c
        .request(
            &SyncGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id(1)
                .with_member_id(s(&member))
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")))
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(assignment.clone())]),
            5,
        )
        .unwrap();
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, assignment);

    assert_eq!(heartbeat(&mut c, "g", 1, &member, None), 0);
    assert_eq!(heartbeat(&mut c, "g", 2, &member, None), ILLEGAL_GENERATION);
    assert_eq!(
        heartbeat(&mut c, "g", 1, "stranger", None),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(commit(&mut c, "g", 1, &member, "orders", 17), 0);
    assert_eq!(
        commit(&mut c, "g", 9, &member, "orders", 18),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        commit(&mut c, "g", 1, "stranger", "orders", 18),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        commit(&mut c, "other", -1, "", "orders", 3),
        0,
        "simple commit"
    );

    // OffsetFetch v8+: two groups, one for every partition (null topics).
    let fetched = c
        .request(
            &OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("g")))
                    .with_topics(None),
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("other")))
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(raw::topic_name("orders"))
                        .with_partition_indexes(vec![0, 1])])),
            ]),
            9,
        )
        .unwrap();
    let g = &fetched.groups[0];
    assert_eq!(g.error_code, 0);
    let p = &g.topics[0].partitions[0];
    assert_eq!(
        (
            p.partition_index,
            p.committed_offset,
            p.committed_leader_epoch
        ),
        (0, 17, 0)
    );
    assert_eq!(
        p.metadata.as_ref().map(|m| m.as_str()),
        Some("checkpoint-a")
    );
    let other: Vec<(i32, i64)> = fetched.groups[1].topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(
        other,
        vec![(0, 3), (1, -1)],
        "a partition without a commit reads -1"
    );

    // DescribeGroups and ListGroups see a Stable consumer group.
    let described = c
        .request(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
            5,
        )
        .unwrap();
    let d = &described.groups[0];
    assert_eq!(
        (
            d.group_state.as_str(),
            d.protocol_type.as_str(),
            d.protocol_data.as_str()
        ),
        ("Stable", "consumer", "range")
    );
    assert_eq!(d.members[0].member_assignment, assignment);
    assert_eq!(d.members[0].client_host.as_str(), "/127.0.0.1");
    let listed = |c: &mut RawClient, state: &str| -> Vec<String> {
        c.request(
            &ListGroupsRequest::default().with_states_filter(vec![s(state)]),
            5,
        )
        .unwrap()
        .groups
        .iter()
        .map(|g| g.group_id.to_string())
        .collect()
    };
    assert_eq!(listed(&mut c, "Stable"), vec!["g".to_string()]);
    assert_eq!(listed(&mut c, "Empty"), vec!["other".to_string()]);

    // A group with members can neither be deleted nor lose a subscribed topic's offsets.
    let deleted = c
        .request(
            &DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(s("g")), GroupId(s("nope"))]),
            2,
        )
        .unwrap();
    let codes: Vec<i16> = deleted.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND]);
    let offset_delete = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(raw::topic_name("orders"))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let refused = c.request(&offset_delete, 0).unwrap();
    assert_eq!(
        refused.topics[0].partitions[0].error_code,
        GROUP_SUBSCRIBED_TO_TOPIC
    );

    // LeaveGroup with a batch of members (v3+): the known one leaves, the stranger is unknown.
    let left = c
        .request(
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(s(&member)),
                    MemberIdentity::default().with_member_id(s("stranger")),
                ]),
            5,
        )
        .unwrap();
    let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
    assert_eq!((left.error_code, codes), (0, vec![0, UNKNOWN_MEMBER_ID]));
    assert_eq!(heartbeat(&mut c, "g", 1, &member, None), UNKNOWN_MEMBER_ID);

    // Empty now: its offsets can go, then the group itself.
    let removed = c.request(&offset_delete, 0).unwrap();
    assert_eq!(
        (
            removed.error_code,
            removed.topics[0].partitions[0].error_code
        ),
        (0, 0)
    );
    let deleted = c
        .request(
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]),
            2,
        )
        .unwrap();
    assert_eq!(deleted.results[0].error_code, 0);
    let described = c
        .request(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
            6,
        )
        .unwrap();
    assert_eq!(described.groups[0].error_code, GROUP_ID_NOT_FOUND);
}

#[test]
fn a_static_member_that_rejoins_fences_its_old_incarnation() {
    let broker = broker();
    let mut c = RawClient::connect(broker.kafka_addr());
    c.create_topic_ok("orders", 1);
    // Before FindCoordinator has created __consumer_offsets, nobody coordinates the group.
    let early = c
        .request(&join("s", "", Some("instance-1"), "orders"), 9)
        .unwrap();
    assert_eq!(early.error_code, NOT_COORDINATOR);
    let found = c
        .request(&FindCoordinatorRequest::default().with_key(s("s")), 3)
        .unwrap();
    assert_eq!(found.error_code, 0);
    let first = join_when_loaded(&mut c, &join("s", "", Some("instance-1"), "orders"));
    assert_eq!(
        (first.error_code, first.generation_id),
        (0, 1),
        "static members skip MEMBER_ID_REQUIRED"
    );
    let old = first.member_id.to_string();
    let synced = c
        .request(
            &SyncGroupRequest::default()
                .with_group_id(GroupId(s("s")))
                .with_generation_id(1)
                .with_member_id(s(&old))
                .with_group_instance_id(Some(s("instance-1")))
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(s(&old))
                    .with_assignment(Bytes::from_static(b"mine"))]),
            5,
        )
        .unwrap();
    assert_eq!(synced.error_code, 0);

    // The same instance comes back with no member id: same generation, a new id, no rebalance.
    let again = c
        .request(&join("s", "", Some("instance-1"), "orders"), 9)
        .unwrap();
    assert_eq!((again.error_code, again.generation_id), (0, 1));
    assert_ne!(again.member_id.as_str(), old);
    assert!(
        again.skip_assignment,
        "the static leader keeps the current assignment"
    );
    assert_eq!(
        heartbeat(&mut c, "s", 1, &old, Some("instance-1")),
        FENCED_INSTANCE_ID
    );
    assert_eq!(
        heartbeat(&mut c, "s", 1, &again.member_id, Some("instance-1")),
        0
    );
}

#[test]
fn the_offsets_topic_is_internal_and_closed_to_producers() {
    let broker = broker();
    let mut c = RawClient::connect(broker.kafka_addr());
    let found = c
        .request(&FindCoordinatorRequest::default().with_key(s("g")), 3)
        .unwrap();
    assert_eq!(found.error_code, 0);
    let metadata = c
        .request(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(raw::topic_name("__consumer_offsets")))])),
            12,
        )
        .unwrap();
    let topic = &metadata.topics[0];
    assert!(topic.is_internal);
    assert_eq!(topic.partitions.len(), 5, "offsets.topic.num.partitions");
    let produced = c.produce(
        "__consumer_offsets",
        0,
        raw::record_batch(&[b"x"], None),
        -1,
    );
    assert_eq!(produced.error_code, INVALID_TOPIC_EXCEPTION);
}
