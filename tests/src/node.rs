//! A real one-node Kubernetes for the real-node test tier: [`RealNode::start`] runs
//! `scripts/kube-node.sh up` in a temporary directory (kubelet, containerd, kube-proxy, CoreDNS,
//! a local registry, local PersistentVolumes and the control plane, all on this machine), and
//! dropping the [`RealNode`] runs `scripts/kube-node.sh down`, which stops every process and
//! removes what `up` created on the host. The script is the one place that knows the
//! components' flags; this module only reads the environment file `up` writes.
//!
//! The node uses fixed addresses (10.200.0.1, 10.96.0.0/16, 10.244.0.0/24) and ports, so one
//! runs per machine at a time: [`RealNode::start`] takes an exclusive lock on
//! [`LOCK_FILE`] for the node's lifetime, which serializes tests in this process and in others.
//!
//! When the test panics, or with `WEIR_TEST_KEEP_DIRS` set, the directory (logs of every
//! component under `logs/`, certificates, containerd's state) is kept and its path printed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kube::Client;
use nix::fcntl::{Flock, FlockArg};
use tempfile::TempDir;

use crate::kube::kubeconfig;

/// Held (exclusive `flock`) by the process that owns the machine's one test node.
pub const LOCK_FILE: &str = "/run/weir-kube-node.lock";

/// Set by `scripts/test.sh`: the real-node tests fail instead of skipping when the node's tools
/// are not installed.
pub const REQUIRE_ENV: &str = "WEIR_REQUIRE_KUBE_NODE";

/// A running node. Invariant: between [`RealNode::start`]'s return and drop, the node was
/// Ready, CoreDNS answered, and this process holds [`LOCK_FILE`].
pub struct RealNode {
    /// `None` once kept after a failure.
    dir: Option<TempDir>,
    dir_path: PathBuf,
    env: HashMap<String, String>,
    client: Client,
    /// Released after `down` (drop order: fields drop after `Drop::drop` ran).
    _lock: Flock<File>,
}

impl RealNode {
    /// Whether this machine can run a node. `Err` says what is missing; it panics instead when
    /// [`REQUIRE_ENV`] or `CI` is set, so CI never skips the real-node tier.
    pub fn available() -> Result<(), String> {
        let output = script()
            .arg("installed")
            .output()
            .unwrap_or_else(|e| panic!("running kube-node.sh installed: {e}"));
        if output.status.success() {
            return Ok(());
        }
        let missing = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let required = std::env::var_os(REQUIRE_ENV).is_some() || std::env::var_os("CI").is_some();
        assert!(!required, "{missing}");
        Err(missing)
    }

    /// Brings a node up (a minute or two; the script waits for each component with a
    /// deadline). Panics with the script's output when `up` fails, after taking the node
    /// down again and keeping its directory.
    pub async fn start() -> RealNode {
        let lock = tokio::task::spawn_blocking(lock_machine)
            .await
            .unwrap_or_else(|e| panic!("locking {LOCK_FILE}: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("weir-node-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
        let dir_path = dir.path().to_path_buf();

        let started = Instant::now();
        let up_dir = dir_path.clone();
        let output = tokio::task::spawn_blocking(move || script().arg("up").arg(&up_dir).output())
            .await
            .unwrap_or_else(|e| panic!("running kube-node.sh up: {e}"))
            .unwrap_or_else(|e| panic!("running kube-node.sh up: {e}"));
        let up_log = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            let down_ok = run_down(&dir_path);
            let kept = dir.keep();
            panic!(
                "kube-node.sh up failed ({}); down {}; directory kept in {}:\n{up_log}",
                output.status,
                if down_ok { "succeeded" } else { "FAILED" },
                kept.display()
            );
        }
        eprintln!("test node up in {:.0?}", started.elapsed());

        // Should either of these panic, the next `up` takes this node down (the script
        // records the node it brought up).
        let env = read_env(&dir_path.join("env"));
        let kubeconfig_path = env
            .get("KUBECONFIG")
            .unwrap_or_else(|| panic!("no KUBECONFIG in the node's environment file"));
        let client = kubeconfig::client(kubeconfig::read(Path::new(kubeconfig_path))).await;
        RealNode {
            dir: Some(dir),
            dir_path,
            env,
            client,
            _lock: lock,
        }
    }

    /// A client authenticated as the admin (`system:masters`).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The admin kubeconfig (certificates embedded), for `kubectl`, `helm` or the operator.
    pub fn kubeconfig_path(&self) -> PathBuf {
        PathBuf::from(self.var("KUBECONFIG"))
    }

    /// The local registry, `127.0.0.1:PORT`: the only place the node pulls images from.
    pub fn registry(&self) -> &str {
        self.var("WEIR_NODE_REGISTRY")
    }

    /// The node's name (`weir-node-0`).
    pub fn node_name(&self) -> &str {
        self.var("WEIR_NODE_NAME")
    }

    /// The node's address, where the apiserver, kubelet and CoreDNS listen.
    pub fn node_ip(&self) -> &str {
        self.var("WEIR_NODE_IP")
    }

    /// The `kubectl` built with the node (the same Kubernetes version).
    pub fn kubectl(&self) -> PathBuf {
        PathBuf::from(self.var("WEIR_NODE_KUBECTL"))
    }

    /// The node's directory: logs in `logs/`, the local volumes in `pv/`.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// What a failed wait on the node needs said: the node's conditions (disk or memory
    /// pressure), every pod with its phase, the namespace's recent events, the free space
    /// under the node's directory, and the last lines of the containers' logs in
    /// `namespace`. Best effort: a command that fails adds its error instead.
    pub fn diagnose(&self, namespace: &str) -> String {
        let kubectl = |args: &[&str]| -> String {
            match Command::new(self.kubectl())
                .env("KUBECONFIG", self.kubeconfig_path())
                .args(args)
                .output()
            {
                Ok(o) => format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => format!("kubectl {args:?}: {e}\n"),
            }
        };
        let conditions = kubectl(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*].status.conditions[*]}{.type}={.status} {end}",
        ]);
        let pods = kubectl(&["get", "pods", "-A", "-o", "wide"]);
        let events = kubectl(&["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"]);
        let events: Vec<&str> = events.lines().collect();
        let events = events[events.len().saturating_sub(25)..].join("\n");
        let logs = kubectl(&[
            "logs",
            "-n",
            namespace,
            "--all-containers",
            "--prefix",
            "--tail=15",
            "-l",
            "app.kubernetes.io/name",
        ]);
        let df = Command::new("df")
            .args(["-h", "--output=avail,pcent"])
            .arg(&self.dir_path)
            .output()
            .map(|o| {
                let out = String::from_utf8_lossy(&o.stdout).into_owned();
                out.lines().last().unwrap_or_default().trim().to_string()
            })
            .unwrap_or_else(|e| format!("df: {e}"));
        // The first line says the most: a node under pressure, a full disk.
        format!(
            "node: {}; free under the node's directory (available, used): {df}\npods:\n{pods}\nlast events in {namespace}:\n{events}\n\nlogs in {namespace}:\n{logs}",
            conditions.trim()
        )
    }

    /// A value of the environment file `up` wrote (see `scripts/kube-node.sh`).
    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not in the node's environment file"))
    }

    /// Pushes a scratch image holding the static `binaries` (the first is the entrypoint,
    /// run as user 65534) to the node's registry as `name_tag`; returns the reference pods
    /// use (`REGISTRY/NAME:TAG`).
    pub fn push_binary_image(&self, name_tag: &str, binaries: &[&Path]) -> String {
        let output = script()
            .arg("push-binary")
            .arg(&self.dir_path)
            .arg(name_tag)
            .args(binaries)
            .output()
            .unwrap_or_else(|e| panic!("running kube-node.sh push-binary: {e}"));
        assert!(
            output.status.success(),
            "kube-node.sh push-binary {name_tag} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Pushes the image `layout_ref` (`PATH:TAG` of an OCI layout, as the image build writes)
    /// to the node's registry as `name_tag`; returns the reference pods use.
    pub fn push_oci_image(&self, layout_ref: &str, name_tag: &str) -> String {
        let output = script()
            .arg("push-oci")
            .arg(&self.dir_path)
            .arg(layout_ref)
            .arg(name_tag)
            .output()
            .unwrap_or_else(|e| panic!("running kube-node.sh push-oci: {e}"));
        assert!(
            output.status.success(),
            "kube-node.sh push-oci {layout_ref} {name_tag} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// The static probe binary for pods (`weir-node-tool`, see tests/kube-node-tools).
    pub fn node_tool() -> PathBuf {
        let output = script()
            .arg("tools-dir")
            .output()
            .unwrap_or_else(|e| panic!("running kube-node.sh tools-dir: {e}"));
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join("weir-node-tool")
    }
}

impl std::fmt::Debug for RealNode {
    // By hand: kube::Client has no Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealNode")
            .field("dir", &self.dir_path)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        let down_ok = run_down(&self.dir_path);
        // A failed test (or a failed `down`: something may still be mounted there) keeps the
        // directory; WEIR_TEST_KEEP_DIRS=1 keeps it after a pass too.
        if std::thread::panicking() || !down_ok || std::env::var_os("WEIR_TEST_KEEP_DIRS").is_some()
        {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!(
                    "kept the test node's logs, certificates and state in {}",
                    kept.display()
                );
            }
        }
        if !down_ok && !std::thread::panicking() {
            panic!("kube-node.sh down {} failed", self.dir_path.display());
        }
    }
}

fn script() -> Command {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("kube-node.sh");
    let mut command = Command::new("bash");
    command.arg(path);
    command
}

/// Runs `down`, its output on stderr (the test's output); true when it succeeded.
fn run_down(dir: &Path) -> bool {
    match script().arg("down").arg(dir).status() {
        Ok(status) => status.success(),
        Err(e) => {
            eprintln!("running kube-node.sh down {}: {e}", dir.display());
            false
        }
    }
}

fn lock_machine() -> Flock<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .unwrap_or_else(|e| panic!("opening {LOCK_FILE}: {e}"));
    Flock::lock(file, FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("locking {LOCK_FILE}: {e}"))
}

/// `KEY=value` lines.
fn read_env(path: &Path) -> HashMap<String, String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}
