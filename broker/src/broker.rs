//! The state every request handler shares: config, partitions, ids, metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use crate::config::BrokerConfig;
use crate::controller::image::ListenerEndpoint;
use crate::fetch_session::FetchSessionCache;
use crate::group::GroupCoordinator;
use crate::metrics::BrokerMetrics;
use crate::producer_ids::ProducerIdManager;
use crate::quota::ClientQuotaManager;
use crate::replica_manager::ReplicaManager;
use crate::transactions::TransactionCoordinator;

/// Host and port clients are told to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// The coordinators a broker serves, built by the composition root.
#[derive(Debug)]
pub struct Coordinators {
    /// Producer ids.
    pub producer_ids: Arc<ProducerIdManager>,
    /// Consumer groups.
    pub groups: Arc<GroupCoordinator>,
    /// Transactions.
    pub transactions: Arc<TransactionCoordinator>,
}

/// One broker's shared state. Cheap to share behind an `Arc`; every field is thread-safe.
#[derive(Debug)]
pub struct Broker {
    /// Validated configuration.
    pub config: Arc<BrokerConfig>,
    /// The cluster id from `meta.properties` (the quorum's, once registered).
    meta_cluster_id: String,
    /// The inter-broker listener's advertised address: what the broker registers as its
    /// Kafka address, which other brokers replicate from and send transaction markers to.
    pub advertised: Endpoint,
    /// Every listener's advertised address; Metadata answers with the one of the listener
    /// a client connected to.
    pub listeners: Vec<ListenerEndpoint>,
    /// Hosted partitions and the topic catalogue.
    pub replicas: Arc<ReplicaManager>,
    /// Producer id allocation for InitProducerId (shared with the transaction coordinator).
    pub producer_ids: Arc<ProducerIdManager>,
    /// The group coordinator (consumer groups, committed offsets).
    pub groups: Arc<GroupCoordinator>,
    /// The transaction coordinator (transactional ids, `__transaction_state`).
    pub transactions: Arc<TransactionCoordinator>,
    /// Prometheus metrics.
    pub metrics: BrokerMetrics,
    /// Client quota enforcement (produce and fetch byte rates).
    pub quotas: ClientQuotaManager,
    /// Connection limits (`max.connections`, `max.connections.per.ip`, creation rates).
    pub connections: Arc<crate::connection_quotas::ConnectionQuotas>,
    /// Fetch sessions (KIP-227), bounded by `max.incremental.fetch.session.cache.slots`;
    /// locked briefly per fetch, never across a wait.
    pub fetch_sessions: parking_lot::Mutex<FetchSessionCache>,
    /// Share partitions led here and share sessions (KIP-932).
    pub share: crate::share::manager::SharePartitionManager,
    /// The share coordinator (`__share_group_state`); the composition root registers it as
    /// a leadership listener.
    pub share_coordinator: Arc<crate::share::coordinator::ShareCoordinator>,
    ready: AtomicBool,
}

impl Broker {
    /// Assembles a broker from its parts; it reports not-ready until [`Broker::set_ready`].
    pub fn new(
        config: Arc<BrokerConfig>,
        cluster_id: String,
        advertised: Endpoint,
        listeners: Vec<ListenerEndpoint>,
        replicas: Arc<ReplicaManager>,
        coordinators: Coordinators,
        metrics: BrokerMetrics,
    ) -> Result<Self, prometheus::Error> {
        let quotas = ClientQuotaManager::new(
            config.quota_window_num(),
            config.quota_window_size(),
            metrics.registry(),
        )?;
        let fetch_sessions = parking_lot::Mutex::new(FetchSessionCache::new(
            config.max_incremental_fetch_session_cache_slots(),
        ));
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
        let share_coordinator = crate::share::coordinator::ShareCoordinator::new(
            config.clone(),
            replicas.clone(),
            clock.clone(),
        );
        let share = crate::share::manager::SharePartitionManager::new(
            &config,
            replicas.clone(),
            clock,
            crate::share::persister::SharePersister::new(
                replicas.clone(),
                share_coordinator.clone(),
            ),
            crate::share::manager::ShareMetrics::new(metrics.registry())?,
        );
        let connections = Arc::new(crate::connection_quotas::ConnectionQuotas::new(&config));
        Ok(Self {
            connections,
            fetch_sessions,
            share,
            share_coordinator,
            config,
            meta_cluster_id: cluster_id,
            advertised,
            listeners,
            replicas,
            producer_ids: coordinators.producer_ids,
            groups: coordinators.groups,
            transactions: coordinators.transactions,
            metrics,
            quotas,
            ready: AtomicBool::new(false),
        })
    }

    /// The cluster id: the metadata quorum's, or `meta.properties`' before it is known.
    pub fn cluster_id(&self) -> String {
        self.replicas
            .image()
            .cluster_id
            .clone()
            .unwrap_or_else(|| self.meta_cluster_id.clone())
    }

    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Whether the broker has loaded its logs and is serving (`/readyz`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the broker ready or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Counts an error code returned by `api` (no-op for 0).
    pub fn count_error(&self, api: &str, code: i16) {
        if let Some(err) = ResponseError::try_from_code(code) {
            self.metrics
                .request_errors
                .with_label_values(&[api, &format!("{err:?}")])
                .inc();
        }
    }
}
