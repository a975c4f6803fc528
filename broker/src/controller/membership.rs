//! Who votes in the metadata quorum, and how that changes (KIP-853 in openraft terms).
//!
//! **A voter is its node id plus its storage.** Every data directory has a random
//! `directory.id` in its `meta.properties`; a directory that is emptied or replaced, or whose
//! metadata log is empty, gets a new one. The membership openraft stores records each node's
//! directory id ([`QuorumNode`]), every Raft message names the id it expects of its target,
//! and a node whose own id differs refuses the message ([`super::rpc`]), so the sender counts
//! it as absent. A voter that lost its disk therefore cannot vote or acknowledge as its old
//! self: it holds nothing of what it once acknowledged, and counting it could commit an entry
//! without a majority that holds the log (issue 13, item 5).
//!
//! **Bootstrap.** A voter whose metadata log is empty asks every configured voter who it is
//! (`Controller::identity`: node id, directory id, whether its log holds anything):
//! - if any answers that its log holds something, the quorum exists: this node initialises
//!   nothing and waits as an observer. If the membership already names its directory id (it
//!   is a voter that had not yet heard from the leader), the leader's next message makes it a
//!   voter; otherwise it is refused until a membership change names its new id (below).
//! - once every configured voter has answered and none holds anything, the quorum does not
//!   exist yet: it initialises the membership with every voter's directory id. Voters doing
//!   this at the same time use the same answers, so they write the same membership.
//!
//! This is what stops an emptied voter from re-initialising a quorum of its own and voting as
//! if it had never acknowledged anything. The price: the first formation of a quorum needs
//! every configured voter up at once (a single voter initialises at once).
//!
//! **The way back, and runtime changes** (AddRaftVoter / RemoveRaftVoter, one change at a
//! time through openraft's joint consensus):
//! - [`Controller::remove_voter`]: the voter becomes an observer (a Raft learner).
//! - [`Controller::add_voter`]: the node must be registered with that directory id; its
//!   membership entry is pointed at it (safe: as an observer it is not counted), the leader
//!   waits until it has replicated the whole applied log, and only then makes it a voter.
//!   This also grows a quorum created with one voter (1 → 3).
//! - `controller.quorum.auto.join.enable` (Kafka's name; on by default here) lets the active
//!   controller do this itself, as an operator would: a registered broker whose directory id
//!   differs from its voter entry is removed as a voter (which commits only with a majority of
//!   the other voters), pointed at its new directory, and made a voter again once caught up;
//!   and a configured voter (`--voters`) that is an observer is made a voter once caught up.
//!   With it off, the admin API's AddRaftVoter / RemoveRaftVoter are the only way.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Weak;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;
use uuid::Uuid;
use weir_api::proto::controller::raft_client::RaftClient;
use weir_api::proto::controller::{ChangeVoterRequest, IdentifyRequest, IdentifyResponse};

use super::types::{NodeId, QuorumNode};
use super::{status_error, Controller, ControllerError};

/// How often a voter with an empty log asks its peers again while one has not answered.
const SURVEY_RETRY: Duration = Duration::from_millis(300);
/// How long to wait for one peer's answer to Identify.
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the active controller reconciles the membership with registrations.
const AUTO_JOIN_TICK: Duration = Duration::from_millis(250);
/// How long AddRaftVoter waits for the new voter to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one membership change may take before the caller hears about it.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// A refused Raft message is logged at most this often.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the configured voters answered a voter whose log is empty.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Survey {
    /// This voter (and the one named) holds a log: the quorum exists; do not initialise.
    QuorumExists(i32),
    /// Every voter answered and none holds anything: initialise with these nodes.
    Initialise(BTreeMap<NodeId, QuorumNode>),
    /// Some voters have not answered yet.
    Incomplete(Vec<i32>),
}

/// Decides from the answers (`None`: no answer from that voter) what a voter with an empty
/// log does. Pure, so the rule is tested on its own.
pub(super) fn decide(
    voters: &BTreeMap<i32, String>,
    answers: &BTreeMap<i32, Option<IdentifyResponse>>,
) -> Survey {
    if let Some((id, _)) = answers
        .iter()
        .find(|(_, a)| a.as_ref().is_some_and(|a| a.initialized))
    {
        return Survey::QuorumExists(*id);
    }
    let mut nodes = BTreeMap::new();
    let mut missing = Vec::new();
    for (id, addr) in voters {
        match answers.get(id).and_then(|a| a.as_ref()).and_then(|a| {
            (a.node_id == *id)
                .then(|| Uuid::parse_str(&a.directory_id).ok())
                .flatten()
        }) {
            Some(directory_id) => {
                nodes.insert(*id as NodeId, QuorumNode::new(addr, Some(directory_id)));
            }
            None => missing.push(*id),
        }
    }
    if missing.is_empty() {
        Survey::Initialise(nodes)
    } else {
        Survey::Incomplete(missing)
    }
}

/// One step the active controller takes to bring the membership in line with registrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Record a node's current address and directory id (an observer, or a voter whose
    /// directory id was not known): no effect on who is counted.
    SetNode(NodeId, QuorumNode),
    /// A voter runs with other storage than the membership names: remove it as a voter.
    RemoveVoter(NodeId),
    /// An observer that should vote: make it a voter once it has caught up.
    PromoteWhenCaughtUp(NodeId),
}

/// The next membership step, if any: `voters`/`nodes` are the membership, `registered` each
/// registered broker's (address, directory id), `wanted` the configured voters that
/// auto-join makes voters again. Only one step at a time (one change at a time).
pub(super) fn next_step(
    voters: &BTreeSet<NodeId>,
    nodes: &BTreeMap<NodeId, QuorumNode>,
    registered: &BTreeMap<NodeId, (String, Option<Uuid>)>,
    wanted: &BTreeSet<NodeId>,
    auto_join: bool,
) -> Option<Step> {
    for (id, (addr, directory_id)) in registered {
        let Some(directory_id) = directory_id else {
            continue;
        };
        let Some(known) = nodes.get(id) else {
            continue;
        };
        let current = QuorumNode::new(addr, Some(*directory_id));
        if !voters.contains(id) {
            if *known != current {
                return Some(Step::SetNode(*id, current));
            }
            continue;
        }
        match known.directory_id {
            None => return Some(Step::SetNode(*id, current)),
            Some(k) if k != *directory_id && auto_join && voters.len() > 1 => {
                return Some(Step::RemoveVoter(*id))
            }
            _ => {}
        }
    }
    if auto_join {
        for id in wanted {
            let runs_as_member = matches!(
                (nodes.get(id), registered.get(id)),
                (Some(n), Some((_, Some(d)))) if n.directory_id == Some(*d)
            );
            if !voters.contains(id) && runs_as_member {
                return Some(Step::PromoteWhenCaughtUp(*id));
            }
        }
    }
    None
}

impl Controller {
    /// This node's directory id.
    pub fn directory_id(&self) -> Uuid {
        self.config.directory_id
    }

    /// Whether this node's metadata log holds anything (the quorum exists, as far as this node
    /// knows).
    pub(super) fn is_initialized(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.last_log_index.is_some() || m.current_term > 0
    }

    /// The answer to Identify.
    pub(crate) fn identity(&self) -> IdentifyResponse {
        IdentifyResponse {
            node_id: self.config.node_id,
            directory_id: self.config.directory_id.to_string(),
            initialized: self.is_initialized(),
        }
    }

    /// Logs a refused Raft message (rate-limited: a leader retries every heartbeat).
    pub(super) fn note_refusal(&self, reason: &str) {
        let mut last = self.last_refusal_log.lock();
        if last.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(
                reason,
                "refused a metadata quorum message addressed to other storage"
            );
        }
    }

    /// Asks every configured voter (this one answers for itself) who it is.
    async fn survey(&self) -> Survey {
        let mut answers = BTreeMap::new();
        for (id, addr) in &self.config.voters {
            let answer = if *id == self.config.node_id {
                Some(self.identity())
            } else {
                identify(addr).await
            };
            answers.insert(*id, answer);
        }
        decide(&self.config.voters, &answers)
    }

    /// Adds a voter (AddRaftVoter) or removes one (RemoveRaftVoter); forwarded to the active
    /// controller from any other node.
    pub async fn change_voter(&self, request: ChangeVoterRequest) -> Result<(), ControllerError> {
        if !self.is_active() {
            self.controller_client()?
                .change_voter(request)
                .await
                .map_err(status_error)?;
            return Ok(());
        }
        let directory_id = if request.directory_id.is_empty() {
            None
        } else {
            Some(Uuid::parse_str(&request.directory_id).map_err(|e| {
                ControllerError::Invalid(format!("directory id `{}`: {e}", request.directory_id))
            })?)
        };
        let id = request.node_id as NodeId;
        if request.add {
            let directory_id = directory_id.ok_or_else(|| {
                ControllerError::Invalid("AddRaftVoter needs the node's directory id".into())
            })?;
            self.add_voter(id, directory_id).await
        } else {
            self.remove_voter(id, directory_id).await
        }
    }

    /// Makes node `id`, running with storage `directory_id`, a voter: it must be registered
    /// with that directory id; it is recorded as an observer with it, must catch up, and is
    /// then made a voter. A no-op if it is a voter with that directory id already.
    pub async fn add_voter(&self, id: NodeId, directory_id: Uuid) -> Result<(), ControllerError> {
        let membership = self.membership();
        if membership.voter_ids().any(|v| v == id) {
            let known = membership.get_node(&id).and_then(|n| n.directory_id);
            if known == Some(directory_id) {
                return Ok(());
            }
            return Err(refused(format!(
                "node {id} is a voter with directory id {}; remove it first",
                known.map_or("unknown".to_string(), |d| d.to_string())
            )));
        }
        let image = self.image();
        let registration = image.brokers.get(&(id as i32)).ok_or_else(|| {
            refused(format!(
                "node {id} is not registered; it must run and follow the log first"
            ))
        })?;
        if registration.directory_id != Some(directory_id) {
            return Err(refused(format!(
                "node {id} runs with directory id {}, not {directory_id}",
                registration
                    .directory_id
                    .map_or("unknown".to_string(), |d| d.to_string())
            )));
        }
        let node = QuorumNode::new(&registration.rpc_addr, Some(directory_id));
        match membership.get_node(&id) {
            None => {
                self.raft
                    .add_learner(id, node, false)
                    .await
                    .map_err(change_error)?;
            }
            Some(known) if *known != node => {
                self.change(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
                    .await?;
            }
            Some(_) => {}
        }
        self.wait_caught_up(id, CATCH_UP_TIMEOUT).await?;
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            .await?;
        tracing::info!(node = id, %directory_id, "added a voter to the metadata quorum");
        Ok(())
    }

    /// Removes voter `id` (if `directory_id` is given, only if the voter has that one); it
    /// stays an observer. The last voter cannot be removed.
    pub async fn remove_voter(
        &self,
        id: NodeId,
        directory_id: Option<Uuid>,
    ) -> Result<(), ControllerError> {
        let membership = self.membership();
        if !membership.voter_ids().any(|v| v == id) {
            return Err(refused(format!("node {id} is not a voter")));
        }
        let known = membership.get_node(&id).and_then(|n| n.directory_id);
        if directory_id.is_some() && known != directory_id {
            return Err(refused(format!(
                "voter {id} has directory id {}, not {}",
                known.map_or("unknown".to_string(), |d| d.to_string()),
                directory_id.map_or(String::new(), |d| d.to_string())
            )));
        }
        if membership.voter_ids().count() == 1 {
            return Err(refused(format!("node {id} is the only voter")));
        }
        self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
            .await?;
        tracing::info!(node = id, directory_id = ?known, "removed a voter of the metadata quorum");
        Ok(())
    }

    fn membership(&self) -> openraft::Membership<NodeId, QuorumNode> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone()
    }

    /// One membership change, bounded in time (it needs a majority of the old and the new
    /// voters; without one it stays pending inside openraft).
    async fn change(
        &self,
        change: ChangeMembers<NodeId, QuorumNode>,
    ) -> Result<(), ControllerError> {
        match tokio::time::timeout(CHANGE_TIMEOUT, self.raft.change_membership(change, true)).await
        {
            Ok(result) => result.map(|_| ()).map_err(change_error),
            Err(_) => Err(ControllerError::Unavailable(format!(
                "the membership change did not commit within {CHANGE_TIMEOUT:?}"
            ))),
        }
    }

    /// Waits until node `id` has replicated everything this (leader) node has applied.
    async fn wait_caught_up(&self, id: NodeId, timeout: Duration) -> Result<(), ControllerError> {
        self.raft
            .wait(Some(timeout))
            .metrics(
                |m| {
                    let applied = m.last_applied.map_or(0, |l| l.index);
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&id).cloned().flatten())
                        .is_some_and(|matched| matched.index >= applied)
                },
                "the new voter caught up",
            )
            .await
            .map(|_| ())
            .map_err(|e| ControllerError::Unavailable(format!("node {id} has not caught up: {e}")))
    }

    /// One auto-join step on the active controller.
    async fn reconcile_membership(&self) -> Result<(), ControllerError> {
        if !self.is_active() {
            return Ok(());
        }
        let membership = self.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let nodes: BTreeMap<NodeId, QuorumNode> =
            membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let registered = self
            .image()
            .brokers
            .values()
            .map(|b| (b.id as NodeId, (b.rpc_addr.clone(), b.directory_id)))
            .collect();
        let wanted = self.config.voters.keys().map(|id| *id as NodeId).collect();
        let Some(step) = next_step(&voters, &nodes, &registered, &wanted, self.config.auto_join)
        else {
            return Ok(());
        };
        match step {
            Step::SetNode(id, node) => {
                tracing::info!(node = id, to = %node, "recording a quorum member's storage");
                self.change(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
                    .await
            }
            Step::RemoveVoter(id) => {
                tracing::warn!(
                    node = id,
                    "voter runs with new storage (its disk was emptied or replaced): removing it \
                     as a voter; it follows as an observer and votes again once caught up"
                );
                self.remove_voter(id, None).await
            }
            Step::PromoteWhenCaughtUp(id) => {
                if self.wait_caught_up(id, Duration::ZERO).await.is_err() {
                    return Ok(());
                }
                let Some(directory_id) = nodes.get(&id).and_then(|n| n.directory_id) else {
                    return Ok(());
                };
                self.add_voter(id, directory_id).await
            }
        }
    }
}

/// Runs the bootstrap of a voter with an empty log, then stops.
pub(super) async fn bootstrap(controller: Weak<Controller>) {
    let mut reported_missing = None;
    loop {
        let Some(c) = controller.upgrade() else {
            return;
        };
        if c.is_initialized() {
            return;
        }
        match c.survey().await {
            Survey::QuorumExists(peer) => {
                tracing::info!(
                    peer,
                    directory_id = %c.directory_id(),
                    "the metadata quorum exists and this node's metadata log is empty: following \
                     it as an observer until a membership change names this directory id"
                );
                return;
            }
            Survey::Initialise(nodes) => {
                if let Err(e) = c.raft.initialize(nodes).await {
                    tracing::debug!(error = %e, "metadata quorum already initialised");
                }
                return;
            }
            Survey::Incomplete(missing) => {
                if reported_missing.as_ref() != Some(&missing) {
                    tracing::info!(
                        ?missing,
                        "forming the metadata quorum: waiting for every voter to answer"
                    );
                    reported_missing = Some(missing);
                }
            }
        }
        drop(c);
        tokio::time::sleep(SURVEY_RETRY).await;
    }
}

/// Runs auto-join on the active controller until the controller is dropped.
pub(super) async fn run(controller: Weak<Controller>) {
    let mut tick = tokio::time::interval(AUTO_JOIN_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(c) = controller.upgrade() else {
            return;
        };
        if let Err(e) = c.reconcile_membership().await {
            tracing::info!(error = %e, "metadata quorum membership change not done yet");
        }
    }
}

async fn identify(addr: &str) -> Option<IdentifyResponse> {
    let channel = super::network::channel(addr).ok()?;
    let mut request = tonic::Request::new(IdentifyRequest {});
    request.set_timeout(IDENTIFY_TIMEOUT);
    RaftClient::new(channel)
        .identify(request)
        .await
        .ok()
        .map(|r| r.into_inner())
}

fn refused(message: String) -> ControllerError {
    ControllerError::Refused {
        error: ResponseError::InvalidRequest,
        message,
    }
}

fn change_error(e: RaftError<NodeId, ClientWriteError<NodeId, QuorumNode>>) -> ControllerError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ControllerError::NotController,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            e @ ChangeMembershipError::InProgress(_),
        )) => ControllerError::Unavailable(e.to_string()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => refused(e.to_string()),
        RaftError::Fatal(e) => ControllerError::Fatal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters() -> BTreeMap<i32, String> {
        (0..3).map(|id| (id, format!("h:{id}"))).collect()
    }

    fn answer(id: i32, directory_id: Uuid, initialized: bool) -> Option<IdentifyResponse> {
        Some(IdentifyResponse {
            node_id: id,
            directory_id: directory_id.to_string(),
            initialized,
        })
    }

    #[test]
    fn an_empty_voter_initialises_only_when_every_voter_answered_and_none_holds_a_log() {
        let dirs: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let mut answers: BTreeMap<i32, Option<IdentifyResponse>> = (0..3)
            .map(|id| (id, answer(id, dirs[id as usize], false)))
            .collect();
        let Survey::Initialise(nodes) = decide(&voters(), &answers) else {
            panic!("all empty and answering: initialise");
        };
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[&1], QuorumNode::new("h:1", Some(dirs[1])));

        answers.insert(2, None);
        assert_eq!(decide(&voters(), &answers), Survey::Incomplete(vec![2]));
        // A node answering for another id is not that voter.
        answers.insert(2, answer(7, dirs[2], false));
        assert_eq!(decide(&voters(), &answers), Survey::Incomplete(vec![2]));

        // One voter holds a log (even with another silent): the quorum exists.
        answers.insert(1, answer(1, dirs[1], true));
        assert_eq!(decide(&voters(), &answers), Survey::QuorumExists(1));
    }

    fn membership(
        dirs: &[Uuid],
        voter_ids: &[u64],
    ) -> (BTreeSet<NodeId>, BTreeMap<NodeId, QuorumNode>) {
        let nodes = dirs
            .iter()
            .enumerate()
            .map(|(id, d)| (id as NodeId, QuorumNode::new(format!("h:{id}"), Some(*d))))
            .collect();
        (voter_ids.iter().copied().collect(), nodes)
    }

    fn registered(dirs: &[Uuid]) -> BTreeMap<NodeId, (String, Option<Uuid>)> {
        dirs.iter()
            .enumerate()
            .map(|(id, d)| (id as NodeId, (format!("h:{id}"), Some(*d))))
            .collect()
    }

    #[test]
    fn a_voter_back_with_new_storage_is_removed_pointed_at_it_and_promoted_once_caught_up() {
        let dirs: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let wanted: BTreeSet<NodeId> = (0..3).collect();
        let (voters, nodes) = membership(&dirs, &[0, 1, 2]);
        assert_eq!(
            next_step(&voters, &nodes, &registered(&dirs), &wanted, true),
            None
        );

        let mut now = dirs.clone();
        now[0] = Uuid::new_v4();
        // 1. removed as a voter (only with auto-join).
        assert_eq!(
            next_step(&voters, &nodes, &registered(&now), &wanted, true),
            Some(Step::RemoveVoter(0))
        );
        assert_eq!(
            next_step(&voters, &nodes, &registered(&now), &wanted, false),
            None
        );
        // 2. as an observer, pointed at its new storage.
        let (voters, nodes) = membership(&dirs, &[1, 2]);
        assert_eq!(
            next_step(&voters, &nodes, &registered(&now), &wanted, true),
            Some(Step::SetNode(0, QuorumNode::new("h:0", Some(now[0]))))
        );
        // 3. promoted (once caught up).
        let (voters, nodes) = membership(&now, &[1, 2]);
        assert_eq!(
            next_step(&voters, &nodes, &registered(&now), &wanted, true),
            Some(Step::PromoteWhenCaughtUp(0))
        );
        // An observer that is not a configured voter stays one.
        assert_eq!(
            next_step(
                &voters,
                &nodes,
                &registered(&now),
                &BTreeSet::from([1, 2]),
                true
            ),
            None
        );
    }

    #[test]
    fn the_last_voter_is_never_removed_and_unknown_directory_ids_are_recorded() {
        let dirs = [Uuid::new_v4()];
        let (voters, nodes) = membership(&dirs, &[0]);
        let other = [Uuid::new_v4()];
        assert_eq!(
            next_step(&voters, &nodes, &registered(&other), &BTreeSet::new(), true),
            None
        );
        let legacy = BTreeMap::from([(0, QuorumNode::new("h:0", None))]);
        assert_eq!(
            next_step(&voters, &legacy, &registered(&dirs), &BTreeSet::new(), true),
            Some(Step::SetNode(0, QuorumNode::new("h:0", Some(dirs[0]))))
        );
    }
}
