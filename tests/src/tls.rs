//! Certificates made at test time with rcgen: a CA and certificates it signs, as PEM files
//! in a temporary directory, for the brokers' TLS settings and the test's own clients.

use std::path::PathBuf;

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
