//! The Raft transport: openraft messages as JSON inside the `weir.controller.v1.Raft` gRPC
//! service, over one lazily connected tonic channel per peer.
//!
//! A peer that cannot be reached is reported as `Unreachable`, so openraft backs off instead of
//! spinning; an error raised by the remote Raft is passed back as a `RemoteError`. Every outcome
//! is recorded in [`PeerHealth`], which logs a peer going away and coming back once each
//! (openraft's own per-retry lines are filtered out of the log).
//!
//! Every message names the directory id the membership records for its target
//! ([`DIRECTORY_ID_HEADER`]); a target running with other storage refuses it (see
//! [`super::rpc`]), and the refusal is reported to openraft as `Unreachable`: the sender does
//! not count that node (no vote, no acknowledgement) and backs off, as it would from a node that
//! is down. That is what keeps a voter that lost its disk from voting as its old self.

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;
use weir_api::proto::controller::raft_client::RaftClient;
use weir_api::proto::controller::RaftPayload;

use super::peer_health::{FailureKind, PeerHealth};
use super::types::{NodeId, QuorumNode, TypeConfig};

/// gRPC metadata entry of a Raft message: the directory id the sender expects of the target.
pub const DIRECTORY_ID_HEADER: &str = "weir-directory-id";

/// Opens a channel to a peer's internal RPC listener (`host:port`), connecting on first use
/// (over TLS when `rpc.security.protocol=SSL`: [`super::rpc_tls`]).
pub fn channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    super::rpc_tls::channel(addr)
}

/// Creates a [`Network`] per peer; they share one [`PeerHealth`].
#[derive(Debug, Clone, Default)]
pub struct NetworkFactory {
    health: PeerHealth,
}

impl NetworkFactory {
    /// A factory whose connections record into `health`.
    pub fn new(health: PeerHealth) -> Self {
        Self { health }
    }
}

/// Whether an RPC failed because the peer's host refused the connection.
fn refused(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = e.source();
    }
    false
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &QuorumNode) -> Self::Network {
        Network {
            target,
            client: channel(&node.addr).ok().map(RaftClient::new),
            addr: node.addr.clone(),
            directory_id: node.directory_id.and_then(|d| d.to_string().parse().ok()),
            health: self.health.clone(),
        }
    }
}

/// The connection to one peer.
#[derive(Debug)]
pub struct Network {
    target: NodeId,
    addr: String,
    /// The directory id the membership records for the target, as a header value.
    directory_id: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    client: Option<RaftClient<Channel>>,
    health: PeerHealth,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

/// Appended to the message of an RPC error whose connection was refused (openraft's
/// `Unreachable` keeps only the message), so [`Network::call`] can tell it apart.
const REFUSED_MARK: &str = " [connection refused]";

impl Network {
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, QuorumNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let result = self.send(method, request, option).await;
        match &result {
            Ok(_) => self.health.succeeded(self.target, &self.addr),
            Err(e) => {
                let kind = match e {
                    RPCError::Unreachable(u) if u.to_string().contains(REFUSED_MARK) => {
                        FailureKind::Refused
                    }
                    RPCError::Unreachable(_) | RPCError::Timeout(_) => FailureKind::Unreachable,
                    RPCError::RemoteError(_) => FailureKind::Remote,
                    RPCError::Network(_) | RPCError::PayloadTooLarge(_) => FailureKind::Network,
                };
                self.health
                    .failed(self.target, &self.addr, kind, &format!("{method:?}: {e}"));
            }
        }
        result
    }

    async fn send<Req, Resp, E>(
        &mut self,
        method: Method,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, QuorumNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            let e = TransportError(format!("invalid peer address `{}`", self.addr));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        };
        let data =
            serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut req = tonic::Request::new(RaftPayload { data });
        req.set_timeout(option.hard_ttl());
        if let Some(directory_id) = &self.directory_id {
            req.metadata_mut()
                .insert(DIRECTORY_ID_HEADER, directory_id.clone());
        }
        let reply = match method {
            Method::Append => client.append_entries(req).await,
            Method::Vote => client.vote(req).await,
            Method::Snapshot => client.install_snapshot(req).await,
        };
        let reply = reply.map_err(|status| {
            let mark = if refused(&status) { REFUSED_MARK } else { "" };
            let e = TransportError(format!("{} ({}): {status}{mark}", self.target, self.addr));
            match status.code() {
                // FAILED_PRECONDITION: the target runs with other storage than the membership
                // names; it is not that voter, so it counts as not there.
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::FailedPrecondition => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            }
        })?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply.into_inner().data)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>>
    {
        self.call(Method::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, QuorumNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Method::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}
