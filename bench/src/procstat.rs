//! What a broker process costs, read from `/proc/<pid>`: peak resident memory and CPU time.
//!
//! Both brokers are measured the same way from outside: `VmHWM` (the kernel's high-water mark
//! of the resident set, anonymous and file-backed pages alike) and `utime + stime` of every
//! thread in the process. For Apache Kafka the pid is the JVM's own (scripts/kafka.sh execs
//! it), so nothing of a wrapper shell is counted.

use procfs::process::Process;

/// One reading of a live process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessUsage {
    /// `VmHWM`: the largest resident set the process has had so far, in bytes.
    pub peak_rss_bytes: u64,
    /// User plus system CPU time of all its threads so far, in seconds.
    pub cpu_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcStatError {
    #[error("reading /proc/{pid}")]
    Proc {
        pid: i32,
        #[source]
        source: procfs::ProcError,
    },
    #[error("/proc/{pid}/status has no VmHWM line (a kernel thread or a zombie?)")]
    NoPeakRss { pid: i32 },
    #[error("/proc/{pid}/status has no VmRSS line (a kernel thread or a zombie?)")]
    NoRss { pid: i32 },
}

/// Reads peak RSS and CPU time of `pid`.
pub fn read(pid: i32) -> Result<ProcessUsage, ProcStatError> {
    let wrap = |source| ProcStatError::Proc { pid, source };
    let process = Process::new(pid).map_err(wrap)?;
    let peak_kib = process
        .status()
        .map_err(wrap)?
        .vmhwm
        .ok_or(ProcStatError::NoPeakRss { pid })?;
    let stat = process.stat().map_err(wrap)?;
    Ok(ProcessUsage {
        peak_rss_bytes: peak_kib * 1024,
        cpu_seconds: ticks_to_seconds(stat.utime + stat.stime, procfs::ticks_per_second()),
    })
}

/// `VmRSS`: the resident set of `pid` now, in bytes.
pub fn current_rss(pid: i32) -> Result<u64, ProcStatError> {
    let wrap = |source| ProcStatError::Proc { pid, source };
    let status = Process::new(pid).map_err(wrap)?.status().map_err(wrap)?;
    status
        .vmrss
        .map(|kib| kib * 1024)
        .ok_or(ProcStatError::NoRss { pid })
}

fn ticks_to_seconds(ticks: u64, ticks_per_second: u64) -> f64 {
    ticks as f64 / ticks_per_second as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        // Touch some memory and burn a little CPU so both readings are visibly non-zero.
        let buffer = vec![1u8; 8 << 20];
        let mut sum = 0u64;
        for _ in 0..50 {
            sum = buffer
                .iter()
                .fold(sum, |acc, &b| acc.wrapping_add(b as u64));
        }
        assert!(sum > 0);
        let usage = read(std::process::id() as i32).unwrap();
        assert!(usage.peak_rss_bytes >= 8 << 20, "{usage:?}");
        assert!(usage.cpu_seconds > 0.0, "{usage:?}");
    }

    #[test]
    fn missing_process_is_an_error_naming_the_pid() {
        // Pids are below /proc/sys/kernel/pid_max (at most 2^22): this one cannot exist.
        let err = read(i32::MAX).unwrap_err();
        assert!(err.to_string().contains(&i32::MAX.to_string()), "{err}");
    }

    #[test]
    fn ticks_convert_with_the_clock_rate() {
        assert_eq!(ticks_to_seconds(250, 100), 2.5);
    }
}
