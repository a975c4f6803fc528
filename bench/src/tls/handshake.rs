//! The handshake rate: how many new TLS connections per second a client-side loop completes
//! against a broker. Each connection is what a Kafka client does before its first real
//! request: TCP connect, a full TLS handshake (the client keeps no sessions, so nothing is
//! resumed), ApiVersions, and on a SASL_SSL listener SaslHandshake and the two
//! SaslAuthenticate round trips of SCRAM-SHA-512 (the server's signature checked); then
//! close_notify and close. `connectors` such loops run side by side for the warm-up and then
//! the measured window; the rate is the connections completed inside the window over its
//! length. The same loop, the same rustls client, against either broker.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, IpAddr, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::scram::{self, ScramClient, ScramError};
use super::wire::{self, WireError};
use crate::stats;

/// How long one connection may take, from connect to its last answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("reading the CA certificate {path}")]
    Ca {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("building the TLS client")]
    Tls(#[from] rustls::Error),
    #[error("starting the client runtime")]
    Runtime(#[source] std::io::Error),
    #[error("connecting")]
    Connect(#[source] std::io::Error),
    #[error("TLS handshake")]
    Handshake(#[source] std::io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("{api:?} answered error code {code}: {message}")]
    Refused {
        api: ApiKey,
        code: i16,
        message: String,
    },
    #[error(transparent)]
    Scram(#[from] ScramError),
    #[error("SCRAM message is not UTF-8")]
    Utf8,
    #[error("no answer within {CONNECTION_TIMEOUT:?}")]
    Timeout,
    #[error("no connection completed in {seconds:.1}s; {failed} failed, the first with: {first}")]
    NothingCompleted {
        seconds: f64,
        failed: u64,
        first: String,
    },
}

/// A SASL user's name and password.
#[derive(Debug, Clone)]
pub struct SaslUser {
    pub user: String,
    pub password: String,
}

/// What one measurement does.
#[derive(Debug, Clone)]
pub struct HandshakeCase {
    pub addr: SocketAddr,
    /// SCRAM-SHA-512 after ApiVersions (a SASL_SSL listener).
    pub sasl: Option<SaslUser>,
    /// Loops side by side.
    pub connectors: usize,
    /// Connections before the window, not counted (the JIT warms up, caches fill).
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
}

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandshakeRate {
    /// Connections completed inside the window.
    pub connections: u64,
    /// Connections that failed, warm-up included.
    pub failed: u64,
    pub seconds: f64,
    pub per_second: f64,
    /// Median and 99th percentile of one connection, connect to last answer.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A rustls client trusting only `ca`, with no session resumption: every connection does a
/// full handshake.
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, HandshakeError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|source| HandshakeError::Ca {
        path: ca.display().to_string(),
        source,
    })? {
        let cert = cert.map_err(|source| HandshakeError::Ca {
            path: ca.display().to_string(),
            source,
        })?;
        roots.add(cert)?;
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Runs the loops of `case` with TLS client settings `tls`; fails only if no connection
/// completed (failures are counted).
pub fn run(case: &HandshakeCase, tls: Arc<ClientConfig>) -> Result<HandshakeRate, HandshakeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(HandshakeError::Runtime)?;
    runtime.block_on(async {
        let connector = TlsConnector::from(tls);
        let started = Instant::now();
        let window_start = started + case.warmup;
        let window_end = window_start + case.window;
        let loops: Vec<_> = (0..case.connectors)
            .map(|_| {
                let connector = connector.clone();
                let case = case.clone();
                tokio::spawn(async move {
                    connector_loop(&connector, &case, window_start, window_end).await
                })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut failed = 0;
        let mut first_failure = None;
        for handle in loops {
            // A loop that panicked is a bug in the bench: let it show.
            let outcome = handle.await.expect("a connector loop panicked");
            latencies.extend(outcome.latencies_ms);
            failed += outcome.failed;
            if first_failure.is_none() {
                first_failure = outcome.first_failure;
            }
        }
        let seconds = case.window.as_secs_f64();
        if latencies.is_empty() {
            return Err(HandshakeError::NothingCompleted {
                seconds,
                failed,
                first: first_failure.unwrap_or_default(),
            });
        }
        latencies.sort_by(f64::total_cmp);
        Ok(HandshakeRate {
            connections: latencies.len() as u64,
            failed,
            seconds,
            per_second: latencies.len() as f64 / seconds,
            p50_ms: stats::median(&latencies).unwrap_or_default(),
            p99_ms: latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)],
        })
    })
}

/// What one loop saw.
struct LoopOutcome {
    /// One entry per connection completed inside the window.
    latencies_ms: Vec<f64>,
    failed: u64,
    first_failure: Option<String>,
}

async fn connector_loop(
    connector: &TlsConnector,
    case: &HandshakeCase,
    window_start: Instant,
    window_end: Instant,
) -> LoopOutcome {
    let mut scram = case
        .sasl
        .as_ref()
        .map(|u| ScramClient::new(&u.user, &u.password));
    let mut outcome = LoopOutcome {
        latencies_ms: Vec::new(),
        failed: 0,
        first_failure: None,
    };
    while Instant::now() < window_end {
        let began = Instant::now();
        let result = tokio::time::timeout(
            CONNECTION_TIMEOUT,
            connection(connector, case.addr, scram.as_mut()),
        )
        .await
        .unwrap_or(Err(HandshakeError::Timeout));
        let ended = Instant::now();
        match result {
            Ok(()) if ended >= window_start && ended <= window_end => outcome
                .latencies_ms
                .push((ended - began).as_secs_f64() * 1000.0),
            Ok(()) => {}
            Err(e) => {
                outcome.failed += 1;
                if outcome.first_failure.is_none() {
                    outcome.first_failure = Some(format!("{:#}", anyhow::Error::from(e)));
                }
            }
        }
    }
    outcome
}

/// One connection: connect, handshake, ApiVersions, SCRAM if `scram`, close.
pub async fn connection(
    connector: &TlsConnector,
    addr: SocketAddr,
    scram: Option<&mut ScramClient>,
) -> Result<(), HandshakeError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(HandshakeError::Connect)?;
    tcp.set_nodelay(true).map_err(HandshakeError::Connect)?;
    let name = ServerName::IpAddress(IpAddr::from(Ipv4Addr::LOCALHOST));
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(HandshakeError::Handshake)?;
    let versions: ApiVersionsResponse = wire::call(
        &mut tls,
        ApiKey::ApiVersions,
        3,
        1,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("weir-bench"))
            .with_client_software_version(StrBytes::from_static_str("0.1")),
    )
    .await?;
    refused(ApiKey::ApiVersions, versions.error_code, None)?;
    if let Some(scram) = scram {
        let handshake: SaslHandshakeResponse = wire::call(
            &mut tls,
            ApiKey::SaslHandshake,
            1,
            2,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(scram::MECHANISM)),
        )
        .await?;
        refused(ApiKey::SaslHandshake, handshake.error_code, None)?;
        let (first, exchange) = scram.first();
        let server_first = authenticate(&mut tls, 3, first).await?;
        let last = scram.last(&exchange, &server_first)?;
        let server_final = authenticate(&mut tls, 4, last.message.clone()).await?;
        last.verify(&server_final)?;
    }
    // close_notify, then the TCP close; a broker that closed first is no failure here.
    let _ = tls.shutdown().await;
    Ok(())
}

/// One SaslAuthenticate (v2) round trip; the server's message.
async fn authenticate<S>(
    stream: &mut S,
    correlation_id: i32,
    message: String,
) -> Result<String, HandshakeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let response: SaslAuthenticateResponse = wire::call(
        stream,
        ApiKey::SaslAuthenticate,
        2,
        correlation_id,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message)),
    )
    .await?;
    refused(
        ApiKey::SaslAuthenticate,
        response.error_code,
        response.error_message.as_ref().map(|m| m.to_string()),
    )?;
    String::from_utf8(response.auth_bytes.to_vec()).map_err(|_| HandshakeError::Utf8)
}

fn refused(api: ApiKey, code: i16, message: Option<String>) -> Result<(), HandshakeError> {
    if code == 0 {
        Ok(())
    } else {
        Err(HandshakeError::Refused {
            api,
            code,
            message: message.unwrap_or_default(),
        })
    }
}
