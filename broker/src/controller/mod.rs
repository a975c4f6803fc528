//! The metadata quorum ("the controller"): a Raft log of cluster metadata, replicated with
//! `openraft` over tonic gRPC on the internal listener, and the duties of whichever node leads
//! it (the active controller).
//!
//! How the pieces fit:
//! - [`command`] is what the log holds and [`image`] what applying it builds; applying is
//!   deterministic, so every broker derives the same [`image::MetadataImage`].
//! - [`log_store`] and [`state_machine`] are openraft's storage, on disk under
//!   `<data-dir>/__cluster_metadata/`; [`network`] and [`rpc`] are its transport.
//! - [`Controller`] is the handle the broker uses: the current image (and a channel of new
//!   ones), [`Controller::write`] to propose a command from any node (forwarded to the active
//!   controller), and the broker-facing calls (registration, heartbeats) that the active
//!   controller answers.
//! - `duties` runs on the active controller: fencing brokers whose session expired and moving
//!   leadership back to preferred replicas.
//!
//! - [`membership`] is who votes: a voter is its node id plus its storage's directory id, so a
//!   voter that lost its disk cannot vote as its old self; how a quorum forms, how such a node
//!   comes back, and how voters are added and removed at runtime.
//!
//! Voters come from `--voters`; a lone broker is its own single voter. Brokers that are not
//! voters join as Raft learners (observers) when they register, so every broker follows the
//! log.

pub mod acl;
pub mod client_quotas;
pub mod command;
mod duties;
pub mod image;
#[cfg(test)]
mod image_tests;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod peer_health;
pub mod quorum;
pub mod rpc;
pub mod rpc_tls;
pub mod state_machine;
#[cfg(test)]
mod tests;
pub mod types;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::transport::Channel;
use uuid::Uuid;
use weir_api::proto::controller::controller_client::ControllerClient;
use weir_api::proto::controller::{
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, RaftPayload, RegisterBrokerRequest,
    RegisterBrokerResponse,
};

use self::command::{CommandResult, MetadataCommand};
use self::image::MetadataImage;
use self::log_store::LogStore;
use self::network::NetworkFactory;
use self::state_machine::StateMachine;
use self::types::{NodeId, QuorumNode, Raft};

/// Directory of the metadata log inside the data directory.
pub const METADATA_DIR: &str = "__cluster_metadata";

/// Settings of the quorum and of broker sessions.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This broker's node id.
    pub node_id: i32,
    /// Where the metadata log lives.
    pub dir: PathBuf,
    /// Voters: node id → internal RPC address.
    pub voters: BTreeMap<i32, String>,
    /// A broker that has not heartbeated for this long is fenced (`broker.session.timeout.ms`).
    pub session_timeout: Duration,
    /// How often the active controller looks for imbalanced leadership
    /// (`leader.imbalance.check.interval.seconds`); `None` when
    /// `auto.leader.rebalance.enable` is off.
    pub leader_imbalance_interval: Option<Duration>,
    /// Raft heartbeat interval; a voter that stops hearing its leader starts an election after
    /// 8–10 of these (see [`Controller::start`]).
    pub raft_heartbeat: Duration,
    /// The directory id of this node's storage (`meta.properties`).
    pub directory_id: Uuid,
    /// `controller.quorum.auto.join.enable`: the active controller replaces a voter that came
    /// back with new storage, and makes configured voters that are observers voters again,
    /// once they caught up (see [`membership`]).
    pub auto_join: bool,
}

/// Why a controller operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// No active controller could be reached in time.
    #[error("the metadata quorum is unavailable: {0}")]
    Unavailable(String),
    /// This node is not the active controller (and forwarding is not possible).
    #[error("this node is not the active controller")]
    NotController,
    /// The command was applied and refused. The message ends in the code, which is how a
    /// refusal forwarded over gRPC keeps it.
    #[error("{message} (error code {})", .error.code())]
    Refused {
        /// Why, as Kafka names it.
        error: ResponseError,
        /// Reason.
        message: String,
    },
    /// A request was malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Raft stopped (storage failure or shutdown).
    #[error("the metadata quorum stopped: {0}")]
    Fatal(String),
}

impl ControllerError {
    /// A refusal with a Kafka error code as the metadata log or a forwarded reply carries it
    /// (`UNKNOWN_SERVER_ERROR` for 0, which is not a refusal).
    fn refused(code: i16, message: impl Into<String>) -> Self {
        ControllerError::Refused {
            error: ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError),
            message: message.into(),
        }
    }
}

/// The handle to this node's part of the metadata quorum. Shared behind an `Arc`.
pub struct Controller {
    config: ControllerConfig,
    raft: Raft,
    image_rx: watch::Receiver<Arc<MetadataImage>>,
    clients: Mutex<HashMap<String, ControllerClient<Channel>>>,
    sessions: Mutex<duties::Sessions>,
    next_voter: std::sync::atomic::AtomicUsize,
    last_refusal_log: Mutex<Option<Instant>>,
    /// Whether each Raft peer answers (recorded by the transport).
    peer_health: peer_health::PeerHealth,
    /// When each member last matched the leader's log (DescribeQuorum).
    caught_up: quorum::CaughtUp,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How long a forwarded write may keep retrying while there is no leader.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

impl Controller {
    /// Opens the metadata log, starts Raft, initialises the voter set on a fresh voter, and
    /// starts the active-controller duties. The gRPC services ([`rpc::routes`]) must be
    /// served by the caller on the internal listener.
    pub async fn start(config: ControllerConfig) -> Result<Arc<Self>, ControllerError> {
        let fatal = |e: std::io::Error| ControllerError::Fatal(e.to_string());
        let log_store = LogStore::open(&config.dir).map_err(fatal)?;
        let state_machine = StateMachine::open(&config.dir).map_err(fatal)?;
        let image_rx = state_machine.subscribe();
        let pristine = log_store.is_pristine();
        let heartbeat_ms = config.raft_heartbeat.as_millis() as u64;
        let raft_config = openraft::Config {
            cluster_name: "weir".to_string(),
            heartbeat_interval: heartbeat_ms,
            // A voter that heard a leader first waits out that leader's lease (openraft sets
            // it to election_timeout_max: no vote is granted before it expires), then its own
            // election timeout, drawn once per node from min..max: after the last heartbeat,
            // 8–10 heartbeats (2–2.5 x `controller.quorum.election.timeout.ms`) pass before it
            // stands, as Kafka's voters wait `controller.quorum.fetch.timeout.ms` (2 x the
            // election timeout by default) before they do.
            election_timeout_min: heartbeat_ms * 3,
            election_timeout_max: heartbeat_ms * 5,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControllerError::Fatal(e.to_string()))?;
        let peer_health = peer_health::PeerHealth::default();
        let raft = Raft::new(
            config.node_id as NodeId,
            Arc::new(raft_config),
            NetworkFactory::new(peer_health.clone()),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| ControllerError::Fatal(e.to_string()))?;

        let is_voter = config.voters.contains_key(&config.node_id);
        let lone_voter = is_voter && config.voters.len() == 1;
        if lone_voter && pristine {
            let members = BTreeMap::from([(
                config.node_id as NodeId,
                QuorumNode::new(&config.voters[&config.node_id], Some(config.directory_id)),
            )]);
            if let Err(e) = raft.initialize(members).await {
                tracing::debug!(error = %e, "metadata quorum already initialised");
            }
        }
        if lone_voter {
            // A lone voter need not wait an election timeout to lead.
            raft.trigger()
                .elect()
                .await
                .map_err(|e| ControllerError::Fatal(e.to_string()))?;
        }

        let controller = Arc::new(Self {
            config,
            raft,
            image_rx,
            clients: Mutex::new(HashMap::new()),
            sessions: Mutex::new(duties::Sessions::default()),
            next_voter: std::sync::atomic::AtomicUsize::new(0),
            last_refusal_log: Mutex::new(None),
            peer_health,
            caught_up: quorum::CaughtUp::default(),
        });
        if is_voter && !lone_voter && pristine {
            // Voters must not initialise a quorum that exists: ask the others first.
            tokio::spawn(membership::bootstrap(Arc::downgrade(&controller)));
        }
        tokio::spawn(duties::run(Arc::downgrade(&controller)));
        tokio::spawn(membership::run(Arc::downgrade(&controller)));
        tokio::spawn(quorum::track_caught_up(Arc::downgrade(&controller)));
        Ok(controller)
    }

    /// The Raft instance.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image_rx.borrow().clone()
    }

    /// A receiver that sees every new image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image_rx.clone()
    }

    /// The active controller's id and internal address, if one is known.
    pub fn leader(&self) -> Option<(i32, String)> {
        let metrics = self.raft.metrics().borrow().clone();
        let id = metrics.current_leader?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .or_else(|| self.config.voters.get(&(id as i32)).cloned())?;
        Some((id as i32, addr))
    }

    /// Resolves with the reason when the Raft core stops on an error it cannot recover from
    /// (a failed write of the metadata log or vote, such as a full disk): from then on this
    /// node neither votes nor follows. The broker exits on it, as Kafka halts on a failed
    /// metadata log directory, so that a restart recovers the log from disk.
    pub async fn stopped_on_error(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "the Raft core is gone".to_string();
            }
        }
    }

    /// Waits up to `timeout` until some node is known to lead the quorum.
    pub async fn wait_for_leader(&self, timeout: Duration) -> bool {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .is_ok()
    }

    /// Where to send a request for the active controller: its address if known, otherwise a
    /// voter other than this node (it forwards), so a broker that has not joined the log yet
    /// (a learner to be) can still reach the quorum.
    fn controller_addr(&self) -> Option<String> {
        if let Some((_, addr)) = self.leader() {
            return Some(addr);
        }
        let others: Vec<&String> = self
            .config
            .voters
            .iter()
            .filter(|(id, _)| **id != self.config.node_id)
            .map(|(_, addr)| addr)
            .collect();
        if others.is_empty() {
            return None;
        }
        let n = self
            .next_voter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(others[n % others.len()].clone())
    }

    /// Whether this node is the active controller.
    pub fn is_active(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Raft state for metrics: (is leader, current term, last applied index, commit index).
    pub fn raft_status(&self) -> (bool, u64, u64) {
        let m = self.raft.metrics().borrow().clone();
        (
            m.state == ServerState::Leader,
            m.current_term,
            m.last_applied.map_or(0, |l| l.index),
        )
    }

    /// Proposes a command from any node: written locally on the active controller, forwarded
    /// to it otherwise. Waits up to a bound for a leader to exist.
    pub async fn write(&self, command: MetadataCommand) -> Result<CommandResult, ControllerError> {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        loop {
            let attempt = match self.leader() {
                Some((id, _)) if id == self.config.node_id => self.write_on_leader(&command).await,
                _ => self.forward_write(&command).await,
            };
            match attempt {
                Err(e @ (ControllerError::Unavailable(_) | ControllerError::NotController))
                    if Instant::now() < deadline =>
                {
                    tracing::debug!(error = %e, "retrying metadata write");
                    let _ = self
                        .raft
                        .wait(Some(Duration::from_millis(200)))
                        .metrics(|m| m.current_leader.is_some(), "a leader")
                        .await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// Like [`Controller::write`], but refused results become errors.
    pub async fn write_ok(
        &self,
        command: MetadataCommand,
    ) -> Result<CommandResult, ControllerError> {
        match self.write(command).await? {
            CommandResult::Error { code, message } => Err(ControllerError::refused(code, message)),
            ok => Ok(ok),
        }
    }

    /// Writes `command` only if this node is the active controller, never forwarding it: for
    /// what the active controller decides from its own memory (session clocks), which a node
    /// deposed without knowing it yet must not hand to its successor.
    pub(crate) async fn write_as_active(
        &self,
        command: MetadataCommand,
    ) -> Result<CommandResult, ControllerError> {
        if !self.is_active() {
            return Err(ControllerError::NotController);
        }
        self.write_on_leader(&command).await
    }

    /// Entry point of the `Write` RPC: write here if active, otherwise forward once more.
    pub(crate) async fn write_local(
        &self,
        command: MetadataCommand,
    ) -> Result<CommandResult, ControllerError> {
        self.write(command).await
    }

    async fn write_on_leader(
        &self,
        command: &MetadataCommand,
    ) -> Result<CommandResult, ControllerError> {
        match self.raft.client_write(command.clone()).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(ControllerError::NotController)
            }
            // This node's quorum is shutting down (a broker stopping): for a write forwarded
            // here by another node that still took this one for the leader, that is a
            // controller gone away, so it must retry with the next leader, not give up.
            Err(RaftError::Fatal(openraft::error::Fatal::Stopped)) => Err(
                ControllerError::Unavailable("the metadata quorum on this node stopped".into()),
            ),
            Err(e) => Err(ControllerError::Fatal(e.to_string())),
        }
    }

    fn client(&self, addr: &str) -> Result<ControllerClient<Channel>, ControllerError> {
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let channel = network::channel(addr)
            .map_err(|e| ControllerError::Invalid(format!("controller address `{addr}`: {e}")))?;
        let client = ControllerClient::new(channel);
        clients.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// A client of the active controller (or of a voter that forwards to it).
    fn controller_client(&self) -> Result<ControllerClient<Channel>, ControllerError> {
        let addr = self
            .controller_addr()
            .ok_or_else(|| ControllerError::Unavailable("no active controller".into()))?;
        self.client(&addr)
    }

    async fn forward_write(
        &self,
        command: &MetadataCommand,
    ) -> Result<CommandResult, ControllerError> {
        let data =
            serde_json::to_vec(command).map_err(|e| ControllerError::Invalid(e.to_string()))?;
        let reply = self
            .controller_client()?
            .write(RaftPayload { data })
            .await
            .map_err(status_error)?;
        serde_json::from_slice(&reply.into_inner().data)
            .map_err(|e| ControllerError::Fatal(format!("undecodable controller reply: {e}")))
    }

    /// Registers a broker (the `RegisterBroker` RPC); forwarded to the active controller.
    pub async fn register_broker(
        &self,
        request: RegisterBrokerRequest,
    ) -> Result<RegisterBrokerResponse, ControllerError> {
        if !self.is_active() {
            return Ok(self
                .controller_client()?
                .register_broker(request)
                .await
                .map_err(status_error)?
                .into_inner());
        }
        let id = request.broker_id;
        let incarnation = Uuid::parse_str(&request.incarnation)
            .map_err(|e| ControllerError::Invalid(format!("incarnation: {e}")))?;
        let port = u16::try_from(request.port)
            .map_err(|_| ControllerError::Invalid(format!("port {} out of range", request.port)))?;
        let directory_id = match request.directory_id.as_str() {
            "" => None,
            text => Some(
                Uuid::parse_str(text)
                    .map_err(|e| ControllerError::Invalid(format!("directory id: {e}")))?,
            ),
        };
        // Every broker follows the log: one that is not a voter joins as a learner.
        let is_member = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&(id as NodeId))
            .is_some();
        if !is_member {
            self.raft
                .add_learner(
                    id as NodeId,
                    QuorumNode::new(&request.rpc_addr, directory_id),
                    false,
                )
                .await
                .map_err(|e| ControllerError::Unavailable(format!("adding learner {id}: {e}")))?;
        }
        let cluster_id = match self
            .write_ok(MetadataCommand::InitCluster {
                cluster_id: request.cluster_id.clone(),
            })
            .await?
        {
            CommandResult::ClusterId(id) => id,
            other => {
                return Err(ControllerError::Fatal(format!(
                    "unexpected result {other:?}"
                )))
            }
        };
        let result = self
            .write_ok(MetadataCommand::RegisterBroker {
                id,
                incarnation,
                rack: Some(request.rack).filter(|r| !r.is_empty()),
                host: request.host,
                port,
                rpc_addr: request.rpc_addr,
                directory_id,
                listeners: request
                    .listeners
                    .into_iter()
                    .map(|l| {
                        Ok(crate::controller::image::ListenerEndpoint {
                            port: u16::try_from(l.port).map_err(|_| {
                                ControllerError::Invalid(format!("port {} out of range", l.port))
                            })?,
                            name: l.name,
                            host: l.host,
                        })
                    })
                    .collect::<Result<_, ControllerError>>()?,
            })
            .await?;
        let CommandResult::BrokerEpoch(broker_epoch) = result else {
            return Err(ControllerError::Fatal(format!(
                "unexpected result {result:?}"
            )));
        };
        self.sessions.lock().touch(id);
        tracing::info!(broker = id, broker_epoch, "broker registered");
        Ok(RegisterBrokerResponse {
            broker_epoch,
            cluster_id,
        })
    }

    /// A broker's heartbeat (the `BrokerHeartbeat` RPC); forwarded to the active controller.
    pub async fn heartbeat(
        &self,
        request: BrokerHeartbeatRequest,
    ) -> Result<BrokerHeartbeatResponse, ControllerError> {
        if !self.is_active() {
            return Ok(self
                .controller_client()?
                .broker_heartbeat(request)
                .await
                .map_err(status_error)?
                .into_inner());
        }
        // The answer renews the broker's registration lease, so it must not come from a
        // controller that was deposed while cut off (or paused) and does not know it yet: a
        // quorum confirms this node still leads, and the image read after it is current.
        self.raft.ensure_linearizable().await.map_err(|e| {
            ControllerError::Unavailable(format!("not confirmed as the active controller: {e}"))
        })?;
        let id = request.broker_id;
        let image = self.image();
        let Some(broker) = image
            .brokers
            .get(&id)
            .filter(|b| b.epoch == request.broker_epoch)
        else {
            return Err(ControllerError::Refused {
                error: ResponseError::StaleBrokerEpoch,
                message: format!(
                    "broker {id} epoch {} is not registered",
                    request.broker_epoch
                ),
            });
        };
        self.sessions.lock().touch(id);
        let epoch = broker.epoch;
        if request.want_shutdown {
            if !broker.in_controlled_shutdown {
                self.write_ok(MetadataCommand::ControlledShutdown { id, epoch })
                    .await?;
            }
            // The shutdown moved its leaderships and ISR places away: it is told to stop, and,
            // as Kafka's controller does with SHUTDOWN_NOW, fenced now rather than a session
            // timeout later, so metadata and the admin API show it gone while it exits (an
            // operator waiting to unregister a removed broker waits for that).
            if self
                .image()
                .brokers
                .get(&id)
                .is_some_and(|b| b.epoch == epoch && b.in_controlled_shutdown && !b.fenced)
            {
                self.write_ok(MetadataCommand::FenceBroker { id, epoch })
                    .await?;
            }
        } else if broker.fenced && request.applied_index >= (epoch as u64).max(broker.fenced_at) {
            // Caught up past its registration and past the fence: it has applied the records
            // that moved its leaderships away, so it cannot act on a stale view once unfenced.
            self.write_ok(MetadataCommand::UnfenceBroker { id, epoch })
                .await?;
        }
        let image = self.image();
        let broker = image.brokers.get(&id);
        Ok(BrokerHeartbeatResponse {
            fenced: broker.is_none_or(|b| b.fenced),
            shutdown_ready: broker.is_some_and(|b| b.in_controlled_shutdown),
        })
    }

    /// Stops Raft.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "stopping the metadata quorum");
        }
    }
}

fn status_error(status: tonic::Status) -> ControllerError {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => {
            ControllerError::Unavailable(status.message().to_string())
        }
        tonic::Code::FailedPrecondition => {
            // Refusals carry "message (error code N)".
            let text = status.message();
            match text.rsplit_once(" (error code ") {
                Some((message, code)) => ControllerError::refused(
                    code.trim_end_matches(')')
                        .parse()
                        .unwrap_or(ResponseError::UnknownServerError.code()),
                    message,
                ),
                None => ControllerError::refused(ResponseError::UnknownServerError.code(), text),
            }
        }
        tonic::Code::InvalidArgument => ControllerError::Invalid(status.message().to_string()),
        _ => ControllerError::Fatal(status.message().to_string()),
    }
}
