//! What every reconcile shares: the client, the operator's settings, its metrics.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;

use crate::admin::Identities;
use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::names::Addressing;

/// The image `scripts/build-images.sh` builds (both binaries), at this operator's version: the
/// default of the operator's own image and so of the brokers'.
pub const DEFAULT_IMAGE: &str = concat!("weir:", env!("CARGO_PKG_VERSION"));

/// Operator settings (command line / environment).
#[derive(Debug, Clone)]
pub struct Settings {
    pub addressing: Addressing,
    /// The operator's own image, used for the brokers' rack init container.
    pub operator_image: String,
    /// The brokers' image when a `Cluster` names none.
    pub default_broker_image: String,
    /// Requeue delay while something is in progress (scaling, draining, rolling).
    pub busy_requeue: Duration,
    /// Requeue delay of a steady cluster (status refresh).
    pub idle_requeue: Duration,
    /// How long a change to a mounted Secret takes to reach every broker (the kubelet's sync
    /// period and Secret cache): each phase of a CA renewal waits this long.
    pub certificate_settle: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            addressing: Addressing::default(),
            operator_image: DEFAULT_IMAGE.into(),
            default_broker_image: DEFAULT_IMAGE.into(),
            busy_requeue: Duration::from_secs(5),
            idle_requeue: Duration::from_secs(60),
            certificate_settle: Duration::from_secs(120),
        }
    }
}

/// Shared by every reconcile.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// Retry delays of objects whose last reconcile failed.
    pub backoff: Arc<Backoff>,
    /// The operator's client certificates for clusters whose internal port runs TLS.
    pub identities: Arc<Identities>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
