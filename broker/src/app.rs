//! Putting a broker together: open the data directory, recover the logs, serve Kafka and HTTP,
//! run the background jobs, and close everything cleanly on shutdown.
//!
//! Listeners, clock and shutdown signal come from the caller, so tests and the binary share
//! this path (`weir-broker` binds the configured addresses; a test can bind port 0).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::{Broker, Coordinators, Endpoint};
use crate::clock::Clock;
use crate::config::listeners::SecurityProtocol;
use crate::config::BrokerConfig;
use crate::controller::command::MetadataCommand;
use crate::controller::image::ListenerEndpoint;
use crate::controller::{Controller, ControllerConfig, METADATA_DIR};
use crate::group::GroupCoordinator;
use crate::http::HttpState;
use crate::legacy_catalogue;
use crate::lifecycle::Lifecycle;
use crate::log::{MetaProperties, MetaPropertiesError};
use crate::metrics::BrokerMetrics;
use crate::producer_ids::ProducerIdManager;
use crate::replica_manager::LeadershipListener;
use crate::replica_manager::ReplicaManager;
use crate::security::ListenerSecurity;
use crate::transactions::{TransactionCoordinator, TransactionMetrics};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory cannot be created, locked or written.
    #[error("data directory {dir}: {reason}")]
    DataDir {
        /// The directory.
        dir: String,
        /// What went wrong.
        reason: String,
    },
    /// The listen address is a wildcard and no advertised listener was given.
    #[error("--listen {0} is a wildcard address; set --advertised-listener to the address clients should use")]
    NoAdvertisedAddress(SocketAddr),
    /// A listener binds a wildcard address and `advertised.listeners` does not name it.
    #[error("listener {name} binds the wildcard address {addr}; add {name}://HOST:PORT to advertised.listeners")]
    NoAdvertisedListener {
        /// The listener name.
        name: String,
        /// The bound address.
        addr: SocketAddr,
    },
    /// The listener settings do not resolve.
    #[error(transparent)]
    Listeners(#[from] crate::config::ConfigError),
    /// A listener's TLS or SASL settings cannot work.
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    /// A listener cannot bind its address.
    #[error("listener {name}: binding {addr}: {reason}")]
    Bind {
        /// The listener name.
        name: String,
        /// The address.
        addr: String,
        /// The I/O error.
        reason: String,
    },
    /// Loading the catalogue or recovering a log failed.
    #[error("loading logs: {0}")]
    Load(#[from] crate::replica_manager::AdminError),
    /// `meta.properties` is unusable.
    #[error(transparent)]
    MetaProperties(#[from] MetaPropertiesError),
    /// The metadata quorum could not start.
    #[error("metadata quorum: {0}")]
    Controller(#[from] crate::controller::ControllerError),
    /// Registering metrics failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A bound Kafka listener: its socket, security and the address its clients are told.
#[derive(Debug)]
pub struct KafkaListener {
    /// The bound socket.
    pub socket: TcpListener,
    /// Name, protocol, TLS and SASL.
    pub security: Arc<ListenerSecurity>,
    /// What Metadata tells clients of this listener.
    pub advertised: Endpoint,
}

impl KafkaListener {
    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

/// Binds every listener of `config` (`listen` and `advertised` are `--listen` and
/// `--advertised-listener`, the single PLAINTEXT listener when `listeners` is not set) and
/// builds its security; returns them with the name of the inter-broker listener. Fails with
/// the listener and setting named.
pub async fn bind_listeners(
    config: &BrokerConfig,
    listen: SocketAddr,
    advertised: Option<Endpoint>,
) -> Result<(Vec<KafkaListener>, String), StartError> {
    let resolved = config.listeners(listen)?;
    let inter = resolved
        .listeners
        .iter()
        .find(|l| l.bind.name == resolved.inter_broker);
    match inter.map(|l| l.protocol) {
        Some(SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl) => {
            // Replication, transaction markers and verification share one client, which
            // speaks TLS but not SASL yet.
            return Err(StartError::Listeners(crate::config::ConfigError::InvalidValue {
                key: "inter.broker.listener.name".to_string(),
                value: resolved.inter_broker.clone(),
                reason: "Weir's broker-to-broker client does not speak SASL yet: name a PLAINTEXT or SSL listener".to_string(),
            }));
        }
        Some(SecurityProtocol::Ssl) => {
            let tls = crate::security::tls::InterBrokerTls::new(config, &resolved.inter_broker)?;
            crate::replication::client::set_inter_broker_tls(Arc::new(move || tls.client_config()));
        }
        _ => {}
    }
    let from_flag = config
        .get("listeners")
        .unwrap_or_default()
        .trim()
        .is_empty();
    let mut bound = Vec::new();
    let authorizer = crate::security::authorizer::Authorizer::from_config(config).map(Arc::new);
    for spec in &resolved.listeners {
        let mut security = ListenerSecurity::new(config, spec)?;
        security.authorizer = authorizer.clone();
        let security = Arc::new(security);
        let host = if spec.bind.host.is_empty() {
            "0.0.0.0"
        } else {
            spec.bind.host.as_str()
        };
        let socket = TcpListener::bind((host, spec.bind.port))
            .await
            .map_err(|e| StartError::Bind {
                name: spec.bind.name.clone(),
                addr: format!("{host}:{}", spec.bind.port),
                reason: e.to_string(),
            })?;
        let addr = socket.local_addr().map_err(|e| StartError::Bind {
            name: spec.bind.name.clone(),
            addr: format!("{host}:{}", spec.bind.port),
            reason: e.to_string(),
        })?;
        let advertised = match (&spec.advertised, from_flag) {
            (Some(a), _) => Endpoint {
                host: a.host.clone(),
                port: a.port,
            },
            (None, true) => match &advertised {
                Some(a) => a.clone(),
                None if addr.ip().is_unspecified() => {
                    return Err(StartError::NoAdvertisedAddress(addr))
                }
                None => Endpoint {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                },
            },
            // Kafka advertises the host's name for a listener bound to every interface.
            (None, false) if spec.bind.host.is_empty() => Endpoint {
                host: host_name().ok_or_else(|| StartError::NoAdvertisedListener {
                    name: spec.bind.name.clone(),
                    addr,
                })?,
                port: addr.port(),
            },
            (None, false) if addr.ip().is_unspecified() => {
                return Err(StartError::NoAdvertisedListener {
                    name: spec.bind.name.clone(),
                    addr,
                })
            }
            (None, false) => Endpoint {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
        };
        bound.push(KafkaListener {
            socket,
            security,
            advertised,
        });
    }
    Ok((bound, resolved.inter_broker))
}

/// This machine's host name (Linux), what Kafka advertises for a listener with no host.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Every listener's name and advertised address, and the inter-broker one's address (what
/// other brokers use for replication, transaction markers and verification).
#[derive(Debug, Clone)]
pub struct Advertised {
    /// The inter-broker listener's advertised address.
    pub inter_broker: Endpoint,
    /// Every listener, by name.
    pub listeners: Vec<ListenerEndpoint>,
}

impl Advertised {
    /// What `listeners` advertise, `inter_broker` naming one of them.
    pub fn of(listeners: &[KafkaListener], inter_broker: &str) -> Self {
        let all: Vec<ListenerEndpoint> = listeners
            .iter()
            .map(|l| ListenerEndpoint {
                name: l.security.name.to_string(),
                host: l.advertised.host.clone(),
                port: l.advertised.port,
            })
            .collect();
        let inter = all
            .iter()
            .find(|l| l.name == inter_broker)
            .or(all.first())
            .map(|l| Endpoint {
                host: l.host.clone(),
                port: l.port,
            })
            .unwrap_or(Endpoint {
                host: "127.0.0.1".to_string(),
                port: 9092,
            });
        Self {
            inter_broker: inter,
            listeners: all,
        }
    }

    /// A single PLAINTEXT listener at `endpoint` (unit tests).
    pub fn plaintext(endpoint: Endpoint) -> Self {
        Self {
            listeners: vec![ListenerEndpoint {
                name: "PLAINTEXT".to_string(),
                host: endpoint.host.clone(),
                port: endpoint.port,
            }],
            inter_broker: endpoint,
        }
    }
}

/// A broker that has recovered its logs and is ready to serve.
#[derive(Debug)]
pub struct StartedBroker {
    /// The shared state.
    pub broker: Arc<Broker>,
    meta: MetaProperties,
    /// Chooses logs for the cleaner threads `serve` starts, and keeps their numbers.
    cleaner_manager: Arc<crate::log::cleaner::LogCleanerManager>,
    _lock: File,
}

/// Opens the data directory (creating and locking it), recovers every log, and assembles the
/// broker state. Fails with a message naming the directory when it is unusable.
pub fn open(
    config: BrokerConfig,
    advertised: Advertised,
    clock: Arc<dyn Clock>,
) -> Result<StartedBroker, StartError> {
    let dir = config.data_dir.clone();
    let data_dir_error = |reason: String| StartError::DataDir {
        dir: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(&dir).map_err(|e| data_dir_error(format!("cannot create it: {e}")))?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .map_err(|e| data_dir_error(format!("cannot write in it: {e}")))?;
    lock.try_lock().map_err(|_| {
        data_dir_error("another weir-broker is using it (.lock is held)".to_string())
    })?;
    let meta = MetaProperties::load_or_create(&dir, config.node_id)?;
    let config = Arc::new(config);
    let started = std::time::Instant::now();
    let replicas = Arc::new(ReplicaManager::open(config.clone(), clock.clone())?);
    tracing::info!(
        partitions = replicas.all_partitions().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "logs loaded"
    );
    let producer_ids = Arc::new(ProducerIdManager::new());
    let metrics = BrokerMetrics::new()?;
    metrics.register_log_collector(&replicas)?;
    metrics.register_replication_collector(&replicas)?;
    let groups = GroupCoordinator::new(
        config.clone(),
        replicas.clone(),
        clock.clone(),
        metrics.group_rebalances.clone(),
    );
    metrics.register_group_collector(&groups, &replicas)?;
    let transactions = TransactionCoordinator::new(
        config.clone(),
        replicas.clone(),
        producer_ids.clone(),
        clock.clone(),
        TransactionMetrics::register(metrics.registry())?,
    );
    metrics.register(Box::new(
        crate::admin_service::metrics::ReassignmentCollector::new(Arc::downgrade(&replicas))?,
    ))?;
    metrics.register_volume_collector(config.data_dir.clone())?;
    let cleaner_manager = Arc::new(crate::log::cleaner::LogCleanerManager::new());
    metrics.register(Box::new(crate::cleaner_metrics::CleanerCollector::new(
        cleaner_manager.clone(),
        Arc::downgrade(&replicas),
    )?))?;
    let broker = Arc::new(Broker::new(
        config,
        meta.cluster_id.clone(),
        advertised.inter_broker,
        advertised.listeners,
        replicas,
        Coordinators {
            producer_ids,
            groups,
            transactions,
        },
        metrics,
    )?);
    Ok(StartedBroker {
        broker,
        meta,
        cleaner_manager,
        _lock: lock,
    })
}

/// How this broker joins the metadata quorum.
#[derive(Debug)]
pub struct ClusterOptions {
    /// The bound internal listener (Raft, controller and admin gRPC).
    pub rpc_listener: TcpListener,
    /// `host:port` others use to reach it.
    pub rpc_advertised: String,
    /// The voters; `None` makes this broker its own single voter.
    pub voters: Option<BTreeMap<i32, String>>,
}

impl StartedBroker {
    /// Joins the metadata quorum, registers, and serves Kafka clients once the controller has
    /// unfenced this broker; when `shutdown` turns true, moves leadership away (controlled
    /// shutdown), stops serving and closes every log cleanly. `http` (already serving health)
    /// starts answering metrics and readiness from this broker; `on_ready` runs once the
    /// Kafka listener is serving.
    pub async fn serve(
        self,
        kafka: Vec<KafkaListener>,
        cluster: ClusterOptions,
        http: &HttpState,
        mut shutdown: watch::Receiver<bool>,
        on_ready: impl FnOnce(),
    ) -> Result<(), StartError> {
        let broker = self.broker.clone();
        let config = broker.config.clone();
        http.set_broker(broker.clone());
        let voters = cluster
            .voters
            .clone()
            .unwrap_or_else(|| BTreeMap::from([(config.node_id, cluster.rpc_advertised.clone())]));
        let metadata_dir = config.data_dir.join(METADATA_DIR);
        let mut meta = self.meta.clone();
        if crate::controller::log_store::LogStore::open(&metadata_dir)
            .map_err(|e| crate::controller::ControllerError::Fatal(e.to_string()))?
            .is_pristine()
        {
            // Storage that remembers nothing of the metadata log must not pass for the storage
            // that acknowledged it (KIP-853): it gets a new directory id.
            meta.renew_directory_id(&config.data_dir)?;
        }
        // Before the controller starts: its Raft transport opens channels to the peers.
        let rpc_tls = rpc_tls(&broker)?;
        let controller = Controller::start(ControllerConfig {
            node_id: config.node_id,
            directory_id: meta.directory_id,
            auto_join: config.quorum_auto_join(),
            dir: metadata_dir,
            voters,
            session_timeout: config.duration_ms("broker.session.timeout.ms"),
            leader_imbalance_interval: config
                .auto_leader_rebalance()
                .then(|| config.leader_imbalance_check_interval()),
            raft_heartbeat: config.duration_ms("controller.quorum.election.timeout.ms") / 4,
        })
        .await?;
        let (rpc_stop_tx, mut rpc_stop) = watch::channel(false);
        let routes = crate::admin_service::add_services(
            crate::controller::rpc::routes(&controller),
            &broker,
        );
        let rpc = tokio::spawn(crate::controller::rpc::serve(
            cluster.rpc_listener,
            routes,
            rpc_tls,
            async move {
                let _ = rpc_stop.wait_for(|stop| *stop).await;
            },
        ));
        let listener: Arc<dyn LeadershipListener> = broker.groups.clone();
        broker
            .replicas
            .add_leadership_listener(Arc::downgrade(&listener));
        let listener: Arc<dyn LeadershipListener> = broker.transactions.clone();
        broker
            .replicas
            .add_leadership_listener(Arc::downgrade(&listener));
        let listener: Arc<dyn LeadershipListener> = broker.share_coordinator.clone();
        broker
            .replicas
            .add_leadership_listener(Arc::downgrade(&listener));
        broker.replicas.attach_controller(controller.clone());
        migrate_legacy_catalogue(&broker, &controller).await;

        let lifecycle = Lifecycle::new(broker.clone(), controller.clone(), cluster.rpc_advertised);
        let joined = async {
            let (epoch, cluster_id) = lifecycle.register().await;
            adopt_cluster_id(&broker, meta.clone(), &cluster_id)?;
            lifecycle.catch_up(epoch).await;
            lifecycle.wait_unfenced().await;
            Ok::<i64, StartError>(epoch)
        };
        let epoch = tokio::select! {
            joined = joined => joined?,
            _ = shutdown.wait_for(|stop| *stop) => {
                tracing::info!("shut down before joining the cluster");
                rpc_stop_tx.send_replace(true);
                controller.shutdown().await;
                let replicas = broker.replicas.clone();
                let _ = tokio::task::spawn_blocking(move || replicas.shutdown()).await;
                return Ok(());
            }
        };
        tracing::info!(broker_epoch = epoch, "joined the cluster");
        let (stop_heartbeats_tx, stop_heartbeats) = watch::channel(false);
        let heartbeats = tokio::spawn(lifecycle.clone().heartbeat_loop(stop_heartbeats));
        let mut jobs = spawn_background_jobs(&broker);
        jobs.extend(spawn_log_cleaners(&broker, &self.cleaner_manager));
        let (server_stop_tx, server_stop) = watch::channel(false);
        let server = futures::future::join_all(kafka.into_iter().map(|listener| {
            tokio::spawn(crate::server::run(
                listener.socket,
                listener.security,
                broker.clone(),
                server_stop.clone(),
            ))
        }));
        let server = tokio::spawn(server);
        broker.set_ready(true);
        on_ready();

        let quorum_failure = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => None,
            reason = controller.stopped_on_error() => Some(reason),
        };
        broker.set_ready(false);
        if let Some(reason) = quorum_failure {
            // Fail-stop: a node whose metadata quorum stopped serves stale metadata and never
            // catches up. Close the logs (flushing what was acknowledged) and exit with an
            // error, so the supervisor restarts it and the Raft log is recovered from disk.
            tracing::error!(%reason, "the metadata quorum stopped on an unrecoverable error; exiting");
            server_stop_tx.send_replace(true);
            let _ = server.await;
            for job in jobs {
                job.abort();
            }
            let replicas = broker.replicas.clone();
            let _ = tokio::task::spawn_blocking(move || replicas.shutdown()).await;
            return Err(StartError::Controller(
                crate::controller::ControllerError::Fatal(reason),
            ));
        }
        stop_heartbeats_tx.send_replace(true);
        let _ = heartbeats.await;
        lifecycle.controlled_shutdown().await;
        server_stop_tx.send_replace(true);
        let _ = server.await;
        for job in jobs {
            job.abort();
        }
        rpc_stop_tx.send_replace(true);
        let _ = rpc.await;
        controller.shutdown().await;
        let replicas = broker.replicas.clone();
        // Closing flushes every log; run it off the async workers.
        let _ = tokio::task::spawn_blocking(move || replicas.shutdown()).await;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// A data directory created by this start takes the quorum's cluster id; one that already
/// belongs to another cluster refuses to join it.
fn adopt_cluster_id(
    broker: &Broker,
    mut meta: MetaProperties,
    cluster_id: &str,
) -> Result<(), StartError> {
    if meta.cluster_id == cluster_id {
        return Ok(());
    }
    if !broker.replicas.all_partitions().is_empty() {
        return Err(StartError::DataDir {
            dir: broker.config.data_dir.display().to_string(),
            reason: format!(
                "it belongs to cluster {}, but the metadata quorum is cluster {cluster_id}",
                meta.cluster_id
            ),
        });
    }
    meta.cluster_id = cluster_id.to_string();
    meta.store(&broker.config.data_dir)?;
    Ok(())
}

/// A single-node data directory from before the metadata quorum lists its topics in
/// `topics.json`: they are written into the metadata log once (same ids, placed on this
/// broker), and the file is renamed so that it is not read again.
///
/// REMOVE with [`crate::legacy_catalogue`], once no such data directory is in use.
async fn migrate_legacy_catalogue(broker: &Broker, controller: &Controller) {
    let path = legacy_catalogue::path(&broker.config.data_dir);
    if !path.exists() {
        return;
    }
    let topics = match legacy_catalogue::load(&broker.config.data_dir) {
        Ok(topics) => topics,
        Err(e) => {
            tracing::error!(error = %e, "cannot read topics.json; not migrating it");
            return;
        }
    };
    for topic in &topics {
        let command = MetadataCommand::CreateTopic {
            name: topic.name.clone(),
            id: topic.id,
            configs: topic.configs.clone(),
            assignment: vec![vec![broker.node_id()]; topic.partitions as usize],
        };
        match controller.write(command).await {
            Ok(_) => tracing::info!(topic = %topic.name, "migrated a topic into the metadata log"),
            Err(e) => {
                tracing::error!(topic = %topic.name, error = %e, "migrating topics.json failed");
                return;
            }
        }
    }
    if let Err(e) = std::fs::rename(&path, path.with_extension("json.migrated")) {
        tracing::warn!(error = %e, "renaming the migrated topics.json");
    }
}

/// The log cleaner threads (`log.cleaner.threads`, none unless `log.cleaner.enable`): each a
/// task that runs one pass at a time on a blocking thread, and waits `log.cleaner.backoff.ms`
/// when no compacted log is due. Aborted at shutdown with the other jobs; a pass still running
/// then finds its log closed and leaves it as it was.
fn spawn_log_cleaners(
    broker: &Arc<Broker>,
    manager: &Arc<crate::log::cleaner::LogCleanerManager>,
) -> Vec<tokio::task::JoinHandle<()>> {
    use crate::log::cleaner::{Cleaner, CleanerConfig};
    // Threads and the on/off switch are read at start; the rest is read before every pass,
    // so dynamic changes (`kafka-configs --entity-type brokers`) apply to the next one.
    let config = &broker.config;
    let threads = config.int("log.cleaner.threads").max(0) as usize;
    if !config.log_cleaner_enable() || threads == 0 {
        return Vec::new();
    }
    let settings = move |config: &crate::config::BrokerConfig| {
        let cleaner = CleanerConfig {
            dedupe_buffer_bytes: (config.int("log.cleaner.dedupe.buffer.size").max(0) as usize)
                / threads,
            dedupe_load_factor: config.double("log.cleaner.io.buffer.load.factor"),
            io_buffer_bytes: config.int("log.cleaner.io.buffer.size").max(1024) as usize,
            max_io_bytes_per_second: config.double("log.cleaner.io.max.bytes.per.second"),
        };
        (cleaner, config.duration_ms("log.cleaner.backoff.ms"))
    };
    let (first, backoff) = settings(&broker.replicas.effective_config());
    tracing::info!(threads, ?backoff, config = ?first, "starting the log cleaner");
    (0..threads)
        .map(|_| {
            let broker = broker.clone();
            let manager = manager.clone();
            let mut cleaner = Some((first.clone(), Cleaner::new(first.clone())));
            tokio::spawn(async move {
                loop {
                    let Some((mut in_use, mut c)) = cleaner.take() else {
                        return;
                    };
                    let (wanted, backoff) = settings(&broker.replicas.effective_config());
                    if wanted != in_use {
                        tracing::info!(config = ?wanted, "log cleaner settings changed");
                        c = Cleaner::new(wanted.clone());
                        in_use = wanted;
                    }
                    let (b, m) = (broker.clone(), manager.clone());
                    let pass = tokio::task::spawn_blocking(move || {
                        let cleaned = b.replicas.clean_filthiest(&m, &mut c);
                        (c, cleaned)
                    })
                    .await;
                    let Ok((c, cleaned)) = pass else { return };
                    cleaner = Some((in_use, c));
                    if !cleaned {
                        tokio::time::sleep(backoff).await;
                    }
                }
            })
        })
        .collect()
}

/// How often group timers (join deadlines, session expiry) are checked: the resolution of
/// every rebalance delay.
const GROUP_TICK: Duration = Duration::from_millis(50);

/// Runs `job` every `period` (the first time one period after the start), each run awaited
/// before the next; a run that overruns delays the next rather than piling up.
fn spawn_ticking<F, Fut>(period: Duration, mut job: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            job().await;
        }
    })
}

/// Periodic jobs (retention, time-based flush, recovery checkpoints, group timers and offset
/// expiry); aborted at shutdown, which then closes every log itself.
fn spawn_background_jobs(broker: &Arc<Broker>) -> Vec<tokio::task::JoinHandle<()>> {
    let config = &broker.config;
    let every = |period_ms: u64, job: fn(&Broker)| {
        let broker = broker.clone();
        spawn_ticking(Duration::from_millis(period_ms.max(1)), move || {
            let b = broker.clone();
            // File work (unlinking segments, fsync) stays off the async workers.
            async move {
                let _ = tokio::task::spawn_blocking(move || job(&b)).await;
            }
        })
    };
    let groups = broker.groups.clone();
    let group_timers = spawn_ticking(GROUP_TICK, move || {
        groups.tick();
        std::future::ready(())
    });
    let transactions = broker.transactions.clone();
    let abort_interval =
        Duration::from_millis(config.transaction_abort_interval_ms().max(1) as u64);
    let transaction_timeouts = spawn_ticking(abort_interval, move || {
        let transactions = transactions.clone();
        async move { transactions.abort_timed_out().await }
    });
    let transactions = broker.transactions.clone();
    let expiration_interval =
        Duration::from_millis(config.transaction_expiration_interval_ms().max(1) as u64);
    let transactional_id_expiry = spawn_ticking(expiration_interval, move || {
        let transactions = transactions.clone();
        async move { transactions.expire_transactional_ids().await }
    });
    let replicas = broker.replicas.clone();
    let lag_check =
        (config.duration_ms("replica.lag.time.max.ms") / 2).max(Duration::from_millis(50));
    let isr_shrinks = spawn_ticking(lag_check, move || {
        let replicas = replicas.clone();
        async move { replicas.shrink_lagging_isrs().await }
    });
    vec![
        group_timers,
        transaction_timeouts,
        transactional_id_expiry,
        isr_shrinks,
        every(config.offsets_retention_check_interval_ms(), |b| {
            b.groups.expire_offsets()
        }),
        every(config.retention_check_interval_ms(), |b| {
            b.replicas.apply_retention()
        }),
        every(config.flush_check_interval_ms(), |b| b.replicas.flush_due()),
        every(config.producer_id_expiration_check_interval_ms(), |b| {
            b.replicas.remove_expired_producers()
        }),
        every(
            config.recovery_point_checkpoint_interval_ms().max(1000),
            |b| b.replicas.checkpoint(),
        ),
    ]
}

/// The internal gRPC port's TLS when `rpc.security.protocol=SSL`: this process's calls to its
/// peers' port use the client side from now on, and the server side is returned for
/// [`crate::controller::rpc::serve`].
fn rpc_tls(
    broker: &Arc<Broker>,
) -> Result<Option<crate::controller::rpc_tls::TlsIncomingConfig>, StartError> {
    if broker.config.get("rpc.security.protocol") != Some("SSL") {
        return Ok(None);
    }
    let client = crate::security::tls::InterBrokerTls::for_rpc(&broker.config)?;
    crate::controller::rpc_tls::set_client_tls(Arc::new(move || client.client_config()));
    let source = crate::security::tls::TlsSource::for_rpc(&broker.config)?;
    let counting = Arc::downgrade(broker);
    Ok(Some(crate::controller::rpc_tls::TlsIncomingConfig {
        acceptor: Arc::new(move || source.acceptor()),
        on_refusal: Arc::new(move || {
            if let Some(broker) = counting.upgrade() {
                broker
                    .metrics
                    .authentication_failed(crate::security::tls::RPC_LISTENER);
            }
        }),
    }))
}
