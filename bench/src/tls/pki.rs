//! The throwaway PKI of a TLS run: a CA and one server certificate for `127.0.0.1` (and
//! `localhost`) it signs, as PEM files both brokers read: `server.pem` (PKCS#8 key, then the
//! certificate; Weir's `ssl.keystore.location`, Kafka's with `ssl.keystore.type=PEM`) and
//! `ca.pem` (the clients' trust store). ECDSA P-256 keys (rcgen's default) on both sides.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("making the certificates")]
    Rcgen(#[from] rcgen::Error),
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The PEM files of one run, in `dir`.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server's key and certificate.
    pub server: PathBuf,
}

impl Pki {
    /// A new CA and server certificate, written into `dir` (which exists).
    pub fn create(dir: &Path) -> Result<Pki, PkiError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "weir-bench CA");
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;

        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "weir-bench broker");
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))?;

        let pki = Pki {
            ca: dir.join("ca.pem"),
            server: dir.join("server.pem"),
        };
        write(&pki.ca, &ca_cert.pem())?;
        write(
            &pki.server,
            &format!("{}{}", key.serialize_pem(), cert.pem()),
        )?;
        Ok(pki)
    }
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}
