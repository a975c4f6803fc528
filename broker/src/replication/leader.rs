//! What a partition leader knows about its followers, and the decisions it takes from it:
//! the high watermark, and when to ask the controller to shrink or expand the ISR.
//!
//! Kafka's rules, with an injected clock so tests control time:
//! - a follower's log end offset is the offset it fetches from (it holds everything below);
//! - a follower is *caught up* at a fetch whose offset reaches the leader's log end offset, or
//!   the leader's log end offset as of its previous fetch (it was caught up then);
//! - the high watermark is the smallest log end offset in the ISR, and never goes back;
//!   while an ISR change is waiting for the controller the larger of the two sets counts
//!   (the *maximal* ISR), so a shrink cannot advance it early and an expansion cannot be
//!   skipped;
//! - a follower that has not been caught up for `replica.lag.time.max.ms` leaves the ISR; one
//!   that reached the high watermark and the start of the current leader epoch rejoins it.

use std::collections::BTreeMap;

/// Log end offset not known yet (no fetch since this leader took over).
pub const UNKNOWN_OFFSET: i64 = -1;

/// One follower as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset ([`UNKNOWN_OFFSET`] before its first fetch).
    pub log_end_offset: i64,
    /// When it was last caught up, in clock milliseconds.
    pub last_caught_up_ms: i64,
    /// The leader's log end offset at the follower's previous fetch.
    last_fetch_leader_end: i64,
    /// When the previous fetch arrived.
    last_fetch_ms: i64,
}

/// The leader's replication state of one partition.
#[derive(Debug, Clone)]
pub struct LeaderState {
    /// This broker's id.
    pub local_id: i32,
    /// The leader epoch this broker leads in.
    pub leader_epoch: i32,
    /// The partition epoch of the ISR below.
    pub partition_epoch: i32,
    /// All replicas.
    pub replicas: Vec<i32>,
    /// The ISR as the controller last decided it.
    pub isr: Vec<i32>,
    /// An ISR proposed to the controller and not yet decided.
    pub pending_isr: Option<Vec<i32>>,
    /// The first offset written in this leader epoch.
    pub epoch_start_offset: i64,
    /// Followers (every replica but the leader).
    pub followers: BTreeMap<i32, FollowerProgress>,
}

impl LeaderState {
    /// Becomes leader: every follower's position is unknown; ISR members count as caught up
    /// now (they get `replica.lag.time.max.ms` to show up).
    pub fn new(
        local_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        epoch_start_offset: i64,
        now_ms: i64,
    ) -> Self {
        let followers = replicas
            .iter()
            .filter(|r| **r != local_id)
            .map(|r| {
                let caught_up = if isr.contains(r) { now_ms } else { 0 };
                (
                    *r,
                    FollowerProgress {
                        log_end_offset: UNKNOWN_OFFSET,
                        last_caught_up_ms: caught_up,
                        last_fetch_leader_end: UNKNOWN_OFFSET,
                        last_fetch_ms: 0,
                    },
                )
            })
            .collect();
        Self {
            local_id,
            leader_epoch,
            partition_epoch,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            pending_isr: None,
            epoch_start_offset,
            followers,
        }
    }

    /// The controller decided a new ISR (or replica set) within the same leader epoch.
    pub fn update_membership(
        &mut self,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        now_ms: i64,
    ) {
        self.partition_epoch = partition_epoch;
        self.isr = isr.to_vec();
        self.pending_isr = None;
        for r in replicas {
            if *r != self.local_id && !self.followers.contains_key(r) {
                self.followers.insert(
                    *r,
                    FollowerProgress {
                        log_end_offset: UNKNOWN_OFFSET,
                        last_caught_up_ms: if isr.contains(r) { now_ms } else { 0 },
                        last_fetch_leader_end: UNKNOWN_OFFSET,
                        last_fetch_ms: 0,
                    },
                );
            }
        }
        self.followers.retain(|id, _| replicas.contains(id));
        self.replicas = replicas.to_vec();
    }

    /// The ISR members whose positions bound the high watermark.
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut ids = self.isr.clone();
        if let Some(pending) = &self.pending_isr {
            for r in pending {
                if !ids.contains(r) {
                    ids.push(*r);
                }
            }
        }
        ids
    }

    /// Records a follower fetch at `fetch_offset` while the leader's log ends at
    /// `leader_end`. Returns `false` for a replica that is not a follower of this partition.
    pub fn record_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        let Some(f) = self.followers.get_mut(&replica) else {
            return false;
        };
        f.log_end_offset = fetch_offset.min(leader_end);
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = now_ms;
        } else if f.last_fetch_leader_end != UNKNOWN_OFFSET
            && fetch_offset >= f.last_fetch_leader_end
        {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.last_fetch_leader_end = leader_end;
        f.last_fetch_ms = now_ms;
        true
    }

    /// The high watermark the ISR allows, given the leader's own log end offset; `None` while
    /// some ISR member's position is unknown.
    pub fn high_watermark_bound(&self, leader_end: i64) -> Option<i64> {
        let mut bound = leader_end;
        for r in self.maximal_isr() {
            if r == self.local_id {
                continue;
            }
            let end = self
                .followers
                .get(&r)
                .map_or(UNKNOWN_OFFSET, |f| f.log_end_offset);
            if end == UNKNOWN_OFFSET {
                return None;
            }
            bound = bound.min(end);
        }
        Some(bound)
    }

    /// An ISR without the followers that have lagged longer than `max_lag_ms`, if any has.
    /// The leader always stays.
    pub fn shrink_candidate(&self, now_ms: i64, max_lag_ms: i64) -> Option<Vec<i32>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let lagging: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| *r != self.local_id)
            .filter(|r| {
                self.followers
                    .get(r)
                    .is_none_or(|f| now_ms - f.last_caught_up_ms > max_lag_ms)
            })
            .collect();
        if lagging.is_empty() {
            return None;
        }
        Some(
            self.isr
                .iter()
                .copied()
                .filter(|r| !lagging.contains(r))
                .collect(),
        )
    }

    /// An ISR with `replica` added, if it is out of the ISR, has reached the high watermark and
    /// holds everything of the current leader epoch.
    pub fn expand_candidate(&self, replica: i32, high_watermark: i64) -> Option<Vec<i32>> {
        if self.pending_isr.is_some() || self.isr.contains(&replica) {
            return None;
        }
        let f = self.followers.get(&replica)?;
        if f.log_end_offset >= high_watermark && f.log_end_offset >= self.epoch_start_offset {
            let mut isr = self.isr.clone();
            isr.push(replica);
            Some(isr)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> LeaderState {
        LeaderState::new(0, 3, 7, &[0, 1, 2], &[0, 1, 2], 100, 1_000)
    }

    #[test]
    fn the_high_watermark_waits_for_every_isr_member() {
        let mut l = leader();
        assert_eq!(l.high_watermark_bound(150), None, "positions unknown");
        l.record_fetch(1, 150, 150, 1_010);
        assert_eq!(l.high_watermark_bound(150), None);
        l.record_fetch(2, 120, 150, 1_010);
        assert_eq!(l.high_watermark_bound(150), Some(120));
        l.record_fetch(2, 150, 150, 1_020);
        assert_eq!(l.high_watermark_bound(160), Some(150));
    }

    #[test]
    fn a_follower_that_stops_catching_up_leaves_the_isr_after_the_lag_time() {
        let mut l = leader();
        l.record_fetch(1, 150, 150, 1_000);
        l.record_fetch(2, 150, 150, 1_000);
        // Follower 2 keeps fetching but never reaches the growing log end.
        l.record_fetch(1, 200, 200, 20_000);
        l.record_fetch(2, 150, 200, 20_000);
        assert_eq!(l.shrink_candidate(20_000, 30_000), None);
        l.record_fetch(1, 300, 300, 32_000);
        l.record_fetch(2, 200, 300, 32_000);
        assert_eq!(
            l.shrink_candidate(32_000, 30_000),
            None,
            "it reached the previous end"
        );
        l.record_fetch(1, 400, 400, 70_000);
        l.record_fetch(2, 210, 400, 70_000);
        assert_eq!(l.shrink_candidate(70_000, 30_000), Some(vec![0, 1]));
    }

    #[test]
    fn a_pending_shrink_keeps_the_larger_isr_for_the_high_watermark() {
        let mut l = leader();
        l.record_fetch(1, 150, 150, 1_000);
        l.record_fetch(2, 110, 150, 1_000);
        l.pending_isr = Some(vec![0, 1]);
        assert_eq!(l.high_watermark_bound(150), Some(110));
        l.update_membership(8, &[0, 1, 2], &[0, 1], 2_000);
        assert_eq!(l.high_watermark_bound(150), Some(150));
    }

    #[test]
    fn a_follower_rejoins_once_it_reaches_the_high_watermark_and_the_epoch_start() {
        let mut l = LeaderState::new(0, 3, 7, &[0, 1, 2], &[0, 1], 100, 1_000);
        l.record_fetch(2, 90, 150, 1_000);
        assert_eq!(
            l.expand_candidate(2, 95),
            None,
            "below the leader epoch start"
        );
        l.record_fetch(2, 140, 150, 1_100);
        assert_eq!(l.expand_candidate(2, 150), None, "below the high watermark");
        l.record_fetch(2, 150, 150, 1_200);
        assert_eq!(l.expand_candidate(2, 150), Some(vec![0, 1, 2]));
        l.pending_isr = Some(vec![0, 1, 2]);
        assert_eq!(l.expand_candidate(2, 150), None, "already proposed");
    }
}
