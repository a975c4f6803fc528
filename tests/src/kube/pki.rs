//! The control plane's certificates and keys, made fresh for every [`super::ControlPlane`]:
//! one CA that signs the apiserver's serving certificate and every client certificate (the
//! apiserver's `--client-ca-file` is the same CA), and the key that signs service-account
//! tokens. All ECDSA P-256, which Go's crypto, rustls and kube-rs all accept.
//!
//! Client certificates carry the user as the subject's CN and one group as its O: that is how
//! kube-apiserver's x509 authenticator reads them (`system:masters` makes a superuser).

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A PEM certificate and the PEM (PKCS#8) private key it certifies.
#[derive(Debug, Clone)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The certificate authority of one test control plane. Invariant: every certificate it
/// issues chains to [`Pki::ca_pem`].
#[derive(Debug)]
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A new self-signed CA.
    pub fn new() -> Pki {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "weir-test-kubernetes-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, new_key())
            .unwrap_or_else(|e| panic!("self-signing the test CA: {e}"));
        Pki { ca }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A serving certificate for the given IP addresses and DNS names (the apiserver's).
    pub fn serving_cert(&self, ips: &[IpAddr], dns_names: &[&str]) -> CertAndKey {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        for name in dns_names {
            let name = (*name)
                .try_into()
                .unwrap_or_else(|e| panic!("{name:?} is not a DNS name: {e}"));
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate for `user`, in `group` when given (one group at most: the subject
    /// holds one O attribute).
    pub fn client_cert(&self, user: &str, group: Option<&str>) -> CertAndKey {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, user);
        if let Some(group) = group {
            params
                .distinguished_name
                .push(DnType::OrganizationName, group);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> CertAndKey {
        let key = new_key();
        let cert = params
            .signed_by(&key, &self.ca)
            .unwrap_or_else(|e| panic!("signing a certificate with the test CA: {e}"));
        CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// A fresh key pair (ECDSA P-256) as PEM: the private key (PKCS#8) and the public key
/// (SubjectPublicKeyInfo). The service-account token signer needs both: kube-apiserver reads
/// verification keys only as public keys or certificates.
pub fn key_pair_pem() -> KeyPairPem {
    let key = new_key();
    KeyPairPem {
        private_pem: key.serialize_pem(),
        public_pem: key.public_key_pem(),
    }
}

/// A private key and its public key, both PEM.
#[derive(Debug, Clone)]
pub struct KeyPairPem {
    pub private_pem: String,
    pub public_pem: String,
}

fn new_key() -> KeyPair {
    KeyPair::generate().unwrap_or_else(|e| panic!("generating an ECDSA key: {e}"))
}
