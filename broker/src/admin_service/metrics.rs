//! Reassignment metrics, computed at scrape time from the metadata image and this broker's
//! partitions (registered by `app` through `BrokerMetrics::register`). The number of
//! partitions being reassigned, `weir_reassigning_partitions`, is a replication metric.
//!
//! - `weir_reassignment_bytes_remaining{topic,partition,replica}`: on a partition's leader, the
//!   bytes of its log a replica being added has still to copy;
//! - `weir_reassignment_throttle_bytes_per_second`: the throttle in force (0: none), from the
//!   admin API or `follower.replication.throttled.rate`;
//! - `weir_reassignment_fetched_bytes_total`: bytes this broker fetched for replicas it is
//!   adding or the topic lists in `follower.replication.throttled.replicas`, which the
//!   throttle limits;
//! - `weir_replication_leader_throttle_bytes_per_second` and
//!   `weir_replication_leader_throttled_bytes_total`: the leader side, what this broker serves
//!   to followers of the replicas its topics list in `leader.replication.throttled.replicas`.

use std::sync::Weak;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts};

use super::progress::leader_replicas;
use crate::replica_manager::ReplicaManager;

/// The collector of the reassignment metrics.
#[derive(Debug)]
pub struct ReassignmentCollector {
    replicas: Weak<ReplicaManager>,
    bytes_remaining: IntGaugeVec,
    throttle: IntGauge,
    fetched: IntCounter,
    leader_throttle: IntGauge,
    leader_served: IntCounter,
}

impl ReassignmentCollector {
    /// A collector reading `replicas` (weakly: it stops reporting once the broker is gone).
    pub fn new(replicas: Weak<ReplicaManager>) -> Result<Self, prometheus::Error> {
        Ok(Self {
            replicas,
            bytes_remaining: IntGaugeVec::new(
                Opts::new(
                    "weir_reassignment_bytes_remaining",
                    "Bytes a replica being added still has to copy, reported by the partition leader.",
                ),
                &["topic", "partition", "replica"],
            )?,
            throttle: IntGauge::new(
                "weir_reassignment_throttle_bytes_per_second",
                "Bytes per second each broker may copy for reassignments; 0 when unthrottled.",
            )?,
            fetched: IntCounter::new(
                "weir_reassignment_fetched_bytes_total",
                "Bytes this broker fetched for replicas it is adding by a reassignment.",
            )?,
            leader_throttle: IntGauge::new(
                "weir_replication_leader_throttle_bytes_per_second",
                "leader.replication.throttled.rate in force on this broker; 0 when unthrottled.",
            )?,
            leader_served: IntCounter::new(
                "weir_replication_leader_throttled_bytes_total",
                "Bytes this leader served to followers of replicas listed in leader.replication.throttled.replicas.",
            )?,
        })
    }
}

impl Collector for ReassignmentCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.bytes_remaining.desc();
        descs.extend(self.throttle.desc());
        descs.extend(self.fetched.desc());
        descs.extend(self.leader_throttle.desc());
        descs.extend(self.leader_served.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.bytes_remaining.reset();
        if let Some(replicas) = self.replicas.upgrade() {
            let image = replicas.image();
            for topic in image.topics.values() {
                for (p, index) in topic.partitions.iter().zip(0..) {
                    if !p.is_reassigning() || p.leader != replicas.local_id() {
                        continue;
                    }
                    let Some(report) = leader_replicas(&replicas, &topic.name, index) else {
                        continue;
                    };
                    for f in report
                        .followers
                        .iter()
                        .filter(|f| p.adding.contains(&f.broker_id))
                    {
                        self.bytes_remaining
                            .with_label_values(&[
                                topic.name.as_str(),
                                &index.to_string(),
                                &f.broker_id.to_string(),
                            ])
                            .set(i64::try_from(f.bytes_behind).unwrap_or(i64::MAX));
                    }
                }
            }
            // What the fetchers apply: the admin API's reassignment throttle or this broker's
            // `follower.replication.throttled.rate`, whichever is lower.
            let rate = replicas.replication_throttle().rate().unwrap_or(0);
            self.throttle.set(i64::try_from(rate).unwrap_or(i64::MAX));
            let fetched = replicas.replication_throttle().reassignment_bytes_total();
            self.fetched.reset();
            self.fetched.inc_by(fetched);
            let leader = replicas.leader_throttle();
            self.leader_throttle
                .set(i64::try_from(leader.rate().unwrap_or(0)).unwrap_or(i64::MAX));
            self.leader_served.reset();
            self.leader_served.inc_by(leader.reassignment_bytes_total());
        }
        let mut families = self.bytes_remaining.collect();
        families.extend(self.throttle.collect());
        families.extend(self.fetched.collect());
        families.extend(self.leader_throttle.collect());
        families.extend(self.leader_served.collect());
        families
    }
}
