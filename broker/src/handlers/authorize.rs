//! The authorization checks that refuse a whole request, before its handler runs: APIs about
//! one group, one transactional id or the cluster, answered with the response's top-level
//! error as Kafka answers them (GROUP_AUTHORIZATION_FAILED,
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED). Checks per topic,
//! per partition or per group of a batch are in the handlers, which answer each item.
//!
//! Which operation each API needs follows Kafka's table "Operations and Resources on
//! Protocols" (docs/security.md).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

use super::authz::Authz;
use crate::controller::acl::{AclOperation, ResourceType};

/// The response refusing `request`, with its API's name and the error, if the principal
/// may not make it at all.
pub fn refused(
    request: &RequestKind,
    authz: &Authz<'_>,
) -> Option<(ResponseKind, &'static str, i16)> {
    use AclOperation::*;
    let group_denied = |op, group: &GroupId| !authz.group(op, group);
    let txn_denied = |id: &TransactionalId| !authz.transactional_id(Write, id);
    let group = ResponseError::GroupAuthorizationFailed.code();
    let txn = ResponseError::TransactionalIdAuthorizationFailed.code();
    let cluster = ResponseError::ClusterAuthorizationFailed.code();
    let (response, api, code) = match request {
        RequestKind::JoinGroup(r) if group_denied(Read, &r.group_id) => (
            ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_error_code(group)
                    .with_generation_id(-1),
            ),
            "JoinGroup",
            group,
        ),
        RequestKind::SyncGroup(r) if group_denied(Read, &r.group_id) => (
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(group)),
            "SyncGroup",
            group,
        ),
        RequestKind::Heartbeat(r) if group_denied(Read, &r.group_id) => (
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(group)),
            "Heartbeat",
            group,
        ),
        RequestKind::LeaveGroup(r) if group_denied(Read, &r.group_id) => (
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(group)),
            "LeaveGroup",
            group,
        ),
        RequestKind::ConsumerGroupHeartbeat(r) if group_denied(Read, &r.group_id) => (
            ResponseKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatResponse::default().with_error_code(group),
            ),
            "ConsumerGroupHeartbeat",
            group,
        ),
        RequestKind::OffsetDelete(r) if group_denied(Delete, &r.group_id) => (
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(group)),
            "OffsetDelete",
            group,
        ),
        RequestKind::AddOffsetsToTxn(r) if txn_denied(&r.transactional_id) => (
            ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(txn)),
            "AddOffsetsToTxn",
            txn,
        ),
        RequestKind::AddOffsetsToTxn(r) if group_denied(Read, &r.group_id) => (
            ResponseKind::AddOffsetsToTxn(
                AddOffsetsToTxnResponse::default().with_error_code(group),
            ),
            "AddOffsetsToTxn",
            group,
        ),
        RequestKind::EndTxn(r) if txn_denied(&r.transactional_id) => (
            ResponseKind::EndTxn(
                EndTxnResponse::default()
                    .with_error_code(txn)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            ),
            "EndTxn",
            txn,
        ),
        RequestKind::InitProducerId(r) => {
            let (allowed, code) = match &r.transactional_id {
                Some(id) => (!txn_denied(id), txn),
                // KIP-679: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
                None => (
                    authz.cluster(IdempotentWrite) || authz.any(Write, ResourceType::Topic),
                    cluster,
                ),
            };
            if allowed {
                return None;
            }
            (
                ResponseKind::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(code)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                ),
                "InitProducerId",
                code,
            )
        }
        // The broker form of AddPartitionsToTxn (v4+, its transactions list is used).
        RequestKind::AddPartitionsToTxn(r)
            if !r.transactions.is_empty() && !authz.cluster(ClusterAction) =>
        {
            (
                ResponseKind::AddPartitionsToTxn(
                    AddPartitionsToTxnResponse::default().with_error_code(cluster),
                ),
                "AddPartitionsToTxn",
                cluster,
            )
        }
        // Admin APIs on the cluster.
        RequestKind::AlterPartitionReassignments(_) if !authz.cluster(Alter) => (
            ResponseKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsResponse::default().with_error_code(cluster),
            ),
            "AlterPartitionReassignments",
            cluster,
        ),
        RequestKind::ListPartitionReassignments(_) if !authz.cluster(Describe) => (
            ResponseKind::ListPartitionReassignments(
                ListPartitionReassignmentsResponse::default().with_error_code(cluster),
            ),
            "ListPartitionReassignments",
            cluster,
        ),
        RequestKind::ElectLeaders(_) if !authz.cluster(Alter) => (
            ResponseKind::ElectLeaders(ElectLeadersResponse::default().with_error_code(cluster)),
            "ElectLeaders",
            cluster,
        ),
        // Kafka answers an unauthorized DescribeLogDirs with no directories.
        RequestKind::DescribeLogDirs(_) if !authz.cluster(Describe) => (
            ResponseKind::DescribeLogDirs(
                DescribeLogDirsResponse::default().with_error_code(cluster),
            ),
            "DescribeLogDirs",
            cluster,
        ),
        RequestKind::DescribeQuorum(_) if !authz.cluster(Describe) => (
            ResponseKind::DescribeQuorum(
                DescribeQuorumResponse::default().with_error_code(cluster),
            ),
            "DescribeQuorum",
            cluster,
        ),
        RequestKind::UpdateFeatures(_) if !authz.cluster(Alter) => (
            ResponseKind::UpdateFeatures(
                UpdateFeaturesResponse::default().with_error_code(cluster),
            ),
            "UpdateFeatures",
            cluster,
        ),
        RequestKind::DescribeUserScramCredentials(_) if !authz.cluster(Describe) => (
            ResponseKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default().with_error_code(cluster),
            ),
            "DescribeUserScramCredentials",
            cluster,
        ),
        RequestKind::AlterUserScramCredentials(r) if !authz.cluster(Alter) => {
            use alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
            let mut users: Vec<_> = r
                .upsertions
                .iter()
                .map(|u| u.name.clone())
                .chain(r.deletions.iter().map(|d| d.name.clone()))
                .collect();
            users.sort();
            users.dedup();
            let results = users
                .into_iter()
                .map(|user| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(user)
                        .with_error_code(cluster)
                })
                .collect();
            (
                ResponseKind::AlterUserScramCredentials(
                    AlterUserScramCredentialsResponse::default().with_results(results),
                ),
                "AlterUserScramCredentials",
                cluster,
            )
        }
        // Kafka checks DESCRIBE_CONFIGS / ALTER_CONFIGS on the cluster for client quotas.
        RequestKind::DescribeClientQuotas(_) if !authz.cluster(DescribeConfigs) => (
            ResponseKind::DescribeClientQuotas(
                DescribeClientQuotasResponse::default().with_error_code(cluster),
            ),
            "DescribeClientQuotas",
            cluster,
        ),
        RequestKind::AlterClientQuotas(r) if !authz.cluster(AlterConfigs) => {
            let entries = r
                .entries
                .iter()
                .map(|entry| {
                    alter_client_quotas_response::EntryData::default()
                        .with_error_code(cluster)
                        .with_entity(
                            entry
                                .entity
                                .iter()
                                .map(|e| {
                                    alter_client_quotas_response::EntityData::default()
                                        .with_entity_type(e.entity_type.clone())
                                        .with_entity_name(e.entity_name.clone())
                                })
                                .collect(),
                        )
                })
                .collect();
            (
                ResponseKind::AlterClientQuotas(
                    AlterClientQuotasResponse::default().with_entries(entries),
                ),
                "AlterClientQuotas",
                cluster,
            )
        }
        // The share coordinator's broker-to-broker APIs: every partition refused.
        RequestKind::ReadShareGroupState(r) if !authz.cluster(ClusterAction) => {
            use read_share_group_state_response::{PartitionResult, ReadStateResult};
            let results = r
                .topics
                .iter()
                .map(|t| {
                    ReadStateResult::default()
                        .with_topic_id(t.topic_id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    PartitionResult::default()
                                        .with_partition(p.partition)
                                        .with_error_code(cluster)
                                })
                                .collect(),
                        )
                })
                .collect();
            (
                ResponseKind::ReadShareGroupState(
                    ReadShareGroupStateResponse::default().with_results(results),
                ),
                "ReadShareGroupState",
                cluster,
            )
        }
        RequestKind::WriteShareGroupState(r) if !authz.cluster(ClusterAction) => {
            use write_share_group_state_response::{PartitionResult, WriteStateResult};
            let results = r
                .topics
                .iter()
                .map(|t| {
                    WriteStateResult::default()
                        .with_topic_id(t.topic_id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    PartitionResult::default()
                                        .with_partition(p.partition)
                                        .with_error_code(cluster)
                                })
                                .collect(),
                        )
                })
                .collect();
            (
                ResponseKind::WriteShareGroupState(
                    WriteShareGroupStateResponse::default().with_results(results),
                ),
                "WriteShareGroupState",
                cluster,
            )
        }
        RequestKind::InitializeShareGroupState(r) if !authz.cluster(ClusterAction) => {
            use initialize_share_group_state_response::{InitializeStateResult, PartitionResult};
            let results = r
                .topics
                .iter()
                .map(|t| {
                    InitializeStateResult::default()
                        .with_topic_id(t.topic_id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    PartitionResult::default()
                                        .with_partition(p.partition)
                                        .with_error_code(cluster)
                                })
                                .collect(),
                        )
                })
                .collect();
            (
                ResponseKind::InitializeShareGroupState(
                    InitializeShareGroupStateResponse::default().with_results(results),
                ),
                "InitializeShareGroupState",
                cluster,
            )
        }
        RequestKind::ReadShareGroupStateSummary(r) if !authz.cluster(ClusterAction) => {
            use read_share_group_state_summary_response::{
                PartitionResult, ReadStateSummaryResult,
            };
            let results = r
                .topics
                .iter()
                .map(|t| {
                    ReadStateSummaryResult::default()
                        .with_topic_id(t.topic_id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    PartitionResult::default()
                                        .with_partition(p.partition)
                                        .with_error_code(cluster)
                                })
                                .collect(),
                        )
                })
                .collect();
            (
                ResponseKind::ReadShareGroupStateSummary(
                    ReadShareGroupStateSummaryResponse::default().with_results(results),
                ),
                "ReadShareGroupStateSummary",
                cluster,
            )
        }
        RequestKind::DeleteShareGroupState(r) if !authz.cluster(ClusterAction) => {
            use delete_share_group_state_response::{DeleteStateResult, PartitionResult};
            let results = r
                .topics
                .iter()
                .map(|t| {
                    DeleteStateResult::default()
                        .with_topic_id(t.topic_id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    PartitionResult::default()
                                        .with_partition(p.partition)
                                        .with_error_code(cluster)
                                })
                                .collect(),
                        )
                })
                .collect();
            (
                ResponseKind::DeleteShareGroupState(
                    DeleteShareGroupStateResponse::default().with_results(results),
                ),
                "DeleteShareGroupState",
                cluster,
            )
        }
        RequestKind::WriteTxnMarkers(r) if !authz.cluster(ClusterAction) => {
            use write_txn_markers_response::{
                WritableTxnMarkerPartitionResult, WritableTxnMarkerResult,
                WritableTxnMarkerTopicResult,
            };
            let markers = r
                .markers
                .iter()
                .map(|m| {
                    let topics = m
                        .topics
                        .iter()
                        .map(|t| {
                            let partitions = t
                                .partition_indexes
                                .iter()
                                .map(|&p| {
                                    WritableTxnMarkerPartitionResult::default()
                                        .with_partition_index(p)
                                        .with_error_code(cluster)
                                })
                                .collect();
                            WritableTxnMarkerTopicResult::default()
                                .with_name(t.name.clone())
                                .with_partitions(partitions)
                        })
                        .collect();
                    WritableTxnMarkerResult::default()
                        .with_producer_id(m.producer_id)
                        .with_topics(topics)
                })
                .collect();
            (
                ResponseKind::WriteTxnMarkers(
                    WriteTxnMarkersResponse::default().with_markers(markers),
                ),
                "WriteTxnMarkers",
                cluster,
            )
        }
        _ => return None,
    };
    Some((response, api, code))
}
