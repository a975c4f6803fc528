//! A broker's life in the cluster: register with the controller, catch up with the metadata
//! log, heartbeat to stay unfenced, and on shutdown move leadership away before exiting
//! (controlled shutdown), as KRaft brokers do.
//!
//! A broker only serves clients once the controller has unfenced it, which it does when the
//! broker's heartbeat shows it applied the log up to its own registration. Each heartbeat the
//! controller answers "not fenced" renews the broker's registration lease
//! (`replica_manager::lease`), without which it stops acting as a group coordinator.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;
use uuid::Uuid;
use weir_api::proto::controller::{BrokerHeartbeatRequest, RegisterBrokerRequest};

use crate::broker::Broker;
use crate::controller::{Controller, ControllerError};

/// Pause between attempts while the quorum is unreachable.
const RETRY: Duration = Duration::from_millis(200);

/// How long one heartbeat may wait for its answer: the heartbeat interval (the next one is
/// due then anyway), and never less than a second, so a slow but live controller is not
/// given up on at once.
fn heartbeat_timeout(interval: Duration) -> Duration {
    interval.max(Duration::from_secs(1))
}

/// This broker's registration.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    broker: Arc<Broker>,
    controller: Arc<Controller>,
    incarnation: Uuid,
    rpc_addr: String,
    epoch: watch::Sender<i64>,
}

impl Lifecycle {
    /// A broker process about to register with `rpc_addr` as its internal address.
    pub fn new(broker: Arc<Broker>, controller: Arc<Controller>, rpc_addr: String) -> Self {
        Self {
            broker,
            controller,
            incarnation: Uuid::new_v4(),
            rpc_addr,
            epoch: watch::channel(-1).0,
        }
    }

    /// Registers (retrying until the quorum answers) and returns the broker epoch and the
    /// cluster id.
    pub async fn register(&self) -> (i64, String) {
        loop {
            let request = RegisterBrokerRequest {
                broker_id: self.broker.node_id(),
                incarnation: self.incarnation.to_string(),
                rack: self.broker.config.rack().unwrap_or_default().to_string(),
                host: self.broker.advertised.host.clone(),
                port: u32::from(self.broker.advertised.port),
                rpc_addr: self.rpc_addr.clone(),
                cluster_id: self.broker.cluster_id(),
                directory_id: self.controller.directory_id().to_string(),
                listeners: self
                    .broker
                    .listeners
                    .iter()
                    .map(|l| weir_api::proto::controller::ListenerEndpoint {
                        name: l.name.clone(),
                        host: l.host.clone(),
                        port: u32::from(l.port),
                    })
                    .collect(),
            };
            match self.controller.register_broker(request).await {
                Ok(r) => {
                    self.epoch.send_replace(r.broker_epoch);
                    self.broker.replicas.set_registration_epoch(r.broker_epoch);
                    return (r.broker_epoch, r.cluster_id);
                }
                Err(e) => {
                    tracing::info!(error = %e, "registering with the controller; retrying");
                    if !self.controller.wait_for_leader(RETRY).await {
                        continue;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Waits until this broker applied the metadata log up to its registration.
    pub async fn catch_up(&self, epoch: i64) {
        let mut images = self.controller.subscribe();
        while images.borrow_and_update().applied_index < epoch as u64 {
            if images.changed().await.is_err() {
                return;
            }
        }
        // Let the replica manager apply that image before the broker claims to be caught up.
        let replicas = &self.broker.replicas;
        let mut applied = replicas.subscribe_image_applied();
        while replicas.image().applied_index < epoch as u64 {
            if applied.changed().await.is_err() {
                return;
            }
        }
        replicas.set_caught_up(epoch);
    }

    /// One heartbeat, given up after [`heartbeat_timeout`]: a heartbeat forwarded to an
    /// active controller that stopped answering without closing its connections (a paused
    /// process, a host gone silent) would otherwise wait forever, and with it every later
    /// heartbeat of this broker, while a newly elected controller fences it for silence. The
    /// next attempt goes to whoever the quorum says is active by then.
    async fn heartbeat(&self, want_shutdown: bool) -> Result<(bool, bool), ControllerError> {
        let epoch = *self.epoch.borrow();
        let request = BrokerHeartbeatRequest {
            broker_id: self.broker.node_id(),
            broker_epoch: epoch,
            applied_index: self.broker.replicas.image().applied_index,
            want_shutdown,
        };
        let timeout = heartbeat_timeout(
            self.broker
                .config
                .duration_ms("broker.heartbeat.interval.ms"),
        );
        let sent = std::time::Instant::now();
        let response = tokio::time::timeout(timeout, self.controller.heartbeat(request))
            .await
            .map_err(|_| {
                ControllerError::Unavailable(format!(
                    "no answer to the heartbeat within {timeout:?}"
                ))
            })??;
        let lease = self.broker.replicas.lease();
        if response.fenced {
            lease.expire();
        } else if lease.renew(
            sent,
            self.broker.config.duration_ms("broker.session.timeout.ms"),
        ) {
            tracing::info!("registration lease renewed after it lapsed");
        }
        Ok((response.fenced, response.shutdown_ready))
    }

    /// Heartbeats until unfenced, then waits until this broker has applied the image that
    /// unfenced it (so it leads its partitions before it tells anyone it is ready).
    pub async fn wait_unfenced(&self) {
        loop {
            match self.heartbeat(false).await {
                Ok((false, _)) => break,
                Ok((true, _)) => {}
                Err(e) => tracing::debug!(error = %e, "heartbeat before unfencing"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let replicas = &self.broker.replicas;
        let id = self.broker.node_id();
        let mut applied = replicas.subscribe_image_applied();
        while replicas.image().brokers.get(&id).is_none_or(|b| b.fenced) {
            if applied.changed().await.is_err() {
                return;
            }
        }
    }

    /// Heartbeats every `broker.heartbeat.interval.ms` until `stop` turns true; registers
    /// again if the controller no longer knows this registration (it expired).
    pub async fn heartbeat_loop(self, mut stop: watch::Receiver<bool>) {
        let interval = self
            .broker
            .config
            .duration_ms("broker.heartbeat.interval.ms");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            match self.heartbeat(false).await {
                Ok(_) => {}
                Err(ControllerError::Refused {
                    error: ResponseError::StaleBrokerEpoch,
                    ..
                }) => {
                    tracing::warn!(
                        "the controller lost this broker's registration; registering again"
                    );
                    let (epoch, _) = self.register().await;
                    self.catch_up(epoch).await;
                }
                Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
            }
        }
    }

    /// Asks the controller to move this broker's leaderships away and waits until it did (or
    /// `controlled.shutdown.timeout.ms` passed).
    pub async fn controlled_shutdown(&self) {
        let timeout = self
            .broker
            .config
            .duration_ms("controlled.shutdown.timeout.ms");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.heartbeat(true).await {
                Ok((_, true)) => {
                    tracing::info!("controlled shutdown: leaderships moved away");
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "controlled shutdown heartbeat"),
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("controlled shutdown timed out; stopping anyway");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
