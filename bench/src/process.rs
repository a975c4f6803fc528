//! Starting and stopping the broker under test: a release `weir-broker`, or Apache Kafka
//! through `scripts/kafka.sh`, each on loopback with a fresh data directory.
//!
//! [`Launcher::start`] prepares everything that is not the broker's own start-up (a fresh
//! directory, free ports, and for Kafka the KRaft storage format) and only then takes the
//! spawn time, so start-to-first-produce counts the broker process alone. For Kafka the
//! script `exec`s the JVM, so the child's pid is the JVM's. Output goes to a log file outside
//! the data directory, kept after the run for post-mortems. Dropping a [`RunningBroker`]
//! kills the process: an error half-way through a comparison leaves nothing behind.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::procstat::{self, ProcStatError, ProcessUsage};
use crate::results::BrokerKind;

/// How long a broker may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("preparing {path}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("finding a free loopback port")]
    Port(#[source] std::io::Error),
    #[error("{command} failed ({status}); its output is in {log}")]
    Format {
        command: String,
        status: ExitStatus,
        log: PathBuf,
    },
    #[error("spawning {program}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for the broker")]
    Wait(#[source] std::io::Error),
    #[error("signalling the broker")]
    Signal(#[source] nix::Error),
    #[error(transparent)]
    Usage(#[from] ProcStatError),
}

/// Where the brokers' programs are and where their runs go.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The `weir-broker` binary.
    pub weir_broker: PathBuf,
    /// `scripts/kafka.sh`.
    pub kafka_script: PathBuf,
    /// Parent of the fresh data directories and of the kept logs.
    pub work_dir: PathBuf,
}

/// A broker process this bench started.
#[derive(Debug)]
pub struct RunningBroker {
    pub kind: BrokerKind,
    /// The Kafka listener clients bootstrap from.
    pub addr: SocketAddr,
    /// Taken immediately before the process was spawned.
    pub spawned_at: Instant,
    /// Broker stdout and stderr.
    pub log: PathBuf,
    child: Option<Child>,
    /// The data directory; removed when the run is over.
    _data: TempDir,
}

impl Launcher {
    /// Starts `kind` with a fresh data directory; `label` names its log file.
    pub fn start(&self, kind: BrokerKind, label: &str) -> Result<RunningBroker, ProcessError> {
        let prepare = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ProcessError::Prepare { path, source }
        };
        std::fs::create_dir_all(&self.work_dir).map_err(prepare(&self.work_dir))?;
        let logs = self.work_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(prepare(&logs))?;
        let data = tempfile::Builder::new()
            .prefix(&format!("{label}-"))
            .tempdir_in(&self.work_dir)
            .map_err(prepare(&self.work_dir))?;
        let log = logs.join(format!("{label}.log"));
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut command = match kind {
            BrokerKind::Weir => {
                let mut command = Command::new(&self.weir_broker);
                command
                    .arg("--data-dir")
                    .arg(data.path().join("data"))
                    .arg("--listen")
                    .arg(addr.to_string())
                    .arg("--metrics-listen")
                    .arg("127.0.0.1:0");
                command
            }
            BrokerKind::Kafka => {
                self.format_kafka(data.path(), port, &log)?;
                let mut command = Command::new("bash");
                command.arg(&self.kafka_script).arg("run").arg(data.path());
                command
            }
        };
        let output = File::create(&log).map_err(prepare(&log))?;
        let stderr = output.try_clone().map_err(prepare(&log))?;
        command.stdin(Stdio::null()).stdout(output).stderr(stderr);
        let spawned_at = Instant::now();
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            program: PathBuf::from(command.get_program()),
            source,
        })?;
        Ok(RunningBroker {
            kind,
            addr,
            spawned_at,
            log,
            child: Some(child),
            _data: data,
        })
    }

    /// `kafka.sh format DIR PORT CONTROLLER_PORT`: config and KRaft storage, before the clock.
    fn format_kafka(&self, dir: &Path, port: u16, log: &Path) -> Result<(), ProcessError> {
        let controller_port = free_port()?;
        let format_log = log.with_extension("format.log");
        let output = File::create(&format_log).map_err(|source| ProcessError::Prepare {
            path: format_log.clone(),
            source,
        })?;
        let stderr = output.try_clone().map_err(|source| ProcessError::Prepare {
            path: format_log.clone(),
            source,
        })?;
        let mut command = Command::new("bash");
        command
            .arg(&self.kafka_script)
            .arg("format")
            .arg(dir)
            .arg(port.to_string())
            .arg(controller_port.to_string())
            .stdout(output)
            .stderr(stderr);
        let status = command.status().map_err(|source| ProcessError::Spawn {
            program: self.kafka_script.clone(),
            source,
        })?;
        if !status.success() {
            return Err(ProcessError::Format {
                command: format!("{} format", self.kafka_script.display()),
                status,
                log: format_log,
            });
        }
        Ok(())
    }
}

impl RunningBroker {
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Peak RSS and CPU time so far.
    pub fn usage(&self) -> Result<ProcessUsage, ProcessError> {
        let pid = self.pid().ok_or(ProcessError::Wait(std::io::Error::other(
            "the broker was already stopped",
        )))?;
        Ok(procstat::read(pid)?)
    }

    /// Whether the process has exited on its own (a crash during a run).
    pub fn exited(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        match self.child.as_mut() {
            Some(child) => child.try_wait().map_err(ProcessError::Wait),
            None => Ok(None),
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`STOP_TIMEOUT`]. Returns the exit
    /// status and whether it stopped by itself.
    pub fn stop(mut self) -> Result<(ExitStatus, bool), ProcessError> {
        let mut child = self
            .child
            .take()
            .expect("child is present until stop or drop");
        if let Some(status) = child.try_wait().map_err(ProcessError::Wait)? {
            return Ok((status, true));
        }
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).map_err(ProcessError::Signal)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().map_err(ProcessError::Wait)? {
                return Ok((status, true));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().map_err(ProcessError::Wait)?;
        Ok((child.wait().map_err(ProcessError::Wait)?, false))
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port nobody listens on right now. The broker is told the port (rather than
/// picking one itself) because start-to-first-produce must probe it from the moment of spawn.
/// Another process could take the port in between; the broker then fails to bind, and the run
/// fails naming the broker's log.
fn free_port() -> Result<u16, ProcessError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(ProcessError::Port)?;
    Ok(listener.local_addr().map_err(ProcessError::Port)?.port())
}
