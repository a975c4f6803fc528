//! The admin API (`weir.admin.v1.Admin`, see `api/proto/weir/admin/v1/admin.proto`) served by
//! every broker on its internal listener, and the internal `weir.broker.v1.ReplicaStatus`
//! service it uses to ask partition leaders about reassignment progress.
//!
//! How the pieces fit:
//! - Reads (DescribeCluster, DescribeTopic, ListTopics, ListReassignments) answer from this
//!   broker's metadata image (`describe`); ListReassignments also asks each partition's
//!   leader how far its new replicas have copied (`progress`).
//! - Writes validate against the image first, so a request that fails changes nothing, then go
//!   through the controller as metadata commands and wait until this broker's image shows them:
//!   topics (`topics`, on top of the replica manager's topic admin), reassignments and the
//!   throttle ([`reassign`]), draining and unregistering brokers (`brokers`), preferred
//!   leader elections ([`elect`]), users' SCRAM credentials, ACLs and quotas (`users`, through
//!   the same replica manager calls as the Kafka handlers).
//! - [`reassign`] and [`elect`] are shared with the Kafka handlers of
//!   AlterPartitionReassignments, ListPartitionReassignments and ElectLeaders.
//! - Errors are the replica manager's [`AdminError`], carrying both the gRPC status
//!   `admin.proto` documents and the Kafka error code.

mod brokers;
mod describe;
pub mod elect;
pub mod metrics;
mod progress;
pub mod reassign;
#[cfg(test)]
mod tests;
mod topics;
mod users;
#[cfg(test)]
mod users_tests;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use weir_api::proto::admin as pb;
use weir_api::proto::admin::admin_server::{Admin, AdminServer};
use weir_api::proto::broker::replica_status_server::ReplicaStatusServer;

pub use self::progress::ReplicaStatusService;
use crate::broker::Broker;
use crate::controller::command::{CommandResult, MetadataCommand};
use crate::controller::image::MetadataImage;
pub use crate::replica_manager::AdminError;

/// gRPC metadata key set on an UnregisterBroker call forwarded to the active controller, so it
/// is never forwarded twice.
const FORWARDED: &str = "weir-forwarded";

/// The admin service over one broker's state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AdminService {
    broker: Arc<Broker>,
    peers: Arc<Peers>,
}

/// Adds the admin services of `broker` to the internal gRPC server's `routes`:
/// `weir.admin.v1.Admin` and `weir.broker.v1.ReplicaStatus`.
pub fn add_services(routes: Routes, broker: &Arc<Broker>) -> Routes {
    routes
        .add_service(AdminServer::new(AdminService {
            broker: broker.clone(),
            peers: Arc::new(Peers::default()),
        }))
        .add_service(ReplicaStatusServer::new(ReplicaStatusService::new(
            broker.clone(),
        )))
}

/// Lazily connected channels to other brokers' internal listeners, by address.
#[derive(Debug, Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    /// The channel to `addr` (`host:port`), created on first use.
    pub fn channel(&self, addr: &str) -> Result<Channel, AdminError> {
        let mut channels = self.channels.lock();
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let channel = crate::controller::network::channel(addr)
            .map_err(|e| AdminError::Internal(format!("broker address `{addr}`: {e}")))?;
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

/// Proposes `command` through the controller; a refusal is an error.
pub(crate) async fn write(
    broker: &Broker,
    command: MetadataCommand,
) -> Result<CommandResult, AdminError> {
    let controller = broker.replicas.controller().ok_or_else(|| {
        AdminError::Unavailable("this broker has not joined the metadata quorum".into())
    })?;
    controller
        .write_ok(command)
        .await
        .map_err(AdminError::refused)
}

/// Waits until this broker's applied image satisfies `done`.
pub(crate) async fn wait_for_image(
    broker: &Broker,
    done: impl Fn(&MetadataImage) -> bool,
) -> Result<(), AdminError> {
    broker.replicas.wait_for_image(done).await
}

fn answer<T>(result: Result<T, AdminError>, rpc: &str) -> Result<Response<T>, Status> {
    match result {
        Ok(r) => Ok(Response::new(r)),
        Err(e) => {
            match &e {
                AdminError::Internal(_) => {
                    tracing::error!(rpc, error = %e, "admin call failed")
                }
                _ => tracing::info!(rpc, error = %e, "admin call refused"),
            }
            Err(e.into())
        }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn describe_cluster(
        &self,
        _request: Request<pb::DescribeClusterRequest>,
    ) -> Result<Response<pb::DescribeClusterResponse>, Status> {
        Ok(Response::new(describe::cluster(&self.broker)))
    }

    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let result = topics::create(&self.broker, request.into_inner()).await;
        answer(result, "CreateTopic")
    }

    async fn alter_topic(
        &self,
        request: Request<pb::AlterTopicRequest>,
    ) -> Result<Response<pb::AlterTopicResponse>, Status> {
        let result = topics::alter(&self.broker, request.into_inner()).await;
        answer(result, "AlterTopic")
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let result = topics::delete(&self.broker, request.into_inner()).await;
        answer(result, "DeleteTopic")
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::DescribeTopicResponse>, Status> {
        let result = topics::describe(&self.broker, &request.into_inner().name);
        answer(result, "DescribeTopic")
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        Ok(Response::new(topics::list(
            &self.broker,
            request.into_inner().include_internal,
        )))
    }

    async fn reassign_partitions(
        &self,
        request: Request<pb::ReassignPartitionsRequest>,
    ) -> Result<Response<pb::ReassignPartitionsResponse>, Status> {
        let result = reassign::reassign_partitions(&self.broker, request.into_inner()).await;
        answer(result, "ReassignPartitions")
    }

    async fn list_reassignments(
        &self,
        request: Request<pb::ListReassignmentsRequest>,
    ) -> Result<Response<pb::ListReassignmentsResponse>, Status> {
        let result =
            progress::list_reassignments(&self.broker, &self.peers, request.into_inner()).await;
        answer(result, "ListReassignments")
    }

    async fn cancel_reassignment(
        &self,
        request: Request<pb::CancelReassignmentRequest>,
    ) -> Result<Response<pb::CancelReassignmentResponse>, Status> {
        let result = reassign::cancel_reassignment(&self.broker, request.into_inner()).await;
        answer(result, "CancelReassignment")
    }

    async fn drain_broker(
        &self,
        request: Request<pb::DrainBrokerRequest>,
    ) -> Result<Response<pb::DrainBrokerResponse>, Status> {
        let result = brokers::drain(&self.broker, request.into_inner()).await;
        answer(result, "DrainBroker")
    }

    async fn unregister_broker(
        &self,
        request: Request<pb::UnregisterBrokerRequest>,
    ) -> Result<Response<pb::UnregisterBrokerResponse>, Status> {
        let forwarded = request.metadata().contains_key(FORWARDED);
        let result = brokers::unregister(
            &self.broker,
            &self.peers,
            request.into_inner().broker_id,
            forwarded,
        )
        .await;
        answer(result, "UnregisterBroker")
    }

    async fn elect_leaders(
        &self,
        request: Request<pb::ElectLeadersRequest>,
    ) -> Result<Response<pb::ElectLeadersResponse>, Status> {
        let result = elect::elect_leaders_rpc(&self.broker, request.into_inner()).await;
        answer(result, "ElectLeaders")
    }

    async fn add_raft_voter(
        &self,
        request: Request<pb::AddRaftVoterRequest>,
    ) -> Result<Response<pb::AddRaftVoterResponse>, Status> {
        let r = request.into_inner();
        let result = change_voter(&self.broker, r.node_id, r.directory_id, true)
            .await
            .map(|()| pb::AddRaftVoterResponse {});
        answer(result, "AddRaftVoter")
    }

    async fn remove_raft_voter(
        &self,
        request: Request<pb::RemoveRaftVoterRequest>,
    ) -> Result<Response<pb::RemoveRaftVoterResponse>, Status> {
        let r = request.into_inner();
        let result = change_voter(&self.broker, r.node_id, r.directory_id, false)
            .await
            .map(|()| pb::RemoveRaftVoterResponse {});
        answer(result, "RemoveRaftVoter")
    }

    async fn describe_user(
        &self,
        request: Request<pb::DescribeUserRequest>,
    ) -> Result<Response<pb::DescribeUserResponse>, Status> {
        answer(
            users::describe(&self.broker, request.into_inner()),
            "DescribeUser",
        )
    }

    async fn set_scram_credential(
        &self,
        request: Request<pb::SetScramCredentialRequest>,
    ) -> Result<Response<pb::SetScramCredentialResponse>, Status> {
        let result = users::set_scram(&self.broker, request.into_inner()).await;
        answer(result, "SetScramCredential")
    }

    async fn delete_scram_credential(
        &self,
        request: Request<pb::DeleteScramCredentialRequest>,
    ) -> Result<Response<pb::DeleteScramCredentialResponse>, Status> {
        let result = users::delete_scram(&self.broker, request.into_inner()).await;
        answer(result, "DeleteScramCredential")
    }

    async fn create_acls(
        &self,
        request: Request<pb::CreateAclsRequest>,
    ) -> Result<Response<pb::CreateAclsResponse>, Status> {
        let result = users::create_acls(&self.broker, request.into_inner()).await;
        answer(result, "CreateAcls")
    }

    async fn delete_acls(
        &self,
        request: Request<pb::DeleteAclsRequest>,
    ) -> Result<Response<pb::DeleteAclsResponse>, Status> {
        let result = users::delete_acls(&self.broker, request.into_inner()).await;
        answer(result, "DeleteAcls")
    }

    async fn describe_acls(
        &self,
        request: Request<pb::DescribeAclsRequest>,
    ) -> Result<Response<pb::DescribeAclsResponse>, Status> {
        answer(
            users::describe_acls(&self.broker, request.into_inner()),
            "DescribeAcls",
        )
    }

    async fn alter_user_quotas(
        &self,
        request: Request<pb::AlterUserQuotasRequest>,
    ) -> Result<Response<pb::AlterUserQuotasResponse>, Status> {
        let result = users::alter_quotas(&self.broker, request.into_inner()).await;
        answer(result, "AlterUserQuotas")
    }
}

/// AddRaftVoter / RemoveRaftVoter through the active controller.
async fn change_voter(
    broker: &Broker,
    node_id: i32,
    directory_id: String,
    add: bool,
) -> Result<(), AdminError> {
    let controller = broker.replicas.controller().ok_or_else(|| {
        AdminError::Unavailable("this broker has not joined the metadata quorum".into())
    })?;
    controller
        .change_voter(weir_api::proto::controller::ChangeVoterRequest {
            node_id,
            directory_id,
            add,
        })
        .await
        .map_err(AdminError::refused)
}
