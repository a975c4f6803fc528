//! The admin gRPC API (`weir.admin.v1.Admin`) from tests: a tonic client for any broker of a
//! [`Cluster`], and [`eventually`], the async counterpart of [`crate::wait_until`] for
//! conditions that need a gRPC call to evaluate.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use weir_api::proto::admin as pb;

use crate::cluster::Cluster;

/// A client of one broker's admin service.
pub type AdminClient = pb::admin_client::AdminClient<Channel>;

/// How often [`eventually`] re-evaluates its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

impl Cluster {
    /// An admin client of broker `id` (connected on first call, so a broker that is down only
    /// fails the calls made while it is down).
    pub fn admin(&self, id: usize) -> AdminClient {
        let addr = self.brokers[id]
            .rpc_addr()
            .expect("cluster brokers have a fixed internal port");
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("a valid URI")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .connect_lazy();
        AdminClient::new(channel)
    }

    /// DescribeCluster as broker `id` answers it.
    pub async fn describe_cluster(&self, id: usize) -> pb::DescribeClusterResponse {
        self.admin(id)
            .describe_cluster(pb::DescribeClusterRequest {})
            .await
            .unwrap_or_else(|s| panic!("DescribeCluster on broker {id}: {s}"))
            .into_inner()
    }
}

impl Cluster {
    /// Waits until broker `id` sees every broker that is up as registered and unfenced
    /// (active or draining): a broker prints its ready line once its own metadata says so,
    /// the others' metadata follows a moment later.
    pub async fn wait_all_active(&self, id: usize, timeout: Duration) {
        let up: Vec<i32> = (0..self.brokers.len())
            .filter(|b| !self.down[*b])
            .map(|b| b as i32)
            .collect();
        eventually(timeout, "every broker that is up unfenced", || {
            let up = up.clone();
            async move {
                let d = self.describe_cluster(id).await;
                let unfenced = |b: &i32| {
                    broker_entry(&d, *b).is_some_and(|e| {
                        matches!(
                            e.state(),
                            pb::BrokerState::Active | pb::BrokerState::Draining
                        )
                    })
                };
                up.iter().all(unfenced).then_some(())
            }
        })
        .await;
    }
}

/// Evaluates `condition` until it returns `Some`, and returns that value. Panics with `what`
/// when `timeout` passes first.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The broker `id` as DescribeCluster lists it.
pub fn broker_entry(cluster: &pb::DescribeClusterResponse, id: i32) -> Option<&pb::Broker> {
    cluster.brokers.iter().find(|b| b.id == id)
}
