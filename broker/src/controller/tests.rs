//! The quorum with real Raft nodes over real gRPC on loopback, inside one process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::command::{CommandResult, MetadataCommand};
use super::image::MetadataImage;
use super::{rpc, Controller, ControllerConfig};

struct Node {
    id: i32,
    dir: PathBuf,
    addr: String,
    /// The directory id of `dir` (what `meta.properties` holds on a broker).
    directory_id: Uuid,
    controller: Option<Arc<Controller>>,
    stop: Option<oneshot::Sender<()>>,
}

fn config(
    id: i32,
    dir: PathBuf,
    voters: &BTreeMap<i32, String>,
    directory_id: Uuid,
) -> ControllerConfig {
    ControllerConfig {
        node_id: id,
        dir,
        directory_id,
        auto_join: true,
        voters: voters.clone(),
        session_timeout: Duration::from_secs(60),
        leader_imbalance_interval: None,
        raft_heartbeat: Duration::from_millis(50),
    }
}

impl Node {
    async fn start(&mut self, voters: &BTreeMap<i32, String>) {
        // Raft peers know this address, so a restart must bind it again; a stopped server
        // may take a moment to let go of it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(&self.addr).await {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(addr = %self.addr, error = %e, "binding again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("binding {}: {e}", self.addr),
            }
        };
        let controller =
            Controller::start(config(self.id, self.dir.clone(), voters, self.directory_id))
                .await
                .unwrap();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(rpc::serve(
            listener,
            rpc::routes(&controller),
            None,
            async {
                let _ = rx.await;
            },
        ));
        self.controller = Some(controller);
        self.stop = Some(tx);
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(c) = self.controller.take() {
            c.shutdown().await;
        }
    }

    /// Stops the node and empties its storage, which then has a new directory id (as the
    /// broker gives an empty data directory).
    async fn lose_disk(&mut self) {
        self.stop().await;
        std::fs::remove_dir_all(&self.dir).unwrap();
        self.directory_id = Uuid::new_v4();
    }

    fn controller(&self) -> &Arc<Controller> {
        self.controller.as_ref().expect("node is running")
    }
}

/// A port that is free now, from a range no ephemeral (port 0) bind uses.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 400) * 30;
    for _ in 0..2_000 {
        let port = (20_000 + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range")
}

async fn cluster(n: i32, root: &std::path::Path) -> (Vec<Node>, BTreeMap<i32, String>) {
    let (mut nodes, voters) = unstarted(n, root);
    for node in &mut nodes {
        node.start(&voters).await;
    }
    (nodes, voters)
}

/// `n` nodes, not started, and the voter map naming all of them.
fn unstarted(n: i32, root: &std::path::Path) -> (Vec<Node>, BTreeMap<i32, String>) {
    let mut nodes = Vec::new();
    let mut voters = BTreeMap::new();
    for id in 0..n {
        // Raft needs the address before the node binds it (and binds it again on restart), so
        // take a free port below Linux's ephemeral range (32768+): no connection elsewhere on the
        // machine can take it as its local port in between.
        let addr = format!("127.0.0.1:{}", free_port());
        voters.insert(id, addr.clone());
        nodes.push(Node {
            id,
            dir: root.join(format!("node-{id}")),
            addr,
            directory_id: Uuid::new_v4(),
            controller: None,
            stop: None,
        });
    }
    (nodes, voters)
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn create_topic(name: &str) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.to_string(),
        id: Uuid::new_v4(),
        configs: BTreeMap::new(),
        assignment: vec![vec![0, 1, 2], vec![1, 2, 0]],
    }
}

fn has_topic(image: &MetadataImage, name: &str) -> bool {
    image.topics.contains_key(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_agree_survive_a_leader_loss_and_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, voters) = cluster(3, root.path()).await;
    wait_until("a leader", || nodes[0].controller().leader().is_some()).await;

    // A write proposed on a follower is forwarded to the leader.
    let (leader, _) = nodes[0].controller().leader().unwrap();
    let follower = (leader + 1) % 3;
    let result = nodes[follower as usize]
        .controller()
        .write(create_topic("a"))
        .await
        .unwrap();
    assert_eq!(result, CommandResult::Ok);
    for node in &nodes {
        let c = node.controller().clone();
        wait_until("topic a everywhere", || has_topic(&c.image(), "a")).await;
    }
    // A second create of the same name is refused by apply, on every node alike.
    let again = nodes[0]
        .controller()
        .write(create_topic("a"))
        .await
        .unwrap();
    assert!(
        matches!(again, CommandResult::Error { code: 36, .. }),
        "{again:?}"
    );

    // The leader goes away; the other two elect a new one and keep accepting writes.
    nodes[leader as usize].stop().await;
    let survivor = (leader + 1) % 3;
    let c = nodes[survivor as usize].controller().clone();
    wait_until("a new leader", || {
        c.leader().is_some_and(|(id, _)| id != leader)
    })
    .await;
    assert_eq!(c.write(create_topic("b")).await.unwrap(), CommandResult::Ok);

    // The old leader restarts from its files and catches up with what it missed.
    nodes[leader as usize].start(&voters).await;
    let back = nodes[leader as usize].controller().clone();
    wait_until("restarted node has both topics", || {
        let image = back.image();
        has_topic(&image, "a") && has_topic(&image, "b")
    })
    .await;
    let reference = nodes[survivor as usize].controller().image();
    let image = back.image();
    assert_eq!(image.topics, reference.topics);
    for node in &mut nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_leads_at_once_and_keeps_its_metadata_across_restarts() {
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, voters) = cluster(1, root.path()).await;
    let c = nodes[0].controller().clone();
    wait_until("leadership", || c.is_active()).await;
    c.write_ok(MetadataCommand::CreateTopic {
        name: "kept".into(),
        id: Uuid::new_v4(),
        configs: BTreeMap::new(),
        assignment: vec![vec![0]],
    })
    .await
    .unwrap();
    let before = c.image();
    nodes[0].stop().await;
    nodes[0].start(&voters).await;
    let c = nodes[0].controller().clone();
    wait_until("replayed topic", || has_topic(&c.image(), "kept")).await;
    assert_eq!(c.image().topics, before.topics);
    nodes[0].stop().await;
}

fn registration(node: &Node) -> weir_api::proto::controller::RegisterBrokerRequest {
    weir_api::proto::controller::RegisterBrokerRequest {
        broker_id: node.id,
        incarnation: Uuid::new_v4().to_string(),
        rack: String::new(),
        host: "127.0.0.1".into(),
        port: 9092,
        rpc_addr: node.addr.clone(),
        cluster_id: "test-cluster".into(),
        directory_id: node.directory_id.to_string(),
        listeners: Vec::new(),
    }
}

/// Whether the membership `c` uses is applied (so committed) on `c`.
/// Whether `c` has applied the membership in force and it is not the joint one of a change
/// under way (whose old voters would still be needed for a majority).
fn membership_settled(c: &Controller) -> bool {
    let metrics = c.raft().metrics().borrow().clone();
    metrics
        .membership_config
        .membership()
        .get_joint_config()
        .len()
        == 1
        && metrics.membership_config.log_id().as_ref() <= metrics.last_applied.as_ref()
}

/// The voters and their directory ids as `c` sees the membership.
fn voters_of(c: &Controller) -> BTreeMap<u64, Option<Uuid>> {
    let metrics = c.raft().metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    membership
        .voter_ids()
        .map(|id| (id, membership.get_node(&id).and_then(|n| n.directory_id)))
        .collect()
}

/// Issue 13, item 5: C down; "first" committed by A and B; A loses its disk and restarts; B
/// stops. A (empty) and C (stale) must not commit anything; once B is back "first" is there,
/// and A, caught up, is a voter again under its new directory id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_that_lost_its_disk_is_not_counted_until_it_rejoins() {
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, voters) = cluster(3, root.path()).await;
    for node in &nodes {
        let c = node.controller().clone();
        wait_until("a leader", || c.leader().is_some()).await;
    }
    let original: BTreeMap<u64, Option<Uuid>> = nodes
        .iter()
        .map(|n| (n.id as u64, Some(n.directory_id)))
        .collect();
    wait_until("the membership names every directory id", || {
        voters_of(nodes[0].controller()) == original
    })
    .await;

    nodes[2].stop().await;
    let b = nodes[1].controller().clone();
    assert_eq!(
        b.write(create_topic("first")).await.unwrap(),
        CommandResult::Ok
    );

    nodes[0].lose_disk().await;
    nodes[0].start(&voters).await;
    nodes[1].stop().await;
    nodes[2].start(&voters).await;

    // Only A (empty) and C (stale): no majority holds "first", so nothing may commit.
    let c = nodes[2].controller().clone();
    let attempt = tokio::time::timeout(Duration::from_secs(6), c.write(create_topic("second")));
    match attempt.await {
        Err(_) | Ok(Err(_)) => {}
        Ok(Ok(result)) => panic!("A (empty) and C (stale) committed a write: {result:?}"),
    }
    assert!(!has_topic(&c.image(), "second"));
    assert_eq!(
        nodes[0]
            .controller()
            .raft()
            .metrics()
            .borrow()
            .current_leader,
        None
    );

    // B is back: "first" survives everywhere, and A comes back as a voter once it registers
    // (as a broker does at start) and has caught up.
    nodes[1].start(&voters).await;
    let b = nodes[1].controller().clone();
    wait_until("first on C", || has_topic(&c.image(), "first")).await;
    b.register_broker(registration(&nodes[0])).await.unwrap();
    let a = nodes[0].controller().clone();
    wait_until("first on A", || has_topic(&a.image(), "first")).await;
    let mut expected = original.clone();
    expected.insert(0, Some(nodes[0].directory_id));
    // Until the membership that makes A a voter again is applied on every node and no longer
    // the joint one of the change, the previous voters (without A) still count, and with B
    // gone next they could not commit: Raft's rule, not a fault.
    let deadline = Instant::now() + Duration::from_secs(30);
    while [&a, &b, &c]
        .iter()
        .any(|n| voters_of(n) != expected || !membership_settled(n))
    {
        assert!(
            Instant::now() < deadline,
            "A is not a voter again: {:?}",
            voters_of(&b)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!has_topic(&b.image(), "second"));

    // A counts again: with B down, A and C commit.
    nodes[1].stop().await;
    let a = nodes[0].controller().clone();
    let result = tokio::time::timeout(Duration::from_secs(20), a.write(create_topic("third")))
        .await
        .expect("A and C commit in time")
        .unwrap_or_else(|e| panic!("A and C did not commit \"third\": {e}"));
    assert_eq!(result, CommandResult::Ok);
    assert!(has_topic(&a.image(), "first"));
    for node in &mut nodes {
        node.stop().await;
    }
}

/// A quorum created with one voter grows to three through AddRaftVoter, and then survives
/// the loss of its first voter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_quorum_grows_to_three() {
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, _) = unstarted(3, root.path());
    let only_first = BTreeMap::from([(0, nodes[0].addr.clone())]);
    for node in &mut nodes {
        node.start(&only_first).await;
    }
    let first = nodes[0].controller().clone();
    wait_until("leadership", || first.is_active()).await;
    for node in &nodes[1..] {
        first.register_broker(registration(node)).await.unwrap();
    }
    first.write_ok(create_topic("before")).await.unwrap();
    for node in &nodes[1..] {
        let request = weir_api::proto::controller::ChangeVoterRequest {
            node_id: node.id,
            directory_id: node.directory_id.to_string(),
            add: true,
        };
        // Asked of another node: forwarded to the active controller.
        nodes[1].controller().change_voter(request).await.unwrap();
    }
    assert_eq!(voters_of(&first).len(), 3);
    // Removing needs the voter's current directory id when one is given.
    let wrong = weir_api::proto::controller::ChangeVoterRequest {
        node_id: 2,
        directory_id: Uuid::new_v4().to_string(),
        add: false,
    };
    assert!(first.change_voter(wrong).await.is_err());

    nodes[0].stop().await;
    let second = nodes[1].controller().clone();
    wait_until("a new leader", || {
        second.leader().is_some_and(|(id, _)| id != 0)
    })
    .await;
    let result = tokio::time::timeout(Duration::from_secs(20), second.write(create_topic("after")))
        .await
        .expect("two of three voters commit")
        .unwrap();
    assert_eq!(result, CommandResult::Ok);
    for node in &mut nodes {
        node.stop().await;
    }
}
