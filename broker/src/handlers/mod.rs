//! One handler per Kafka API. Each takes the decoded request and returns the typed response;
//! framing, metrics and version checks happen in [`crate::server`] and [`crate::protocol`].

/// The answer to a KIP-848-style heartbeat (ConsumerGroupHeartbeat, ShareGroupHeartbeat) from
/// the coordinator's `Result<HeartbeatAnswer, HeartbeatError>`: `$module` is the response's
/// message module, whose `Assignment` and `TopicPartitions` the two APIs define alike.
macro_rules! heartbeat_response {
    ($module:ident, $response:ident, $api:literal, $broker:expr, $group_id:expr, $request:expr, $answer:expr) => {
        match $answer {
            Ok(a) => kafka_protocol::messages::$response::default()
                .with_member_id(Some($crate::handlers::text(a.member_id)))
                .with_member_epoch(a.member_epoch)
                .with_heartbeat_interval_ms(a.heartbeat_interval_ms)
                .with_assignment(a.assignment.map(|assigned| {
                    kafka_protocol::messages::$module::Assignment::default().with_topic_partitions(
                        assigned
                            .into_iter()
                            .map(|(topic_id, partitions)| {
                                kafka_protocol::messages::$module::TopicPartitions::default()
                                    .with_topic_id(topic_id)
                                    .with_partitions(partitions.into_iter().collect())
                            })
                            .collect(),
                    )
                })),
            Err(e) => {
                tracing::debug!(group = %$group_id, member = %$request.member_id.as_str(), epoch = $request.member_epoch, error_code = e.code, message = %e.message, concat!($api, " refused"));
                $broker.count_error($api, e.code);
                kafka_protocol::messages::$response::default()
                    .with_error_code(e.code)
                    .with_error_message(
                        (!e.message.is_empty()).then(|| $crate::handlers::text(e.message)),
                    )
            }
        }
    };
}

/// A describe response's `Assignment` (ConsumerGroupDescribe, ShareGroupDescribe) of an
/// [`crate::group::assignor::Assignment`], with topic names from `$names`: `$module` is the
/// response's message module.
macro_rules! described_assignment {
    ($module:ident, $assignment:expr, $names:expr) => {
        kafka_protocol::messages::$module::Assignment::default().with_topic_partitions(
            $assignment
                .iter()
                .map(|(id, partitions)| {
                    kafka_protocol::messages::$module::TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_topic_name(kafka_protocol::messages::TopicName(
                            $crate::handlers::text($names.get(id).cloned().unwrap_or_default()),
                        ))
                        .with_partitions(partitions.iter().copied().collect())
                })
                .collect(),
        )
    };
}

pub mod acls;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod admin;
pub mod alter_partition_reassignments;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod authorize;
pub mod authz;
pub mod client_quotas;
pub mod configs;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod delete_groups;
pub mod delete_records;
pub mod describe_cluster;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
mod fetch_wake;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod share_acknowledge;
pub mod share_fetch;
pub mod share_group_describe;
pub mod share_group_heartbeat;
pub mod share_group_offsets;
pub mod share_group_state;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod update_features;
pub mod write_txn_markers;

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::protocol::DecodedRequest;
use crate::security::authorizer::Authorizer;
use crate::security::Principal;

/// One client connection, as the listener knows it: where from, on which listener, as whom
/// it authenticated, and the broker's authorizer if it has one.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The peer address, if known.
    pub peer: Option<SocketAddr>,
    /// The listener name (`PLAINTEXT`, `SASL_SSL`, ...): Metadata, DescribeCluster and
    /// FindCoordinator answer with the brokers' endpoints of this listener.
    pub listener: Arc<str>,
    /// `User:ANONYMOUS`, the SASL user, or the TLS client certificate's mapped name.
    pub principal: Principal,
    /// The authorizer, when `authorizer.class.name` is set.
    pub authorizer: Option<Arc<Authorizer>>,
    /// This broker's registration lease lapses when the connection was accepted
    /// ([`crate::replica_manager::RegistrationLease::lapses`]).
    pub lease_lapses: u64,
    /// On a plaintext connection: where a Fetch leaves the file slices its response sends
    /// with `sendfile` (see [`crate::protocol::file_slice`]), for the frame to pick up.
    pub file_slices: Option<Arc<FileSlices>>,
}

/// The file slices of the response being built on a connection.
pub type FileSlices = parking_lot::Mutex<Vec<crate::protocol::file_slice::FileSlice>>;

impl Default for Connection {
    fn default() -> Self {
        Self {
            peer: None,
            listener: "PLAINTEXT".into(),
            principal: Principal::anonymous(),
            authorizer: None,
            lease_lapses: 0,
            file_slices: None,
        }
    }
}

/// Who sent a request: what group members are described with.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The request header's `client.id` (empty if null).
    pub client_id: String,
    /// The peer address of the connection, if known.
    pub peer: Option<SocketAddr>,
}

impl ClientInfo {
    /// The client's host as Kafka prints it in DescribeGroups (`/127.0.0.1`).
    pub fn host(&self) -> String {
        self.peer
            .map(|p| format!("/{}", p.ip()))
            .unwrap_or_default()
    }
}

/// The controller mutation quota of `client` on `connection`, if one applies.
fn mutation_quota<'a>(
    broker: &'a Broker,
    connection: &Connection,
    client: &ClientInfo,
    strict: bool,
) -> Option<crate::quota::MutationQuota<'a>> {
    let image = broker.replicas.image();
    if image.client_quotas.is_empty() {
        return None;
    }
    broker.quotas.mutation_quota(
        &image,
        connection.principal.name(),
        &client.client_id,
        strict,
    )
}

/// Handles one request from `connection`; `None` means no response is sent (produce with
/// `acks=0`).
pub async fn handle(
    broker: &Broker,
    request: DecodedRequest,
    connection: &Connection,
) -> Option<ResponseKind> {
    let peer = connection.peer;
    let listener = &*connection.listener;
    let version = request.header.request_api_version;
    let client = ClientInfo {
        client_id: request
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        peer,
    };
    let authz = authz::Authz::new(broker, connection);
    if authz.enabled() {
        if let Some((response, api, code)) = authorize::refused(&request.body, &authz) {
            broker.count_error(api, code);
            return Some(response);
        }
    }
    Some(match request.body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle(broker)),
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata::handle(broker, r, version, listener, &authz).await)
        }
        RequestKind::Produce(r) => {
            ResponseKind::Produce(produce::handle(broker, r, version, &authz).await?)
        }
        RequestKind::Fetch(r) => {
            let zero_copy = connection.file_slices.as_deref();
            ResponseKind::Fetch(fetch::handle(broker, r, version, &authz, zero_copy).await)
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, r, version, &authz))
        }
        // Strict controller mutation quotas from the versions that know THROTTLING_QUOTA_EXCEEDED.
        RequestKind::CreateTopics(r) => {
            let quota = mutation_quota(broker, connection, &client, version >= 6);
            ResponseKind::CreateTopics(
                admin::create_topics(broker, r, version, &authz, quota).await,
            )
        }
        RequestKind::DeleteTopics(r) => {
            let quota = mutation_quota(broker, connection, &client, version >= 5);
            ResponseKind::DeleteTopics(
                admin::delete_topics(broker, r, version, &authz, quota).await,
            )
        }
        RequestKind::CreatePartitions(r) => {
            let quota = mutation_quota(broker, connection, &client, version >= 3);
            ResponseKind::CreatePartitions(admin::create_partitions(broker, r, &authz, quota).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe(broker, r, &authz))
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            configs::incremental_alter(broker, r, &authz).await,
        ),
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(configs::alter(broker, r, &authz).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(broker, r, listener))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, r, version).await)
        }
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(
            find_coordinator::handle(broker, r, version, listener, &authz).await,
        ),
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(join_group::handle(broker, r, version, &client).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(sync_group::handle(broker, r, version).await)
        }
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(broker, r)),
        RequestKind::ConsumerGroupDescribe(r) => ResponseKind::ConsumerGroupDescribe(
            consumer_group_describe::handle(broker, r, version, &authz),
        ),
        RequestKind::ConsumerGroupHeartbeat(r) => ResponseKind::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(broker, r, version, &client).await,
        ),
        RequestKind::ShareGroupHeartbeat(_)
        | RequestKind::ShareGroupDescribe(_)
        | RequestKind::ShareFetch(_)
        | RequestKind::ShareAcknowledge(_)
        | RequestKind::ReadShareGroupState(_)
        | RequestKind::WriteShareGroupState(_)
        | RequestKind::InitializeShareGroupState(_)
        | RequestKind::ReadShareGroupStateSummary(_)
        | RequestKind::DeleteShareGroupState(_)
        | RequestKind::DescribeShareGroupOffsets(_)
        | RequestKind::AlterShareGroupOffsets(_)
        | RequestKind::DeleteShareGroupOffsets(_)
            if !broker.config.share_groups_enabled() =>
        {
            return Some(share_groups_disabled(&request.body));
        }
        RequestKind::ShareGroupHeartbeat(r) => ResponseKind::ShareGroupHeartbeat(
            share_group_heartbeat::handle(broker, r, &client).await,
        ),
        RequestKind::ShareGroupDescribe(r) => {
            ResponseKind::ShareGroupDescribe(share_group_describe::handle(broker, r, &authz))
        }
        RequestKind::ShareFetch(r) => {
            ResponseKind::ShareFetch(share_fetch::handle(broker, r, &authz).await)
        }
        RequestKind::ShareAcknowledge(r) => {
            ResponseKind::ShareAcknowledge(share_acknowledge::handle(broker, r, &authz).await)
        }
        RequestKind::ReadShareGroupState(r) => {
            ResponseKind::ReadShareGroupState(share_group_state::read(broker, r))
        }
        RequestKind::WriteShareGroupState(r) => {
            ResponseKind::WriteShareGroupState(share_group_state::write(broker, r).await)
        }
        RequestKind::InitializeShareGroupState(r) => {
            ResponseKind::InitializeShareGroupState(share_group_state::initialize(broker, r).await)
        }
        RequestKind::ReadShareGroupStateSummary(r) => {
            ResponseKind::ReadShareGroupStateSummary(share_group_state::read_summary(broker, r))
        }
        RequestKind::DeleteShareGroupState(r) => {
            ResponseKind::DeleteShareGroupState(share_group_state::delete(broker, r).await)
        }
        RequestKind::DescribeShareGroupOffsets(r) => ResponseKind::DescribeShareGroupOffsets(
            share_group_offsets::describe(broker, r, &authz).await,
        ),
        RequestKind::AlterShareGroupOffsets(r) => ResponseKind::AlterShareGroupOffsets(
            share_group_offsets::alter(broker, r, &authz).await,
        ),
        RequestKind::DeleteShareGroupOffsets(r) => ResponseKind::DeleteShareGroupOffsets(
            share_group_offsets::delete(broker, r, &authz).await,
        ),
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(leave_group::handle(broker, r, version))
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offset_commit::handle(broker, r, version, &authz).await)
        }
        RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(
            txn_offset_commit::handle(broker, r, version, &authz).await,
        ),
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(broker, r, version, &authz))
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(describe_groups::handle(broker, r, version, &authz))
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(list_groups::handle(broker, r, version, &authz))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, r, &authz))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(broker, r, &authz).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(delete_groups::handle(broker, r, &authz).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(offset_delete::handle(broker, r))
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            alter_partition_reassignments::handle(broker, r, version).await,
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            list_partition_reassignments::handle(broker, r),
        ),
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(broker, r, version).await)
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(describe_log_dirs::handle(broker, r))
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(describe_quorum::handle(broker, r, version).await)
        }
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(acls::describe(broker, r, &authz))
        }
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(acls::create(broker, r, &authz).await)
        }
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(acls::delete(broker, r, &authz).await)
        }
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(client_quotas::describe(broker, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(client_quotas::alter(broker, r).await)
        }
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            describe_user_scram_credentials::handle(broker, r),
        ),
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            alter_user_scram_credentials::handle(broker, r).await,
        ),
        RequestKind::UpdateFeatures(r) => {
            ResponseKind::UpdateFeatures(update_features::handle(broker, r, version))
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(write_txn_markers::handle(broker, r).await)
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(describe_producers::handle(broker, r, &authz))
        }
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(
            add_partitions_to_txn::handle(broker, r, version, &authz).await,
        ),
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(broker, r, version).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(end_txn::handle(broker, r, version).await),
        RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(
            describe_transactions::handle(broker, r, &authz).await,
        ),
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(list_transactions::handle(broker, r, &authz).await)
        }
        // Outside a SASL listener's exchange (which the server handles before any handler),
        // as Kafka answers them.
        RequestKind::SaslHandshake(_) => ResponseKind::SaslHandshake(
            kafka_protocol::messages::SaslHandshakeResponse::default()
                .with_error_code(kafka_protocol::error::ResponseError::IllegalSaslState.code()),
        ),
        RequestKind::SaslAuthenticate(_) => ResponseKind::SaslAuthenticate(
            kafka_protocol::messages::SaslAuthenticateResponse::default()
                .with_error_code(kafka_protocol::error::ResponseError::IllegalSaslState.code())
                .with_error_message(Some(text(
                    "SaslAuthenticate is only accepted after SaslHandshake on a SASL listener",
                ))),
        ),
        // decode_request only lets through APIs listed in protocol::versions, all matched above.
        other => {
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for a supported API");
            return None;
        }
    })
}

/// UNSUPPORTED_VERSION for a share group API while `group.share.enable` is off, as a Kafka
/// broker without share groups answers.
fn share_groups_disabled(body: &RequestKind) -> ResponseKind {
    use kafka_protocol::messages::{
        ShareAcknowledgeResponse, ShareFetchResponse, ShareGroupDescribeResponse,
        ShareGroupHeartbeatResponse,
    };
    let code = kafka_protocol::error::ResponseError::UnsupportedVersion.code();
    match body {
        RequestKind::ShareGroupDescribe(r) => ResponseKind::ShareGroupDescribe(
            ShareGroupDescribeResponse::default().with_groups(
                r.group_ids
                    .iter()
                    .map(|g| {
                        kafka_protocol::messages::share_group_describe_response::DescribedGroup::default()
                            .with_group_id(g.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        RequestKind::ShareFetch(_) => {
            ResponseKind::ShareFetch(ShareFetchResponse::default().with_error_code(code))
        }
        RequestKind::ShareAcknowledge(_) => ResponseKind::ShareAcknowledge(
            ShareAcknowledgeResponse::default().with_error_code(code),
        ),
        // Broker-to-broker: a peer with share groups on talks to one with them off (a
        // misconfigured cluster); no per-partition answer is needed for it to give up.
        RequestKind::ReadShareGroupState(_) => ResponseKind::ReadShareGroupState(
            kafka_protocol::messages::ReadShareGroupStateResponse::default(),
        ),
        RequestKind::WriteShareGroupState(_) => ResponseKind::WriteShareGroupState(
            kafka_protocol::messages::WriteShareGroupStateResponse::default(),
        ),
        RequestKind::InitializeShareGroupState(_) => ResponseKind::InitializeShareGroupState(
            kafka_protocol::messages::InitializeShareGroupStateResponse::default(),
        ),
        RequestKind::ReadShareGroupStateSummary(_) => ResponseKind::ReadShareGroupStateSummary(
            kafka_protocol::messages::ReadShareGroupStateSummaryResponse::default(),
        ),
        RequestKind::DeleteShareGroupState(_) => ResponseKind::DeleteShareGroupState(
            kafka_protocol::messages::DeleteShareGroupStateResponse::default(),
        ),
        RequestKind::DescribeShareGroupOffsets(r) => ResponseKind::DescribeShareGroupOffsets(
            kafka_protocol::messages::DescribeShareGroupOffsetsResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        kafka_protocol::messages::describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        RequestKind::AlterShareGroupOffsets(_) => ResponseKind::AlterShareGroupOffsets(
            kafka_protocol::messages::AlterShareGroupOffsetsResponse::default()
                .with_error_code(code),
        ),
        RequestKind::DeleteShareGroupOffsets(_) => ResponseKind::DeleteShareGroupOffsets(
            kafka_protocol::messages::DeleteShareGroupOffsetsResponse::default()
                .with_error_code(code),
        ),
        _ => ResponseKind::ShareGroupHeartbeat(
            ShareGroupHeartbeatResponse::default().with_error_code(code),
        ),
    }
}

/// Config overrides from a request's `(name, value)` pairs; a null value sets nothing.
pub fn config_overrides<'a>(
    pairs: impl Iterator<Item = (&'a StrBytes, Option<&'a StrBytes>)>,
) -> std::collections::BTreeMap<String, String> {
    pairs
        .filter_map(|(name, value)| value.map(|v| (name.to_string(), v.to_string())))
        .collect()
}

/// PRODUCER_FENCED (KIP-588) for clients that know it (from `since` on), INVALID_PRODUCER_EPOCH
/// for older ones, as Kafka answers them.
pub fn fenced_for(code: i16, version: i16, since: i16) -> i16 {
    use kafka_protocol::error::ResponseError;
    if code == ResponseError::ProducerFenced.code() && version < since {
        ResponseError::InvalidProducerEpoch.code()
    } else {
        code
    }
}

/// An owned string for a response field.
pub fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

#[cfg(test)]
mod admin_surface_tests;
#[cfg(test)]
pub(crate) mod tests;
