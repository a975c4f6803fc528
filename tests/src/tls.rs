//! Certificates made at test time with rcgen: a CA and certificates it signs, as PEM files
//! in a temporary directory, for the brokers' TLS settings and the test's own clients.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Channel, Endpoint, Uri};
use weir_api::proto::admin::admin_client::AdminClient;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType, SerialNumber,
};

/// A test CA and the PEM files made from it, in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    /// A new CA, its certificate written to `ca.pem`.
    pub fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "weir test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir,
            ca_params,
            ca_key,
        }
    }

    /// The path of file `name` in the PKI's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `<name>.pem` (key then chain), a certificate for `localhost` and 127.0.0.1 signed
    /// by the CA with `serial`; returns the certificate's DER.
    pub fn issue(&self, name: &str, common_name: &str, serial: u64) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        // Written beside and renamed over, as a certificate manager rotates files.
        let tmp = self.path(&format!("{name}.pem.tmp"));
        std::fs::write(&tmp, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();
        std::fs::rename(&tmp, self.path(&format!("{name}.pem"))).unwrap();
        cert.der().to_vec()
    }

    /// The CA certificate's path (`ca.pem`).
    pub fn ca(&self) -> String {
        self.path("ca.pem").display().to_string()
    }

    /// The path of the certificate issued as `server`.
    pub fn server(&self) -> String {
        self.path("server.pem").display().to_string()
    }
}

/// A client certificate and key (PEM, key first) and the CA to check the broker against.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// The client's key and certificate chain; `None`: no client certificate.
    pub pem: Option<String>,
    /// The CA bundle the broker's certificate is checked against.
    pub ca: String,
}

/// An admin client of broker `addr`'s (`host:port`) internal port over TLS; the broker's
/// certificate must name the host, presenting `identity`'s
/// certificate when it has one.
pub fn tls_admin(addr: impl std::fmt::Display, identity: &ClientIdentity) -> AdminClient<Channel> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(identity.ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = Arc::new(match &identity.pem {
        Some(pem) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap();
            let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    });
    let connector = tower::service_fn(move |uri: Uri| {
        let config = config.clone();
        async move {
            let host = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or_default();
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            let name = ServerName::try_from(host).map_err(std::io::Error::other)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(Duration::from_secs(20))
        .connect_with_connector_lazy(connector);
    AdminClient::new(channel)
}
