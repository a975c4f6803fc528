//! The operator process: command line, HTTP endpoints (`/metrics`, `/healthz`), leader
//! election, and the controllers (clusters, topics, users), until SIGTERM/SIGINT.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::context::{Context, Settings, DEFAULT_IMAGE};
use crate::crd::{Cluster, Topic, User};
use crate::error::Error;
use crate::leader::LeaseLock;
use crate::metrics::Metrics;
use crate::names::{Addressing, ClusterNames};

/// The Weir Kubernetes operator.
#[derive(Debug, clap::Parser)]
#[command(name = "weir-operator", version, about)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The brokers' init container: write `broker.rack` from a node label.
    Rack {
        /// The node the pod runs on (`$(NODE_NAME)` from the downward API).
        #[arg(long)]
        node: String,
        /// The node label holding the rack (`topology.kubernetes.io/zone`).
        #[arg(long)]
        label: String,
        /// The properties file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Watch only this namespace (all namespaces by default).
    #[arg(long, env = "WEIR_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of `/metrics` and `/healthz`.
    #[arg(
        long,
        env = "WEIR_OPERATOR_METRICS_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_listen: SocketAddr,
    /// Namespace of the leader-election Lease (the operator's own, from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "WEIR_OPERATOR_LEASE", default_value = "weir-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (its pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a lease lasts without renewal.
    #[arg(long, env = "WEIR_OPERATOR_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
    /// The operator's image, run as the brokers' rack init container.
    #[arg(long, env = "WEIR_OPERATOR_IMAGE", default_value = DEFAULT_IMAGE)]
    pub operator_image: String,
    /// The brokers' image for a `Cluster` that names none (default: the operator's image,
    /// which holds `weir-broker` too).
    #[arg(long, env = "WEIR_DEFAULT_BROKER_IMAGE")]
    pub default_broker_image: Option<String>,
    /// The cluster DNS domain.
    #[arg(
        long,
        env = "WEIR_OPERATOR_CLUSTER_DOMAIN",
        default_value = "cluster.local"
    )]
    pub cluster_domain: String,
    /// Dial brokers at this host instead of their pod DNS names ({pod}, {ordinal}, {cluster},
    /// {service}, {namespace} are replaced). For running the operator outside the cluster.
    #[arg(long, env = "WEIR_OPERATOR_BROKER_HOST_TEMPLATE")]
    pub broker_host_template: Option<String>,
    /// Seconds between reconciles while something is in progress.
    #[arg(long, env = "WEIR_OPERATOR_BUSY_REQUEUE_SECONDS", default_value_t = 5)]
    pub busy_requeue_seconds: u64,
    /// Seconds each phase of a CA renewal waits for mounted Secrets to reach every broker
    /// (the kubelet's sync period plus its Secret cache).
    #[arg(
        long,
        env = "WEIR_OPERATOR_CERTIFICATE_SETTLE_SECONDS",
        default_value_t = 120
    )]
    pub certificate_settle_seconds: u64,
}

impl RunArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            addressing: Addressing {
                cluster_domain: self.cluster_domain.clone(),
                host_template: self.broker_host_template.clone(),
            },
            operator_image: self.operator_image.clone(),
            default_broker_image: self
                .default_broker_image
                .clone()
                .unwrap_or_else(|| self.operator_image.clone()),
            busy_requeue: Duration::from_secs(self.busy_requeue_seconds.max(1)),
            idle_requeue: Duration::from_secs(60),
            certificate_settle: Duration::from_secs(self.certificate_settle_seconds),
        }
    }
}

/// What to do after a failed reconcile: an object at fault ([`Error::is_permanent`]) waits
/// until it changes; anything else is retried with a growing delay ([`crate::backoff`]).
fn error_policy<K>(controller: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action
where
    K: Resource,
{
    move |object, error, ctx| {
        if error.is_permanent() {
            tracing::warn!(controller, error = %error, "reconcile failed on the object itself; waiting for it to change");
            return Action::await_change();
        }
        let delay = ctx
            .backoff
            .failed(&backoff_key(controller, object.as_ref()));
        tracing::warn!(controller, error = %error, retry_in_s = delay.as_secs(), "reconcile failed; retrying");
        Action::requeue(delay)
    }
}

/// The object's key in [`Context::backoff`].
fn backoff_key<K: Resource>(controller: &str, object: &K) -> String {
    let meta = object.meta();
    format!(
        "{controller}/{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// A reconcile in flight.
type Reconciling = std::pin::Pin<Box<dyn Future<Output = Result<Action, Error>> + Send>>;

/// Wraps a reconciler with its metrics.
fn measured<K, F, Fut>(
    controller: &'static str,
    reconcile: F,
) -> impl FnMut(Arc<K>, Arc<Context>) -> Reconciling
where
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
    K: Resource + Send + Sync + 'static,
{
    move |object, ctx| {
        Box::pin(async move {
            let started = Instant::now();
            let metrics = ctx.metrics.clone();
            let backoff = ctx.backoff.clone();
            let key = backoff_key(controller, object.as_ref());
            let result = reconcile(object, ctx).await;
            if result.is_ok() {
                backoff.succeeded(&key);
            }
            metrics.reconciled(
                controller,
                result.as_ref().err().map(Error::kind),
                started.elapsed(),
            );
            result
        })
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controllers (clusters, topics, users) until `shutdown` resolves.
pub async fn controllers(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let cluster_controller =
        Controller::new(api::<Cluster>(&client, ns), watcher::Config::default());
    let known_clusters = cluster_controller.store();
    let clusters = cluster_controller
        .owns(
            api::<StatefulSet>(&client, ns),
            watcher::Config::default().labels("app.kubernetes.io/managed-by=weir-operator"),
        )
        // A CA Secret of the user's that changes (cert-manager renewed it, someone replaced
        // it) reconciles its cluster at once: the new CA is trusted, then signs. So does the
        // operator's own CA Secret (`weir.dev/force-renew` set on it).
        .watches(
            api::<Secret>(&client, ns),
            watcher::Config::default(),
            move |secret| clusters_naming(&known_clusters, &secret),
        )
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(
            measured("cluster", crate::cluster::reconcile),
            error_policy("cluster"),
            ctx.clone(),
        )
        .for_each(|_| async {});
    let topic_controller = Controller::new(api::<Topic>(&client, ns), watcher::Config::default());
    let known_topics = topic_controller.store();
    let topics = topic_controller
        // A Cluster's status change (brokers registered, Ready) reconciles its topics at once:
        // a Topic applied together with its Cluster is created as soon as the brokers can take it.
        .watches(
            api::<Cluster>(&client, ns),
            watcher::Config::default(),
            move |cluster| topics_of(&known_topics, &cluster),
        )
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(
            measured("topic", crate::topic::reconcile),
            error_policy("topic"),
            ctx.clone(),
        )
        .for_each(|_| async {});
    let users = Controller::new(api::<User>(&client, ns), watcher::Config::default())
        .graceful_shutdown_on(stopped(stop_rx))
        .run(
            measured("user", crate::user::reconcile),
            error_policy("user"),
            ctx.clone(),
        )
        .for_each(|_| async {});
    tokio::spawn(async move {
        shutdown.await;
        stop_tx.send_replace(true);
    });
    futures::join!(clusters, topics, users);
}

/// The clusters whose cluster CA or clients CA is the Secret `secret`.
fn clusters_naming(clusters: &Store<Cluster>, secret: &Secret) -> Vec<ObjectRef<Cluster>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    clusters
        .state()
        .iter()
        .filter(|c| c.namespace() == namespace)
        .filter(|c| {
            let names = ClusterNames::of(c);
            let certs = c.spec.certificates.clone().unwrap_or_default();
            let cluster_ca = certs
                .cluster_ca
                .secret_name
                .unwrap_or_else(|| names.cluster_ca());
            let clients_ca = certs
                .clients_ca
                .secret_name
                .unwrap_or_else(|| names.clients_ca());
            name == cluster_ca || name == clients_ca
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// The topics that name `cluster` as theirs.
fn topics_of(topics: &Store<Topic>, cluster: &Cluster) -> Vec<ObjectRef<Topic>> {
    let namespace = cluster.namespace();
    let name = cluster.name_any();
    topics
        .state()
        .iter()
        .filter(|t| t.namespace() == namespace && t.spec.cluster_ref == name)
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

async fn metrics_page(State(metrics): State<Arc<Metrics>>) -> String {
    metrics.render()
}

/// Serves `/metrics` and `/healthz`.
pub async fn serve_http(listen: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving /metrics and /healthz");
    axum::serve(listener, app).await?;
    Ok(())
}

/// Set to `true` once SIGTERM or SIGINT arrives.
pub type Termination = tokio::sync::watch::Receiver<bool>;

/// Installs the SIGTERM and SIGINT handlers now (not when something first waits on them): as
/// a container's PID 1 the operator gets no default action for either signal, so one that
/// arrives before its handler exists is dropped by the kernel, and the pod waits out its grace
/// period. Call it first thing, inside the runtime.
pub fn termination() -> std::io::Result<Termination> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        }
        tx.send_replace(true);
    });
    Ok(rx)
}

/// Resolves once `termination` has fired (at once if it already has).
pub async fn terminated(mut termination: Termination) {
    let _ = termination.wait_for(|stop| *stop).await;
}

/// The operator: HTTP, leader election, controllers; returns on SIGTERM (releasing the lease)
/// or when leadership is lost (an error: the process should restart as a candidate).
pub async fn operator(args: RunArgs, termination: Termination) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::new());
    let http = tokio::spawn(serve_http(args.metrics_listen, metrics.clone()));
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("weir-operator-{}", std::process::id()));
    let lock = LeaseLock::new(
        client.clone(),
        &args.lease_namespace,
        &args.lease_name,
        &identity,
        Duration::from_secs(args.lease_seconds.max(3)),
    );
    tracing::info!(%identity, lease = %args.lease_name, "waiting for leadership");
    tokio::select! {
        _ = lock.acquire() => {}
        _ = terminated(termination.clone()) => return Ok(()),
    }
    metrics.leader.set(1);
    tracing::info!(%identity, "leading: reconciling Clusters, Topics and Users");
    let ctx = Arc::new(Context {
        client,
        settings: args.settings(),
        metrics: metrics.clone(),
        backoff: Arc::default(),
        identities: Arc::default(),
    });
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<bool>();
    let keeper = lock.clone();
    let guard = tokio::spawn(async move {
        tokio::select! {
            _ = keeper.keep() => { let _ = lost_tx.send(true); }
            _ = terminated(termination) => { let _ = lost_tx.send(false); }
        }
    });
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<bool>();
    controllers(ctx, args.namespace.clone(), async move {
        let lost = lost_rx.await.unwrap_or(false);
        let _ = done_tx.send(lost);
    })
    .await;
    guard.abort();
    http.abort();
    metrics.leader.set(0);
    if done_rx.await.unwrap_or(false) {
        anyhow::bail!("lost the leader lease");
    }
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "could not release the lease");
    }
    tracing::info!("stopped");
    Ok(())
}
