//! The operator's side of the brokers' admin API (`weir.admin.v1`, served on every broker's
//! internal port). Any broker answers: the brokers forward writes to the active controller.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use weir_api::proto::admin::admin_client::AdminClient;

use crate::names::{Addressing, ClusterNames};

/// How long the operator waits to connect to one broker before trying the next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of one admin call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A connected admin client and the broker it reached.
#[derive(Debug, Clone)]
pub struct Admin {
    pub client: AdminClient<Channel>,
    pub broker: i32,
}

/// Connects to the first of `ordinals` that accepts a connection.
pub async fn connect(
    names: &ClusterNames,
    addressing: &Addressing,
    internal_port: i32,
    ordinals: impl IntoIterator<Item = i32>,
) -> Result<Admin, String> {
    let mut failures = Vec::new();
    for ordinal in ordinals {
        let host = addressing.operator_host(names, ordinal);
        let uri = format!("http://{host}:{internal_port}");
        let endpoint = match Endpoint::from_shared(uri.clone()) {
            Ok(e) => e.connect_timeout(CONNECT_TIMEOUT).timeout(REQUEST_TIMEOUT),
            Err(e) => {
                failures.push(format!("{uri}: {e}"));
                continue;
            }
        };
        match endpoint.connect().await {
            Ok(channel) => {
                return Ok(Admin {
                    client: AdminClient::new(channel),
                    broker: ordinal,
                })
            }
            Err(e) => failures.push(format!("{uri}: {e}")),
        }
    }
    Err(if failures.is_empty() {
        "no broker to ask".to_string()
    } else {
        format!("no broker's admin API answered ({})", failures.join("; "))
    })
}
