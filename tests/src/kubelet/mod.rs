//! A kubelet stand-in for the test control plane ([`crate::kube::ControlPlane`] has no
//! nodes): it runs a namespace's pods as whatever the test supplies — typically real
//! `weir-broker` processes — and reports them to the apiserver the way a kubelet does, so
//! StatefulSets, Services and the operator see pods that start, become ready and go away.
//!
//! [`Kubelet::start`] registers the fake node [`NODE_NAME`] ([`node`]) and watches the pods of
//! one namespace. For each new pod it
//! 1. binds it to the node through the `binding` subresource when `spec.nodeName` is unset
//!    (there is no scheduler);
//! 2. calls [`PodRuntime::start`], which returns how readiness is known;
//! 3. patches the pod's status to Running on loopback ([`status`]) and, for an HTTP readiness
//!    probe, keeps `Ready` in step with it ([`probe`]).
//!
//! When a pod gets a deletion timestamp it calls [`PodRuntime::stop`] and then deletes the pod
//! for good (grace period 0, UID precondition), which is how a kubelet finishes a graceful
//! deletion: without that a bound pod stays Terminating forever and a StatefulSet never
//! recreates it. A pod that vanishes without that (force deletion) is stopped as well.
//!
//! Pods are handled one event at a time, in order; `start` and `stop` run on a blocking
//! thread and may take as long as a broker needs to start. Not modelled: container restarts
//! (a workload that dies is just reported unready by its probe), init containers, volumes
//! (PVCs stay Pending: there is no provisioner, and nothing here waits for them), Service
//! endpoints (the apiserver refuses the loopback pod IP in EndpointSlices and Endpoints).

pub mod node;
pub mod probe;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinHandle;

pub use node::{NODE_NAME, ZONE};
pub use status::POD_IP;

/// What a start or stop callback can fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What runs the pods: the test's part of the kubelet. Both methods run on a blocking thread.
pub trait PodRuntime: Send + Sync + 'static {
    /// Starts the workload of `pod` (as the watch delivered it, possibly before binding).
    /// An error is reported in the pod's container statuses and the pod is not retried.
    fn start(&self, pod: &Pod) -> Result<RunningPod, BoxError>;

    /// Stops what [`PodRuntime::start`] started for this pod (same name and UID); called once
    /// per successful start, before the pod is deleted for good.
    fn stop(&self, pod: &Pod);
}

/// What a started pod reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningPod {
    pub readiness: Readiness,
    /// The pod's IP (its workload's own loopback address); [`POD_IP`] when `None`.
    pub pod_ip: Option<String>,
}

/// How the stand-in learns whether a running pod is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Ready as soon as it runs (a pod without a readiness probe).
    Immediate,
    /// Ready while `GET http://addr/path` answers 2xx or 3xx (an `httpGet` readinessProbe).
    HttpGet { addr: SocketAddr, path: String },
}

/// The running stand-in. Dropping it stops watching, probing and heartbeating; the workloads
/// belong to the [`PodRuntime`], which the test still holds.
#[derive(Debug)]
pub struct Kubelet {
    tasks: Vec<JoinHandle<()>>,
}

impl Kubelet {
    /// Registers the node and starts running the pods of `namespace` with `runtime`. Panics
    /// when the node cannot be registered (the client lacks the rights, or no apiserver).
    pub async fn start(client: Client, namespace: &str, runtime: Arc<dyn PodRuntime>) -> Kubelet {
        node::register(&client)
            .await
            .unwrap_or_else(|e| panic!("registering node {NODE_NAME}: {e}"));
        let heartbeat = tokio::spawn({
            let client = client.clone();
            async move {
                loop {
                    tokio::time::sleep(node::LEASE_RENEW_INTERVAL).await;
                    if let Err(e) = node::renew_lease(&client).await {
                        eprintln!("kubelet stand-in: renewing the lease of {NODE_NAME}: {e}");
                    }
                }
            }
        });
        let pods = Api::<Pod>::namespaced(client, namespace);
        let worker = PodWorker {
            pods: pods.clone(),
            runtime,
            running: HashMap::new(),
            listed: None,
        };
        let watch = tokio::spawn(worker.run());
        Kubelet {
            tasks: vec![heartbeat, watch],
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A pod the stand-in started (or tried to).
struct Tracked {
    /// The pod as last seen, handed to `stop`.
    pod: Pod,
    /// Whether `start` succeeded, so `stop` is owed.
    started: bool,
    prober: Option<JoinHandle<()>>,
}

impl Drop for Tracked {
    // Also when the whole stand-in is dropped: no prober outlives it.
    fn drop(&mut self) {
        if let Some(prober) = self.prober.take() {
            prober.abort();
        }
    }
}

/// The watch loop's state. Invariant: `running` holds exactly the pods (by UID) that were
/// started or failed to start and have not been stopped yet.
struct PodWorker {
    pods: Api<Pod>,
    runtime: Arc<dyn PodRuntime>,
    running: HashMap<String, Tracked>,
    /// UIDs seen during a re-list (between `Init` and `InitDone`).
    listed: Option<HashSet<String>>,
}

impl PodWorker {
    async fn run(mut self) {
        let mut events = watcher::watcher(self.pods.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Init) => self.listed = Some(HashSet::new()),
                Ok(Event::InitApply(pod)) => {
                    if let Some(listed) = self.listed.as_mut() {
                        listed.insert(uid(&pod));
                    }
                    self.apply(pod).await;
                }
                Ok(Event::InitDone) => {
                    // Pods that went away while the watch was down.
                    let listed = self.listed.take().unwrap_or_default();
                    let gone: Vec<String> = self
                        .running
                        .keys()
                        .filter(|uid| !listed.contains(*uid))
                        .cloned()
                        .collect();
                    for uid in gone {
                        self.stop(&uid).await;
                    }
                }
                Ok(Event::Apply(pod)) => self.apply(pod).await,
                Ok(Event::Delete(pod)) => self.stop(&uid(&pod)).await,
                Err(e) => eprintln!("kubelet stand-in: watching pods: {e}"),
            }
        }
    }

    async fn apply(&mut self, pod: Pod) {
        let uid = uid(&pod);
        if pod.metadata.deletion_timestamp.is_some() {
            self.stop(&uid).await;
            self.finish_deletion(&pod).await;
        } else if let Some(tracked) = self.running.get_mut(&uid) {
            tracked.pod = pod;
        } else if !is_terminal(&pod) {
            self.start(pod).await;
        }
    }

    async fn start(&mut self, pod: Pod) {
        let name = pod.name_any();
        let uid = uid(&pod);
        if pod
            .spec
            .as_ref()
            .and_then(|spec| spec.node_name.as_ref())
            .is_none()
        {
            if let Err(e) = self.bind(&name, &uid).await {
                eprintln!("kubelet stand-in: binding pod {name} to {NODE_NAME}: {e}");
                return;
            }
        }
        let started_at = Timestamp::now();
        let runtime = self.runtime.clone();
        let for_start = pod.clone();
        let outcome = tokio::task::spawn_blocking(move || runtime.start(&for_start))
            .await
            .unwrap_or_else(|e| Err(format!("the start callback panicked: {e}").into()));
        let (patch, probe) = match &outcome {
            Ok(RunningPod { readiness, pod_ip }) => {
                let ready = *readiness == Readiness::Immediate;
                let ip = pod_ip.clone().unwrap_or_else(|| POD_IP.to_string());
                let probe = match readiness {
                    Readiness::Immediate => None,
                    Readiness::HttpGet { addr, path } => Some((*addr, path.clone(), ip.clone())),
                };
                (status::running(&pod, &ip, started_at, ready), probe)
            }
            Err(e) => {
                eprintln!("kubelet stand-in: starting pod {name}: {e}");
                (status::start_failed(&pod, &e.to_string()), None)
            }
        };
        if let Err(e) = self
            .pods
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            eprintln!("kubelet stand-in: reporting the status of pod {name}: {e}");
        }
        // The prober starts after the first status landed, so its updates come after it.
        let prober = probe.map(|(addr, path, ip)| {
            tokio::spawn(probe::run(
                self.pods.clone(),
                pod.clone(),
                ip,
                started_at,
                false,
                addr,
                path,
            ))
        });
        self.running.insert(
            uid,
            Tracked {
                pod,
                started: outcome.is_ok(),
                prober,
            },
        );
    }

    /// What the scheduler would do: `POST pods/<name>/binding` naming the node.
    async fn bind(&self, name: &str, uid: &str) -> Result<(), kube::Error> {
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                uid: Some(uid.to_string()),
                ..ObjectMeta::default()
            },
            target: ObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("Node".to_string()),
                name: Some(NODE_NAME.to_string()),
                ..ObjectReference::default()
            },
        };
        let _: serde_json::Value = self
            .pods
            .create_subresource("binding", name, &PostParams::default(), &binding)
            .await?;
        Ok(())
    }

    /// Stops the pod with this UID if it was started (no-op otherwise).
    async fn stop(&mut self, uid: &str) {
        let Some(mut tracked) = self.running.remove(uid) else {
            return;
        };
        if let Some(prober) = tracked.prober.take() {
            prober.abort();
        }
        if tracked.started {
            let runtime = self.runtime.clone();
            let pod = std::mem::take(&mut tracked.pod);
            let name = pod.name_any();
            if let Err(e) = tokio::task::spawn_blocking(move || runtime.stop(&pod)).await {
                eprintln!("kubelet stand-in: the stop callback of pod {name} panicked: {e}");
            }
        }
    }

    /// Deletes a terminating pod for good, as a kubelet does once its containers are gone.
    async fn finish_deletion(&self, pod: &Pod) {
        let name = pod.name_any();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.pods.delete(&name, &params).await {
            Ok(_) => {}
            // Gone already, or the name now belongs to a newer pod: nothing left to finish.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(e) => eprintln!("kubelet stand-in: deleting pod {name}: {e}"),
        }
    }
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Succeeded or Failed: a kubelet runs such a pod no more.
fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status
            .as_ref()
            .and_then(|status| status.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}
