//! ShareGroupDescribe (KIP-932): a share group's state, epochs and members with their
//! assignments, as `kafka-share-groups.sh --describe --members` shows them. An unknown group,
//! or one of another type, is GROUP_ID_NOT_FOUND.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_group_describe_response::{DescribedGroup, Member};
use kafka_protocol::messages::{ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName};

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::group::assignor::Assignment;

/// Answers ShareGroupDescribe.
pub fn handle(
    broker: &Broker,
    request: ShareGroupDescribeRequest,
    authz: &Authz<'_>,
) -> ShareGroupDescribeResponse {
    let groups = request
        .group_ids
        .into_iter()
        .map(|group_id| {
            let base = DescribedGroup::default().with_group_id(group_id.clone());
            if !authz.group(AclOperation::Describe, &group_id) {
                let code = ResponseError::GroupAuthorizationFailed.code();
                broker.count_error("ShareGroupDescribe", code);
                return base.with_error_code(code);
            }
            match broker.groups.describe_share_group(&group_id) {
                Err(e) => {
                    broker.count_error("ShareGroupDescribe", e.code);
                    base.with_error_code(e.code)
                        .with_error_message((!e.message.is_empty()).then(|| text(e.message)))
                }
                Ok(d) => {
                    let wire = |a: &Assignment| {
                        described_assignment!(share_group_describe_response, a, d.topic_names)
                    };
                    let members = d
                        .members
                        .iter()
                        .map(|(m, _target)| {
                            Member::default()
                                .with_member_id(text(m.member_id.clone()))
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
                                .with_assignment(wire(&m.assignment))
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
    ShareGroupDescribeResponse::default().with_groups(groups)
}
