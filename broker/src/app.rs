//! Putting a broker together: open the data directory, recover the logs, serve Kafka and HTTP,
//! run the background jobs, and close everything cleanly on shutdown.
//!
//! Listeners, clock and shutdown signal come from the caller, so tests and the binary share
//! this path (`weir-broker` binds the configured addresses; a test can bind port 0).

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::{Broker, Endpoint};
use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::http::HttpState;
use crate::metadata::MetaProperties;
use crate::metrics::BrokerMetrics;
use crate::producer_ids::ProducerIdManager;
use crate::replica_manager::ReplicaManager;

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
    /// Loading the catalogue or recovering a log failed.
    #[error("loading logs: {0}")]
    Load(#[from] crate::replica_manager::AdminError),
    /// `meta.properties` or the producer id file is unusable.
    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),
    /// Registering metrics failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A broker that has recovered its logs and is ready to serve.
#[derive(Debug)]
pub struct StartedBroker {
    /// The shared state.
    pub broker: Arc<Broker>,
    _lock: File,
}

/// Opens the data directory (creating and locking it), recovers every log, and assembles the
/// broker state. Fails with a message naming the directory when it is unusable.
pub fn open(
    config: BrokerConfig,
    kafka_addr: SocketAddr,
    advertised: Option<Endpoint>,
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
    let advertised = match advertised {
        Some(a) => a,
        None if kafka_addr.ip().is_unspecified() => {
            return Err(StartError::NoAdvertisedAddress(kafka_addr))
        }
        None => Endpoint {
            host: kafka_addr.ip().to_string(),
            port: kafka_addr.port(),
        },
    };
    let meta = MetaProperties::load_or_create(&dir, config.node_id)?;
    let config = Arc::new(config);
    let started = std::time::Instant::now();
    let replicas = Arc::new(ReplicaManager::open(config.clone(), clock.clone())?);
    tracing::info!(
        partitions = replicas.all_partitions().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "logs loaded"
    );
    let producer_ids = ProducerIdManager::open(&dir)?;
    let metrics = BrokerMetrics::new()?;
    metrics.register_log_collector(&replicas)?;
    let groups = Arc::new(GroupCoordinator::new(
        config.clone(),
        replicas.clone(),
        clock,
        metrics.group_rebalances.clone(),
    ));
    metrics.register_group_collector(&groups, &replicas)?;
    let broker = Arc::new(Broker::new(
        config,
        meta.cluster_id,
        advertised,
        replicas,
        producer_ids,
        groups,
        metrics,
    ));
    Ok(StartedBroker {
        broker,
        _lock: lock,
    })
}

impl StartedBroker {
    /// Serves Kafka clients until `shutdown` becomes true, then closes every log cleanly.
    /// `http` (already serving health) starts answering metrics and readiness from this
    /// broker; `on_ready` runs once the Kafka listener is serving.
    pub async fn serve(
        self,
        kafka: TcpListener,
        http: &HttpState,
        shutdown: watch::Receiver<bool>,
        on_ready: impl FnOnce(),
    ) {
        let broker = self.broker.clone();
        http.set_broker(broker.clone());
        // Single node: this broker leads every __consumer_offsets partition. Groups answer
        // COORDINATOR_LOAD_IN_PROGRESS until their partition is replayed.
        broker.groups.become_leader_of_all();
        let jobs = spawn_background_jobs(&broker);
        let server = tokio::spawn(crate::server::run(kafka, broker.clone(), shutdown.clone()));
        broker.set_ready(true);
        on_ready();
        let _ = server.await;
        broker.set_ready(false);
        for job in jobs {
            job.abort();
        }
        let replicas = broker.replicas.clone();
        // Closing flushes every log; run it off the async workers.
        let _ = tokio::task::spawn_blocking(move || replicas.shutdown()).await;
        tracing::info!("shut down cleanly");
    }
}

/// How often group timers (join deadlines, session expiry) are checked: the resolution of
/// every rebalance delay.
const GROUP_TICK: Duration = Duration::from_millis(50);

/// Periodic jobs (retention, time-based flush, recovery checkpoints, group timers and offset
/// expiry); aborted at shutdown, which then closes every log itself.
fn spawn_background_jobs(broker: &Arc<Broker>) -> Vec<tokio::task::JoinHandle<()>> {
    let config = &broker.config;
    let every = |period_ms: u64, job: fn(&Broker)| {
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(period_ms.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let b = broker.clone();
                // File work (unlinking segments, fsync) stays off the async workers.
                let _ = tokio::task::spawn_blocking(move || job(&b)).await;
            }
        })
    };
    let groups = broker.groups.clone();
    let group_timers = tokio::spawn(async move {
        let mut tick = tokio::time::interval(GROUP_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            groups.tick();
        }
    });
    vec![
        group_timers,
        every(config.offsets_retention_check_interval_ms(), |b| {
            b.groups.expire_offsets()
        }),
        every(config.retention_check_interval_ms(), |b| {
            b.replicas.apply_retention()
        }),
        every(config.flush_check_interval_ms(), |b| b.replicas.flush_due()),
        every(
            config.recovery_point_checkpoint_interval_ms().max(1000),
            |b| b.replicas.checkpoint(),
        ),
    ]
}
