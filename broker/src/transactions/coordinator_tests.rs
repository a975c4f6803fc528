//! The transaction coordinator over a real `__transaction_state` log of a one-broker cluster:
//! ownership, the state machine through the one write path, replay after a new leadership
//! (a transaction ending when its coordinator changed is ended by the next), timeouts and
//! the expiry of idle ids.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;

use super::coordinator::{TransactionCoordinator, TransactionMetrics, TRANSACTION_STATE_TOPIC};
use super::state::ClientVersion::V1;
use super::state::TxnState;
use crate::clock::ManualClock;
use crate::config::BrokerConfig;
use crate::producer_ids::ProducerIdManager;
use crate::replica_manager::{CreateTopic, LeadershipListener, ReplicaManager};
use crate::test_support;

struct Fixture {
    c: Arc<TransactionCoordinator>,
    replicas: Arc<ReplicaManager>,
    _controller: Arc<crate::controller::Controller>,
}

async fn coordinator(dir: &std::path::Path, clock: Arc<ManualClock>) -> Fixture {
    let settings = [
        ("transaction.state.log.num.partitions", "3"),
        ("transactional.id.expiration.ms", "60000"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let config = Arc::new(BrokerConfig::new(0, dir.to_path_buf(), &settings).unwrap());
    let (replicas, controller) = test_support::replica_manager(config.clone(), clock.clone()).await;
    let c = TransactionCoordinator::new(
        config,
        replicas.clone(),
        Arc::new(ProducerIdManager::new()),
        clock,
        TransactionMetrics::unregistered(),
    );
    let listener: Arc<dyn LeadershipListener> = c.clone();
    replicas.add_leadership_listener(Arc::downgrade(&listener));
    replicas
        .create_topic(CreateTopic {
            partitions: Some(2),
            replication_factor: Some(1),
            ..CreateTopic::new("t")
        })
        .await
        .unwrap();
    Fixture {
        c,
        replicas,
        _controller: controller,
    }
}

async fn serving(c: &TransactionCoordinator, id: &str) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while c.check_coordinator(id).is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the id's __transaction_state partition loads");
}

fn tp(p: i32) -> (String, i32) {
    ("t".to_string(), p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_are_written_replayed_after_a_new_leadership_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let f = coordinator(dir.path(), clock.clone()).await;
    let c = &f.c;
    assert_eq!(
        c.check_coordinator("tx").unwrap_err(),
        ResponseError::NotCoordinator.code(),
        "nothing is owned before the topic exists"
    );
    c.ensure_topic().await.unwrap();
    let topic = f.replicas.topic(TRANSACTION_STATE_TOPIC).unwrap();
    assert_eq!(topic.meta.partitions, 3);
    assert_eq!(
        topic.meta.configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    serving(c, "tx").await;
    assert_eq!(
        c.init_producer_id("tx", 900_001, None).await.unwrap_err(),
        ResponseError::InvalidTransactionTimeout.code()
    );
    let (pid, epoch) = c.init_producer_id("tx", 60_000, None).await.unwrap();
    assert_eq!(epoch, 0);
    assert_eq!(
        c.add_partitions("tx", pid, epoch, &[tp(0), tp(1)], V1)
            .await,
        0
    );
    assert_eq!(
        c.add_partitions("tx", pid, epoch + 1, &[tp(0)], V1).await,
        ResponseError::ProducerFenced.code()
    );
    assert_eq!(
        c.verify_partitions("tx", pid, epoch, &[tp(0), ("u".into(), 0)])
            .await
            .unwrap(),
        vec![true, false]
    );
    // EndTxn is answered once PrepareCommit is written; with no listener in this test the
    // markers cannot be delivered, so the transaction stays in PrepareCommit.
    assert_eq!(
        c.end_txn("tx", pid, epoch, true, V1).await,
        Ok((pid, epoch))
    );
    assert_eq!(
        c.describe("tx").await.unwrap().state,
        TxnState::PrepareCommit
    );
    assert_eq!(
        c.init_producer_id("tx", 60_000, None).await.unwrap_err(),
        ResponseError::ConcurrentTransactions.code(),
        "a new producer waits for the ending transaction"
    );
    assert_eq!(
        c.verify_partitions("tx", pid, epoch, &[tp(0)])
            .await
            .unwrap_err(),
        ResponseError::ConcurrentTransactions.code(),
        "a leader verifying meanwhile retries"
    );

    // A new leadership replays the partition: the state comes back from the log.
    let partition = c.partition_for("tx");
    c.on_resign(TRANSACTION_STATE_TOPIC, partition);
    assert_eq!(
        c.describe("tx").await.unwrap_err(),
        ResponseError::NotCoordinator.code()
    );
    c.on_become_leader(TRANSACTION_STATE_TOPIC, partition, 7);
    serving(c, "tx").await;
    let replayed = c.describe("tx").await.unwrap();
    assert_eq!(
        (
            replayed.producer_id,
            replayed.state,
            replayed.partitions.len()
        ),
        (pid, TxnState::PrepareCommit, 2)
    );
    let listed = c.list().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].transactional_id, "tx");

    // A second id, idle past transactional.id.expiration.ms, is forgotten (a tombstone), and
    // stays forgotten after a replay; the one still ending is kept.
    serving(c, "idle").await;
    c.init_producer_id("idle", 60_000, None).await.unwrap();
    clock.advance(60_001);
    c.expire_transactional_ids().await;
    assert_eq!(
        c.describe("idle").await.unwrap_err(),
        ResponseError::TransactionalIdNotFound.code()
    );
    let idle_partition = c.partition_for("idle");
    c.on_resign(TRANSACTION_STATE_TOPIC, idle_partition);
    c.on_become_leader(TRANSACTION_STATE_TOPIC, idle_partition, 8);
    serving(c, "idle").await;
    assert_eq!(
        c.describe("idle").await.unwrap_err(),
        ResponseError::TransactionalIdNotFound.code()
    );
    assert!(c.describe("tx").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_past_its_timeout_is_aborted_with_a_bumped_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let f = coordinator(dir.path(), clock.clone()).await;
    let c = &f.c;
    c.ensure_topic().await.unwrap();
    serving(c, "slow").await;
    let (pid, epoch) = c.init_producer_id("slow", 5_000, None).await.unwrap();
    assert_eq!(c.add_partitions("slow", pid, epoch, &[tp(0)], V1).await, 0);
    clock.advance(4_000);
    c.abort_timed_out().await;
    assert_eq!(c.describe("slow").await.unwrap().state, TxnState::Ongoing);
    clock.advance(1_001);
    c.abort_timed_out().await;
    let aborted = c.describe("slow").await.unwrap();
    assert_eq!(
        (aborted.state, aborted.producer_epoch),
        (TxnState::PrepareAbort, epoch + 1)
    );
    assert_eq!(
        c.end_txn("slow", pid, epoch, true, V1).await,
        Err(ResponseError::ProducerFenced.code()),
        "the late producer cannot commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_end_bumps_the_epoch_and_its_state_replays_from_flexible_records() {
    use super::state::ClientVersion::V2;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let f = coordinator(dir.path(), clock.clone()).await;
    let c = &f.c;
    c.ensure_topic().await.unwrap();
    serving(c, "v2").await;
    let (pid, epoch) = c.init_producer_id("v2", 60_000, None).await.unwrap();
    // The implicit add of a partition leader.
    assert_eq!(c.add_partitions("v2", pid, epoch, &[tp(1)], V2).await, 0);
    assert_eq!(
        c.end_txn("v2", pid, epoch, true, V2).await,
        Ok((pid, epoch + 1)),
        "EndTxn v5 answers the bumped epoch"
    );
    // No listener here, so the markers stay unwritten: a retry waits, the old epoch of a
    // TV1 end is fenced.
    assert_eq!(
        c.end_txn("v2", pid, epoch, true, V2).await,
        Err(ResponseError::ConcurrentTransactions.code())
    );
    assert_eq!(
        c.end_txn("v2", pid, epoch, true, V1).await,
        Err(ResponseError::ProducerFenced.code())
    );

    let partition = c.partition_for("v2");
    c.on_resign(TRANSACTION_STATE_TOPIC, partition);
    c.on_become_leader(TRANSACTION_STATE_TOPIC, partition, 3);
    serving(c, "v2").await;
    let replayed = c.describe("v2").await.unwrap();
    assert_eq!(
        (
            replayed.state,
            replayed.producer_epoch,
            replayed.client_transaction_version,
            replayed.partitions.len()
        ),
        (TxnState::PrepareCommit, epoch + 1, 2, 1)
    );
}
