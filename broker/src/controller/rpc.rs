//! The gRPC services a broker serves on its internal listener: the Raft transport and the
//! controller's broker-facing API. Both accept calls on any node; controller calls that only the
//! active controller can answer are forwarded to it by [`super::Controller`].

use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use tonic::{Request, Response, Status};
use weir_api::proto::controller::controller_server::{self, ControllerServer};
use weir_api::proto::controller::raft_server::{self, RaftServer};
use weir_api::proto::controller::{
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, RaftPayload, RegisterBrokerRequest,
    RegisterBrokerResponse,
};

use super::command::MetadataCommand;
use super::types::TypeConfig;
use super::{Controller, ControllerError};

fn decode<T: serde::de::DeserializeOwned>(payload: &RaftPayload) -> Result<T, Status> {
    serde_json::from_slice(&payload.data)
        .map_err(|e| Status::invalid_argument(format!("undecodable payload: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    serde_json::to_vec(value)
        .map(|data| Response::new(RaftPayload { data }))
        .map_err(|e| Status::internal(e.to_string()))
}

impl From<ControllerError> for Status {
    fn from(e: ControllerError) -> Self {
        match e {
            ControllerError::Unavailable(_) | ControllerError::NotController => {
                Status::unavailable(e.to_string())
            }
            ControllerError::Refused { .. } => Status::failed_precondition(e.to_string()),
            ControllerError::Invalid(_) => Status::invalid_argument(e.to_string()),
            ControllerError::Fatal(_) => Status::internal(e.to_string()),
        }
    }
}

/// The Raft transport service.
#[derive(Debug, Clone)]
pub struct RaftService(pub Arc<Controller>);

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(request.get_ref())?;
        encode(&self.0.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc: VoteRequest<u64> = decode(request.get_ref())?;
        encode(&self.0.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(request.get_ref())?;
        encode(&self.0.raft().install_snapshot(rpc).await)
    }
}

/// The controller service brokers call.
#[derive(Debug, Clone)]
pub struct ControllerService(pub Arc<Controller>);

#[tonic::async_trait]
impl controller_server::Controller for ControllerService {
    async fn register_broker(
        &self,
        request: Request<RegisterBrokerRequest>,
    ) -> Result<Response<RegisterBrokerResponse>, Status> {
        Ok(Response::new(
            self.0.register_broker(request.into_inner()).await?,
        ))
    }

    async fn broker_heartbeat(
        &self,
        request: Request<BrokerHeartbeatRequest>,
    ) -> Result<Response<BrokerHeartbeatResponse>, Status> {
        Ok(Response::new(self.0.heartbeat(request.into_inner()).await?))
    }

    async fn write(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let command: MetadataCommand = decode(request.get_ref())?;
        let result = self.0.write_local(command).await?;
        encode(&result)
    }
}

/// Both services, ready to add to a tonic server.
pub fn services(
    controller: &Arc<Controller>,
) -> (RaftServer<RaftService>, ControllerServer<ControllerService>) {
    (
        RaftServer::new(RaftService(controller.clone())),
        ControllerServer::new(ControllerService(controller.clone())),
    )
}

/// Serves the internal gRPC services on `listener` until `shutdown` resolves: Raft, the
/// controller, and (on a broker) the admin services.
pub async fn serve(
    listener: tokio::net::TcpListener,
    controller: Arc<Controller>,
    admin: Option<crate::admin_service::Services>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (raft, controller) = services(&controller);
    tonic::transport::Server::builder()
        .add_service(raft)
        .add_service(controller)
        .add_optional_service(admin.as_ref().map(|a| a.admin.clone()))
        .add_optional_service(admin.map(|a| a.replica_status))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
