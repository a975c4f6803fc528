//! The operator's Prometheus metrics: reconciles, errors by kind, durations per controller,
//! leadership, and what it last saw of each cluster and topic.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::crd::condition::is_true;
use crate::crd::{ClusterStatus, RebalanceStatus, Topic, TopicStatus};
use crate::names::ClusterNames;

/// Every metric, registered in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    pub leader: IntGauge,
    cluster_brokers: IntGaugeVec,
    cluster_ready: IntGaugeVec,
    cluster_under_replicated: IntGaugeVec,
    rebalance: RebalanceGauges,
    topic_ready: IntGaugeVec,
}

/// The last rebalance or drain of each cluster, from its status (`status.rebalance`).
#[derive(Debug)]
struct RebalanceGauges {
    active: IntGaugeVec,
    moves: IntGaugeVec,
    partitions_remaining: IntGaugeVec,
    bytes_remaining: IntGaugeVec,
}

impl RebalanceGauges {
    fn new() -> Self {
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["namespace", "cluster"])
                .expect("static metric")
        };
        Self {
            active: gauge(
                "weir_operator_rebalance_active",
                "1 while a rebalance or drain of the cluster runs (phase Rebalancing or Draining).",
            ),
            moves: gauge(
                "weir_operator_rebalance_moves",
                "Replica moves the running (or last) rebalance plan started.",
            ),
            partitions_remaining: gauge(
                "weir_operator_rebalance_partitions_remaining",
                "Partitions still being reassigned by the running rebalance.",
            ),
            bytes_remaining: gauge(
                "weir_operator_rebalance_bytes_remaining",
                "Bytes the running rebalance still has to copy, as the brokers report.",
            ),
        }
    }

    fn all(&self) -> [&IntGaugeVec; 4] {
        [
            &self.active,
            &self.moves,
            &self.partitions_remaining,
            &self.bytes_remaining,
        ]
    }

    fn observe(&self, labels: &[&str; 2], rebalance: Option<&RebalanceStatus>) {
        let (active, moves, partitions, bytes) = rebalance.map_or((false, 0, 0, 0), |r| {
            (
                r.phase != "Idle",
                r.moves,
                r.partitions_remaining,
                r.bytes_remaining,
            )
        });
        self.active.with_label_values(labels).set(i64::from(active));
        self.moves.with_label_values(labels).set(i64::from(moves));
        self.partitions_remaining
            .with_label_values(labels)
            .set(i64::from(partitions));
        self.bytes_remaining.with_label_values(labels).set(bytes);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "weir_operator_reconciles_total",
                "Reconciles finished, by controller and result.",
            ),
            &["controller", "result"],
        )
        .expect("static metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "weir_operator_reconcile_errors_total",
                "Failed reconciles, by controller and error kind.",
            ),
            &["controller", "kind"],
        )
        .expect("static metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "weir_operator_reconcile_duration_seconds",
                "Time spent in one reconcile.",
            )
            .buckets(vec![
                0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["controller"],
        )
        .expect("static metric");
        let leader = IntGauge::new(
            "weir_operator_leader",
            "Whether this replica holds the leader lease (1) or waits for it (0).",
        )
        .expect("static metric");
        let cluster_brokers = IntGaugeVec::new(
            Opts::new(
                "weir_operator_cluster_brokers",
                "Brokers of a cluster by state, as the operator last saw them.",
            ),
            &["namespace", "cluster", "state"],
        )
        .expect("static metric");
        let cluster_ready = IntGaugeVec::new(
            Opts::new(
                "weir_operator_cluster_ready",
                "1 when the cluster's Ready condition is true.",
            ),
            &["namespace", "cluster"],
        )
        .expect("static metric");
        let cluster_under_replicated = IntGaugeVec::new(
            Opts::new(
                "weir_operator_cluster_under_replicated_partitions",
                "Under-replicated partitions of a cluster.",
            ),
            &["namespace", "cluster"],
        )
        .expect("static metric");
        let rebalance = RebalanceGauges::new();
        let topic_ready = IntGaugeVec::new(
            Opts::new(
                "weir_operator_topic_ready",
                "1 when the topic's Ready condition is true.",
            ),
            &["namespace", "topic"],
        )
        .expect("static metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(leader.clone()),
            Box::new(cluster_brokers.clone()),
            Box::new(cluster_ready.clone()),
            Box::new(cluster_under_replicated.clone()),
            Box::new(topic_ready.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        for g in rebalance.all() {
            registry
                .register(Box::new(g.clone()))
                .expect("metric names are unique");
        }
        Self {
            registry,
            reconciles,
            errors,
            duration,
            leader,
            cluster_brokers,
            cluster_ready,
            cluster_under_replicated,
            rebalance,
            topic_ready,
        }
    }

    /// Records one reconcile of `controller`: its outcome and how long it took.
    pub fn reconciled(&self, controller: &str, error_kind: Option<&str>, took: Duration) {
        let result = if error_kind.is_some() { "error" } else { "ok" };
        self.reconciles
            .with_label_values(&[controller, result])
            .inc();
        if let Some(kind) = error_kind {
            self.errors.with_label_values(&[controller, kind]).inc();
        }
        self.duration
            .with_label_values(&[controller])
            .observe(took.as_secs_f64());
    }

    pub fn observe_cluster(&self, names: &ClusterNames, status: &ClusterStatus) {
        let labels = [names.namespace.as_str(), names.cluster.as_str()];
        for state in ["Active", "Fenced", "Draining", "Unregistered", "Unknown"] {
            let count = status.brokers.iter().filter(|b| b.state == state).count() as i64;
            self.cluster_brokers
                .with_label_values(&[labels[0], labels[1], state])
                .set(count);
        }
        self.cluster_ready
            .with_label_values(&labels)
            .set(i64::from(is_true(&status.conditions, "Ready")));
        self.cluster_under_replicated
            .with_label_values(&labels)
            .set(i64::from(status.under_replicated_partitions));
        self.rebalance.observe(&labels, status.rebalance.as_ref());
    }

    pub fn observe_topic(&self, topic: &Topic, status: &TopicStatus) {
        let ns = topic.metadata.namespace.clone().unwrap_or_default();
        let name = topic.metadata.name.clone().unwrap_or_default();
        self.topic_ready
            .with_label_values(&[ns.as_str(), name.as_str()])
            .set(i64::from(is_true(&status.conditions, "Ready")));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::RebalancePhase;

    #[test]
    fn a_running_rebalance_shows_its_progress_and_a_completed_one_is_inactive() {
        let m = Metrics::new();
        let names = ClusterNames {
            cluster: "events".into(),
            namespace: "prod".into(),
        };
        let mut status = ClusterStatus {
            rebalance: Some(RebalanceStatus {
                phase: RebalancePhase::Rebalancing,
                moves: 12,
                partitions_remaining: 5,
                bytes_remaining: 4096,
                started: Some("2026-01-01T00:00:00Z".into()),
                ..RebalanceStatus::default()
            }),
            ..ClusterStatus::default()
        };
        m.observe_cluster(&names, &status);
        let text = m.render();
        let labels = "{cluster=\"events\",namespace=\"prod\"}";
        for line in [
            format!("weir_operator_rebalance_active{labels} 1"),
            format!("weir_operator_rebalance_moves{labels} 12"),
            format!("weir_operator_rebalance_partitions_remaining{labels} 5"),
            format!("weir_operator_rebalance_bytes_remaining{labels} 4096"),
        ] {
            assert!(text.contains(&line), "{line} missing in:\n{text}");
        }
        let r = status.rebalance.as_mut().unwrap();
        r.phase = RebalancePhase::Idle;
        r.partitions_remaining = 0;
        r.bytes_remaining = 0;
        r.completed = Some("2026-01-01T00:05:00Z".into());
        m.observe_cluster(&names, &status);
        let text = m.render();
        assert!(
            text.contains(&format!("weir_operator_rebalance_active{labels} 0")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "weir_operator_rebalance_partitions_remaining{labels} 0"
            )),
            "{text}"
        );
    }

    #[test]
    fn reconciles_and_errors_are_counted_by_controller() {
        let m = Metrics::new();
        m.reconciled("cluster", None, Duration::from_millis(20));
        m.reconciled("cluster", Some("admin_api"), Duration::from_millis(5));
        let text = m.render();
        assert!(
            text.contains("weir_operator_reconciles_total{controller=\"cluster\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "weir_operator_reconcile_errors_total{controller=\"cluster\",kind=\"admin_api\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "weir_operator_reconcile_duration_seconds_count{controller=\"cluster\"} 2"
            ),
            "{text}"
        );
    }
}
