//! Runs the operator's broker pods as real `weir-broker` processes for the
//! [`crate::kubelet`] stand-in, doing what a node would do for them:
//!
//! - **network**: every pod gets its own loopback address, `127.<net>.<ordinal>.1` (its pod
//!   IP): binding `0.0.0.0` inside a pod means binding that address, as in a pod's network
//!   namespace;
//! - **cluster DNS**: pod DNS names (`<pod>.<service>.<namespace>.svc.cluster.local`) in the
//!   command line resolve to those addresses (the broker gets the address in their place);
//! - **downward API**: `$(POD_NAME)`, `$(POD_NAMESPACE)`, `$(POD_IP)` are expanded as the kubelet
//!   expands container arguments;
//! - **volumes**: the `data` claim is a directory per claim name (it survives the pod, like a
//!   PersistentVolume), the ConfigMap volume is written from the ConfigMap at start;
//! - **termination**: SIGTERM, then SIGKILL after the grace period.
//!
//! The operator reaches the brokers through the same addresses, with
//! `--broker-host-template 127.<net>.{ordinal}.1`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{Api, Client};

use crate::kubelet::{BoxError, PodRuntime, Readiness, RunningPod};

/// What the runtime saw of a broker when it stopped it.
#[derive(Debug, Clone)]
pub struct StoppedBroker {
    pub pod: String,
    /// Partition directories (`<topic>-<partition>`) in its data directory just before the stop.
    pub partitions: Vec<String>,
}

/// The runtime: one `weir-broker` per pod.
pub struct WeirPods {
    client: Client,
    namespace: String,
    net: u8,
    root: PathBuf,
    handle: tokio::runtime::Handle,
    running: Mutex<HashMap<String, Child>>,
    stopped: Mutex<Vec<StoppedBroker>>,
}

impl std::fmt::Debug for WeirPods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeirPods")
            .field("namespace", &self.namespace)
            .field("net", &self.net)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl WeirPods {
    /// `net` picks the pods' addresses (`127.<net>.<ordinal>.1`); use a different one per test
    /// that runs at the same time. Must be called inside a tokio runtime.
    pub fn new(client: Client, namespace: &str, net: u8, root: &Path) -> WeirPods {
        WeirPods {
            client,
            namespace: namespace.to_string(),
            net,
            root: root.to_path_buf(),
            handle: tokio::runtime::Handle::current(),
            running: Mutex::new(HashMap::new()),
            stopped: Mutex::new(Vec::new()),
        }
    }

    /// The address of pod `ordinal`.
    pub fn pod_ip(&self, ordinal: i32) -> String {
        format!("127.{}.{ordinal}.1", self.net)
    }

    /// The operator's `--broker-host-template` for these pods.
    pub fn host_template(&self) -> String {
        format!("127.{}.{{ordinal}}.1", self.net)
    }

    /// The directory standing in for a PersistentVolumeClaim.
    pub fn claim_dir(&self, claim: &str) -> PathBuf {
        self.root.join("claims").join(claim)
    }

    /// Every broker stopped so far, in order.
    pub fn stopped(&self) -> Vec<StoppedBroker> {
        self.stopped.lock().unwrap().clone()
    }

    /// Pods whose broker process runs now.
    pub fn running_pods(&self) -> Vec<String> {
        let mut pods: Vec<String> = self.running.lock().unwrap().keys().cloned().collect();
        pods.sort();
        pods
    }

    /// The tail of a pod's broker log (for failure messages).
    pub fn log_tail(&self, pod: &str) -> String {
        let text = std::fs::read_to_string(self.root.join("pods").join(pod).join("broker.log"))
            .unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        crate::operator::tail(&text, start).to_string()
    }
}

fn ordinal_of(pod: &str) -> Option<i32> {
    pod.rsplit_once('-')?.1.parse().ok()
}

/// Expands `$(VAR)` references from `env`, as the kubelet does in `args`.
fn expand(arg: &str, env: &HashMap<String, String>) -> String {
    let mut out = arg.to_string();
    for (name, value) in env {
        out = out.replace(&format!("$({name})"), value);
    }
    out
}

impl WeirPods {
    fn pod_partitions(data_dir: &Path) -> Vec<String> {
        let mut dirs: Vec<String> = std::fs::read_dir(data_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|name| ordinal_of(name).is_some() && !name.starts_with("__"))
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    }

    fn launch(&self, pod: &Pod) -> Result<RunningPod, BoxError> {
        let name = pod.metadata.name.clone().ok_or("pod without a name")?;
        let ordinal = ordinal_of(&name).ok_or("pod name without an ordinal")?;
        let ip = self.pod_ip(ordinal);
        let spec = pod.spec.as_ref().ok_or("pod without a spec")?;
        let container = spec
            .containers
            .iter()
            .find(|c| c.name == "broker")
            .ok_or("no broker container")?;
        let subdomain = spec.subdomain.clone().unwrap_or_default();
        let cluster = name
            .rsplit_once('-')
            .map(|(c, _)| c.to_string())
            .unwrap_or_default();
        let env = HashMap::from([
            ("POD_NAME".to_string(), name.clone()),
            ("POD_NAMESPACE".to_string(), self.namespace.clone()),
            ("POD_IP".to_string(), ip.clone()),
        ]);
        let pod_dir = self.root.join("pods").join(&name);
        std::fs::create_dir_all(&pod_dir)?;
        // Volumes: the data claim and the ConfigMap, by mount path.
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = spec.volumes.iter().flatten().find(|v| v.name == mount.name);
            let local = if let Some(cm) = volume.and_then(|v| v.config_map.as_ref()) {
                let dir = pod_dir.join(format!("volume-{}", mount.name));
                std::fs::create_dir_all(&dir)?;
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
                let map = self.handle.block_on(api.get(&cm.name))?;
                for (file, text) in map.data.unwrap_or_default() {
                    std::fs::write(dir.join(file), text)?;
                }
                dir
            } else if volume.is_some() {
                let dir = pod_dir.join(format!("volume-{}", mount.name));
                std::fs::create_dir_all(&dir)?;
                dir
            } else {
                // A claim from the volumeClaimTemplates: `<template>-<pod>`.
                let dir = self.claim_dir(&format!("{}-{name}", mount.name));
                std::fs::create_dir_all(&dir)?;
                dir
            };
            mounts.push((mount.mount_path.clone(), local));
        }
        mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        let args: Vec<String> = container
            .args
            .iter()
            .flatten()
            .map(|arg| {
                let mut arg = expand(arg, &env).replace("0.0.0.0:", &format!("{ip}:"));
                for o in 0..64 {
                    let dns = format!(
                        "{cluster}-{o}.{subdomain}.{}.svc.cluster.local",
                        self.namespace
                    );
                    arg = arg.replace(&dns, &self.pod_ip(o));
                }
                if let Some((flag, value)) = arg.split_once('=') {
                    for (path, local) in &mounts {
                        if let Some(rest) = value.strip_prefix(path.as_str()) {
                            return format!("{flag}={}{rest}", local.display());
                        }
                    }
                }
                arg
            })
            .collect();
        let log = std::fs::File::create(pod_dir.join("broker.log"))?;
        let child = Command::new(crate::broker::broker_bin())
            .args(&args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.running.lock().unwrap().insert(name.clone(), child);
        let metrics_port = container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("metrics"))
            .map(|p| p.container_port)
            .ok_or("no metrics port")?;
        Ok(RunningPod {
            readiness: Readiness::HttpGet {
                addr: format!("{ip}:{metrics_port}").parse()?,
                path: "/readyz".into(),
            },
            pod_ip: Some(ip),
        })
    }
}

impl PodRuntime for WeirPods {
    fn start(&self, pod: &Pod) -> Result<RunningPod, BoxError> {
        self.launch(pod)
    }

    fn stop(&self, pod: &Pod) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(mut child) = self.running.lock().unwrap().remove(&name) else {
            return;
        };
        let data = self.claim_dir(&format!("data-{name}")).join("data");
        self.stopped.lock().unwrap().push(StoppedBroker {
            pod: name.clone(),
            partitions: Self::pod_partitions(&data),
        });
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(grace.max(1) as u64);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for WeirPods {
    fn drop(&mut self) {
        for (_, mut child) in self.running.lock().unwrap().drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
