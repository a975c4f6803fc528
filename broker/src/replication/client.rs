//! A minimal async Kafka protocol client for broker-to-broker requests (follower fetches,
//! transaction markers, verification).
//!
//! One request at a time per connection, as Kafka brokers process them; frames are
//! `[i32 length][request header][body]`, encoded and decoded with `kafka-protocol`. When the
//! inter-broker listener is an SSL listener, connections speak TLS with the client config the
//! composition root's source gives for each new connection ([`set_inter_broker_tls`]; it
//! reloads renewed certificates).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
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
