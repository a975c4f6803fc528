//! The machine a comparison ran on, as the report states it.

use std::process::Command;

use procfs::{CpuInfo, Current, LoadAverage, Meminfo};

use crate::results::Machine;

/// Reads CPU model and count, memory, kernel and Java version. Anything unreadable is
/// reported as "unknown" rather than failing a long run at its end.
pub fn describe() -> Machine {
    let cpu = CpuInfo::current().ok();
    let cpu_model = cpu
        .as_ref()
        .and_then(|c| c.model_name(0).map(str::to_string))
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = Meminfo::current().map_or(0.0, |m| m.mem_total as f64 / (1u64 << 30) as f64);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    // `java -version` prints to stderr; its first line names the runtime.
    let java = Command::new("java")
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "java not found".to_string());
    Machine {
        cpu_model,
        cores,
        memory_gib,
        kernel,
        java,
    }
}

/// The one-minute load average now, if /proc/loadavg is readable.
pub fn load_average() -> Option<f64> {
    LoadAverage::current().ok().map(|load| f64::from(load.one))
}

#[cfg(test)]
mod tests {
    #[test]
    fn load_average_is_read() {
        let load = super::load_average().expect("/proc/loadavg");
        assert!(load >= 0.0, "{load}");
    }
}
