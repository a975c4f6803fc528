//! Membership of the metadata quorum with real broker processes (issue 13, item 5): a voter
//! that comes back with an empty data directory is not counted as the voter it was (KIP-853:
//! a voter is its node id plus its directory id), rejoins as an observer and becomes a voter
//! again once caught up; and a quorum created with one voter grows to three through the admin
//! API (AddRaftVoter).

use std::time::{Duration, Instant};

use weir_api::proto::admin as pb;
use weir_tests::admin::eventually;
use weir_tests::cluster::Cluster;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two attempts that must keep failing.
const RETRY: Duration = Duration::from_millis(250);

/// The `directory.id` in node `id`'s `meta.properties` (empty if it has none, as before
/// directory ids existed).
fn directory_id(cluster: &Cluster, id: usize) -> String {
    let text = std::fs::read_to_string(cluster.brokers[id].data_dir().join("meta.properties"))
        .expect("reading meta.properties");
    text.lines()
        .find_map(|l| l.strip_prefix("directory.id="))
        .map(|d| d.trim().to_string())
        .unwrap_or_default()
}

fn topic(name: &str) -> pb::CreateTopicRequest {
    pb::CreateTopicRequest {
        name: name.into(),
        partitions: Some(1),
        replication_factor: Some(1),
        ..Default::default()
    }
}

/// Creates `name` through broker `via`, giving up after `within`.
async fn create(cluster: &Cluster, via: usize, name: &str, within: Duration) -> Result<(), String> {
    match tokio::time::timeout(within, cluster.admin(via).create_topic(topic(name))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(status.to_string()),
        Err(_) => Err(format!("no answer within {within:?}")),
    }
}

/// Creates `name` through broker `via` as a client would: an error that a leader change can
/// cause (the proposal cancelled when the quorum leader it went to was killed, no leader yet)
/// is retried until `within`; "already exists" after such a retry means the first try committed.
async fn create_retrying(
    cluster: &Cluster,
    via: usize,
    name: &str,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut errors = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("not created within {within:?}: {errors:?}"));
        }
        match create(cluster, via, name, left).await {
            Ok(()) => return Ok(()),
            Err(e) if !errors.is_empty() && e.to_lowercase().contains("already exists") => {
                return Ok(())
            }
            Err(e) => errors.push(e),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Whether broker `id`'s metadata has topic `name`.
async fn has_topic(cluster: &Cluster, id: usize, name: &str) -> bool {
    cluster
        .admin(id)
        .describe_topic(pb::DescribeTopicRequest { name: name.into() })
        .await
        .is_ok()
}

/// The quorum's voters with their directory ids, as broker `id` sees them.
async fn voters(cluster: &Cluster, id: usize) -> Vec<(i32, String)> {
    let status = cluster
        .describe_cluster(id)
        .await
        .controller
        .unwrap_or_default();
    let mut voters: Vec<(i32, String)> = status
        .members
        .into_iter()
        .filter(|m| m.voter)
        .map(|m| (m.node_id, m.directory_id))
        .collect();
    voters.sort();
    voters
}

/// A (0), B (1), C (2) are voters. C is down while "first" is committed by A and B; A loses its
/// disk and restarts; B goes down. A (empty) and C (stale) must not commit anything (before
/// directory ids, A voted as if it had never acknowledged anything, C led, and "first" was
/// lost). Once B is back, "first" is on every broker and A is a voter again, with its new
/// directory id, counted in the majority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_that_lost_its_disk_cannot_commit_without_the_majority_that_holds_the_log() {
    let mut cluster = Cluster::start(3, &[]);
    let old_a = directory_id(&cluster, 0);
    cluster.kill9(2);
    create_retrying(&cluster, 1, "first", TIMEOUT)
        .await
        .expect("A and B commit \"first\"");

    cluster.kill9(0);
    let a_dir = cluster.brokers[0].data_dir().to_path_buf();
    std::fs::remove_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&a_dir).unwrap();
    cluster.restart_without_waiting(0);
    cluster.kill9(1);
    cluster.restart_without_waiting(2);

    // Only A (empty) and C (stale): no majority holds "first", so nothing commits, however
    // long they are asked (through either; refusals and time-outs alike are fine).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut attempts = Vec::new();
    for via in [0, 2].into_iter().cycle() {
        if Instant::now() >= deadline {
            break;
        }
        let attempt = create(&cluster, via, "second", Duration::from_secs(4)).await;
        assert!(
            attempt.is_err(),
            "A (empty disk) and C (stale) committed a topic without B (after {attempts:?})"
        );
        attempts.push(attempt.unwrap_err());
        tokio::time::sleep(RETRY).await;
    }
    eprintln!("refused while only A and C ran: {attempts:?}");

    cluster.restart_without_waiting(1);
    for id in 0..3 {
        cluster.brokers[id].wait_ready();
    }
    for id in 0..3 {
        eventually(TIMEOUT, "\"first\" on every broker", || async {
            has_topic(&cluster, id, "first").await.then_some(())
        })
        .await;
        assert!(
            !has_topic(&cluster, id, "second").await,
            "broker {id} has \"second\", committed without a majority"
        );
    }

    // A rejoins: an observer first, a voter again under its new directory id.
    let new_a = directory_id(&cluster, 0);
    assert!(!new_a.is_empty(), "meta.properties has a directory.id");
    assert_ne!(
        new_a, old_a,
        "an emptied data directory gets a new directory id"
    );
    eventually(
        TIMEOUT,
        "A a voter again with its new directory id",
        || async {
            voters(&cluster, 1)
                .await
                .contains(&(0, new_a.clone()))
                .then_some(())
        },
    )
    .await;
    assert_eq!(voters(&cluster, 1).await.len(), 3);
    // B shows the new voter set as soon as it is appended; until C holds it committed, an
    // election without B would still need B (the joint set of the change counts the old
    // voters too), as in any Raft.
    eventually(
        TIMEOUT,
        "C holds the voter set with A's new directory id, committed",
        || async {
            let settled = cluster
                .describe_cluster(2)
                .await
                .controller
                .is_some_and(|c| c.voters_settled);
            (settled && voters(&cluster, 2).await.contains(&(0, new_a.clone()))).then_some(())
        },
    )
    .await;

    // A counts: with B down, A and C commit.
    cluster.kill9(1);
    create_retrying(&cluster, 0, "third", TIMEOUT)
        .await
        .expect("A and C commit once A is a voter again");
    assert!(has_topic(&cluster, 2, "first").await);
}

/// A cluster formed with one voter grows its quorum to three through AddRaftVoter, and then
/// keeps committing when the first voter is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_of_one_grows_to_three_through_the_admin_api() {
    let mut cluster = Cluster::start_with_voters(3, 1, &[]);
    assert_eq!(
        voters(&cluster, 0).await,
        vec![(0, directory_id(&cluster, 0))]
    );
    for id in 1..3 {
        let request = pb::AddRaftVoterRequest {
            node_id: id as i32,
            directory_id: directory_id(&cluster, id),
        };
        // Any broker forwards it to the active controller.
        cluster
            .admin(2)
            .add_raft_voter(request)
            .await
            .unwrap_or_else(|s| panic!("AddRaftVoter {id}: {s}"));
    }
    let expected: Vec<(i32, String)> = (0..3)
        .map(|id| (id as i32, directory_id(&cluster, id)))
        .collect();
    eventually(TIMEOUT, "three voters on every broker", || async {
        let mut all = true;
        for id in 0..3 {
            all &= voters(&cluster, id).await == expected;
        }
        all.then_some(())
    })
    .await;

    // A wrong directory id is refused: the voter key is id plus storage.
    let wrong = cluster
        .admin(0)
        .remove_raft_voter(pb::RemoveRaftVoterRequest {
            node_id: 2,
            directory_id: "00000000-0000-4000-8000-000000000001".into(),
        })
        .await;
    assert!(wrong.is_err());

    cluster.kill9(0);
    create_retrying(&cluster, 1, "after-growth", TIMEOUT)
        .await
        .expect("two of three voters commit without the first");
}
