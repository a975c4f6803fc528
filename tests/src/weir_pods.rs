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
//! - **environment**: variables with a value or a ConfigMap key (`configMapKeyRef`, read when
//!   the pod starts, as the kubelet reads it when it starts a container) are set for the broker,
//!   pod DNS names in them resolved as in the command line;
//! - **volumes**: the `data` claim is a directory per claim name (it survives the pod, like a
//!   PersistentVolume), the ConfigMap volume is written from the ConfigMap at start (mount
//!   paths in it mapped to the local directories, as they would resolve inside the pod),
//!   Secret volumes are written at start and refreshed every second while the pod runs, each
//!   changed file replaced atomically (as the kubelet's atomic writer swaps a Secret volume);
//! - **termination**: SIGTERM, then SIGKILL after the grace period;
//! - **faults** a test asks for: [`WeirPods::kill`] (SIGKILL, the pod stays and turns unready,
//!   as a crashed container that is not restarted) and [`WeirPods::replace_volume`] (the claim's
//!   directory is emptied before the pod's next start, as a lost PersistentVolume replaced by
//!   a new empty one).
//!
//! The operator reaches the brokers through the same addresses, with
//! `--broker-host-template 127.<net>.{ordinal}.1`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
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
    /// Claims to empty before their pod's next start.
    replace_volumes: Mutex<HashSet<String>>,
    /// Per running pod: set to stop refreshing its Secret volumes.
    secret_refreshers: Mutex<HashMap<String, Arc<AtomicBool>>>,
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
            replace_volumes: Mutex::new(HashSet::new()),
            secret_refreshers: Mutex::new(HashMap::new()),
        }
    }

    /// SIGKILLs the broker of `pod` and waits for it to exit. The pod stays (the stand-in does
    /// not restart containers): it turns unready until a test deletes it.
    pub fn kill(&self, pod: &str) {
        let mut running = self.running.lock().unwrap();
        let child = running
            .get_mut(pod)
            .unwrap_or_else(|| panic!("{pod} runs no broker"));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The `data` volume of `pod` is replaced by a new, empty one at the pod's next start.
    pub fn replace_volume(&self, pod: &str) {
        self.replace_volumes
            .lock()
            .unwrap()
            .insert(format!("data-{pod}"));
    }

    /// The `directory.id` in the `meta.properties` of `pod`'s data volume, if it has one.
    pub fn directory_id(&self, pod: &str) -> Option<String> {
        let text = std::fs::read_to_string(
            self.claim_dir(&format!("data-{pod}"))
                .join("data")
                .join("meta.properties"),
        )
        .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("directory.id="))
            .map(|d| d.trim().to_string())
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

/// `text` with every mount path replaced by its local directory (longest first).
fn local_paths(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = text.to_string();
    for (path, local) in mounts {
        out = out.replace(&format!("{path}/"), &format!("{}/", local.display()));
    }
    out
}

/// Writes each key of `secret` into `dir`, replacing changed files atomically (write beside,
/// then rename), so a reader sees the old file or the new one, never half of one.
fn write_secret(secret: &Secret, dir: &Path) -> std::io::Result<()> {
    for (key, value) in secret.data.iter().flatten() {
        let path = dir.join(key);
        if std::fs::read(&path).ok().as_deref() == Some(value.0.as_slice()) {
            continue;
        }
        let staged = dir.join(format!(".{key}.tmp"));
        std::fs::write(&staged, &value.0)?;
        std::fs::rename(&staged, &path)?;
    }
    Ok(())
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

    /// The directory of a claim, emptied first if a test replaced its volume.
    fn claim_volume(&self, claim: &str) -> Result<PathBuf, BoxError> {
        let dir = self.claim_dir(claim);
        if self.replace_volumes.lock().unwrap().remove(claim) && dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
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
        // Volumes: the data claim, the ConfigMap and Secrets, by mount path.
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        let mut config_maps: Vec<(String, PathBuf)> = Vec::new();
        let mut secrets: Vec<(String, PathBuf)> = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = spec.volumes.iter().flatten().find(|v| v.name == mount.name);
            let local = if let Some(claim) = volume.and_then(|v| v.persistent_volume_claim.as_ref())
            {
                // The StatefulSet controller names each pod's claim (`<template>-<pod>`).
                self.claim_volume(&claim.claim_name)?
            } else if let Some(volume) = volume {
                let dir = pod_dir.join(format!("volume-{}", mount.name));
                std::fs::create_dir_all(&dir)?;
                if let Some(cm) = &volume.config_map {
                    config_maps.push((cm.name.clone(), dir.clone()));
                }
                if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                    secrets.push((name, dir.clone()));
                }
                dir
            } else {
                // A claim from the volumeClaimTemplates: `<template>-<pod>`.
                self.claim_volume(&format!("{}-{name}", mount.name))?
            };
            mounts.push((mount.mount_path.clone(), local));
        }
        mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        for (cm, dir) in &config_maps {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            let map = self.handle.block_on(api.get(cm))?;
            for (file, text) in map.data.unwrap_or_default() {
                std::fs::write(dir.join(file), local_paths(&text, &mounts))?;
            }
        }
        let secrets_api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        for (secret, dir) in &secrets {
            let found = self.handle.block_on(secrets_api.get(secret))?;
            write_secret(&found, dir)?;
        }
        if !secrets.is_empty() {
            let stop = Arc::new(AtomicBool::new(false));
            self.secret_refreshers
                .lock()
                .unwrap()
                .insert(name.clone(), stop.clone());
            let handle = self.handle.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // The kubelet's refresh of mounted Secrets is periodic too (this is its
                    // period here, not a wait for a condition).
                    std::thread::sleep(Duration::from_secs(1));
                    for (secret, dir) in &secrets {
                        if let Ok(Some(found)) = handle.block_on(secrets_api.get_opt(secret)) {
                            let _ = write_secret(&found, dir);
                        }
                    }
                }
            });
        }
        let resolve = |text: String| {
            let mut text = text;
            for o in 0..64 {
                let dns = format!(
                    "{cluster}-{o}.{subdomain}.{}.svc.cluster.local",
                    self.namespace
                );
                text = text.replace(&dns, &self.pod_ip(o));
            }
            text
        };
        let mut variables: Vec<(String, String)> = Vec::new();
        for var in container.env.iter().flatten() {
            let value = if let Some(value) = &var.value {
                value.clone()
            } else if let Some(key) = var
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
            {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
                let map = self.handle.block_on(api.get(&key.name))?;
                map.data
                    .unwrap_or_default()
                    .remove(&key.key)
                    .ok_or_else(|| format!("ConfigMap {} has no key {}", key.name, key.key))?
            } else {
                continue;
            };
            variables.push((var.name.clone(), resolve(value)));
        }
        let args: Vec<String> = container
            .args
            .iter()
            .flatten()
            .map(|arg| {
                let arg = resolve(expand(arg, &env).replace("0.0.0.0:", &format!("{ip}:")));
                local_paths(&arg, &mounts)
            })
            .collect();
        let log = std::fs::File::create(pod_dir.join("broker.log"))?;
        let child = Command::new(crate::broker::broker_bin())
            .args(&args)
            .envs(variables)
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
        if let Some(stop) = self.secret_refreshers.lock().unwrap().remove(&name) {
            stop.store(true, Ordering::Relaxed);
        }
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
        for (_, stop) in self.secret_refreshers.lock().unwrap().drain() {
            stop.store(true, Ordering::Relaxed);
        }
        for (_, mut child) in self.running.lock().unwrap().drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
