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
//!   that reached the high watermark and the start of the current leader epoch rejoins it, if
//!   the metadata image shows its broker eligible (registered, unfenced, not shutting down:
//!   Kafka's KIP-841), since the controller refuses anything else.
//!
//! Proposals are rate-limited, because every one the controller decides, accepted or refused,
//! is a metadata log entry, and every new image wakes every follower fetch, which would propose
//! again: one change in flight at a time; it stays pending until the image brings a newer
//! partition epoch (not merely any new image); a refusal because this leader's view was stale
//! keeps it pending until that newer image comes; any other failure allows a new proposal only
//! after a back-off that doubles with each failure in a row.

use std::collections::BTreeMap;

/// Log end offset not known yet (no fetch since this leader took over).
pub const UNKNOWN_OFFSET: i64 = -1;

/// First back-off after a failed ISR change.
pub const ISR_CHANGE_BACKOFF_MIN_MS: i64 = 500;
/// Longest back-off between failed ISR changes.
pub const ISR_CHANGE_BACKOFF_MAX_MS: i64 = 10_000;

/// How an ISR change proposed to the controller failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrChangeFailure {
    /// The controller knows a newer partition epoch, leader epoch or leadership than this
    /// leader: nothing is proposed again until the image brings it (Kafka's non-retriable
    /// AlterPartition errors).
    StaleMetadata,
    /// The controller refused the change itself (an ineligible replica, a malformed ISR).
    Rejected,
    /// No decision came back (no quorum, a timeout): it may or may not have been applied.
    Unknown,
}

/// One follower as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset ([`UNKNOWN_OFFSET`] before its first fetch).
    pub log_end_offset: i64,
    /// The follower's log start offset, as its last fetch reported it ([`UNKNOWN_OFFSET`]
    /// before its first fetch): DeleteRecords waits for it (the low watermark).
    pub log_start_offset: i64,
    /// When it was last caught up, in clock milliseconds.
    pub last_caught_up_ms: i64,
    /// The leader's log end offset at the follower's previous fetch.
    last_fetch_leader_end: i64,
    /// When the previous fetch arrived.
    last_fetch_ms: i64,
}

impl FollowerProgress {
    /// A follower that has not fetched yet, counted as caught up at `last_caught_up_ms`.
    fn unknown(last_caught_up_ms: i64) -> Self {
        Self {
            log_end_offset: UNKNOWN_OFFSET,
            log_start_offset: UNKNOWN_OFFSET,
            last_caught_up_ms,
            last_fetch_leader_end: UNKNOWN_OFFSET,
            last_fetch_ms: 0,
        }
    }
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
    /// ISR changes that failed in a row since the last new partition epoch.
    failed_isr_changes: u32,
    /// No new ISR change is proposed before this clock time (ms).
    isr_change_retry_at_ms: i64,
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
                (*r, FollowerProgress::unknown(caught_up))
            })
            .collect();
        Self {
            local_id,
            leader_epoch,
            partition_epoch,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            pending_isr: None,
            failed_isr_changes: 0,
            isr_change_retry_at_ms: 0,
            epoch_start_offset,
            followers,
        }
    }

    /// The image shows the partition within the same leader epoch. Only a newer partition
    /// epoch changes anything (the controller decided a new ISR or replica set); an image that
    /// changed elsewhere leaves a pending change pending. Returns whether it applied.
    pub fn update_membership(
        &mut self,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        now_ms: i64,
    ) -> bool {
        if partition_epoch <= self.partition_epoch {
            return false;
        }
        self.partition_epoch = partition_epoch;
        self.isr = isr.to_vec();
        self.pending_isr = None;
        // New facts from the controller: whatever failed before may succeed now.
        self.failed_isr_changes = 0;
        self.isr_change_retry_at_ms = 0;
        for r in replicas {
            if *r != self.local_id && !self.followers.contains_key(r) {
                self.followers.insert(
                    *r,
                    FollowerProgress::unknown(if isr.contains(r) { now_ms } else { 0 }),
                );
            }
        }
        self.followers.retain(|id, _| replicas.contains(id));
        self.replicas = replicas.to_vec();
        true
    }

    /// Whether a new ISR change may be proposed now: none pending, no back-off running.
    fn may_propose(&self, now_ms: i64) -> bool {
        self.pending_isr.is_none() && now_ms >= self.isr_change_retry_at_ms
    }

    /// Proposes adding `replica` if `LeaderState::expand_candidate` allows it, its broker is
    /// `eligible` and no change is pending or backing off; the ISR to send to the controller,
    /// now pending.
    pub fn propose_expansion(
        &mut self,
        replica: i32,
        high_watermark: i64,
        eligible: bool,
        now_ms: i64,
    ) -> Option<Vec<i32>> {
        if !eligible || !self.may_propose(now_ms) {
            return None;
        }
        let isr = self.expand_candidate(replica, high_watermark)?;
        self.pending_isr = Some(isr.clone());
        Some(isr)
    }

    /// Proposes removing the followers that lagged more than `max_lag_ms` behind a log that
    /// ends at `leader_end`, if no change is pending or backing off; the ISR to send to the
    /// controller, now pending.
    pub fn propose_shrink(
        &mut self,
        now_ms: i64,
        max_lag_ms: i64,
        leader_end: i64,
    ) -> Option<Vec<i32>> {
        if !self.may_propose(now_ms) {
            return None;
        }
        let isr = self.shrink_candidate(now_ms, max_lag_ms, leader_end)?;
        self.pending_isr = Some(isr.clone());
        Some(isr)
    }

    /// The controller did not apply the change to `isr` proposed at `partition_epoch`. Ignored
    /// unless it is still the pending one (a newer image may have settled it meanwhile).
    pub fn isr_change_failed(
        &mut self,
        partition_epoch: i32,
        isr: &[i32],
        failure: IsrChangeFailure,
        now_ms: i64,
    ) {
        if partition_epoch != self.partition_epoch || self.pending_isr.as_deref() != Some(isr) {
            return;
        }
        let backoff = ISR_CHANGE_BACKOFF_MIN_MS
            .saturating_mul(1 << self.failed_isr_changes.min(16))
            .min(ISR_CHANGE_BACKOFF_MAX_MS);
        self.failed_isr_changes = self.failed_isr_changes.saturating_add(1);
        self.isr_change_retry_at_ms = now_ms.saturating_add(backoff);
        if failure != IsrChangeFailure::StaleMetadata {
            self.pending_isr = None;
        }
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

    /// Records a follower fetch at `fetch_offset` from a follower whose log starts at
    /// `follower_log_start`, while the leader's log ends at `leader_end`. Returns `false` for a
    /// replica that is not a follower of this partition.
    pub fn record_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        follower_log_start: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        let Some(f) = self.followers.get_mut(&replica) else {
            return false;
        };
        f.log_end_offset = fetch_offset.min(leader_end);
        f.log_start_offset = follower_log_start;
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

    /// The low watermark (Kafka's `lowWatermarkIfLeader`): the smallest log start offset of
    /// the leader (`leader_start`) and of every follower whose broker is `alive`; a live
    /// follower that has not fetched yet counts as [`UNKNOWN_OFFSET`]. DeleteRecords answers
    /// once it reaches the requested offset, so a new leader never serves deleted records.
    pub fn low_watermark(&self, leader_start: i64, alive: impl Fn(i32) -> bool) -> i64 {
        self.followers
            .iter()
            .filter(|(id, _)| alive(**id))
            .map(|(_, f)| f.log_start_offset)
            .fold(leader_start, i64::min)
    }

    /// An ISR without the followers that have lagged longer than `max_lag_ms`, if any has.
    /// The leader always stays. As in Kafka, a follower that has everything up to the leader's
    /// log end (`leader_end`) is caught up however long ago it last fetched: an idle
    /// partition's follower waits in a long poll (`replica.fetch.wait.max.ms`, which may be as
    /// long as the lag limit) and must not drop out of the ISR for it. A dead follower is
    /// removed once the leader appends past it, or by the controller when it fences the broker.
    fn shrink_candidate(&self, now_ms: i64, max_lag_ms: i64, leader_end: i64) -> Option<Vec<i32>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let lagging: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| *r != self.local_id)
            .filter(|r| {
                self.followers.get(r).is_none_or(|f| {
                    f.log_end_offset < leader_end && now_ms - f.last_caught_up_ms > max_lag_ms
                })
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
    fn expand_candidate(&self, replica: i32, high_watermark: i64) -> Option<Vec<i32>> {
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
#[path = "leader_tests.rs"]
mod tests;
