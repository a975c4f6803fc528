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
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::broker::Broker;
use crate::connection_quotas::{Admitted, ConnectionQuotas};
use crate::handlers::{self, Connection};
use crate::protocol::frame::{FrameError, FrameReader, FrameSink};
use crate::protocol::{self, ProtocolError};
use crate::quota::QuotaType;
use crate::security::sasl::{After, Exchange, SaslConfig, Step, TokenStep};
use crate::security::scram::ScramMechanism;
use crate::security::{ListenerSecurity, Principal};

/// How long a client may take to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest frame a client may send before it has authenticated: Kafka's default
/// `sasl.server.max.receive.size`, so an unauthenticated client cannot make the broker
/// buffer a full `socket.request.max.bytes`.
const MAX_UNAUTHENTICATED_FRAME: usize = 512 * 1024;

/// `connections.max.idle.ms` is counted in this many ticks of a listener-wide clock: a
/// connection that has sent no request for that many ticks is closed on the next one, so after
/// between 1 and 1.1 times the setting (Kafka's processors check their idle connections as
/// loosely). A tick per tenth of the setting costs an idle connection a wake-up as often.
const IDLE_TICKS: u8 = 10;

/// Serves Kafka clients of one listener until `shutdown` becomes true.
pub async fn run(
    listener: TcpListener,
    security: Arc<ListenerSecurity>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The inter-broker listener is the one whose advertised address the broker registers.
    let inter_broker = broker.listeners.iter().any(|l| {
        l.name == *security.name
            && l.host == broker.advertised.host
            && l.port == broker.advertised.port
    });
    let limits = ConnectionQuotas::listener(&broker.config, &security.name, inter_broker);
    // What the listener's connections wait on: shutdown, and the idle clock's ticks.
    let clock = connection_clock(broker.config.connections_max_idle(), shutdown.clone());
    loop {
        // At the listener's or the broker's connection limit, or ahead of the creation rate:
        // new connections wait in the kernel's backlog (Kafka's acceptor blocks the same way).
        tokio::select! {
            _ = broker.connections.wait_for_room(&limits) => {}
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let admitted = match broker.connections.admit(&limits, peer.ip()) {
                        Ok(admitted) => admitted,
                        Err(refused) => {
                            broker.metrics.connections_refused.inc();
                            tracing::info!(%peer, listener = %security.name, limit = refused.limit, "rejected connection: the address already has the maximum number of connections (max.connections.per.ip)");
                            continue;
                        }
                    };
                    let image = broker.replicas.image();
                    let throttled = (!image.client_quotas.is_empty())
                        .then(|| broker.quotas.record_connection(&image, peer.ip(), Instant::now()))
                        .flatten();
                    if let Some(throttle) = throttled {
                        // Over its address's connection_creation_rate: closed, after the
                        // throttle time as Kafka does, so a client in a reconnect loop slows.
                        broker.metrics.connections_refused.inc();
                        tracing::info!(%peer, listener = %security.name, throttle_ms = throttle.as_millis() as u64, "rejected connection: the address is over its connection_creation_rate; closing it after the throttle time");
                        drop(admitted);
                        tokio::spawn(async move {
                            tokio::time::sleep(throttle).await;
                            drop(stream);
                        });
                        continue;
                    }
                    broker.metrics.connections_accepted.inc();
                    broker.metrics.connections_open.inc();
                    let (broker, security, shutdown) =
                        (broker.clone(), security.clone(), clock.clone());
                    // Two kinds of task, each of its own size: a plaintext connection's
                    // holds no room for a TLS handshake.
                    if security.tls.is_none() {
                        tokio::spawn(serve_plaintext(
                            stream, peer, security, broker, shutdown, admitted,
                        ));
                    } else {
                        // The handshake is a task of its own: its state (the handshake
                        // future, rustls' buffers mid-handshake) is gone once it ends, and the
                        // connection's task is sized for serving alone.
                        tokio::spawn(async move {
                            match accept_tls(stream, peer, &security, &broker, shutdown).await {
                                Some(mut task) => {
                                    tokio::spawn(async move {
                                        task.serve().await;
                                        task.responder.broker.metrics.connections_open.dec();
                                        drop(admitted);
                                    });
                                }
                                None => {
                                    broker.metrics.connections_open.dec();
                                    drop(admitted);
                                }
                            }
                        });
                    }
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

/// The handlers' view of a connection just accepted: anonymous until TLS or SASL says who
/// the client is.
fn accepted_connection(
    peer: SocketAddr,
    security: &ListenerSecurity,
    broker: &Broker,
) -> Connection {
    Connection {
        peer: Some(peer),
        listener: security.name.clone(),
        principal: Principal::anonymous(),
        authorizer: security.authorizer.clone(),
        lease_lapses: broker.replicas.lease().lapses(),
        file_slices: None,
    }
}

/// The task of a plaintext connection: serves its requests until it closes, then counts it
/// closed (`admitted` releases its place in the connection quotas).
///
/// Everything the connection keeps is built before the task's future, which only borrows it:
/// a value an `async` body moves out of its captures is stored twice in the future (the
/// capture stays), and the future is what an idle connection's task holds.
fn serve_plaintext(
    stream: TcpStream,
    peer: SocketAddr,
    security: Arc<ListenerSecurity>,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
    admitted: Admitted,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let _ = stream.set_nodelay(true);
    let mut connection = accepted_connection(peer, &security, &broker);
    // Fetch responses send records from the segment files (sendfile).
    connection.file_slices = Some(Default::default());
    let (read_half, write_half) = stream.into_split();
    let mut task = ConnectionTask::new(
        read_half, write_half, connection, security, broker, shutdown,
    );
    async move {
        task.serve().await;
        task.responder.broker.metrics.connections_open.dec();
        drop(admitted);
    }
}

/// The task that serves a TLS connection once its handshake is done.
type TlsConnectionTask = ConnectionTask<
    tokio::io::ReadHalf<tokio_rustls::server::TlsStream<TcpStream>>,
    tokio::io::WriteHalf<tokio_rustls::server::TlsStream<TcpStream>>,
>;

/// A TLS listener's connection up to serving it: the handshake (within
/// [`TLS_HANDSHAKE_TIMEOUT`]), the principal of the client certificate if
/// `ssl.principal.mapping.rules` maps one, then the task that serves its requests; `None` if
/// the connection is closed instead (the reason logged).
async fn accept_tls(
    stream: TcpStream,
    peer: SocketAddr,
    security: &Arc<ListenerSecurity>,
    broker: &Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) -> Option<TlsConnectionTask> {
    let tls = security.tls.as_ref()?;
    let _ = stream.set_nodelay(true);
    let mut connection = accepted_connection(peer, security, broker);
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream));
    let stream = match handshake.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            // Kafka counts a failed TLS handshake as a failed authentication.
            broker.metrics.authentication_failed(&security.name);
            tracing::warn!(%peer, listener = %security.name, error = %e, "TLS handshake failed; closing connection");
            return None;
        }
        Err(_) => {
            broker.metrics.authentication_failed(&security.name);
            tracing::warn!(%peer, listener = %security.name, "no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}; closing connection");
            return None;
        }
    };
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
                    return None;
                }
            }
        }
    }
    let (read_half, write_half) = tokio::io::split(stream);
    Some(ConnectionTask::new(
        read_half,
        write_half,
        connection,
        security.clone(),
        broker.clone(),
        shutdown,
    ))
}

/// A connection's requests read and answered in turn, until the client closes it, an answer
/// closes it or the broker shuts down. Owned by the connection's task.
///
/// While the connection waits for its next request (most of its life, at scale), its task
/// holds this and the future of [`ConnectionTask::serve`]: the frame reader (no buffer while
/// idle, [`FrameReader`]), the shutdown watch and the [`Responder`]. Answering a request is
/// a future of its own, boxed for as long as the request takes: it holds the handlers' state
/// machine (KiBs: the largest of every API's), the response being written and a throttle's
/// timer, and inline they would sit in every connection's task, idle or not. That is one
/// allocation per request, as when only the handler was boxed.
struct ConnectionTask<R, W> {
    reader: FrameReader<R>,
    responder: Responder<W>,
    /// The listener's [`connection_clock`]: true at shutdown, and changes (staying false) on
    /// every tick of the idle clock.
    shutdown: watch::Receiver<bool>,
}

impl<R: AsyncRead + Unpin, W: FrameSink> ConnectionTask<R, W> {
    fn new(
        read_half: R,
        write_half: W,
        connection: Connection,
        security: Arc<ListenerSecurity>,
        broker: Arc<Broker>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            reader: FrameReader::new(read_half),
            responder: Responder::new(write_half, connection, security, broker),
            shutdown,
        }
    }

    async fn serve(&mut self) {
        let Self {
            reader,
            responder,
            shutdown,
        } = self;
        let mut ticks = 0u8;
        loop {
            // Read per request rather than kept: what an idle connection's task holds is
            // counted in bytes (see the test below).
            let max = responder.broker.config.socket_request_max_bytes();
            let limit = if responder.exchange.is_some() {
                max.min(MAX_UNAUTHENTICATED_FRAME)
            } else {
                max
            };
            let frame = tokio::select! {
                f = reader.read_frame(limit) => f,
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                    ticks += 1;
                    if ticks > IDLE_TICKS {
                        tracing::debug!(peer = %responder.peer(), "closing a connection idle for longer than connections.max.idle.ms");
                        responder.broker.metrics.connections_closed_idle.inc();
                        return;
                    }
                    // A tick of the idle clock. The read starts over and loses nothing: what
                    // it had read is in the reader.
                    continue;
                }
            };
            let frame = match frame {
                Ok(f) => f,
                Err(FrameError::Closed) => return,
                Err(e) => {
                    responder.broker.metrics.protocol_errors.inc();
                    tracing::warn!(peer = %responder.peer(), error = %e, "closing connection");
                    return;
                }
            };
            if Box::pin(responder.respond(frame, shutdown))
                .await
                .is_break()
            {
                return;
            }
            // Ticks while the request was answered do not count.
            ticks = 0;
            if *shutdown.borrow_and_update() {
                return;
            }
        }
    }
}

/// What a listener's connections wait on: `shutdown` itself while idle connections stay open
/// (`connections.max.idle.ms` not positive, or beyond a year); otherwise a copy of it that
/// also changes, staying false, every tenth of `max_idle` (a tick of the idle clock). One
/// watch for both keeps an idle connection's task as small as it was without the clock.
fn connection_clock(
    max_idle: Option<Duration>,
    mut shutdown: watch::Receiver<bool>,
) -> watch::Receiver<bool> {
    let Some(max_idle) = max_idle else {
        return shutdown;
    };
    let period = max_idle / u32::from(IDLE_TICKS);
    let (tx, rx) = watch::channel(*shutdown.borrow_and_update());
    tokio::spawn(async move {
        let mut clock = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = clock.tick() => {
                    tx.send_replace(false);
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        tx.send_replace(true);
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// The side of a connection that answers its requests: the writer, the handlers' view of the
/// connection ([`Connection`]) and where its SASL authentication stands. Lives as long as the
/// connection; owned by its task.
struct Responder<W> {
    write_half: W,
    connection: Connection,
    security: Arc<ListenerSecurity>,
    broker: Arc<Broker>,
    /// `Some` until a SASL listener's client has authenticated (and again while it
    /// re-authenticates). Boxed: a mechanism's state is larger than all the rest, and most
    /// connections never have one.
    exchange: Option<Box<Exchange>>,
    /// KIP-368: when the authentication stops being valid.
    session_ends: Option<Instant>,
    /// Whether the exchange under way is a re-authentication (which must keep the principal).
    reauthenticating: bool,
}

impl<W: FrameSink> Responder<W> {
    fn new(
        write_half: W,
        connection: Connection,
        security: Arc<ListenerSecurity>,
        broker: Arc<Broker>,
    ) -> Self {
        Self {
            write_half,
            connection,
            exchange: security
                .sasl
                .as_ref()
                .map(|_| Box::new(Exchange::AwaitHandshake)),
            security,
            broker,
            session_ends: None,
            reauthenticating: false,
        }
    }

    /// The client's address for log lines (`0.0.0.0:0` when unknown).
    fn peer(&self) -> SocketAddr {
        self.connection
            .peer
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Answers one request frame (a SASL token after a v0 handshake is a bare frame), then
    /// mutes the connection for as long as a quota throttles it. `Break` closes the connection.
    async fn respond(
        &mut self,
        frame: Bytes,
        shutdown: &mut watch::Receiver<bool>,
    ) -> ControlFlow<()> {
        if self.security.sasl.is_some()
            && self.exchange.as_ref().is_some_and(|e| e.awaits_raw_token())
        {
            return self.raw_token(&frame).await;
        }
        let (broker, security, peer) = (&*self.broker, &*self.security, self.peer());
        let scram =
            |user: &str, mechanism: ScramMechanism| scram_credential(broker, user, mechanism);
        let started = Instant::now();
        let mut close_after = false;
        let mut throttle = Duration::ZERO;
        let frame_len = frame.len();
        let response = match protocol::decode_request(frame) {
            Ok(request) => {
                let api = request.api_key;
                if sent_before_a_lapse(broker, &self.connection, api) {
                    broker.metrics.stale_connections_closed.inc();
                    tracing::warn!(%peer, api = api_label(api), "an offset commit arrived on a connection opened before this broker was cut off from the metadata quorum (its registration lease lapsed since); closing the connection unanswered, as the client may have given up on the request and committed elsewhere since");
                    return ControlFlow::Break(());
                }
                let version = request.header.request_api_version;
                let correlation_id = request.header.correlation_id;
                let quota = QuotaRequest::of(broker, &request, &self.connection, frame_len);
                let request_quota = RequestQuota::of(broker, &request, &self.connection);
                let mut handling = Duration::ZERO;
                let api_name = api_label(api);
                broker.metrics.requests.with_label_values(&[api_name]).inc();
                if let (None, Some(sasl)) = (&self.exchange, &security.sasl) {
                    if sasl.max_reauth.is_some()
                        && matches!(request.body, RequestKind::SaslHandshake(_))
                    {
                        // A client re-authenticating (KIP-368) before its session ends.
                        self.exchange = Some(Box::new(Exchange::AwaitHandshake));
                        self.reauthenticating = true;
                    } else if self.session_ends.is_some_and(|end| Instant::now() >= end) {
                        tracing::info!(%peer, listener = %security.name, principal = %self.connection.principal, "SASL session expired without re-authentication (connections.max.reauth.ms); closing connection");
                        return ControlFlow::Break(());
                    }
                }
                let step = match (&mut self.exchange, &security.sasl) {
                    (Some(state), Some(sasl)) => {
                        state.on_request(sasl, &request.body, version, &scram)
                    }
                    _ => Step::Serve,
                };
                let body = match step {
                    Step::Serve => {
                        let handler =
                            std::pin::pin!(handlers::handle(broker, request, &self.connection));
                        let (body, busy) = crate::quota::Timed::new(handler).await;
                        handling = busy;
                        body
                    }
                    Step::Respond(mut body, after) => {
                        match after {
                            After::Continue => {}
                            After::Authenticated(principal, _)
                                if self.reauthenticating
                                    && principal != self.connection.principal =>
                            {
                                broker.metrics.authentication_failed(&security.name);
                                tracing::info!(%peer, listener = %security.name, from = %self.connection.principal, to = %principal, "re-authentication changed the principal; closing connection");
                                if let ResponseKind::SaslAuthenticate(r) = body.as_mut() {
                                    r.error_code = kafka_protocol::error::ResponseError::SaslAuthenticationFailed.code();
                                    r.error_message = Some(kafka_protocol::protocol::StrBytes::from_string(format!(
                                        "Cannot change principals during re-authentication from {}: {principal}",
                                        self.connection.principal
                                    )));
                                }
                                close_after = true;
                            }
                            After::Authenticated(principal, expires) => {
                                if self.reauthenticating {
                                    broker.metrics.reauthentication_succeeded(&security.name);
                                } else {
                                    broker.metrics.authentication_succeeded(&security.name);
                                }
                                tracing::debug!(%peer, %principal, reauthenticating = self.reauthenticating, "authenticated");
                                self.connection.principal = principal;
                                self.exchange = None;
                                self.reauthenticating = false;
                                self.session_ends = security
                                    .sasl
                                    .as_ref()
                                    .and_then(|sasl| session_end(sasl, expires));
                                if let (ResponseKind::SaslAuthenticate(r), Some(end)) =
                                    (body.as_mut(), self.session_ends)
                                {
                                    // v1+: the client re-authenticates before this.
                                    let left = end.saturating_duration_since(Instant::now());
                                    r.session_lifetime_ms =
                                        left.as_millis().min(i64::MAX as u128) as i64;
                                }
                            }
                            After::Failed(reason) => {
                                broker.metrics.authentication_failed(&security.name);
                                tracing::info!(%peer, listener = %security.name, %reason, "SASL authentication failed; closing connection");
                                close_after = true;
                            }
                            After::Close => close_after = true,
                        }
                        Some(*body)
                    }
                    Step::Refuse(state) => {
                        broker.metrics.protocol_errors.inc();
                        tracing::warn!(%peer, listener = %security.name, api = api_name, "request before SASL authentication ({state}); closing connection");
                        return ControlFlow::Break(());
                    }
                };
                broker
                    .metrics
                    .request_latency
                    .with_label_values(&[api_name])
                    .observe(started.elapsed().as_secs_f64());
                let Some(mut body) = body else {
                    // acks=0 produce: Kafka sends nothing back, but the bytes and time count.
                    if let Some(quota) = quota {
                        throttle = quota.apply(broker, None);
                    }
                    if let Some(request_quota) = request_quota {
                        throttle = throttle.max(request_quota.apply(broker, handling, None));
                    }
                    mute(throttle, shutdown).await;
                    return ControlFlow::Continue(());
                };
                if let Some(quota) = quota {
                    throttle = quota.apply(broker, Some(&mut body));
                }
                if let Some(request_quota) = request_quota {
                    throttle = throttle.max(request_quota.apply(broker, handling, Some(&mut body)));
                }
                throttle = throttle.max(mutation_throttle(&body));
                let slices = self
                    .connection
                    .file_slices
                    .as_ref()
                    .map(|s| std::mem::take(&mut *s.lock()))
                    .unwrap_or_default();
                protocol::encode_response_with_files(correlation_id, api, version, &body, &slices)
            }
            Err(ProtocolError::UnsupportedVersion {
                api: ApiKey::ApiVersions,
                version,
                correlation_id: Some(correlation_id),
                ..
            }) => {
                // Kafka answers an ApiVersions it cannot parse with a v0 response carrying
                // UNSUPPORTED_VERSION and its ranges, so the client can retry with one it has.
                // The ranges are the ones a supported version gets (share-group APIs
                // included when enabled): a client may keep them instead of asking again
                // (franz-go does, for ApiVersions v5).
                tracing::debug!(%peer, version, "ApiVersions at unsupported version; answering v0");
                let body = ResponseKind::ApiVersions(
                    handlers::api_versions::handle(broker).with_error_code(
                        kafka_protocol::error::ResponseError::UnsupportedVersion.code(),
                    ),
                );
                protocol::encode_response(correlation_id, ApiKey::ApiVersions, 0, &body)
            }
            Err(e) => {
                broker.metrics.protocol_errors.inc();
                tracing::warn!(%peer, error = %e, "closing connection");
                return ControlFlow::Break(());
            }
        };
        let frame = match response {
            Ok(f) => {
                let from_files = f.file_bytes();
                if from_files > 0 {
                    broker
                        .metrics
                        .fetch_sendfile_bytes
                        .inc_by(from_files as u64);
                }
                f
            }
            Err(e) => {
                tracing::error!(%peer, error = %e, "encoding a response failed; closing connection");
                return ControlFlow::Break(());
            }
        };
        // A TCP half's flush does nothing; a TLS stream's sends what it still buffers.
        let written = async {
            frame.write_to(&mut self.write_half).await?;
            self.write_half.flush().await
        };
        if let Err(e) = written.await {
            tracing::debug!(%peer, error = %e, "writing a response failed");
            return ControlFlow::Break(());
        }
        if close_after {
            return ControlFlow::Break(());
        }
        mute(throttle, shutdown).await;
        ControlFlow::Continue(())
    }

    /// After a v0 SaslHandshake, tokens and answers are bare frames (PLAIN's answer is
    /// empty); a failure closes the connection without one, as in Kafka.
    async fn raw_token(&mut self, token: &[u8]) -> ControlFlow<()> {
        let (broker, security, peer) = (&*self.broker, &*self.security, self.peer());
        let scram =
            |user: &str, mechanism: ScramMechanism| scram_credential(broker, user, mechanism);
        let (Some(state), Some(sasl)) = (&mut self.exchange, &security.sasl) else {
            return ControlFlow::Continue(());
        };
        let (answer, principal) = match state.token(sasl, token, &scram) {
            Ok(TokenStep::Continue(challenge)) => (challenge, None),
            Ok(TokenStep::Done(principal, last, expires)) => {
                self.session_ends = session_end(sasl, expires);
                (last, Some(principal))
            }
            Err(e) => {
                broker.metrics.authentication_failed(&security.name);
                tracing::info!(%peer, listener = %security.name, error = %e, "SASL authentication failed; closing connection");
                return ControlFlow::Break(());
            }
        };
        if let Some(principal) = principal {
            broker.metrics.authentication_succeeded(&security.name);
            self.connection.principal = principal;
            self.exchange = None;
        }
        let mut bytes = Vec::with_capacity(4 + answer.len());
        bytes.extend_from_slice(&(answer.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&answer);
        if self.write_half.write_all(&bytes).await.is_err()
            || self.write_half.flush().await.is_err()
        {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// The SCRAM credential of `user` for `mechanism`, from the metadata image.
fn scram_credential(
    broker: &Broker,
    user: &str,
    mechanism: ScramMechanism,
) -> Option<crate::controller::image::ScramCredential> {
    broker
        .replicas
        .image()
        .scram_credentials
        .get(user)
        .and_then(|by_mechanism| by_mechanism.get(mechanism.name()))
        .cloned()
}

/// When a SASL session authenticated now ends (KIP-368): after `connections.max.reauth.ms`, or
/// when its credential expires if that is sooner; `None` when sessions do not expire.
fn session_end(sasl: &SaslConfig, expires: Option<std::time::SystemTime>) -> Option<Instant> {
    let max = sasl.max_reauth?;
    let credential = expires.map(|at| {
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    });
    Some(Instant::now() + credential.map_or(max, |left| left.min(max)))
}

/// Reads nothing more from a throttled client's connection for `throttle` (Kafka mutes the
/// channel), unless the broker shuts down.
/// Whether `api` is an offset commit arriving on a connection accepted before this broker's
/// registration lease last lapsed. Such a request may have been sent before the broker was
/// cut off and reach it only now (TCP retransmits it once the network heals, seconds later),
/// after its client gave up, committed newer offsets through the successor coordinator, and
/// this broker became the coordinator again: applied, it would move the group's offsets back.
/// Kafka applies it; Weir closes the connection instead, and a client still waiting for the
/// answer sees a disconnect and retries on a new connection. Other requests are safe as they
/// are (produce is fenced by idempotence, membership by generations and epochs).
fn sent_before_a_lapse(broker: &Broker, connection: &Connection, api: ApiKey) -> bool {
    matches!(api, ApiKey::OffsetCommit | ApiKey::TxnOffsetCommit)
        && broker.replicas.lease().lapses() != connection.lease_lapses
}

/// The throttle a controller mutation quota set on a topic admin response (the handler knows
/// the partitions it counted), for the connection to be muted as long.
fn mutation_throttle(body: &ResponseKind) -> Duration {
    let ms = match body {
        ResponseKind::CreateTopics(r) => r.throttle_time_ms,
        ResponseKind::DeleteTopics(r) => r.throttle_time_ms,
        ResponseKind::CreatePartitions(r) => r.throttle_time_ms,
        _ => 0,
    };
    Duration::from_millis(ms.max(0) as u64)
}

/// Waits out `throttle`, or until shutdown (a tick of the idle clock is neither).
async fn mute(throttle: Duration, shutdown: &mut watch::Receiver<bool>) {
    if throttle.is_zero() {
        return;
    }
    let end = tokio::time::sleep(throttle);
    tokio::pin!(end);
    loop {
        tokio::select! {
            _ = &mut end => return,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

/// A request that counts against a client byte-rate quota: a produce request (its size) or a
/// consumer's fetch (its response's record bytes).
struct QuotaRequest {
    kind: QuotaType,
    user: String,
    client_id: String,
    request_bytes: usize,
}

impl QuotaRequest {
    fn of(
        broker: &Broker,
        request: &protocol::DecodedRequest,
        connection: &Connection,
        frame_len: usize,
    ) -> Option<Self> {
        let kind = match &request.body {
            RequestKind::Produce(_) => QuotaType::Produce,
            RequestKind::Fetch(f) => {
                let replica = if request.header.request_api_version >= 15 {
                    f.replica_state.replica_id.0
                } else {
                    f.replica_id.0
                };
                if replica >= 0 {
                    return None; // followers are not client-quota'd
                }
                QuotaType::Fetch
            }
            _ => return None,
        };
        if broker.replicas.image().client_quotas.is_empty() {
            return None; // nothing to measure: no copies of names on the hot path
        }
        Some(Self {
            kind,
            user: connection.principal.name().to_string(),
            client_id: request
                .header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            request_bytes: frame_len,
        })
    }

    /// Records the request against its quota, if one applies; sets the response's
    /// `throttle_time_ms` and, for a throttled fetch, answers it without records (their bytes
    /// are not counted). Returns how long to mute the connection.
    fn apply(self, broker: &Broker, response: Option<&mut ResponseKind>) -> Duration {
        let image = broker.replicas.image();
        if image.client_quotas.is_empty() {
            return Duration::ZERO;
        }
        let now = std::time::Instant::now();
        let bytes = match (&self.kind, &response) {
            (QuotaType::Fetch, Some(ResponseKind::Fetch(f))) => fetch_record_bytes(f),
            _ => self.request_bytes,
        };
        let Some(recorded) =
            broker
                .quotas
                .record(&image, self.kind, &self.user, &self.client_id, bytes, now)
        else {
            return Duration::ZERO;
        };
        let throttle = recorded.throttle;
        if throttle.is_zero() {
            return throttle;
        }
        let ms = throttle.as_millis().min(i32::MAX as u128) as i32;
        match response {
            Some(ResponseKind::Produce(p)) => p.throttle_time_ms = p.throttle_time_ms.max(ms),
            Some(ResponseKind::Fetch(f)) => {
                f.throttle_time_ms = f.throttle_time_ms.max(ms);
                for topic in &mut f.responses {
                    for partition in &mut topic.partitions {
                        partition.records = Some(bytes::Bytes::new());
                    }
                }
                broker
                    .quotas
                    .unrecord(&image, self.kind, &self.user, &self.client_id, bytes, now);
            }
            _ => {}
        }
        tracing::debug!(user = %self.user, client_id = %self.client_id, kind = ?self.kind, throttle_ms = ms, "client over its quota; throttled");
        throttle
    }
}

/// A client request that counts against a request quota (`request_percentage`), by the time
/// its handler ran.
struct RequestQuota {
    user: String,
    client_id: String,
}

impl RequestQuota {
    fn of(
        broker: &Broker,
        request: &protocol::DecodedRequest,
        connection: &Connection,
    ) -> Option<Self> {
        if broker.replicas.image().client_quotas.is_empty()
            || crate::quota::request_quota_exempt(&request.body, request.header.request_api_version)
        {
            return None;
        }
        Some(Self {
            user: connection.principal.name().to_string(),
            client_id: request
                .header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
        })
    }

    /// Records `handling` against the request quota, if one applies; raises the response's
    /// `throttle_time_ms`. Returns how long to mute the connection.
    fn apply(
        self,
        broker: &Broker,
        handling: Duration,
        response: Option<&mut ResponseKind>,
    ) -> Duration {
        let image = broker.replicas.image();
        let Some(recorded) = broker.quotas.record_value(
            &image,
            QuotaType::Request,
            &self.user,
            &self.client_id,
            crate::quota::request_percent_seconds(handling),
            std::time::Instant::now(),
        ) else {
            return Duration::ZERO;
        };
        let throttle = recorded.throttle;
        if !throttle.is_zero() {
            let ms = throttle.as_millis().min(i32::MAX as u128) as i32;
            if let Some(response) = response {
                crate::quota::raise_throttle_time(response, ms);
            }
            tracing::debug!(user = %self.user, client_id = %self.client_id, throttle_ms = ms, "client over its request quota; throttled");
        }
        throttle
    }
}

/// The record bytes a fetch response carries.
fn fetch_record_bytes(response: &kafka_protocol::messages::FetchResponse) -> usize {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a connection holds of its listener's name and its (anonymous) principal is no
    /// allocation of its own.
    #[tokio::test]
    async fn a_new_connection_shares_its_listeners_name_and_starts_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::handlers::tests::broker(dir.path()).await;
        let security = ListenerSecurity::plaintext("PLAINTEXT");
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        let connection = accepted_connection(peer, &security, &broker);
        assert!(Arc::ptr_eq(&connection.listener, &security.name));
        assert_eq!(connection.principal, Principal::anonymous());
        assert_eq!(connection.peer, Some(peer));
    }

    /// What an idle connection costs lives mostly in its task: the future of
    /// [`serve_plaintext`] is allocated once per connection for as long as it is open.
    /// Answering a request (the handlers' state machine, the response being written, a
    /// throttle's timer) is boxed while it lasts, and a TLS listener's connections are tasks
    /// of another type, so neither is part of it.
    #[tokio::test]
    async fn an_idle_connection_task_is_small() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::handlers::tests::broker(dir.path()).await;
        let security = Arc::new(ListenerSecurity::plaintext("PLAINTEXT"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let limits = ConnectionQuotas::listener(&broker.config, &security.name, false);
        let admitted = broker.connections.admit(&limits, peer.ip()).unwrap();
        let (_shutdown_tx, shutdown) = watch::channel(false);
        assert!(
            broker.config.connections_max_idle().is_some(),
            "connections.max.idle.ms is on by default"
        );
        let clock = connection_clock(broker.config.connections_max_idle(), shutdown.clone());
        let task = serve_plaintext(
            stream,
            peer,
            security.clone(),
            broker.clone(),
            clock,
            admitted,
        );
        let (_other_end, server) = tokio::io::duplex(64);
        let mut responder = Responder::new(
            server,
            Connection::default(),
            security.clone(),
            broker.clone(),
        );
        let mut shutdown_for_request = shutdown;
        let request = protocol::DecodedRequest {
            header: kafka_protocol::messages::RequestHeader::default()
                .with_request_api_key(ApiKey::ApiVersions as i16)
                .with_request_api_version(3),
            api_key: ApiKey::ApiVersions,
            body: RequestKind::ApiVersions(Default::default()),
        };
        let connection = Connection::default();
        let handler_bytes = std::mem::size_of_val(&handlers::handle(&broker, request, &connection));
        let task_bytes = std::mem::size_of_val(&task);
        let request_bytes =
            std::mem::size_of_val(&responder.respond(Bytes::new(), &mut shutdown_for_request));
        eprintln!(
            "connection task {task_bytes} bytes; answering a request {request_bytes} bytes, of \
             which the handlers' {handler_bytes}"
        );
        // The connection's own state (the handlers' view of it, the frame reader, the
        // shutdown watch and a wait for it, its place in the connection quotas): 528 bytes
        // in a test build when this was written, and tokio's task cell around it (112 bytes
        // more, in steps of 128) 640 bytes in a release build. With the idle clock's tick
        // count, and the request size limit read per request instead of held: 520.
        assert!(
            task_bytes <= 640 && task_bytes < handler_bytes,
            "a connection's task grew to {task_bytes} bytes (the handlers' future is \
             {handler_bytes}, answering a request {request_bytes})"
        );
    }
}
