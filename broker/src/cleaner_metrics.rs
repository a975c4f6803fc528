//! Log cleaner metrics, read at every scrape from the [`LogCleanerManager`] and the
//! compacted partitions (registered by `app`). Kafka's `kafka.log:type=LogCleaner` and
//! `LogCleanerManager` beans in Weir's naming:
//!
//! - `weir_log_cleaner_max_dirty_ratio` (`max-dirty-percent`, as a ratio): the largest dirty
//!   ratio among compacted logs when a cleaner thread last looked;
//! - `weir_log_cleaner_dirty_ratio{topic,partition}`: each compacted partition's dirty ratio
//!   now (the cleaner lag: how much of the log is not compacted yet);
//! - `weir_log_cleaner_uncleanable_partitions` (`uncleanable-partitions-count`);
//! - `weir_log_cleaner_bytes_read_total`, `weir_log_cleaner_bytes_written_total`;
//! - `weir_log_cleaner_passes_total`, `weir_log_cleaner_last_pass_duration_seconds`
//!   (`cleaner-recopy-percent`'s sibling `max-clean-time-secs`, for the last pass) and
//!   `weir_log_cleaner_last_pass_end_timestamp_seconds` (`time-since-last-run-ms` as a time).

use std::sync::{Arc, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, GaugeVec, IntCounter, IntGauge, Opts};

use crate::log::cleaner::{read_cleaner_checkpoint, LogCleanerManager};
use crate::replica_manager::ReplicaManager;

/// The cleaner collector. Invariant: `dirty_ratio` carries one series per compacted
/// partition hosted at the last scrape, none for others.
#[derive(Debug)]
pub struct CleanerCollector {
    manager: Arc<LogCleanerManager>,
    replicas: Weak<ReplicaManager>,
    max_dirty_ratio: Gauge,
    dirty_ratio: GaugeVec,
    uncleanable: IntGauge,
    bytes_read: IntCounter,
    bytes_written: IntCounter,
    passes: IntCounter,
    last_pass_duration: Gauge,
    last_pass_end: Gauge,
}

impl CleanerCollector {
    /// Builds the collector's metrics.
    pub fn new(
        manager: Arc<LogCleanerManager>,
        replicas: Weak<ReplicaManager>,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            manager,
            replicas,
            max_dirty_ratio: Gauge::new(
                "weir_log_cleaner_max_dirty_ratio",
                "Largest dirty ratio among compacted logs when the cleaner last chose one.",
            )?,
            dirty_ratio: GaugeVec::new(
                Opts::new(
                    "weir_log_cleaner_dirty_ratio",
                    "Share of a compacted partition's log not cleaned yet (cleaner lag).",
                ),
                &["topic", "partition"],
            )?,
            uncleanable: IntGauge::new(
                "weir_log_cleaner_uncleanable_partitions",
                "Compacted partitions whose cleaning failed; skipped until restart.",
            )?,
            bytes_read: IntCounter::new(
                "weir_log_cleaner_bytes_read_total",
                "Bytes the log cleaner read.",
            )?,
            bytes_written: IntCounter::new(
                "weir_log_cleaner_bytes_written_total",
                "Bytes the log cleaner wrote (cleaned segments).",
            )?,
            passes: IntCounter::new(
                "weir_log_cleaner_passes_total",
                "Cleaning passes completed.",
            )?,
            last_pass_duration: Gauge::new(
                "weir_log_cleaner_last_pass_duration_seconds",
                "Wall time of the last cleaning pass.",
            )?,
            last_pass_end: Gauge::new(
                "weir_log_cleaner_last_pass_end_timestamp_seconds",
                "Unix time the last cleaning pass ended (0: none yet).",
            )?,
        })
    }

    fn update(&self) {
        let totals = self.manager.totals();
        self.max_dirty_ratio.set(totals.max_dirty_ratio);
        self.uncleanable.set(totals.uncleanable as i64);
        // Counters only go up: add what the totals gained since the last scrape.
        let bump = |c: &IntCounter, total: u64| c.inc_by(total.saturating_sub(c.get()));
        bump(&self.bytes_read, totals.bytes_read);
        bump(&self.bytes_written, totals.bytes_written);
        bump(&self.passes, totals.passes);
        self.last_pass_duration
            .set(totals.last_pass_ms as f64 / 1000.0);
        self.last_pass_end
            .set(totals.last_pass_end_ms as f64 / 1000.0);
        self.dirty_ratio.reset();
        let Some(replicas) = self.replicas.upgrade() else {
            return;
        };
        for p in replicas.all_partitions() {
            let log = p.log_lock().read();
            if !log.config().cleanup_policy.compact {
                continue;
            }
            let checkpoint = read_cleaner_checkpoint(log.dir()).ok().flatten();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let ratio = log.log_to_clean(checkpoint, now).dirty_ratio();
            let index = p.index.to_string();
            self.dirty_ratio
                .with_label_values(&[&*p.topic, index.as_str()])
                .set(ratio);
        }
    }

    fn all(&self) -> [&dyn Collector; 8] {
        [
            &self.max_dirty_ratio,
            &self.dirty_ratio,
            &self.uncleanable,
            &self.bytes_read,
            &self.bytes_written,
            &self.passes,
            &self.last_pass_duration,
            &self.last_pass_end,
        ]
    }
}

impl Collector for CleanerCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.all().into_iter().flat_map(|c| c.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.update();
        self.all().into_iter().flat_map(|c| c.collect()).collect()
    }
}
