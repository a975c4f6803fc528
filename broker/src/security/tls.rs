//! TLS for SSL and SASL_SSL listeners (rustls, ring), from Kafka's PEM settings.
//!
//! The key and chain come from `ssl.keystore.location` (one PEM file holding the private key
//! and the certificate chain) or inline `ssl.keystore.key` / `ssl.keystore.certificate.chain`;
//! the CA certificates that client certificates are checked against come from
//! `ssl.truststore.location` or inline `ssl.truststore.certificates`. Each may be overridden
//! per listener (`listener.name.<l>.ssl.*`).
//!
//! Rotation: [`TlsSource::acceptor`] runs before every handshake and compares the files'
//! modification time and length with those it last loaded; when one changed it builds a new
//! rustls config, which new connections use while existing ones keep theirs. A file caught
//! half-written (a key that does not match the chain) is logged and the previous config kept,
//! to be tried again at the next handshake. Encrypted private keys (`ssl.key.password`) are
//! not supported.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::SecurityError;
use crate::config::BrokerConfig;

/// The PEM material and options of one listener, as configured.
#[derive(Debug, Clone)]
struct TlsSettings {
    listener: String,
    keystore_location: Option<PathBuf>,
    inline_chain: Option<String>,
    inline_key: Option<String>,
    truststore_location: Option<PathBuf>,
    inline_trust: Option<String>,
    client_auth: String,
    protocols: Vec<&'static rustls::SupportedProtocolVersion>,
}

/// A file's identity for reload checks: modification time and length.
type Stamp = Option<(SystemTime, u64)>;

/// A rustls config built from a listener's PEM settings, rebuilt when the files change:
/// `get` compares the files' modification time and length with those it last built from.
/// `T` is the server config (a listener) or the client config (inter-broker connections).
#[derive(Debug)]
struct Reloading<T> {
    settings: TlsSettings,
    build: fn(&TlsSettings) -> Result<Arc<T>, SecurityError>,
    /// Names the config in the reload log lines.
    what: &'static str,
    current: Mutex<(Arc<T>, Vec<Stamp>)>,
}

impl<T> Reloading<T> {
    fn new(
        config: &BrokerConfig,
        listener: &str,
        build: fn(&TlsSettings) -> Result<Arc<T>, SecurityError>,
        what: &'static str,
    ) -> Result<Self, SecurityError> {
        Self::with_settings(TlsSettings::of(config, listener), build, what)
    }

    fn with_settings(
        settings: TlsSettings,
        build: fn(&TlsSettings) -> Result<Arc<T>, SecurityError>,
        what: &'static str,
    ) -> Result<Self, SecurityError> {
        let stamps = settings.stamps();
        let first = build(&settings)?;
        Ok(Self {
            settings,
            build,
            what,
            current: Mutex::new((first, stamps)),
        })
    }

    /// The current config, rebuilt first if a PEM file changed since it was loaded.
    fn get(&self) -> Arc<T> {
        let stamps = self.settings.stamps();
        let mut current = self.current.lock();
        if current.1 != stamps {
            match (self.build)(&self.settings) {
                Ok(config) => {
                    tracing::info!(listener = %self.settings.listener, what = self.what, "reloaded the TLS key store and trust store");
                    *current = (config, stamps);
                }
                Err(e) => {
                    // Possibly caught mid-rotation; the next connection tries again.
                    tracing::warn!(listener = %self.settings.listener, what = self.what, error = %e, "reloading TLS files failed; keeping the previous certificates");
                }
            }
        }
        current.0.clone()
    }
}

/// The rustls config of one TLS listener, rebuilt when its PEM files change.
#[derive(Debug)]
pub struct TlsSource(Reloading<ServerConfig>);

impl TlsSource {
    /// Reads the TLS settings of `listener` and builds its first config; fails with a message
    /// naming the setting when they are incomplete or the PEM does not parse.
    pub fn new(config: &BrokerConfig, listener: &str) -> Result<Self, SecurityError> {
        Reloading::new(config, listener, TlsSettings::build, "listener").map(Self)
    }

    /// The acceptor for a new connection: the current config, rebuilt first if a PEM file
    /// changed since it was loaded.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.0.get())
    }

    /// The internal gRPC port's TLS ([`RPC_LISTENER`]): the `ssl.*` settings with
    /// `listener.name.rpc.` overrides, and a client certificate always required, whatever
    /// `ssl.client.auth` says: the port carries the metadata quorum and the admin API, which
    /// only brokers and their operator may reach.
    pub fn for_rpc(config: &BrokerConfig) -> Result<Self, SecurityError> {
        let mut settings = TlsSettings::of(config, RPC_LISTENER);
        settings.client_auth = "required".to_string();
        Reloading::with_settings(settings, TlsSettings::build_rpc, "internal RPC server").map(Self)
    }
}

/// The name whose `listener.name.rpc.` settings override the `ssl.*` ones for the internal
/// gRPC port (`rpc.security.protocol=SSL`).
pub const RPC_LISTENER: &str = "rpc";

/// The ALPN protocol of gRPC over TLS (HTTP/2).
const GRPC_ALPN: &[u8] = b"h2";

/// The TLS client config brokers use to reach each other's inter-broker listener
/// `listener` (an SSL listener): its trust store checks the peers' certificates, and its key
/// store is this broker's client certificate (for `ssl.client.auth=required`), as in Kafka.
/// Rebuilt when its PEM files change, as the listeners' [`TlsSource`] is, so a renewed
/// certificate or CA reaches new peer connections without a restart.
#[derive(Debug)]
pub struct InterBrokerTls(Reloading<rustls::ClientConfig>);

impl InterBrokerTls {
    /// Reads the settings of `listener` and builds the first config; fails with a message
    /// naming the setting when they are incomplete or the PEM does not parse.
    pub fn new(config: &BrokerConfig, listener: &str) -> Result<Self, SecurityError> {
        Reloading::new(
            config,
            listener,
            TlsSettings::build_client,
            "inter-broker client",
        )
        .map(Self)
    }

    /// The TLS client config of calls to the peers' internal gRPC port ([`RPC_LISTENER`]'s
    /// settings): their certificates are checked against its trust store, and its key store
    /// is this broker's client certificate.
    pub fn for_rpc(config: &BrokerConfig) -> Result<Self, SecurityError> {
        Reloading::new(
            config,
            RPC_LISTENER,
            TlsSettings::build_rpc_client,
            "internal RPC client",
        )
        .map(Self)
    }

    /// The config for a new peer connection, rebuilt first if a PEM file changed.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.0.get()
    }
}

impl TlsSettings {
    /// The TLS settings of `listener`, its `listener.name.<l>.` overrides applied.
    fn of(config: &BrokerConfig, listener: &str) -> Self {
        let setting = |key: &str| {
            config
                .listener_setting(listener, key)
                .filter(|v| !v.trim().is_empty())
                .map(str::to_string)
        };
        let protocols = setting("ssl.enabled.protocols")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter_map(|p| match p {
                "TLSv1.2" => Some(&rustls::version::TLS12),
                "TLSv1.3" => Some(&rustls::version::TLS13),
                _ => None,
            })
            .collect();
        TlsSettings {
            listener: listener.to_string(),
            keystore_location: setting("ssl.keystore.location").map(PathBuf::from),
            inline_chain: setting("ssl.keystore.certificate.chain"),
            inline_key: setting("ssl.keystore.key"),
            truststore_location: setting("ssl.truststore.location").map(PathBuf::from),
            inline_trust: setting("ssl.truststore.certificates"),
            client_auth: setting("ssl.client.auth").unwrap_or_else(|| "none".to_string()),
            protocols,
        }
    }

    /// [`TlsSettings::build_client`] offering HTTP/2 by ALPN, as gRPC over TLS does.
    fn build_rpc_client(&self) -> Result<Arc<rustls::ClientConfig>, SecurityError> {
        let mut config = Arc::unwrap_or_clone(self.build_client()?);
        config.alpn_protocols = vec![GRPC_ALPN.to_vec()];
        Ok(Arc::new(config))
    }

    fn build_client(&self) -> Result<Arc<rustls::ClientConfig>, SecurityError> {
        let roots = self.roots()?.ok_or_else(|| {
            self.error(
                "brokers reach this listener over TLS: set ssl.truststore.location or ssl.truststore.certificates so they can check each other",
            )
        })?;
        let (chain, key) = self.key_pair()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.protocols)
            .map_err(|e| self.error(format!("ssl.enabled.protocols: {e}")))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| self.error(format!("the key does not fit the certificate: {e}")))?;
        Ok(Arc::new(client))
    }

    fn stamps(&self) -> Vec<Stamp> {
        [&self.keystore_location, &self.truststore_location]
            .into_iter()
            .flatten()
            .map(|path| {
                std::fs::metadata(path)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }

    fn error(&self, reason: impl Into<String>) -> SecurityError {
        SecurityError::Tls {
            listener: self.listener.clone(),
            reason: reason.into(),
        }
    }

    fn read(&self, path: &PathBuf, what: &str) -> Result<String, SecurityError> {
        std::fs::read_to_string(path)
            .map_err(|e| self.error(format!("{what} {}: {e}", path.display())))
    }

    /// The certificate chain and private key of the key store.
    fn key_pair(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), SecurityError> {
        let (chain_pem, key_pem) = match (&self.keystore_location, &self.inline_chain, &self.inline_key) {
            (Some(path), None, None) => {
                let text = self.read(path, "ssl.keystore.location")?;
                (text.clone(), text)
            }
            (None, Some(chain), Some(key)) => (chain.clone(), key.clone()),
            _ => {
                return Err(self.error(
                    "set ssl.keystore.location (a PEM file with the key and the certificate chain), or both ssl.keystore.certificate.chain and ssl.keystore.key",
                ))
            }
        };
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| self.error(format!("the certificate chain does not parse: {e}")))?;
        if chain.is_empty() {
            return Err(self.error("the key store holds no certificate"));
        }
        if key_pem.contains("ENCRYPTED PRIVATE KEY") {
            return Err(self.error(
                "the private key is encrypted: Weir does not support ssl.key.password; store the key unencrypted (PKCS#8) and protect the file",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| self.error(format!("no private key in the key store: {e}")))?;
        Ok((chain, key))
    }

    /// The trust store's CA certificates; `None` when neither setting is given.
    fn roots(&self) -> Result<Option<RootCertStore>, SecurityError> {
        let trust_pem =
            match (&self.truststore_location, &self.inline_trust) {
                (Some(path), None) => self.read(path, "ssl.truststore.location")?,
                (None, Some(certs)) => certs.clone(),
                (None, None) => return Ok(None),
                (Some(_), Some(_)) => return Err(self.error(
                    "set one of ssl.truststore.location and ssl.truststore.certificates, not both",
                )),
            };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(trust_pem.as_bytes()) {
            let cert =
                cert.map_err(|e| self.error(format!("the trust store does not parse: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| self.error(format!("a trust store certificate: {e}")))?;
        }
        Ok(Some(roots))
    }

    /// [`TlsSettings::build`] agreeing on HTTP/2 by ALPN: gRPC clients over TLS (tonic's,
    /// grpc-go's) refuse a server that does not say `h2`. A client that offers no ALPN is
    /// still served.
    fn build_rpc(&self) -> Result<Arc<ServerConfig>, SecurityError> {
        let mut config = Arc::unwrap_or_clone(self.build()?);
        config.alpn_protocols = vec![GRPC_ALPN.to_vec()];
        Ok(Arc::new(config))
    }

    fn build(&self) -> Result<Arc<ServerConfig>, SecurityError> {
        let (chain, key) = self.key_pair()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.protocols)
            .map_err(|e| self.error(format!("ssl.enabled.protocols: {e}")))?;
        let builder = if self.client_auth == "none" {
            builder.with_no_client_auth()
        } else {
            let roots = self.roots()?.ok_or_else(|| {
                self.error(format!(
                    "ssl.client.auth={} needs one of ssl.truststore.location or ssl.truststore.certificates",
                    self.client_auth
                ))
            })?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if self.client_auth == "requested" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| self.error(format!("the trust store: {e}")))?,
            )
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| self.error(format!("the key does not fit the certificate: {e}")))?;
        Ok(Arc::new(config))
    }
}
