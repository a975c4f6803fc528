//! The gRPC services a broker serves on its internal listener: the Raft transport and the
//! controller's broker-facing API. Both accept calls on any node; controller calls that only the
//! active controller can answer are forwarded to it by [`super::Controller`].

use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use tonic::service::Routes;
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

/// The Raft and controller services as routes of the internal gRPC server.
pub fn routes(controller: &Arc<Controller>) -> Routes {
    Routes::new(RaftServer::new(RaftService(controller.clone())))
        .add_service(ControllerServer::new(ControllerService(controller.clone())))
}

/// Serves `routes` (from [`routes`], plus whatever the composition root adds: the admin
/// services on a broker) on the internal listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Routes,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
