//! Volume usage of the broker's log directory, read with `statvfs(2)` at every scrape
//! (registered by `BrokerMetrics::register_volume_collector`), so a dashboard and an alert can
//! see a disk filling up without a node exporter.
//!
//! Names follow Kafka's `DescribeLogDirs` (KIP-827: `TotalBytes`, `UsableBytes`):
//!
//! - `weir_log_dir_total_bytes{log_dir}`: the size of the file system holding the log dir;
//! - `weir_log_dir_usable_bytes{log_dir}`: bytes the broker may still write (what an
//!   unprivileged process can allocate: root's reserved blocks excluded);
//! - `weir_log_dir_used_bytes{log_dir}`: bytes in use on that file system (by anything, not
//!   only the logs: `weir_log_size_bytes` is the logs' own share).

use std::path::{Path, PathBuf};

use nix::sys::statvfs::statvfs;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};

/// What `statvfs` says about the file system holding one directory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeUsage {
    pub total_bytes: u64,
    pub usable_bytes: u64,
    pub used_bytes: u64,
}

impl VolumeUsage {
    /// Reads the usage of the file system holding `dir`.
    pub fn of(dir: &Path) -> nix::Result<Self> {
        let s = statvfs(dir)?;
        let fragment = to_u64(s.fragment_size());
        let blocks = to_u64(s.blocks());
        let free = to_u64(s.blocks_free());
        let available = to_u64(s.blocks_available());
        Ok(Self {
            total_bytes: blocks.saturating_mul(fragment),
            usable_bytes: available.saturating_mul(fragment),
            used_bytes: blocks.saturating_sub(free).saturating_mul(fragment),
        })
    }
}

/// `statvfs` counts are platform-sized integers (`c_ulong`, `fsblkcnt_t`): 64 bits here, and
/// saturated should a platform ever make them wider.
fn to_u64<T: TryInto<u64>>(value: T) -> u64 {
    value.try_into().unwrap_or(u64::MAX)
}

/// The collector of the volume gauges for one log directory. Invariant: the three gauges
/// carry exactly one series each, labelled with `log_dir`, or none when `statvfs` fails
/// (a missing series rather than a made-up zero).
#[derive(Debug)]
pub struct VolumeCollector {
    log_dir: PathBuf,
    total: IntGaugeVec,
    usable: IntGaugeVec,
    used: IntGaugeVec,
}

impl VolumeCollector {
    /// A collector for the file system holding `log_dir`.
    pub fn new(log_dir: PathBuf) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["log_dir"]);
        Ok(Self {
            log_dir,
            total: gauge(
                "weir_log_dir_total_bytes",
                "Size of the file system holding the log directory.",
            )?,
            usable: gauge(
                "weir_log_dir_usable_bytes",
                "Bytes the broker can still write on the file system holding the log directory.",
            )?,
            used: gauge(
                "weir_log_dir_used_bytes",
                "Bytes in use on the file system holding the log directory (by any file).",
            )?,
        })
    }

    fn gauges(&self) -> [&IntGaugeVec; 3] {
        [&self.total, &self.usable, &self.used]
    }
}

impl Collector for VolumeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges().into_iter().flat_map(|g| g.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for g in self.gauges() {
            g.reset();
        }
        match VolumeUsage::of(&self.log_dir) {
            Ok(usage) => {
                let dir = self.log_dir.display().to_string();
                let labels = [dir.as_str()];
                let set = |g: &IntGaugeVec, v: u64| {
                    g.with_label_values(&labels)
                        .set(i64::try_from(v).unwrap_or(i64::MAX));
                };
                set(&self.total, usage.total_bytes);
                set(&self.usable, usage.usable_bytes);
                set(&self.used, usage.used_bytes);
            }
            Err(e) => {
                tracing::debug!(dir = %self.log_dir.display(), error = %e, "statvfs of the log dir failed");
            }
        }
        self.gauges()
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(families: &[MetricFamily], name: &str) -> Option<(String, f64)> {
        let family = families.iter().find(|f| f.name() == name)?;
        let metric = family.get_metric().first()?;
        let label = metric.get_label().first()?;
        Some((label.value().to_string(), metric.get_gauge().get_value()))
    }

    #[test]
    fn usage_of_a_real_directory_adds_up() {
        let dir = tempfile::tempdir().unwrap();
        let usage = VolumeUsage::of(dir.path()).unwrap();
        assert!(usage.total_bytes > 0, "{usage:?}");
        assert!(usage.used_bytes <= usage.total_bytes, "{usage:?}");
        assert!(
            usage.usable_bytes <= usage.total_bytes - usage.used_bytes,
            "{usage:?}"
        );
    }

    #[test]
    fn scrape_reports_the_three_gauges_labelled_with_the_log_dir() {
        let dir = tempfile::tempdir().unwrap();
        let collector = VolumeCollector::new(dir.path().to_path_buf()).unwrap();
        let families = collector.collect();
        let shown = dir.path().display().to_string();
        for name in [
            "weir_log_dir_total_bytes",
            "weir_log_dir_usable_bytes",
            "weir_log_dir_used_bytes",
        ] {
            let (label, v) = value(&families, name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(label, shown);
            assert!(v >= 0.0, "{name} = {v}");
        }
        let (_, total) = value(&families, "weir_log_dir_total_bytes").unwrap();
        assert!(total > 0.0);
    }

    #[test]
    fn a_missing_directory_reports_no_series() {
        let dir = tempfile::tempdir().unwrap();
        let collector = VolumeCollector::new(dir.path().join("gone")).unwrap();
        let families = collector.collect();
        assert!(
            families.iter().all(|f| f.get_metric().is_empty()),
            "{families:?}"
        );
    }
}
