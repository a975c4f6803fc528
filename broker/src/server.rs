//! The Kafka listener: accepts connections and serves each one's requests in order.
//!
//! Like Kafka, a connection is served one request at a time and responses leave in request
//! order; clients pipeline over several connections or rely on that order. A malformed,
//! oversized or unsupported request closes only its own connection, with a log line saying
//! why; every other connection is untouched.
//!
//! One [`run`] per listener. Its [`ListenerSecurity`] says whether a connection first does a
//! TLS handshake (SSL, SASL_SSL) and a SASL exchange (SASL_PLAINTEXT, SASL_SSL); the request
//! loop is generic over the stream, so a plaintext connection reads and writes the TCP socket
//! halves directly, as before listeners had security.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::broker::Broker;
use crate::handlers::{self, Connection};
use crate::protocol::frame::{read_frame, FrameError};
use crate::protocol::{self, ProtocolError};
use crate::security::sasl::{After, Exchange, Step, TokenStep};
use crate::security::scram::ScramMechanism;
use crate::security::{ListenerSecurity, Principal};

/// How long a client may take to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest frame a client may send before it has authenticated: Kafka's default
/// `sasl.server.max.receive.size`, so an unauthenticated client cannot make the broker
/// buffer a full `socket.request.max.bytes`.
const MAX_UNAUTHENTICATED_FRAME: usize = 512 * 1024;
/// The read buffer of a connection, plain or TLS.
const READ_BUFFER: usize = 64 * 1024;

/// Serves Kafka clients of one listener until `shutdown` becomes true.
pub async fn run(
    listener: TcpListener,
    security: Arc<ListenerSecurity>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let broker = broker.clone();
                    let shutdown = shutdown.clone();
                    let security = security.clone();
                    tokio::spawn(async move {
                        broker.metrics.connections_accepted.inc();
                        broker.metrics.connections_open.inc();
                        accept(stream, peer, &security, &broker, shutdown).await;
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

/// Does the TLS handshake if the listener has TLS, then serves the connection.
async fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    security: &ListenerSecurity,
    broker: &Broker,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut connection = Connection {
        peer: Some(peer),
        listener: security.name.clone(),
        principal: Principal::anonymous(),
        authorizer: security.authorizer.clone(),
    };
    let Some(tls) = &security.tls else {
        let (read_half, write_half) = stream.into_split();
        return serve_connection(
            read_half, write_half, connection, security, broker, shutdown,
        )
        .await;
    };
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream));
    match handshake.await {
        Ok(Ok(stream)) => {
            if let Some(mapper) = &security.principal_mapper {
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first());
                if let Some(certificate) = certificate {
                    let dn = crate::security::principal::subject_dn(certificate.as_ref());
                    match dn.as_deref().and_then(|dn| mapper.map(dn)) {
                        Some(name) => connection.principal = Principal::user(&name),
                        None => {
                            broker.metrics.authentication_failed(&security.name);
                            tracing::warn!(%peer, listener = %security.name, subject = ?dn, "no ssl.principal.mapping.rules rule matches the client certificate's subject; closing connection");
                            return;
                        }
                    }
                }
            }
            let (read_half, write_half) = tokio::io::split(stream);
            serve_connection(
                read_half, write_half, connection, security, broker, shutdown,
            )
            .await
        }
        Ok(Err(e)) => {
            // Kafka counts a failed TLS handshake as a failed authentication.
            broker.metrics.authentication_failed(&security.name);
            tracing::warn!(%peer, listener = %security.name, error = %e, "TLS handshake failed; closing connection");
        }
        Err(_) => {
            broker.metrics.authentication_failed(&security.name);
            tracing::warn!(%peer, listener = %security.name, "no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}; closing connection");
        }
    }
}

async fn serve_connection<R, W>(
    read_half: R,
    mut write_half: W,
    mut connection: Connection,
    security: &ListenerSecurity,
    broker: &Broker,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let peer = connection
        .peer
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut reader = BufReader::with_capacity(READ_BUFFER, read_half);
    let mut scratch = BytesMut::new();
    let max = broker.config.socket_request_max_bytes();
    // `Some` until a SASL listener's client has authenticated.
    let mut exchange = security.sasl.as_ref().map(|_| Exchange::AwaitHandshake);
    let scram = |user: &str, mechanism: ScramMechanism| {
        broker
            .replicas
            .image()
            .scram_credentials
            .get(user)
            .and_then(|by_mechanism| by_mechanism.get(mechanism.name()))
            .cloned()
    };
    loop {
        let limit = if exchange.is_some() {
            max.min(MAX_UNAUTHENTICATED_FRAME)
        } else {
            max
        };
        let frame = tokio::select! {
            f = read_frame(&mut reader, &mut scratch, limit) => f,
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
        if let (Some(state), Some(sasl)) = (&mut exchange, &security.sasl) {
            if state.awaits_raw_token() {
                // After a v0 handshake tokens and answers are bare frames (PLAIN's answer is
                // empty); a failure closes the connection without one, as in Kafka.
                let (answer, principal) = match state.token(sasl, &frame, &scram) {
                    Ok(TokenStep::Continue(challenge)) => (challenge, None),
                    Ok(TokenStep::Done(principal, last)) => (last, Some(principal)),
                    Err(e) => {
                        broker.metrics.authentication_failed(&security.name);
                        tracing::info!(%peer, listener = %security.name, error = %e, "SASL authentication failed; closing connection");
                        return;
                    }
                };
                if let Some(principal) = principal {
                    broker.metrics.authentication_succeeded(&security.name);
                    connection.principal = principal;
                    exchange = None;
                }
                let mut bytes = Vec::with_capacity(4 + answer.len());
                bytes.extend_from_slice(&(answer.len() as u32).to_be_bytes());
                bytes.extend_from_slice(&answer);
                if write_half.write_all(&bytes).await.is_err() || write_half.flush().await.is_err()
                {
                    return;
                }
                continue;
            }
        }
        let started = Instant::now();
        let mut close_after = false;
        let response = match protocol::decode_request(frame) {
            Ok(request) => {
                let api = request.api_key;
                let version = request.header.request_api_version;
                let correlation_id = request.header.correlation_id;
                let api_name = api_label(api);
                broker.metrics.requests.with_label_values(&[api_name]).inc();
                let step = match (&mut exchange, &security.sasl) {
                    (Some(state), Some(sasl)) => {
                        state.on_request(sasl, &request.body, version, &scram)
                    }
                    _ => Step::Serve,
                };
                let body = match step {
                    Step::Serve => handlers::handle(broker, request, &connection).await,
                    Step::Respond(body, after) => {
                        match after {
                            After::Continue => {}
                            After::Authenticated(principal) => {
                                broker.metrics.authentication_succeeded(&security.name);
                                tracing::debug!(%peer, %principal, "authenticated");
                                connection.principal = principal;
                                exchange = None;
                            }
                            After::Failed => {
                                broker.metrics.authentication_failed(&security.name);
                                tracing::info!(%peer, listener = %security.name, "SASL authentication failed; closing connection");
                                close_after = true;
                            }
                            After::Close => close_after = true,
                        }
                        Some(*body)
                    }
                    Step::Refuse(state) => {
                        broker.metrics.protocol_errors.inc();
                        tracing::warn!(%peer, listener = %security.name, api = api_name, "request before SASL authentication ({state}); closing connection");
                        return;
                    }
                };
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
        // A TCP half's flush does nothing; a TLS stream's sends what it still buffers.
        let written = async {
            write_half.write_all(&bytes).await?;
            write_half.flush().await
        };
        if let Err(e) = written.await {
            tracing::debug!(%peer, error = %e, "writing a response failed");
            return;
        }
        if close_after {
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
