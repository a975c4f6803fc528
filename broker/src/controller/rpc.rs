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
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, ChangeVoterRequest, ChangeVoterResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, IdentifyRequest, IdentifyResponse, RaftPayload,
    RegisterBrokerRequest, RegisterBrokerResponse,
};

use super::command::MetadataCommand;
use super::network::DIRECTORY_ID_HEADER;
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

/// Whether a Raft message addressed to `expected` (the sender's header, if any) may be handled
/// by a node whose storage is `own`. A message without the header comes from a membership
/// written before directory ids existed.
pub fn addressed_to(expected: Option<&str>, own: uuid::Uuid) -> Result<(), String> {
    match expected {
        None => Ok(()),
        Some(text) => match uuid::Uuid::parse_str(text) {
            Ok(id) if id == own => Ok(()),
            Ok(id) => Err(format!(
                "this node's directory id is {own}, not {id}: its storage is not the one the \
                 quorum knows (emptied or replaced), so it cannot act as that voter until a \
                 membership change names its new directory id"
            )),
            Err(e) => Err(format!("malformed {DIRECTORY_ID_HEADER} `{text}`: {e}")),
        },
    }
}

impl RaftService {
    fn check_addressee(&self, request: &Request<RaftPayload>) -> Result<(), Status> {
        let expected = request
            .metadata()
            .get(DIRECTORY_ID_HEADER)
            .map(|v| v.to_str().unwrap_or_default());
        addressed_to(expected, self.0.directory_id()).map_err(|reason| {
            self.0.note_refusal(&reason);
            Status::failed_precondition(reason)
        })
    }
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_addressee(&request)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(request.get_ref())?;
        encode(&self.0.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_addressee(&request)?;
        let rpc: VoteRequest<u64> = decode(request.get_ref())?;
        encode(&self.0.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_addressee(&request)?;
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(request.get_ref())?;
        encode(&self.0.raft().install_snapshot(rpc).await)
    }

    async fn identify(
        &self,
        _request: Request<IdentifyRequest>,
    ) -> Result<Response<IdentifyResponse>, Status> {
        Ok(Response::new(self.0.identity()))
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

    async fn change_voter(
        &self,
        request: Request<ChangeVoterRequest>,
    ) -> Result<Response<ChangeVoterResponse>, Status> {
        self.0.change_voter(request.into_inner()).await?;
        Ok(Response::new(ChangeVoterResponse {}))
    }

    async fn describe_quorum(
        &self,
        _request: Request<DescribeQuorumRequest>,
    ) -> Result<Response<DescribeQuorumResponse>, Status> {
        let status = self
            .0
            .local_quorum_status()
            .ok_or(ControllerError::NotController)?;
        Ok(Response::new((&status).into()))
    }
}

/// The Raft and controller services as routes of the internal gRPC server.
pub fn routes(controller: &Arc<Controller>) -> Routes {
    Routes::new(RaftServer::new(RaftService(controller.clone())))
        .add_service(ControllerServer::new(ControllerService(controller.clone())))
}

/// Serves `routes` (from [`routes`], plus whatever the composition root adds: the admin
/// services on a broker) on the internal listener until `shutdown` resolves.
/// With `tls` (`rpc.security.protocol=SSL`) every connection completes a TLS handshake with
/// a client certificate first ([`super::rpc_tls`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Routes,
    tls: Option<super::rpc_tls::TlsIncomingConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let server = tonic::transport::Server::builder().add_routes(routes);
    match tls {
        None => {
            server
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    shutdown,
                )
                .await
        }
        Some(tls) => {
            let incoming = super::rpc_tls::TlsIncoming::new(listener, tls);
            server
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::addressed_to;

    #[test]
    fn a_message_for_other_storage_is_refused() {
        let own = uuid::Uuid::new_v4();
        let other = uuid::Uuid::new_v4();
        assert!(addressed_to(Some(&own.to_string()), own).is_ok());
        assert!(addressed_to(None, own).is_ok());
        let refusal = addressed_to(Some(&other.to_string()), own).unwrap_err();
        assert!(refusal.contains(&own.to_string()), "{refusal}");
        assert!(addressed_to(Some("not-a-uuid"), own).is_err());
    }
}
