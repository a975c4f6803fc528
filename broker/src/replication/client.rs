//! A minimal async Kafka protocol client for broker-to-broker requests (follower fetches,
//! transaction markers, verification).
//!
//! One request at a time per connection, as Kafka brokers process them; frames are
//! `[i32 length][request header][body]`, encoded and decoded with `kafka-protocol`. When the
//! inter-broker listener is an SSL listener, connections speak TLS with the client config the
//! composition root's source gives for each new connection ([`set_inter_broker_tls`]; it
//! reloads renewed certificates).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted from a peer broker.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Why a request to a peer broker failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer did not answer in time.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// A frame could not be encoded or decoded.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// The TLS client config of broker-to-broker connections, set once at start when the
/// inter-broker listener uses TLS; unset, they are plain TCP. Process-wide because every
/// broker-to-broker client of this process talks to that one listener of its peers.
static INTER_BROKER_TLS: OnceLock<InterBrokerTlsSource> = OnceLock::new();

/// Gives the TLS client config for a new broker-to-broker connection (the current one:
/// certificates may have been renewed since the last).
pub type InterBrokerTlsSource =
    Arc<dyn Fn() -> Arc<tokio_rustls::rustls::ClientConfig> + Send + Sync>;

/// Makes every broker-to-broker connection of this process use TLS with the config `source`
/// gives at connect time. Only the first call takes effect (one broker per process).
pub fn set_inter_broker_tls(source: InterBrokerTlsSource) {
    let _ = INTER_BROKER_TLS.set(source);
}

/// A byte stream to a peer: TCP, or TLS over TCP.
trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + Sync> PeerStream for S {}

/// A connection to one peer broker's Kafka listener.
pub struct BrokerConnection {
    stream: Box<dyn PeerStream>,
    client_id: StrBytes,
    next_correlation_id: i32,
}

impl std::fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("client_id", &self.client_id)
            .field("next_correlation_id", &self.next_correlation_id)
            .finish_non_exhaustive()
    }
}

impl BrokerConnection {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(
        addr: &str,
        client_id: String,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        stream.set_nodelay(true)?;
        let stream: Box<dyn PeerStream> = match INTER_BROKER_TLS.get() {
            None => Box::new(stream),
            Some(source) => {
                let config = source();
                let host = addr
                    .rsplit_once(':')
                    .map_or(addr, |(host, _)| host)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| ClientError::Protocol(format!("server name {host}: {e}")))?;
                let connector = tokio_rustls::TlsConnector::from(config);
                let tls = tokio::time::timeout(timeout, connector.connect(name, stream))
                    .await
                    .map_err(|_| ClientError::Timeout(timeout))??;
                Box::new(tls)
            }
        };
        Ok(Self {
            stream,
            client_id: StrBytes::from_string(client_id),
            next_correlation_id: 0,
        })
    }

    /// Sends `request` at `version` and waits up to `timeout` for its response.
    pub async fn request<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]);
        header
            .encode(&mut frame, R::header_version(version))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        request
            .encode(&mut frame, version)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        tokio::time::timeout(timeout, async {
            self.stream.write_all(&frame).await?;
            self.stream.flush().await?;
            let len = self.stream.read_i32().await?;
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= MAX_RESPONSE_BYTES)
                .ok_or_else(|| ClientError::Protocol(format!("response length {len}")))?;
            let mut body = BytesMut::zeroed(len);
            self.stream.read_exact(&mut body).await?;
            let mut body = body.freeze();
            let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            if header.correlation_id != correlation_id {
                return Err(ClientError::Protocol(format!(
                    "correlation id {} answered {correlation_id}",
                    header.correlation_id
                )));
            }
            let response = R::Response::decode(&mut body, version)
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            if body.has_remaining() {
                tracing::debug!(
                    left = body.remaining(),
                    "trailing bytes after a peer response"
                );
            }
            Ok(response)
        })
        .await
        .map_err(|_| ClientError::Timeout(timeout))?
    }
}

/// Idle connections to peer brokers' listeners, by address, for requests that come and go (a
/// transaction's verification, share-group state): a request takes one (or connects) and
/// puts it back after a clean exchange.
///
/// A pooled connection can have been closed by its peer while it waited here (the peer's
/// `connections.max.idle.ms`), which the first request on it finds as an I/O error: the
/// request is then sent once more on a new connection. The peer closed the connection before
/// the request reached it, so it was not served twice (unless the peer went away mid-answer,
/// when asking again is what a retry would do anyway).
///
/// Thread-safety: a mutex held only to take or return a connection.
pub struct PeerConnections {
    client_id: &'static str,
    per_peer: usize,
    idle: Mutex<HashMap<String, Vec<BrokerConnection>>>,
}

impl std::fmt::Debug for PeerConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConnections")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl PeerConnections {
    /// A pool whose connections say `client_id`, keeping up to `per_peer` idle per address.
    pub fn new(client_id: &'static str, per_peer: usize) -> Self {
        Self {
            client_id,
            per_peer,
            idle: Default::default(),
        }
    }

    /// Sends `request` at `version` to the broker at `address` (`host:port`), waiting up to
    /// `timeout` to connect and again for the answer.
    pub async fn request<R: Request>(
        &self,
        address: &str,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let pooled = self.idle.lock().get_mut(address).and_then(Vec::pop);
        let mut answered = None;
        if let Some(mut connection) = pooled {
            match connection.request(request, version, timeout).await {
                Ok(response) => answered = Some((connection, response)),
                Err(ClientError::Io(e)) => {
                    tracing::debug!(address, error = %e, "a pooled connection to a peer broker was closed; asking on a new one");
                }
                Err(e) => return Err(e),
            }
        }
        let (connection, response) = match answered {
            Some(answered) => answered,
            None => {
                let mut connection =
                    BrokerConnection::connect(address, self.client_id.to_string(), timeout).await?;
                let response = connection.request(request, version, timeout).await?;
                (connection, response)
            }
        };
        let mut idle = self.idle.lock();
        let pool = idle.entry(address.to_string()).or_default();
        if pool.len() < self.per_peer {
            pool.push(connection);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
    use tokio::net::TcpListener;

    /// A peer that answers one ApiVersions per connection and then closes it, as a broker
    /// closes a connection left idle past its `connections.max.idle.ms`. Counts what it answered.
    async fn one_answer_per_connection(listener: TcpListener, answered: Arc<AtomicUsize>) {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let len = stream.read_i32().await.unwrap() as usize;
            let mut body = BytesMut::zeroed(len);
            stream.read_exact(&mut body).await.unwrap();
            let header =
                RequestHeader::decode(&mut body.freeze(), ApiVersionsRequest::header_version(0))
                    .unwrap();
            let mut frame = BytesMut::new();
            frame.extend_from_slice(&[0; 4]);
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut frame, ApiVersionsResponse::header_version(0))
                .unwrap();
            ApiVersionsResponse::default()
                .with_error_code(35)
                .encode(&mut frame, 0)
                .unwrap();
            let n = (frame.len() - 4) as i32;
            frame[..4].copy_from_slice(&n.to_be_bytes());
            stream.write_all(&frame).await.unwrap();
            answered.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    }

    #[tokio::test]
    async fn a_pooled_connection_the_peer_closed_is_replaced_without_failing_the_request() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let answered = Arc::new(AtomicUsize::new(0));
        tokio::spawn(one_answer_per_connection(listener, answered.clone()));
        let pool = PeerConnections::new("test", 2);
        let timeout = Duration::from_secs(10);
        for asked in 1..=3 {
            let response = pool
                .request(&address, &ApiVersionsRequest::default(), 0, timeout)
                .await
                .unwrap_or_else(|e| panic!("request {asked}: {e}"));
            assert_eq!(response.error_code, 35, "the peer's own answer");
            assert_eq!(answered.load(Ordering::SeqCst), asked);
        }
        // Each request after the first found its pooled connection closed and asked anew.
        assert_eq!(pool.idle.lock()[&address].len(), 1);
    }
}
