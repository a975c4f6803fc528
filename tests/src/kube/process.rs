//! One control-plane process (etcd, kube-apiserver, kube-controller-manager) with its stdout
//! and stderr in a log file, killed when dropped. [`super::ControlPlane`] holds one per
//! component and prints a log's tail when that component fails to come up.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How much of a log [`LoggedProcess::log_tail`] returns by default.
pub const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// A child process whose output goes to `<dir>/<name>.log`.
///
/// Invariant: `child` is `Some` until the process is reaped in `Drop`.
#[derive(Debug)]
pub struct LoggedProcess {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
}

impl LoggedProcess {
    /// Spawns `command` with stdin closed and stdout/stderr appended to `<log_dir>/<name>.log`.
    /// Panics when the binary cannot be started.
    pub fn spawn(name: &str, mut command: Command, log_dir: &Path) -> LoggedProcess {
        let log_path = log_dir.join(format!("{name}.log"));
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let log_for_stderr = log
            .try_clone()
            .unwrap_or_else(|e| panic!("duplicating {}: {e}", log_path.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({command:?}): {e}"));
        LoggedProcess {
            name: name.to_string(),
            child: Some(child),
            log_path,
        }
    }

    /// The component name, as in the log file's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file holding the process's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The exit status if the process has exited (a component that exits by itself failed).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// The last `bytes` of the log, lossily decoded.
    pub fn log_tail(&self, bytes: u64) -> String {
        let Ok(mut file) = File::open(&self.log_path) else {
            return String::new();
        };
        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(length.saturating_sub(bytes)));
        let mut tail = Vec::new();
        let _ = file.read_to_end(&mut tail);
        String::from_utf8_lossy(&tail).into_owned()
    }

    /// Prints the log's tail to stderr under a header naming the component.
    pub fn print_log_tail(&self) {
        eprintln!(
            "----- last {LOG_TAIL_BYTES} bytes of {} ({}) -----\n{}\n----- end of {} log -----",
            self.name,
            self.log_path.display(),
            self.log_tail(LOG_TAIL_BYTES),
            self.name
        );
    }
}

impl Drop for LoggedProcess {
    fn drop(&mut self) {
        // SIGKILL: the whole control plane is thrown away with its temporary directory, so
        // nothing needs a clean shutdown, and tests should not wait for one.
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}
