//! A real `weir-broker` process under test control.
//!
//! [`Broker::start`] spawns the binary with a temporary data directory and ephemeral ports and
//! waits for its one ready line on stdout
//! (`weir-broker ready kafka=127.0.0.1:PORT metrics=127.0.0.1:PORT`). The broker's stderr (its
//! logs) goes to a file that is printed when the test panics; dropping a [`Broker`] kills the
//! process. Restarts reuse the data directory and the Kafka port, so clients reconnect by
//! themselves.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

/// How long a broker may take to print its ready line: a debug build on a loaded two-core
/// machine, possibly recovering segments first.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a clean shutdown (SIGTERM) may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The prefix of the line the broker prints on stdout once it serves.
const READY_PREFIX: &str = "weir-broker ready";
/// How much of the broker's stderr is printed when a test fails.
const DUMP_TAIL_BYTES: u64 = 64 * 1024;

/// How to start a broker. `Default` is a fresh temporary data directory, node 0, ephemeral
/// ports and the broker's default settings.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// Use this data directory instead of a fresh temporary one (the caller keeps it alive).
    pub data_dir: Option<PathBuf>,
    /// Kafka settings passed as `--set key=value`, in order.
    pub sets: Vec<(String, String)>,
    /// `--node-id`.
    pub node_id: i32,
    /// Bind the Kafka listener to this port instead of an ephemeral one.
    pub kafka_port: Option<u16>,
    /// Bind the internal (Raft/controller) listener to this port instead of an ephemeral one.
    pub rpc_port: Option<u16>,
    /// `--voters` (ID@HOST:PORT,...); without it the broker is its own single voter.
    pub voters: Option<String>,
    /// Environment variables for the process (`WEIR_LOG`, ...), set after the test's own
    /// `WEIR_*` and `RUST_LOG` are removed.
    pub env: Vec<(String, String)>,
    /// The address every listener binds and advertises; `127.0.0.1` when `None`.
    pub host: Option<IpAddr>,
    /// Run the process inside this network namespace (`ip netns exec NAME weir-broker ...`;
    /// `ip` execs the broker, so the child's pid is the broker's).
    pub netns: Option<String>,
}

impl BrokerOptions {
    /// Adds one `--set key=value`.
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.sets.push((key.to_string(), value.to_string()));
        self
    }
}

/// A running (or deliberately stopped/killed) broker process.
///
/// Invariant: `child` is `Some` from a successful start until [`Broker::stop`] or
/// [`Broker::kill9`] reaps it; `kafka_addr` stays the same across restarts.
#[derive(Debug)]
pub struct Broker {
    options: BrokerOptions,
    /// Holds the default data directory and the stderr log; kept on disk when a test fails.
    scratch: Option<TempDir>,
    data_dir: PathBuf,
    stderr_path: PathBuf,
    child: Option<Child>,
    stdout_reader: Option<JoinHandle<()>>,
    /// The ready line, from the stdout reader, of a start not yet waited for.
    ready_rx: Option<mpsc::Receiver<String>>,
    kafka_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    /// Every listener's bound address by name, from the ready line.
    listener_addrs: Vec<(String, SocketAddr)>,
    starts: u32,
    paused: bool,
}

impl Broker {
    /// Starts a broker and waits until it is ready. Panics (printing its stderr) when it
    /// exits or does not get ready within [`START_TIMEOUT`].
    pub fn start(options: BrokerOptions) -> Broker {
        let scratch = tempfile::Builder::new()
            .prefix("weir-test-")
            .tempdir()
            .expect("creating a temporary directory");
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| scratch.path().join("data"));
        let stderr_path = scratch.path().join("broker-stderr.log");
        let mut broker = Broker {
            options,
            scratch: Some(scratch),
            data_dir,
            stderr_path,
            child: None,
            stdout_reader: None,
            ready_rx: None,
            kafka_addr: None,
            metrics_addr: None,
            listener_addrs: Vec::new(),
            starts: 0,
            paused: false,
        };
        broker.spawn();
        broker
    }

    /// Starts a broker with default options.
    pub fn start_default() -> Broker {
        Broker::start(BrokerOptions::default())
    }

    /// The advertised Kafka listener, `127.0.0.1:PORT`.
    pub fn kafka_addr(&self) -> SocketAddr {
        self.kafka_addr.expect("broker has never become ready")
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        self.kafka_addr().to_string()
    }

    /// The bound address of the listener `name` (`SSL`, ...), for a broker started with the
    /// `listeners` setting.
    pub fn listener_addr(&self, name: &str) -> SocketAddr {
        self.listener_addrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("the broker has no listener {name}"))
    }

    /// The internal listener (Raft, controller and admin gRPC), when the broker was given a
    /// fixed `rpc_port` (a [`crate::cluster::Cluster`] always does).
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.options
            .rpc_port
            .map(|port| SocketAddr::new(self.host(), port))
    }

    /// The address the broker binds and advertises.
    pub fn host(&self) -> IpAddr {
        self.options.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// The running process's memory as the kernel reports it in `/proc/PID/status`:
    /// (`VmRSS`, `VmHWM`) in bytes. `None` when the broker is not running or the kernel
    /// has no such file.
    pub fn memory(&self) -> Option<(u64, u64)> {
        let child = self.child.as_ref()?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kib * 1024)
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// The metrics HTTP listener of the current process.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr.expect("broker has never become ready")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory of one partition's log, `<data-dir>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }

    pub fn pid(&self) -> Pid {
        let child = self.child.as_ref().expect("broker is not running");
        Pid::from_raw(child.id() as i32)
    }

    /// Whether the process still exists (it may be paused).
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("polling the broker").is_none(),
            None => false,
        }
    }

    /// Panics with the broker's exit status and stderr if the process has exited.
    pub fn assert_alive(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait().expect("polling the broker") {
                panic!("broker exited unexpectedly with {status}");
            }
        } else {
            panic!("broker is not running");
        }
    }

    /// SIGKILL: the process dies without any chance to flush or clean up.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("broker is not running");
        // A stopped process is killed by SIGKILL too.
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        child.wait().expect("reaping the killed broker");
        self.paused = false;
        self.join_stdout_reader();
    }

    /// SIGTERM and wait for a clean exit. Panics if the broker does not exit within
    /// [`STOP_TIMEOUT`] or exits unsuccessfully: clean shutdown is part of the contract.
    pub fn stop(&mut self) {
        self.stop_with(Signal::SIGTERM);
    }

    /// [`Broker::stop`] with another signal that asks for a clean shutdown (SIGINT).
    pub fn stop_with(&mut self, signal: Signal) {
        let status = self.terminate(signal);
        assert!(
            status.success(),
            "broker did not shut down cleanly on {signal}: {status}"
        );
    }

    /// Stops the broker if it runs (SIGTERM), then starts it again on the same data directory
    /// and the same Kafka port, and waits until it is ready.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// Like [`Broker::restart`] (after a SIGKILL), but returns once the process runs, without
    /// waiting until it is ready: a broker is ready only once the metadata quorum registered
    /// it, and a test may restart one while the quorum has no majority.
    /// [`Broker::wait_ready`] waits for it later.
    pub fn restart_without_waiting(&mut self) {
        self.launch();
    }

    /// Waits until a broker started by [`Broker::restart_without_waiting`] is ready.
    pub fn wait_ready(&mut self) {
        self.await_ready();
    }

    /// SIGSTOP: the process stays alive but does nothing; the kernel still accepts
    /// connections and buffers bytes on its sockets.
    pub fn pause(&mut self) {
        kill(self.pid(), Signal::SIGSTOP).expect("SIGSTOP");
        self.paused = true;
    }

    /// SIGCONT after [`Broker::pause`].
    pub fn resume(&mut self) {
        kill(self.pid(), Signal::SIGCONT).expect("SIGCONT");
        self.paused = false;
    }

    /// Everything the broker has written to stderr so far (all starts).
    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn terminate(&mut self, signal: Signal) -> ExitStatus {
        if self.paused {
            self.resume();
        }
        let mut child = self.child.take().expect("broker is not running");
        kill(Pid::from_raw(child.id() as i32), signal).expect("signalling the broker");
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("polling the broker") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("broker did not exit within {STOP_TIMEOUT:?} of {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.join_stdout_reader();
        status
    }

    fn spawn(&mut self) {
        self.launch();
        self.await_ready();
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "broker is already running");
        self.starts += 1;
        let listen_port = self
            .kafka_addr
            .map(|addr| addr.port())
            .or(self.options.kafka_port)
            .unwrap_or(0);
        let host = self.host();
        let mut command = match &self.options.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(broker_bin());
                command
            }
            None => Command::new(broker_bin()),
        };
        command
            .arg("--node-id")
            .arg(self.options.node_id.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir);
        // The `listeners` setting replaces `--listen`; the broker refuses both.
        if !self.options.sets.iter().any(|(k, _)| k == "listeners") {
            command
                .arg("--listen")
                .arg(SocketAddr::new(host, listen_port).to_string());
        }
        command
            .arg("--metrics-listen")
            .arg(SocketAddr::new(host, 0).to_string())
            .arg("--rpc-listen")
            .arg(SocketAddr::new(host, self.options.rpc_port.unwrap_or(0)).to_string());
        if let Some(voters) = &self.options.voters {
            command.arg("--voters").arg(voters);
        }
        // `--set` splits at `;` (WEIR_SET's separator), which JAAS configs end with: those
        // settings go in a properties file instead.
        let (in_file, on_line): (Vec<_>, Vec<_>) =
            self.options.sets.iter().partition(|(_, v)| v.contains(';'));
        if !in_file.is_empty() {
            let path = self.stderr_path.with_file_name("settings.properties");
            let text: String = in_file.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            std::fs::write(&path, text).expect("writing the broker's settings file");
            command.arg("--config").arg(path);
        }
        for (key, value) in on_line {
            command.arg("--set").arg(format!("{key}={value}"));
        }
        // The broker reads every flag from a WEIR_* variable too, and its log filter from
        // WEIR_LOG or RUST_LOG; the test's flags and `env` must be the only configuration.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("WEIR_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        // For debugging a test: WEIR_TEST_BROKER_LOG is every broker's WEIR_LOG.
        if let Some(filter) = std::env::var_os("WEIR_TEST_BROKER_LOG") {
            command.env("WEIR_LOG", filter);
        }
        command.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        command.env("NO_COLOR", "1");
        if std::env::var_os("RUST_BACKTRACE").is_none() {
            command.env("RUST_BACKTRACE", "1");
        }

        let mut stderr_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("opening the broker stderr log");
        writeln!(
            stderr_file,
            "===== weir-tests: start #{} of {command:?} =====",
            self.starts
        )
        .unwrap();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file.try_clone().unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {:?}: {e}", command.get_program()));

        // Read stdout on a thread for the whole life of the process, so the broker never
        // blocks on a full pipe; the ready line is handed over, other lines go to the log.
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        let mut stdout_log = stderr_file;
        self.stdout_reader = Some(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with(READY_PREFIX) {
                    let _ = ready_tx.send(line.clone());
                }
                let _ = writeln!(stdout_log, "[stdout] {line}");
            }
        }));
        self.child = Some(child);
        self.ready_rx = Some(ready_rx);
    }

    fn await_ready(&mut self) {
        let ready_rx = self.ready_rx.take().expect("the broker was started");
        let deadline = Instant::now() + START_TIMEOUT;
        let line = loop {
            match ready_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => break line,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.take().unwrap().wait().unwrap();
                    panic!("broker closed stdout without printing its ready line ({status})");
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("broker exited with {status} before it was ready");
            }
            if Instant::now() >= deadline {
                panic!("broker printed no ready line within {START_TIMEOUT:?}");
            }
        };
        let (kafka, metrics) = parse_ready_line(&line)
            .unwrap_or_else(|| panic!("malformed ready line on stdout: {line:?}"));
        self.listener_addrs = line
            .split_whitespace()
            .filter_map(|field| {
                let (name, addr) = field.strip_prefix("listener.")?.split_once('=')?;
                Some((name.to_string(), addr.parse().ok()?))
            })
            .collect();
        if let Some(previous) = self.kafka_addr {
            assert_eq!(
                kafka.port(),
                previous.port(),
                "restarted broker did not bind the same Kafka port"
            );
        }
        self.kafka_addr = Some(kafka);
        self.metrics_addr = Some(metrics);
    }

    fn join_stdout_reader(&mut self) {
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
    }

    fn dump_stderr(&self) {
        let Ok(mut file) = File::open(&self.stderr_path) else {
            return;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let start = len.saturating_sub(DUMP_TAIL_BYTES);
        let _ = file.seek(SeekFrom::Start(start));
        let mut tail = Vec::new();
        let _ = file.read_to_end(&mut tail);
        eprintln!(
            "----- weir-broker stderr ({} of {len} bytes, {}) -----\n{}\n----- end of weir-broker stderr -----",
            tail.len(),
            self.stderr_path.display(),
            String::from_utf8_lossy(&tail)
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
        self.join_stdout_reader();
        if std::thread::panicking() {
            self.dump_stderr();
            if let Some(scratch) = self.scratch.take() {
                let kept = scratch.keep();
                eprintln!("kept broker data and logs in {}", kept.display());
            }
        }
    }
}

/// Parses `weir-broker ready kafka=HOST:PORT metrics=HOST:PORT`.
fn parse_ready_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let mut kafka = None;
    let mut metrics = None;
    for field in line.strip_prefix(READY_PREFIX)?.split_whitespace() {
        if let Some(addr) = field.strip_prefix("kafka=") {
            kafka = addr.parse().ok();
        } else if let Some(addr) = field.strip_prefix("metrics=") {
            metrics = addr.parse().ok();
        }
    }
    Some((kafka?, metrics?))
}

/// The `weir-broker` binary: `$WEIR_BROKER_BIN`, else the one next to this test's own target
/// directory (which honours `CARGO_TARGET_DIR` and the profile), else
/// `$CARGO_TARGET_DIR/debug` or `<workspace>/target/debug`.
pub fn broker_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("WEIR_BROKER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "WEIR_BROKER_BIN={} does not exist",
            path.display()
        );
        return path;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf();
    let mut candidates = Vec::new();
    // Test binaries live in <target>/<profile>/deps/.
    if let Some(profile_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
    {
        candidates.push(profile_dir.join("weir-broker"));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir: OsString| workspace.join(dir))
        .unwrap_or_else(|| workspace.join("target"));
    candidates.push(target_dir.join("debug").join("weir-broker"));
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "weir-broker binary not found (looked at {candidates:?}): \
                 run `cargo build -p weir-broker` first, or set WEIR_BROKER_BIN"
            )
        })
}
