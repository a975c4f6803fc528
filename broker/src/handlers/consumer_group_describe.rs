//! ConsumerGroupDescribe (KIP-848): a consumer group's state, epochs, assignor and members with
//! their current and target assignments, as `kafka-consumer-groups.sh --describe` shows them
//! for `group.protocol=consumer` groups. An unknown or classic group is GROUP_ID_NOT_FOUND.

use kafka_protocol::messages::consumer_group_describe_response::{DescribedGroup, Member};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::group::assignor::Assignment;
use kafka_protocol::error::ResponseError;

/// Kafka's member type of a consumer-protocol member (v1).
const CONSUMER_MEMBER_TYPE: i8 = 1;
/// Kafka's member type of a classic-protocol member of a consumer group (online migration).
const CLASSIC_MEMBER_TYPE: i8 = 0;

/// Answers ConsumerGroupDescribe.
pub fn handle(
    broker: &Broker,
    request: ConsumerGroupDescribeRequest,
    version: i16,
    authz: &Authz<'_>,
) -> ConsumerGroupDescribeResponse {
    let groups = request
        .group_ids
        .into_iter()
        .map(|group_id| {
            let base = DescribedGroup::default().with_group_id(group_id.clone());
            // DESCRIBE on each group, as Kafka.
            if !authz.group(AclOperation::Describe, &group_id) {
                let code = ResponseError::GroupAuthorizationFailed.code();
                broker.count_error("ConsumerGroupDescribe", code);
                return base.with_error_code(code);
            }
            match broker.groups.describe_consumer_group(&group_id) {
                Err(e) => {
                    broker.count_error("ConsumerGroupDescribe", e.code);
                    base.with_error_code(e.code)
                        .with_error_message((!e.message.is_empty()).then(|| text(e.message)))
                }
                Ok(d) => {
                    let wire = |a: &Assignment| {
                        described_assignment!(consumer_group_describe_response, a, d.topic_names)
                    };
                    let members = d
                        .members
                        .iter()
                        .map(|(m, target)| {
                            Member::default()
                                .with_member_id(text(m.member_id.clone()))
                                .with_instance_id(m.instance_id.clone().map(text))
                                .with_rack_id(m.rack_id.clone().map(text))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(text(m.client_id.clone()))
                                .with_client_host(text(m.client_host.clone()))
                                .with_subscribed_topic_names(
                                    m.subscribed_topic_names
                                        .iter()
                                        .map(|t| TopicName(text(t.clone())))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(
                                    m.subscribed_topic_regex.clone().map(text),
                                )
                                .with_assignment(wire(&m.assigned))
                                .with_target_assignment(wire(target))
                                .with_member_type(if version >= 1 {
                                    if m.uses_classic_protocol() {
                                        CLASSIC_MEMBER_TYPE
                                    } else {
                                        CONSUMER_MEMBER_TYPE
                                    }
                                } else {
                                    -1
                                })
                        })
                        .collect();
                    base.with_group_state(text(d.state))
                        .with_group_epoch(d.group_epoch)
                        .with_assignment_epoch(d.assignment_epoch)
                        .with_assignor_name(text(d.assignor_name))
                        .with_members(members)
                }
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
