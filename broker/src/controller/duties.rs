//! What the active controller does on its own: fence brokers whose session expired, and move
//! leadership back to preferred replicas (`auto.leader.rebalance.enable`).
//!
//! Session clocks live only in the active controller's memory. A node that becomes active
//! starts every broker's clock afresh, so a controller failover never fences a live broker.
//!
//! A broker whose process is gone is fenced sooner than its session timeout: the active
//! controller sends Raft RPCs to every broker (voters and observers), and when every one of
//! them has been refused for [`REFUSED_FENCE_AFTER`] (nothing listens on the broker's port) and
//! no heartbeat came since the refusals began, the broker is fenced at once. Kafka waits out
//! the session; this cuts about seven seconds of a dead leader's partitions' unavailability
//! with the default settings. A paused or cut-off broker times out rather than refuses, so it
//! still gets its whole session; and a live broker fenced by mistake is unfenced by its next
//! heartbeat.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::command::MetadataCommand;
use super::Controller;

/// How often the duties run.
const TICK: Duration = Duration::from_millis(100);

/// How long every Raft RPC to a broker must have been refused before it is fenced without
/// waiting for its session to expire (capped at the session timeout). openraft retries an
/// unreachable peer every half second or so, so this spans at least two refusals.
const REFUSED_FENCE_AFTER: Duration = Duration::from_secs(1);

/// A gap between two runs of the duties longer than this means the controller itself was not
/// running (paused or starved), not that brokers went silent.
const STALL: Duration = Duration::from_secs(2);

/// Last heartbeat per broker, as seen by the active controller.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    /// The Raft term in which this node became active (`None` when not active).
    active_term: Option<u64>,
    last_seen: HashMap<i32, Instant>,
    /// Last heartbeat actually received per broker (`last_seen` starts afresh in a new term;
    /// this does not).
    heard: HashMap<i32, Instant>,
    last_rebalance: Option<Instant>,
    /// When the duties last ran.
    last_tick: Option<Instant>,
}

impl Sessions {
    /// Records a sign of life from `broker`.
    pub(super) fn touch(&mut self, broker: i32) {
        let now = Instant::now();
        self.last_seen.insert(broker, now);
        self.heard.insert(broker, now);
    }
}

/// Runs until the controller is dropped.
pub(super) async fn run(controller: Weak<Controller>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(controller) = controller.upgrade() else {
            return;
        };
        if let Err(e) = run_once(&controller).await {
            tracing::warn!(error = %e, "active controller duty failed");
        }
    }
}

async fn run_once(controller: &Controller) -> Result<(), super::ControllerError> {
    let (is_leader, term, _) = controller.raft_status();
    let image = controller.image();
    let now = Instant::now();
    let (expired, rebalance_due) = {
        let mut sessions = controller.sessions.lock();
        if !is_leader {
            sessions.active_term = None;
            sessions.last_tick = None;
            return Ok(());
        }
        // A controller that did not run for a while (paused, starved) cannot tell whose
        // heartbeats it missed: it starts every clock afresh, as a new term does. Otherwise,
        // resumed, it would fence every broker at once (and, deposed meanwhile without knowing
        // it, hand those fences to its successor).
        let stalled = sessions
            .last_tick
            .map(|t| now.duration_since(t))
            .filter(|gap| *gap > STALL);
        sessions.last_tick = Some(now);
        if let Some(gap) = stalled {
            tracing::info!(
                stalled_ms = gap.as_millis() as u64,
                "the controller's duties did not run for a while; restarting every broker's session clock"
            );
        }
        if sessions.active_term != Some(term) || stalled.is_some() {
            sessions.active_term = Some(term);
            sessions.last_seen = image.brokers.keys().map(|id| (*id, now)).collect();
            sessions.last_rebalance = Some(now);
        }
        let timeout = controller.config.session_timeout;
        let refused_after = REFUSED_FENCE_AFTER.min(timeout);
        let expired: Vec<(i32, i64, &'static str)> = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let seen = *sessions.last_seen.entry(b.id).or_insert(now);
                if now.duration_since(seen) > timeout {
                    return Some((b.id, b.epoch, "broker session expired; fencing it"));
                }
                let refused = controller.peer_health.refused_since(b.id as u64)?;
                let heard_since = sessions.heard.get(&b.id).is_some_and(|h| *h >= refused);
                (!heard_since && now.duration_since(refused) >= refused_after).then_some((
                    b.id,
                    b.epoch,
                    "broker refuses connections (its process is gone); fencing it before its session expires",
                ))
            })
            .collect();
        let rebalance_due = match controller.config.leader_imbalance_interval {
            Some(interval) => {
                let due = sessions
                    .last_rebalance
                    .is_none_or(|last| now.duration_since(last) >= interval);
                if due {
                    sessions.last_rebalance = Some(now);
                }
                due
            }
            None => false,
        };
        (expired, rebalance_due)
    };
    for (id, epoch, why) in expired {
        tracing::warn!(broker = id, "{why}");
        controller
            .write_as_active(MetadataCommand::FenceBroker { id, epoch })
            .await?;
    }
    if rebalance_due {
        let partitions = imbalanced_partitions(&controller.image());
        if !partitions.is_empty() {
            tracing::info!(count = partitions.len(), "electing preferred leaders");
            controller
                .write_as_active(MetadataCommand::ElectPreferredLeaders { partitions })
                .await?;
        }
    }
    Ok(())
}

/// Partitions whose preferred replica is active and in sync but not leading.
pub(crate) fn imbalanced_partitions(
    image: &super::image::MetadataImage,
) -> Vec<super::image::TopicPartition> {
    let mut out = Vec::new();
    for topic in image.topics.values() {
        for (index, p) in topic.partitions.iter().enumerate() {
            let Some(&preferred) = p.target_replicas().first() else {
                continue;
            };
            let active = image.brokers.get(&preferred).is_some_and(|b| b.is_active());
            if p.leader != preferred && active && p.isr.contains(&preferred) {
                out.push((topic.name.clone(), index as i32));
            }
        }
    }
    out
}
