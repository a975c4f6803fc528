//! Starting and stopping the brokers under test: release `weir-broker` processes, or Apache
//! Kafka through `scripts/kafka.sh`, on loopback with fresh data directories; one broker, or a
//! cluster of them, as the plan's [`Topology`] says.
//!
//! [`Launcher::start`] prepares everything that is not the brokers' own start-up (a fresh
//! directory, free ports, and for Kafka the KRaft storage format of every node) and only then
//! takes the spawn time, so start-to-first-produce counts the broker processes alone. A Weir
//! cluster is `brokers` processes that are all voters of its metadata quorum; a Kafka cluster
//! is as many combined broker+controller nodes with static controller voters (`kafka.sh
//! format-cluster`). For Kafka the script `exec`s the JVM, so each child's pid is a JVM's.
//! Each broker's output goes to its own log file outside the data directory, kept after the
//! run for post-mortems. Dropping a [`RunningBrokers`] kills every process: an error half-way
//! through a comparison leaves nothing behind.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::cases::Topology;
use crate::procstat::{self, ProcStatError, ProcessUsage};
use crate::results::BrokerKind;

/// How long the brokers may take to exit after SIGTERM before they get SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where [`free_port`] looks: below Linux's ephemeral range (32768 and up), so that no client
/// connection is given a port between the check and the broker's own bind (a Kafka format
/// takes seconds in between), and clear of the 9xxx and 19xxx ports of development clusters.
const PORT_RANGE: Range<u16> = 30_000..32_700;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("preparing {path}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no free loopback port in {PORT_RANGE:?}")]
    Port,
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

/// The broker processes of one run, in node order.
#[derive(Debug)]
pub struct RunningBrokers {
    pub kind: BrokerKind,
    /// Each broker's Kafka listener.
    pub addrs: Vec<SocketAddr>,
    /// A single node's listeners beside PLAINTEXT ([`Launcher::start_with_listeners`]).
    listeners: Vec<(String, SocketAddr)>,
    /// Taken immediately before the first process was spawned.
    pub spawned_at: Instant,
    /// Each broker's stdout and stderr.
    pub logs: Vec<PathBuf>,
    /// Empty once stopped.
    children: Vec<Child>,
    /// How each node was spawned (program, arguments), so that [`RunningBrokers::restart`]
    /// can spawn it again on the same data directory and ports.
    commands: Vec<(OsString, Vec<OsString>)>,
    /// The data directories; removed when the run is over.
    data: TempDir,
}

/// How one broker process ended.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    pub status: ExitStatus,
    /// False if it had to be killed after `STOP_TIMEOUT`.
    pub by_itself: bool,
}

/// The ports of one broker.
struct NodePorts {
    /// The Kafka listener.
    kafka: u16,
    /// Weir's internal listener (Raft, controller, admin); Kafka's controller listener.
    internal: u16,
}

impl Launcher {
    /// Starts `topology.brokers` brokers of `kind` on a fresh data directory; `label` names
    /// the log files.
    pub fn start(
        &self,
        kind: BrokerKind,
        label: &str,
        topology: &Topology,
    ) -> Result<RunningBrokers, ProcessError> {
        self.start_with(kind, label, topology, &[])
    }

    /// [`Launcher::start`] with broker settings on top of the defaults, by their Kafka names
    /// (both systems use them): `--set name=value` for Weir, lines appended to every node's
    /// `server.properties` for Kafka (a later line wins there).
    pub fn start_with(
        &self,
        kind: BrokerKind,
        label: &str,
        topology: &Topology,
        settings: &[(&str, String)],
    ) -> Result<RunningBrokers, ProcessError> {
        self.start_nodes(kind, label, topology, settings, &[])
    }

    /// [`Launcher::start_with`] on a single node that has more Kafka listeners beside its
    /// PLAINTEXT one, each named by its security protocol (`SSL`, `SASL_SSL`, ...) on a free
    /// loopback port of its own. PLAINTEXT stays the inter-broker listener and the one
    /// [`RunningBrokers::addrs`] names; [`RunningBrokers::listener`] gives the others. The
    /// listeners' own settings (key stores, mechanisms) are the caller's `settings`.
    pub fn start_with_listeners(
        &self,
        kind: BrokerKind,
        label: &str,
        settings: &[(&str, String)],
        listeners: &[&str],
    ) -> Result<RunningBrokers, ProcessError> {
        let listeners = listeners
            .iter()
            .map(|name| Ok((name.to_string(), free_port()?)))
            .collect::<Result<Vec<_>, ProcessError>>()?;
        self.start_nodes(kind, label, &Topology::SINGLE_NODE, settings, &listeners)
    }

    /// Starts the nodes; `listeners` (name, port) only on a single node.
    fn start_nodes(
        &self,
        kind: BrokerKind,
        label: &str,
        topology: &Topology,
        settings: &[(&str, String)],
        listeners: &[(String, u16)],
    ) -> Result<RunningBrokers, ProcessError> {
        std::fs::create_dir_all(&self.work_dir).map_err(prepare(&self.work_dir))?;
        let logs_dir = self.work_dir.join("logs");
        std::fs::create_dir_all(&logs_dir).map_err(prepare(&logs_dir))?;
        let data = tempfile::Builder::new()
            .prefix(&format!("{label}-"))
            .tempdir_in(&self.work_dir)
            .map_err(prepare(&self.work_dir))?;
        let nodes = (0..topology.brokers.max(1))
            .map(|_| {
                Ok(NodePorts {
                    kafka: free_port()?,
                    internal: free_port()?,
                })
            })
            .collect::<Result<Vec<_>, ProcessError>>()?;
        let logs: Vec<PathBuf> = if nodes.len() == 1 {
            vec![logs_dir.join(format!("{label}.log"))]
        } else {
            (0..nodes.len())
                .map(|i| logs_dir.join(format!("{label}-node{i}.log")))
                .collect()
        };
        let commands = match kind {
            BrokerKind::Weir => {
                let mut commands = self.weir_commands(data.path(), &nodes, topology, listeners);
                for command in &mut commands {
                    for (name, value) in settings {
                        command.arg("--set").arg(format!("{name}={value}"));
                    }
                }
                commands
            }
            BrokerKind::Kafka => {
                let format_log = logs_dir.join(format!("{label}.format.log"));
                let commands = self.kafka_commands(data.path(), &nodes, &format_log)?;
                if !listeners.is_empty() {
                    let lines = kafka_listeners(&nodes[0], listeners);
                    let lines: Vec<(&str, String)> =
                        lines.iter().map(|(k, v)| (*k, v.clone())).collect();
                    append_properties(&data.path().join("server.properties"), &lines)?;
                }
                if !settings.is_empty() {
                    for node in kafka_node_dirs(data.path(), nodes.len()) {
                        append_properties(&node.join("server.properties"), settings)?;
                    }
                }
                commands
            }
        };
        let commands: Vec<(OsString, Vec<OsString>)> = commands
            .iter()
            .map(|c| {
                (
                    c.get_program().to_os_string(),
                    c.get_args().map(|a| a.to_os_string()).collect(),
                )
            })
            .collect();
        let mut outputs = Vec::new();
        for log in &logs {
            let output = File::create(log).map_err(prepare(log))?;
            let stderr = output.try_clone().map_err(prepare(log))?;
            outputs.push((output, stderr));
        }
        let spawned_at = Instant::now();
        let mut running = RunningBrokers {
            kind,
            addrs: nodes
                .iter()
                .map(|n| SocketAddr::from((Ipv4Addr::LOCALHOST, n.kafka)))
                .collect(),
            listeners: listeners
                .iter()
                .map(|(name, port)| (name.clone(), SocketAddr::from((Ipv4Addr::LOCALHOST, *port))))
                .collect(),
            spawned_at,
            logs,
            children: Vec::new(),
            commands,
            data,
        };
        for (index, (stdout, stderr)) in outputs.into_iter().enumerate() {
            let mut command = running.command(index);
            command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
            // On an error, dropping `running` kills the brokers already spawned.
            let child = command.spawn().map_err(|source| ProcessError::Spawn {
                program: PathBuf::from(command.get_program()),
                source,
            })?;
            running.children.push(child);
        }
        Ok(running)
    }

    /// One `weir-broker` per node. A cluster's brokers are all voters, and their defaults
    /// for auto-created topics are the topology's (as Kafka's server.properties says).
    /// `listeners` (name, port), if any, go beside the PLAINTEXT one (single node).
    fn weir_commands(
        &self,
        dir: &Path,
        nodes: &[NodePorts],
        topology: &Topology,
        listeners: &[(String, u16)],
    ) -> Vec<Command> {
        let voters = nodes
            .iter()
            .enumerate()
            .map(|(id, n)| format!("{id}@127.0.0.1:{}", n.internal))
            .collect::<Vec<_>>()
            .join(",");
        nodes
            .iter()
            .enumerate()
            .map(|(id, node)| {
                let mut command = Command::new(&self.weir_broker);
                // Single node: the data directory the single-node bench always used.
                let data = if nodes.len() == 1 {
                    dir.join("data")
                } else {
                    dir.join(format!("node-{id}"))
                };
                command.arg("--data-dir").arg(data);
                if listeners.is_empty() {
                    command
                        .arg("--listen")
                        .arg(format!("127.0.0.1:{}", node.kafka));
                } else {
                    let all: Vec<String> = std::iter::once(("PLAINTEXT", node.kafka))
                        .chain(listeners.iter().map(|(name, port)| (name.as_str(), *port)))
                        .map(|(name, port)| format!("{name}://127.0.0.1:{port}"))
                        .collect();
                    command
                        .arg("--set")
                        .arg(format!("listeners={}", all.join(",")))
                        .arg("--set")
                        .arg("inter.broker.listener.name=PLAINTEXT");
                }
                command
                    .arg("--rpc-listen")
                    .arg(format!("127.0.0.1:{}", node.internal))
                    .arg("--metrics-listen")
                    .arg("127.0.0.1:0");
                if topology.is_cluster() {
                    command
                        .arg("--node-id")
                        .arg(id.to_string())
                        .arg("--voters")
                        .arg(&voters)
                        .arg("--set")
                        .arg(format!(
                            "default.replication.factor={}",
                            topology.replication_factor
                        ))
                        .arg("--set")
                        .arg(format!(
                            "min.insync.replicas={}",
                            topology.min_insync_replicas
                        ));
                }
                command
            })
            .collect()
    }

    /// Formats KRaft storage (before the clock, output in `format_log`), then one `kafka.sh
    /// run` per node.
    /// `kafka.sh format DIR PORT CONTROLLER_PORT` for one node; `format-cluster DIR PORTS
    /// CONTROLLER_PORTS` for a cluster, whose nodes are DIR/node-1, DIR/node-2, ...
    fn kafka_commands(
        &self,
        dir: &Path,
        nodes: &[NodePorts],
        format_log: &Path,
    ) -> Result<Vec<Command>, ProcessError> {
        let list = |port: fn(&NodePorts) -> u16| {
            nodes
                .iter()
                .map(|n| port(n).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let step = if nodes.len() == 1 {
            "format"
        } else {
            "format-cluster"
        };
        let node_dirs = kafka_node_dirs(dir, nodes.len());
        let args = [
            step.to_string(),
            dir.display().to_string(),
            list(|n| n.kafka),
            list(|n| n.internal),
        ];
        self.kafka_script_step(&args, format_log)?;
        Ok(node_dirs
            .into_iter()
            .map(|node_dir| {
                let mut command = Command::new("bash");
                command.arg(&self.kafka_script).arg("run").arg(node_dir);
                command
            })
            .collect())
    }

    /// Runs `kafka.sh ARGS...` to completion, its output in `log`.
    fn kafka_script_step(&self, args: &[String], log: &Path) -> Result<(), ProcessError> {
        let output = File::create(log).map_err(prepare(log))?;
        let stderr = output.try_clone().map_err(prepare(log))?;
        let status = Command::new("bash")
            .arg(&self.kafka_script)
            .args(args)
            .stdout(output)
            .stderr(stderr)
            .status()
            .map_err(|source| ProcessError::Spawn {
                program: self.kafka_script.clone(),
                source,
            })?;
        if !status.success() {
            return Err(ProcessError::Format {
                command: format!("{} {}", self.kafka_script.display(), args[0]),
                status,
                log: log.to_path_buf(),
            });
        }
        Ok(())
    }
}

/// The directory of each Kafka node: DIR itself for one node, DIR/node-1, DIR/node-2, ... for
/// a cluster (as `kafka.sh format-cluster` lays them out).
fn kafka_node_dirs(dir: &Path, count: usize) -> Vec<PathBuf> {
    if count == 1 {
        vec![dir.to_path_buf()]
    } else {
        (1..=count).map(|i| dir.join(format!("node-{i}"))).collect()
    }
}

/// The server.properties lines that give a single Kafka node `listeners` (name, port) beside
/// its PLAINTEXT and CONTROLLER ones, each name its own security protocol (later lines win
/// over the ones `kafka.sh format` wrote).
fn kafka_listeners(node: &NodePorts, listeners: &[(String, u16)]) -> Vec<(&'static str, String)> {
    let mut bound = vec![
        format!("PLAINTEXT://127.0.0.1:{}", node.kafka),
        format!("CONTROLLER://127.0.0.1:{}", node.internal),
    ];
    let mut protocols = vec![
        "CONTROLLER:PLAINTEXT".to_string(),
        "PLAINTEXT:PLAINTEXT".to_string(),
    ];
    for (name, port) in listeners {
        bound.push(format!("{name}://127.0.0.1:{port}"));
        protocols.push(format!("{name}:{name}"));
    }
    vec![
        ("listeners", bound.join(",")),
        ("advertised.listeners", bound.join(",")),
        ("listener.security.protocol.map", protocols.join(",")),
    ]
}

fn append_properties(path: &Path, settings: &[(&str, String)]) -> Result<(), ProcessError> {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(prepare(path))?;
    let lines: String = settings
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect();
    file.write_all(format!("# weir-bench\n{lines}").as_bytes())
        .map_err(prepare(path))
}

fn prepare(path: &Path) -> impl FnOnce(std::io::Error) -> ProcessError {
    let path = path.to_path_buf();
    move |source| ProcessError::Prepare { path, source }
}

impl RunningBrokers {
    /// The address of the listener named `name` (given to
    /// [`Launcher::start_with_listeners`]).
    pub fn listener(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| *addr)
    }

    /// Every broker's Kafka listener, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn command(&self, node: usize) -> Command {
        let (program, args) = &self.commands[node];
        let mut command = Command::new(program);
        command.args(args);
        command
    }

    /// The node id of the broker at `node` (node order): Weir numbers its brokers from 0,
    /// `kafka.sh` from 1.
    pub fn node_id(&self, node: usize) -> i32 {
        match self.kind {
            BrokerKind::Weir => node as i32,
            BrokerKind::Kafka => node as i32 + 1,
        }
    }

    /// The node order of the broker with node id `id`, if it is one of these.
    pub fn node_of(&self, id: i32) -> Option<usize> {
        (0..self.children.len()).find(|&node| self.node_id(node) == id)
    }

    /// A Kafka node's directory (its `server.properties`, its `logs/`).
    pub fn kafka_node_dir(&self, node: usize) -> PathBuf {
        kafka_node_dirs(self.data.path(), self.commands.len()).swap_remove(node)
    }

    /// Sends `signal` to the broker at `node`.
    pub fn signal(&self, node: usize, signal: Signal) -> Result<(), ProcessError> {
        kill(Pid::from_raw(self.children[node].id() as i32), signal).map_err(ProcessError::Signal)
    }

    /// The brokers' process ids, in node order (empty once stopped).
    pub fn pids(&self) -> Vec<i32> {
        self.children.iter().map(|c| c.id() as i32).collect()
    }

    /// Waits for the broker at `node` to exit (after a signal sent with
    /// [`RunningBrokers::signal`]).
    pub fn wait_node(&mut self, node: usize) -> Result<ExitStatus, ProcessError> {
        self.children[node].wait().map_err(ProcessError::Wait)
    }

    /// SIGKILL to the broker at `node`, and waits for it to be gone.
    pub fn kill_node(&mut self, node: usize) -> Result<(), ProcessError> {
        let child = &mut self.children[node];
        child.kill().map_err(ProcessError::Wait)?;
        child.wait().map_err(ProcessError::Wait)?;
        Ok(())
    }

    /// Spawns the broker at `node` again, as it was first spawned (same data directory, same
    /// ports), its output appended to its log. The node must have exited (see
    /// [`RunningBrokers::kill_node`]).
    pub fn restart(&mut self, node: usize) -> Result<(), ProcessError> {
        let log = &self.logs[node];
        let output = OpenOptions::new()
            .append(true)
            .open(log)
            .map_err(prepare(log))?;
        let stderr = output.try_clone().map_err(prepare(log))?;
        let mut command = self.command(node);
        command.stdin(Stdio::null()).stdout(output).stderr(stderr);
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            program: PathBuf::from(command.get_program()),
            source,
        })?;
        self.children[node] = child;
        Ok(())
    }

    /// Peak RSS and CPU time so far, summed over the brokers. The sum of each process's
    /// peak: the peaks of a cluster's brokers need not coincide, so this is an upper bound of
    /// the cluster's peak (for brokers under one steady load, a close one).
    pub fn usage(&self) -> Result<ProcessUsage, ProcessError> {
        if self.children.is_empty() {
            return Err(ProcessError::Wait(std::io::Error::other(
                "the brokers were already stopped",
            )));
        }
        let mut total = ProcessUsage {
            peak_rss_bytes: 0,
            cpu_seconds: 0.0,
        };
        for child in &self.children {
            let usage = procstat::read(child.id() as i32)?;
            total.peak_rss_bytes += usage.peak_rss_bytes;
            total.cpu_seconds += usage.cpu_seconds;
        }
        Ok(total)
    }

    /// The exit status of the first broker that has exited on its own (a crash during a run).
    pub fn exited(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        for child in &mut self.children {
            if let Some(status) = child.try_wait().map_err(ProcessError::Wait)? {
                return Ok(Some(status));
            }
        }
        Ok(None)
    }

    /// SIGTERM to every broker at once, then SIGKILL to those that have not exited within
    /// `STOP_TIMEOUT`. Returns how each one ended, in node order.
    pub fn stop(mut self) -> Result<Vec<Stopped>, ProcessError> {
        let mut children = std::mem::take(&mut self.children);
        let mut stopped: Vec<Option<Stopped>> = vec![None; children.len()];
        for (child, end) in children.iter_mut().zip(stopped.iter_mut()) {
            match child.try_wait().map_err(ProcessError::Wait)? {
                Some(status) => {
                    *end = Some(Stopped {
                        status,
                        by_itself: true,
                    })
                }
                None => kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)
                    .map_err(ProcessError::Signal)?,
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while stopped.iter().any(Option::is_none) && Instant::now() < deadline {
            for (child, end) in children.iter_mut().zip(stopped.iter_mut()) {
                if end.is_none() {
                    if let Some(status) = child.try_wait().map_err(ProcessError::Wait)? {
                        *end = Some(Stopped {
                            status,
                            by_itself: true,
                        });
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        children
            .iter_mut()
            .zip(stopped)
            .map(|(child, end)| match end {
                Some(end) => Ok(end),
                None => {
                    child.kill().map_err(ProcessError::Wait)?;
                    Ok(Stopped {
                        status: child.wait().map_err(ProcessError::Wait)?,
                        by_itself: false,
                    })
                }
            })
            .collect()
    }
}

impl Drop for RunningBrokers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port nobody listens on right now, never the same one twice in this process.
/// The broker is told the port (rather than picking one itself) because start-to-first-produce
/// must probe it from the moment of spawn, and a cluster's brokers must know each other's.
/// Another program could still bind the port in between; the broker then fails to bind, and
/// the run fails naming the broker's log.
fn free_port() -> Result<u16, ProcessError> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(PORT_RANGE.end - PORT_RANGE.start);
    // Two benches side by side start at different places.
    let start = std::process::id() % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = PORT_RANGE.start + offset as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(ProcessError::Port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        let mut distinct = ports.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        assert!(ports.iter().all(|p| PORT_RANGE.contains(p)), "{ports:?}");
    }
}
