//! Replication and controller metrics, computed from the metadata image, this broker's
//! replicas and the Raft state at every scrape (nothing on the request path).
//!
//! Per-broker gauges follow Kafka's meaning: under-replicated and under-min-ISR counts are for
//! the partitions this broker leads, so summing over brokers counts each partition once;
//! offline partitions and broker states are the cluster's, the same on every broker.

use std::sync::atomic::Ordering;
use std::sync::Weak;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, IntGaugeVec, Opts};

use crate::config::topic as topic_config;
use crate::partition::Role;
use crate::replica_manager::ReplicaManager;

/// The collector; registered by [`crate::metrics::BrokerMetrics::register_replication_collector`].
#[derive(Debug)]
pub struct ReplicationCollector {
    replicas: Weak<ReplicaManager>,
    leaders: IntGauge,
    replica_count: IntGauge,
    under_replicated: IntGauge,
    under_min_isr: IntGauge,
    offline: IntGauge,
    reassigning: IntGauge,
    brokers: IntGaugeVec,
    isr_shrinks: IntGauge,
    isr_expands: IntGauge,
    isr_change_failures: IntGauge,
    follower_lag: IntGaugeVec,
    controller_active: IntGauge,
    controller_leader: IntGauge,
    raft_term: IntGauge,
    raft_applied: IntGauge,
}

impl ReplicationCollector {
    /// Creates the gauges.
    pub fn new(replicas: Weak<ReplicaManager>) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help);
        Ok(Self {
            replicas,
            leaders: gauge("weir_leader_partitions", "Partitions this broker leads.")?,
            replica_count: gauge("weir_replica_partitions", "Partition replicas on this broker.")?,
            under_replicated: gauge(
                "weir_under_replicated_partitions",
                "Partitions led by this broker whose ISR is smaller than their replica set.",
            )?,
            under_min_isr: gauge(
                "weir_under_min_isr_partitions",
                "Partitions led by this broker whose ISR is below min.insync.replicas (acks=all fails).",
            )?,
            offline: gauge(
                "weir_offline_partitions",
                "Partitions of the cluster without a leader.",
            )?,
            reassigning: gauge(
                "weir_reassigning_partitions",
                "Partitions of the cluster being reassigned.",
            )?,
            brokers: IntGaugeVec::new(
                Opts::new("weir_brokers", "Registered brokers of the cluster by state."),
                &["state"],
            )?,
            isr_shrinks: gauge(
                "weir_isr_shrinks_total",
                "Followers removed from an ISR by this broker as leader (counter).",
            )?,
            isr_expands: gauge(
                "weir_isr_expands_total",
                "Followers added to an ISR by this broker as leader (counter).",
            )?,
            isr_change_failures: gauge(
                "weir_isr_change_failures_total",
                "ISR changes proposed by this broker as leader that the controller refused or did not answer (counter).",
            )?,
            follower_lag: IntGaugeVec::new(
                Opts::new(
                    "weir_follower_lag_offsets",
                    "Leader log end offset minus a follower's, for partitions this broker leads.",
                ),
                &["topic", "partition", "replica"],
            )?,
            controller_active: gauge(
                "weir_controller_active",
                "1 when this broker is the active controller (Raft leader).",
            )?,
            controller_leader: gauge(
                "weir_controller_leader_id",
                "Node id of the active controller, -1 when none is known.",
            )?,
            raft_term: gauge("weir_controller_raft_term", "Current Raft term of the metadata quorum.")?,
            raft_applied: gauge(
                "weir_controller_raft_applied_index",
                "Index of the last metadata log entry applied on this broker.",
            )?,
        })
    }

    fn gauges(&self) -> [&IntGauge; 12] {
        [
            &self.leaders,
            &self.replica_count,
            &self.under_replicated,
            &self.under_min_isr,
            &self.offline,
            &self.reassigning,
            &self.isr_shrinks,
            &self.isr_expands,
            &self.isr_change_failures,
            &self.controller_active,
            &self.controller_leader,
            &self.raft_term,
        ]
    }

    fn refresh(&self, replicas: &ReplicaManager) {
        let image = replicas.image();
        let mut leaders = 0;
        let mut under_replicated = 0;
        let mut under_min_isr = 0;
        let mut count = 0;
        self.follower_lag.reset();
        for p in replicas.all_partitions() {
            count += 1;
            let Role::Leader(state) = p.role() else {
                continue;
            };
            leaders += 1;
            if state.isr.len() < state.replicas.len() {
                under_replicated += 1;
            }
            let min_isr = replicas
                .topic_configs(&p.topic)
                .map(|c| topic_config::min_insync_replicas(&replicas.effective_config(), &c))
                .unwrap_or(1);
            if (state.isr.len() as i32) < min_isr {
                under_min_isr += 1;
            }
            let end = p.log_end_offset();
            let index = p.index.to_string();
            for (replica, f) in &state.followers {
                let lag = if f.log_end_offset < 0 {
                    end
                } else {
                    end - f.log_end_offset
                };
                self.follower_lag
                    .with_label_values(&[&*p.topic, index.as_str(), &replica.to_string()])
                    .set(lag.max(0));
            }
        }
        self.leaders.set(leaders);
        self.replica_count.set(count);
        self.under_replicated.set(under_replicated);
        self.under_min_isr.set(under_min_isr);
        self.offline.set(image.offline().len() as i64);
        let reassigning = image
            .topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.is_reassigning())
            .count();
        self.reassigning.set(reassigning as i64);
        self.brokers.reset();
        // Every state is exported, at 0 when no broker is in it, so dashboards and alerts read
        // "0 fenced brokers" rather than no data.
        for state in ["active", "fenced", "shutting_down", "draining"] {
            self.brokers.with_label_values(&[state]).set(0);
        }
        for b in image.brokers.values() {
            let state = if b.fenced {
                "fenced"
            } else if b.in_controlled_shutdown {
                "shutting_down"
            } else if b.draining {
                "draining"
            } else {
                "active"
            };
            self.brokers.with_label_values(&[state]).inc();
        }
        let counts = replicas.isr_change_counts();
        self.isr_shrinks
            .set(counts.shrinks.load(Ordering::Relaxed) as i64);
        self.isr_expands
            .set(counts.expands.load(Ordering::Relaxed) as i64);
        self.isr_change_failures
            .set(counts.failures.load(Ordering::Relaxed) as i64);
        if let Some(controller) = replicas.controller() {
            let (active, term, applied) = controller.raft_status();
            self.controller_active.set(i64::from(active));
            self.raft_term.set(term as i64);
            self.raft_applied.set(applied as i64);
            self.controller_leader
                .set(controller.leader().map_or(-1, |(id, _)| i64::from(id)));
        }
    }
}

impl Collector for ReplicationCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d: Vec<&Desc> = self.gauges().into_iter().flat_map(|g| g.desc()).collect();
        d.extend(self.raft_applied.desc());
        d.extend(self.brokers.desc());
        d.extend(self.follower_lag.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(replicas) = self.replicas.upgrade() {
            self.refresh(&replicas);
        }
        let mut out: Vec<MetricFamily> = self
            .gauges()
            .into_iter()
            .flat_map(|g| g.collect())
            .collect();
        out.extend(self.raft_applied.collect());
        out.extend(self.brokers.collect());
        out.extend(self.follower_lag.collect());
        out
    }
}
