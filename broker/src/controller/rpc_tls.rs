//! TLS on the internal gRPC port (`rpc.security.protocol=SSL`), which carries the metadata
//! quorum, the controller's broker-facing calls and the admin API: only holders of a
//! certificate the trust store accepts may call it, as Kafka's controller listener with
//! `ssl.client.auth=required`.
//!
//! - **Server** ([`TlsIncoming`]): each accepted connection's handshake runs in a task of its
//!   own with a deadline, so a slow or hostile client holds up no one; it uses the rustls
//!   config the composition root's source (`security::tls`, reloading the PEM files) gives
//!   at that moment, so a renewed certificate or CA reaches new connections without a
//!   restart. A failed handshake closes the connection, is logged
//!   (at most once per `REFUSAL_LOG_INTERVAL`) and counted as a failed authentication.
//! - **Client** ([`channel`]): every channel to a peer of this process connects through TLS
//!   with the client config of the moment once [`set_client_tls`] was called at start, and
//!   over plain TCP otherwise. The peer's certificate must name the host of its address.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

/// Timeout to open a connection to a peer, TLS handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long an accepted connection may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A refused connection is logged at most this often.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the gRPC server to take them.
const ACCEPTED_BACKLOG: usize = 64;

/// Gives the TLS client config for a new connection to a peer (the current one: the
/// certificates may have been renewed since the last).
pub type ClientTlsSource = Arc<dyn Fn() -> Arc<rustls::ClientConfig> + Send + Sync>;

/// The client config of this process's calls to internal gRPC ports, set once at start when
/// `rpc.security.protocol=SSL`. Process-wide because every caller in this process (the Raft
/// transport, forwarded controller calls, the admin API's fan-out) talks to the same port of
/// its peers, with the same certificate.
static CLIENT_TLS: OnceLock<ClientTlsSource> = OnceLock::new();

/// Makes every channel [`channel`] opens from now on use TLS with the config `source` gives
/// at connect time. Only the first call takes effect (one broker per process).
pub fn set_client_tls(source: ClientTlsSource) {
    let _ = CLIENT_TLS.set(source);
}

/// Opens a channel to a peer's internal gRPC port (`host:port`), connecting on first use.
pub fn channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?;
    let Some(source) = CLIENT_TLS.get().cloned() else {
        return Ok(endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy());
    };
    let connector = tower::service_fn(move |uri: Uri| {
        let config = source();
        async move {
            tokio::time::timeout(CONNECT_TIMEOUT, connect_tls(uri, config))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })?
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// A TCP connection to `uri`'s host and port, then a TLS handshake that checks the peer's
/// certificate names that host.
async fn connect_tls(
    uri: Uri,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string());
    let host = uri
        .host()
        .ok_or_else(|| invalid("no host in the peer address"))?;
    let port = uri
        .port_u16()
        .ok_or_else(|| invalid("no port in the peer address"))?;
    // An IPv6 literal comes bracketed in a URI.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let server_name = ServerName::try_from(host.clone())
        .map_err(|_| invalid("the peer's host is not a valid TLS server name"))?;
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await?;
    Ok(TokioIo::new(tls))
}

/// An accepted connection of the internal gRPC port, its TLS handshake done.
#[derive(Debug)]
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
}

/// What the gRPC services may learn of a [`TlsConnection`]: the client's address.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddress(pub SocketAddr);

impl Connected for TlsConnection {
    type ConnectInfo = PeerAddress;

    fn connect_info(&self) -> Self::ConnectInfo {
        PeerAddress(self.peer)
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The connections of the internal gRPC port once their TLS handshake succeeded, as the
/// stream tonic's server takes. Accepting stops when the stream is dropped (the server
/// stopped).
pub struct TlsIncoming {
    accepted: mpsc::Receiver<TlsConnection>,
}

impl std::fmt::Debug for TlsIncoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIncoming").finish_non_exhaustive()
    }
}

/// What the internal gRPC server needs to speak TLS.
#[derive(Clone)]
pub struct TlsIncomingConfig {
    /// The acceptor for a new connection, with the server's certificates and trust store of
    /// the moment (reloaded when their files change).
    pub acceptor: Arc<dyn Fn() -> tokio_rustls::TlsAcceptor + Send + Sync>,
    /// Runs once per connection whose handshake fails (a failed authentication).
    pub on_refusal: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for TlsIncomingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIncomingConfig").finish_non_exhaustive()
    }
}

impl TlsIncoming {
    /// Accepts on `listener`, handshaking as `tls` says.
    pub fn new(listener: TcpListener, tls: TlsIncomingConfig) -> Self {
        let (tx, accepted) = mpsc::channel(ACCEPTED_BACKLOG);
        tokio::spawn(accept_loop(listener, tls, tx));
        Self { accepted }
    }
}

impl Stream for TlsIncoming {
    type Item = std::io::Result<TlsConnection>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.accepted.poll_recv(cx).map(|c| c.map(Ok))
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: TlsIncomingConfig,
    tx: mpsc::Sender<TlsConnection>,
) {
    let last_log: Arc<Mutex<Option<Instant>>> = Arc::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: the connection waits in the backlog.
                tracing::warn!(error = %e, "accepting on the internal RPC port failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = (tls.acceptor)();
        let (tx, on_refusal, last_log) = (tx.clone(), tls.on_refusal.clone(), last_log.clone());
        tokio::spawn(async move {
            let refused = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(stream)) => {
                    let _ = tx.send(TlsConnection { stream, peer }).await;
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
            };
            on_refusal();
            let mut last = last_log.lock();
            if last.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
                *last = Some(Instant::now());
                tracing::warn!(%peer, reason = %refused, "refused a connection to the internal RPC port: TLS handshake failed (rpc.security.protocol=SSL needs a client certificate the trust store accepts)");
            }
        });
    }
}
