//! FindCoordinator: which broker coordinates a group or a transactional id (one key up to v3,
//! a batch of keys from v4). The coordinator of a group is the leader of its
//! `__consumer_offsets` partition, that of a transactional id the leader of its
//! `__transaction_state` partition; the first lookup of each kind creates the topic.
//! With an authorizer a key needs DESCRIBE on its group (GROUP_AUTHORIZATION_FAILED) or
//! transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as in Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;

/// Key type of a consumer group.
const GROUP_KEY: i8 = 0;
/// Key type of a transactional id.
const TRANSACTION_KEY: i8 = 1;
/// Key type of a share partition's state (`group:topicId:partition`, KIP-932): the leader of
/// its `__share_group_state` partition. Brokers ask it; clients may not (CLUSTER_ACTION).
const SHARE_KEY: i8 = 2;

/// Answers FindCoordinator.
pub async fn handle(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
    listener: &str,
    authz: &Authz<'_>,
) -> FindCoordinatorResponse {
    let keys = if version >= 4 {
        request.coordinator_keys
    } else {
        vec![request.key]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let refused = match request.key_type {
            GROUP_KEY if !authz.group(AclOperation::Describe, &key) => {
                Some(ResponseError::GroupAuthorizationFailed)
            }
            TRANSACTION_KEY if !authz.transactional_id(AclOperation::Describe, &key) => {
                Some(ResponseError::TransactionalIdAuthorizationFailed)
            }
            SHARE_KEY if !authz.cluster(AclOperation::ClusterAction) => {
                Some(ResponseError::ClusterAuthorizationFailed)
            }
            _ => None,
        };
        coordinators.push(match refused {
            Some(error) => failed(key, error, error.to_string()),
            None => lookup(broker, request.key_type, key, listener).await,
        });
    }
    for c in &coordinators {
        broker.count_error("FindCoordinator", c.error_code);
    }
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinators.into_iter().next().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(if version >= 1 { c.error_message } else { None })
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

fn failed(key: StrBytes, error: ResponseError, message: String) -> Coordinator {
    Coordinator::default()
        .with_key(key)
        .with_node_id((-1).into())
        .with_host(text(""))
        .with_port(-1)
        .with_error_code(error.code())
        .with_error_message(Some(text(message)))
}

async fn lookup(broker: &Broker, key_type: i8, key: StrBytes, listener: &str) -> Coordinator {
    let (topic, partition) = match key_type {
        GROUP_KEY => {
            if let Err(e) = broker.groups.ensure_offsets_topic().await {
                tracing::error!(error = %e, "creating __consumer_offsets failed");
                return failed(
                    key,
                    ResponseError::CoordinatorNotAvailable,
                    format!("creating __consumer_offsets failed: {e}"),
                );
            }
            (
                crate::group::OFFSETS_TOPIC,
                broker.groups.partition_for(&key),
            )
        }
        TRANSACTION_KEY => {
            if let Err(e) = broker.transactions.ensure_topic().await {
                tracing::error!(error = %e, "creating __transaction_state failed");
                return failed(
                    key,
                    ResponseError::CoordinatorNotAvailable,
                    format!("creating __transaction_state failed: {e}"),
                );
            }
            (
                crate::transactions::TRANSACTION_STATE_TOPIC,
                broker.transactions.partition_for(&key),
            )
        }
        SHARE_KEY if broker.config.share_groups_enabled() => {
            if let Err(e) = broker.share_coordinator.ensure_state_topic().await {
                return failed(
                    key,
                    ResponseError::CoordinatorNotAvailable,
                    format!("creating __share_group_state failed: {e}"),
                );
            }
            (
                crate::share::coordinator::SHARE_STATE_TOPIC,
                broker.share_coordinator.partition_for_key(&key),
            )
        }
        other => {
            return failed(
                key,
                ResponseError::InvalidRequest,
                format!("unknown coordinator key type {other}"),
            )
        }
    };
    let image = broker.replicas.image();
    let leader = image
        .partition(topic, partition)
        .and_then(|p| image.brokers.get(&p.leader))
        .filter(|b| !b.fenced);
    match leader {
        Some(b) => {
            let (host, port) = b.endpoint(listener);
            Coordinator::default()
                .with_key(key)
                .with_node_id(b.id.into())
                .with_host(text(host))
                .with_port(i32::from(port))
        }
        None => failed(
            key,
            ResponseError::CoordinatorNotAvailable,
            format!("partition {partition} of {topic} has no leader"),
        ),
    }
}
