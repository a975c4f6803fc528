//! Property test: replicas that follow a random history of leader changes (any replica may be
//! elected, even one behind: divergence is the point), appends, partial fetches and crashes
//! end with logs byte-identical to the final leader's once each has truncated where
//! OffsetForLeaderEpoch says and fetched the rest.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::clock::SystemClock;
use crate::log::test_util::{
    encode_test_batch, fetch_from, read_all, small_config, tmpfs_tempdir, truncate_to_leader,
    TestBatch,
};
use crate::log::LEADER_EPOCH_CHECKPOINT_FILE;

const REPLICAS: usize = 3;
/// The one idempotent producer of the history.
const PRODUCER_ID: i64 = 7;

/// One step of the history.
#[derive(Debug, Clone)]
enum Step {
    /// The leader appends batches of (records, value bytes); idempotent ones continue the
    /// producer's sequence as the leader knows it.
    Produce {
        batches: Vec<(usize, usize)>,
        idempotent: bool,
    },
    /// A follower catches up on its leader: truncation, then up to `fetches` fetches.
    Replicate {
        replica: usize,
        max_bytes: usize,
        fetches: usize,
    },
    /// A new epoch starts with `replica` as leader.
    Elect { replica: usize },
    /// A replica's process dies (no close) and restarts; its epoch file may be lost too.
    Crash {
        replica: usize,
        lose_epoch_file: bool,
    },
    /// A replica restarts cleanly.
    Restart { replica: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let replica = 0..REPLICAS;
    prop_oneof![
        5 => (proptest::collection::vec((1usize..4, 0usize..250), 1..4), any::<bool>())
            .prop_map(|(batches, idempotent)| Step::Produce { batches, idempotent }),
        4 => (replica.clone(), 100usize..2_000, 1usize..4)
            .prop_map(|(replica, max_bytes, fetches)| Step::Replicate { replica, max_bytes, fetches }),
        2 => replica.clone().prop_map(|replica| Step::Elect { replica }),
        1 => (replica.clone(), any::<bool>())
            .prop_map(|(replica, lose_epoch_file)| Step::Crash { replica, lose_epoch_file }),
        1 => replica.prop_map(|replica| Step::Restart { replica }),
    ]
}

fn open(dir: &Path) -> Log {
    Log::open(dir, small_config(), Arc::new(SystemClock)).unwrap()
}

/// The replicas, their directories, the leader and its epoch.
struct Cluster {
    dirs: Vec<tempfile::TempDir>,
    logs: Vec<Log>,
    leader: usize,
    epoch: i32,
    /// Distinguishes the bytes of every produced batch, so a fork cannot go unseen.
    produced: i64,
}

impl Cluster {
    fn new() -> Self {
        let dirs: Vec<_> = (0..REPLICAS).map(|_| tmpfs_tempdir()).collect();
        let mut logs: Vec<Log> = dirs.iter().map(|d| open(d.path())).collect();
        logs[0].maybe_assign_epoch_start_offset(0, 0).unwrap();
        Self {
            dirs,
            logs,
            leader: 0,
            epoch: 0,
            produced: 0,
        }
    }

    /// The leader and another replica, borrowed together.
    fn leader_and(&mut self, replica: usize) -> (&Log, &mut Log) {
        let (low, high) = self.logs.split_at_mut(self.leader.max(replica));
        if self.leader < replica {
            (&low[self.leader], &mut high[0])
        } else {
            (&high[0], &mut low[replica])
        }
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Produce {
                ref batches,
                idempotent,
            } => {
                for &(records, value_size) in batches {
                    self.produced += 1;
                    let mut batch = TestBatch {
                        timestamp: self.produced * 1_000,
                        ..TestBatch::new(records, value_size)
                    };
                    if idempotent {
                        let next_sequence = self.logs[self.leader]
                            .producer_state()
                            .producer(PRODUCER_ID)
                            .and_then(|p| p.last_seq())
                            .map_or(0, |last| last + 1);
                        batch = batch.idempotent(PRODUCER_ID, 0, next_sequence);
                    }
                    self.logs[self.leader]
                        .append_as_leader(&encode_test_batch(&batch), self.epoch)
                        .unwrap();
                }
            }
            Step::Replicate {
                replica,
                max_bytes,
                fetches,
            } if replica != self.leader => {
                let (leader, follower) = self.leader_and(replica);
                truncate_to_leader(leader, follower);
                fetch_from(leader, follower, max_bytes, fetches);
            }
            Step::Replicate { .. } => {}
            Step::Elect { replica } => {
                self.epoch += 1;
                self.leader = replica;
                let log = &mut self.logs[replica];
                let log_end = log.log_end_offset();
                log.maybe_assign_epoch_start_offset(self.epoch, log_end)
                    .unwrap();
            }
            Step::Crash {
                replica,
                lose_epoch_file,
            } => {
                // Dropping without close is what SIGKILL leaves: written data, no marker.
                drop(self.logs.remove(replica));
                let dir = self.dirs[replica].path();
                if lose_epoch_file {
                    std::fs::remove_file(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)).ok();
                }
                self.logs.insert(replica, open(dir));
                self.reassign_after_restart(replica);
            }
            Step::Restart { replica } => {
                let mut log = self.logs.remove(replica);
                log.close().unwrap();
                drop(log);
                self.logs.insert(replica, open(self.dirs[replica].path()));
                self.reassign_after_restart(replica);
            }
        }
    }

    /// A restarted leader learns its epoch again from the controller and assigns it, as on
    /// any leader election (a no-op if its log already shows it).
    fn reassign_after_restart(&mut self, replica: usize) {
        if replica == self.leader {
            let log = &mut self.logs[replica];
            let log_end = log.log_end_offset();
            log.maybe_assign_epoch_start_offset(self.epoch, log_end)
                .unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn followers_end_byte_identical_to_the_leader(steps in proptest::collection::vec(step(), 1..60)) {
        let mut cluster = Cluster::new();
        for step in &steps {
            cluster.apply(step);
        }
        let leader = cluster.leader;
        for replica in (0..REPLICAS).filter(|&r| r != leader) {
            let (leader_log, follower) = cluster.leader_and(replica);
            truncate_to_leader(leader_log, follower);
            prop_assert!(fetch_from(leader_log, follower, 1 << 20, 1_000));
        }

        let leader_log = &cluster.logs[leader];
        let leader_bytes = read_all(leader_log, 1 << 20);
        let log_end = leader_log.log_end_offset();
        // An epoch the leader assigned but never wrote in is its own business.
        let written_epochs: Vec<_> = leader_log
            .leader_epoch_cache()
            .entries()
            .iter()
            .filter(|e| e.start_offset < log_end)
            .copied()
            .collect();
        for replica in (0..REPLICAS).filter(|&r| r != leader) {
            let follower = &cluster.logs[replica];
            prop_assert_eq!(follower.log_end_offset(), log_end, "replica {}", replica);
            prop_assert!(read_all(follower, 1 << 20) == leader_bytes, "replica {} forked", replica);
            prop_assert_eq!(follower.leader_epoch_cache().entries(), &written_epochs[..]);
            prop_assert_eq!(
                follower.producer_state().producer(PRODUCER_ID),
                leader_log.producer_state().producer(PRODUCER_ID)
            );
        }
    }
}
