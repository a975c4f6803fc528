//! The Kafka listener: accepts connections and serves each one's requests in order.
//!
//! Like Kafka, a connection is served one request at a time and responses leave in request
//! order; clients pipeline over several connections or rely on that order. A malformed,
//! oversized or unsupported request closes only its own connection, with a log line saying
//! why; every other connection is untouched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::broker::Broker;
use crate::handlers;
use crate::protocol::frame::{read_frame, FrameError};
use crate::protocol::{self, ProtocolError};

/// Serves Kafka clients on `listener` until `shutdown` becomes true.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let broker = broker.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        broker.metrics.connections_accepted.inc();
                        broker.metrics.connections_open.inc();
                        serve_connection(stream, peer, &broker, shutdown).await;
                        broker.metrics.connections_open.dec();
                    });
                }
                Err(e) => {
                    // Out of file descriptors and similar: log and keep accepting.
                    tracing::warn!(error = %e, "accepting a connection failed");
                }
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() { return; }
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    broker: &Broker,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let mut scratch = BytesMut::new();
    let max = broker.config.socket_request_max_bytes();
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut reader, &mut scratch, max) => f,
            _ = shutdown.changed() => return,
        };
        let frame = match frame {
            Ok(f) => f,
            Err(FrameError::Closed) => return,
            Err(e) => {
                broker.metrics.protocol_errors.inc();
                tracing::warn!(%peer, error = %e, "closing connection");
                return;
            }
        };
        let started = Instant::now();
        let response = match protocol::decode_request(frame) {
            Ok(request) => {
                let api = request.api_key;
                let version = request.header.request_api_version;
                let correlation_id = request.header.correlation_id;
                let api_name = api_label(api);
                broker.metrics.requests.with_label_values(&[api_name]).inc();
                let body = handlers::handle(broker, request, Some(peer)).await;
                broker
                    .metrics
                    .request_latency
                    .with_label_values(&[api_name])
                    .observe(started.elapsed().as_secs_f64());
                match body {
                    Some(body) => protocol::encode_response(correlation_id, api, version, &body),
                    None => continue, // acks=0 produce: Kafka sends nothing back
                }
            }
            Err(ProtocolError::UnsupportedVersion {
                api: ApiKey::ApiVersions,
                version,
                correlation_id: Some(correlation_id),
                ..
            }) => {
                // Kafka answers an ApiVersions it cannot parse with a v0 response carrying
                // UNSUPPORTED_VERSION and its ranges, so the client can retry with one it has.
                tracing::debug!(%peer, version, "ApiVersions at unsupported version; answering v0");
                let body =
                    ResponseKind::ApiVersions(handlers::api_versions::response().with_error_code(
                        kafka_protocol::error::ResponseError::UnsupportedVersion.code(),
                    ));
                protocol::encode_response(correlation_id, ApiKey::ApiVersions, 0, &body)
            }
            Err(e) => {
                broker.metrics.protocol_errors.inc();
                tracing::warn!(%peer, error = %e, "closing connection");
                return;
            }
        };
        let bytes = match response {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%peer, error = %e, "encoding a response failed; closing connection");
                return;
            }
        };
        if let Err(e) = write_half.write_all(&bytes).await {
            tracing::debug!(%peer, error = %e, "writing a response failed");
            return;
        }
    }
}

/// The metric label of an API: Kafka's request name (`OffsetForLeaderEpoch`), for every API
/// Weir answers; "Other" for the rest (decoded only to be refused).
pub fn api_label(api: ApiKey) -> &'static str {
    // Built once from the supported list, so a new API gets its label with no edit here.
    static LABELS: std::sync::LazyLock<std::collections::HashMap<ApiKey, &'static str>> =
        std::sync::LazyLock::new(|| {
            crate::protocol::versions::SUPPORTED
                .iter()
                .map(|&(api, _, _)| (api, &*format!("{api:?}").leak()))
                .collect()
        });
    LABELS.get(&api).copied().unwrap_or("Other")
}
