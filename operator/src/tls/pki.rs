//! Certificates as the operator makes and reads them: pure functions of the key material and
//! the time passed in (unix seconds), no client.
//!
//! Keys are ECDSA P-256 (what rustls, librdkafka and the Java client all accept). A CA's
//! subject names its cluster, its role and the second it was made, so a renewed CA has a
//! subject of its own and a certificate's issuer tells which CA signed it ([`CertInfo::issued_by`]
//! also compares the key identifiers when both carry them).

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What the renewal planning needs to know of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Hex, colon-separated, as `openssl x509 -serial` groups it.
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    /// Subject alternative names: DNS names and IP addresses, as text.
    pub names: Vec<String>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
    /// Basic constraints say CA, and key usage (when present) allows signing certificates.
    can_sign_certificates: bool,
    /// The raw public key (the bits of `subjectPublicKey`).
    public_key: Vec<u8>,
}

/// Making or reading a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("no PEM certificate in {0}")]
    NoCertificate(String),
    #[error("{what} does not parse as an X.509 certificate: {error}")]
    Parse { what: String, error: String },
    #[error("time {0} is out of range")]
    Time(i64),
}

/// Why a CA of the user's own cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaCheckError {
    #[error("its certificate is not a CA (it needs basicConstraints CA:TRUE and, with key usage, keyCertSign)")]
    NotCa,
    #[error("its key cannot be read ({0}); a PKCS#8 key (\"BEGIN PRIVATE KEY\") is needed, cert-manager's privateKey.encoding: PKCS8")]
    Key(String),
    #[error("its key is not the key of its certificate")]
    KeyMismatch,
    #[error("its certificate is not valid now (from {not_before} to {not_after}, unix seconds)")]
    NotValidNow { not_before: i64, not_after: i64 },
}

/// Checks that `key_pem` and the certificate `info` (read from `cert_pem`) make a CA that can
/// sign now.
pub fn check_ca(info: &CertInfo, key_pem: &str, now: i64) -> Result<(), CaCheckError> {
    if !info.can_sign_certificates {
        return Err(CaCheckError::NotCa);
    }
    if now < info.not_before || now >= info.not_after {
        return Err(CaCheckError::NotValidNow {
            not_before: info.not_before,
            not_after: info.not_after,
        });
    }
    let key = KeyPair::from_pem(key_pem).map_err(|e| CaCheckError::Key(e.to_string()))?;
    if key.public_key_raw() != info.public_key.as_slice() {
        return Err(CaCheckError::KeyMismatch);
    }
    Ok(())
}

/// The PEM text of each certificate in `pem`, in order (other blocks, such as keys, left out).
pub fn certificate_blocks(pem: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        out.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    out
}

impl CertInfo {
    /// Whether `ca` signed this certificate (by subject and key identifier).
    pub fn issued_by(&self, ca: &CertInfo) -> bool {
        let keys_agree = match (&self.authority_key_id, &ca.subject_key_id) {
            (Some(aki), Some(ski)) => aki == ski,
            _ => true,
        };
        self.issuer == ca.subject && keys_agree
    }
}

fn datetime(unix: i64) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|_| PkiError::Time(unix))
}

/// A positive serial from the new key's public bytes (random, as the key is).
fn serial_of(key: &KeyPair) -> SerialNumber {
    let raw = key.public_key_raw();
    let mut bytes: Vec<u8> = raw.iter().skip(1).take(16).copied().collect();
    if let Some(first) = bytes.first_mut() {
        *first &= 0x7f;
    }
    SerialNumber::from_slice(&bytes)
}

fn validity(params: &mut CertificateParams, now: i64, not_after: i64) -> Result<(), PkiError> {
    // An hour back, for clocks a little behind the operator's.
    params.not_before = datetime(now - 3600)?;
    params.not_after = datetime(not_after)?;
    Ok(())
}

/// A self-signed CA valid from `now` for `validity_secs`, with the common name `name`.
pub fn new_ca(name: &str, now: i64, validity_secs: i64) -> Result<KeyedCert, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} {now}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "weir.dev");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(serial_of(&key));
    validity(&mut params, now, now + validity_secs)?;
    let cert = params.self_signed(&key)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafKind {
    /// A broker: serves TLS listeners and is a client of its peers' replication listener.
    Broker { names: Vec<String> },
    /// A user's client certificate (CN = the user).
    Client,
}

/// A certificate for `common_name` signed by `ca`, valid from `now` for `validity_secs` but
/// never beyond the CA's own expiry (`ca_not_after`).
pub fn issue(
    ca: &KeyedCert,
    ca_not_after: i64,
    common_name: &str,
    kind: &LeafKind,
    now: i64,
    validity_secs: i64,
) -> Result<KeyedCert, PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    match kind {
        LeafKind::Broker { names } => {
            params
                .distinguished_name
                .push(DnType::OrganizationName, "weir.dev");
            for name in names {
                let san = match name.parse::<IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(name.as_str().try_into()?),
                };
                params.subject_alt_names.push(san);
            }
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        }
        LeafKind::Client => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    params.serial_number = Some(serial_of(&key));
    validity(&mut params, now, (now + validity_secs).min(ca_not_after))?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Every certificate in a PEM text (a trust bundle holds one or two).
pub fn inspect_all(pem: &str, what: &str) -> Result<Vec<CertInfo>, PkiError> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| PkiError::Parse {
            what: what.into(),
            error: e.to_string(),
        })?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        out.push(info(&block, what)?);
    }
    Ok(out)
}

/// The first certificate of a PEM text.
pub fn inspect(pem: &str, what: &str) -> Result<CertInfo, PkiError> {
    inspect_all(pem, what)?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError::NoCertificate(what.into()))
}

fn info(block: &Pem, what: &str) -> Result<CertInfo, PkiError> {
    let cert = block.parse_x509().map_err(|e| PkiError::Parse {
        what: what.into(),
        error: e.to_string(),
    })?;
    let mut names = Vec::new();
    let mut can_sign_certificates = cert.is_ca();
    let mut subject_key_id = None;
    let mut authority_key_id = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(n) => names.push((*n).to_string()),
                        GeneralName::IPAddress(ip) => names.extend(ip_text(ip)),
                        _ => {}
                    }
                }
            }
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
            }
            ParsedExtension::KeyUsage(usage) => {
                can_sign_certificates &= usage.key_cert_sign();
            }
            _ => {}
        }
    }
    Ok(CertInfo {
        serial: cert.raw_serial_as_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        names,
        subject: cert.subject().as_raw().to_vec(),
        issuer: cert.issuer().as_raw().to_vec(),
        subject_key_id,
        authority_key_id,
        can_sign_certificates,
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::from(b).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_broker_certificate_carries_its_names_and_chains_to_its_ca() {
        let ca = new_ca("events cluster CA", NOW, 365 * DAY).unwrap();
        let ca_info = inspect(&ca.cert_pem, "ca").unwrap();
        let names = vec![
            "events-0.events-brokers.prod.svc.cluster.local".to_string(),
            "events.prod.svc".to_string(),
            "localhost".to_string(),
            "127.5.0.1".to_string(),
        ];
        let leaf = issue(
            &ca,
            ca_info.not_after,
            "events-0",
            &LeafKind::Broker {
                names: names.clone(),
            },
            NOW,
            30 * DAY,
        )
        .unwrap();
        let info = inspect(&leaf.cert_pem, "leaf").unwrap();
        assert_eq!(info.names, names);
        assert!(info.issued_by(&ca_info));
        assert!(!ca_info.issued_by(&info));
        assert_eq!(info.not_after, NOW + 30 * DAY);
        assert_ne!(info.serial, ca_info.serial);
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn a_renewed_ca_is_told_apart_and_leaves_never_outlive_their_ca() {
        let old = new_ca("events cluster CA", NOW, 10 * DAY).unwrap();
        let new = new_ca("events cluster CA", NOW + 1, 10 * DAY).unwrap();
        let (old_info, new_info) = (
            inspect(&old.cert_pem, "old").unwrap(),
            inspect(&new.cert_pem, "new").unwrap(),
        );
        let leaf = issue(
            &old,
            old_info.not_after,
            "u",
            &LeafKind::Client,
            NOW,
            99 * DAY,
        )
        .unwrap();
        let info = inspect(&leaf.cert_pem, "leaf").unwrap();
        assert!(info.issued_by(&old_info));
        assert!(!info.issued_by(&new_info));
        assert_eq!(info.not_after, old_info.not_after);
        let bundle = format!("{}{}", new.cert_pem, old.cert_pem);
        assert_eq!(
            inspect_all(&bundle, "bundle").unwrap(),
            vec![new_info, old_info]
        );
    }

    #[test]
    fn a_users_ca_must_be_a_ca_with_its_own_key_and_valid_now() {
        let ca = new_ca("mine", NOW, 10 * DAY).unwrap();
        let info = inspect(&ca.cert_pem, "ca").unwrap();
        assert_eq!(check_ca(&info, &ca.key_pem, NOW), Ok(()));
        let other = new_ca("other", NOW, 10 * DAY).unwrap();
        assert_eq!(
            check_ca(&info, &other.key_pem, NOW),
            Err(CaCheckError::KeyMismatch)
        );
        assert!(matches!(
            check_ca(&info, "not a key", NOW),
            Err(CaCheckError::Key(_))
        ));
        assert!(matches!(
            check_ca(&info, &ca.key_pem, NOW + 11 * DAY),
            Err(CaCheckError::NotValidNow { .. })
        ));
        let leaf = issue(&ca, info.not_after, "u", &LeafKind::Client, NOW, DAY).unwrap();
        let leaf_info = inspect(&leaf.cert_pem, "leaf").unwrap();
        assert_eq!(
            check_ca(&leaf_info, &leaf.key_pem, NOW),
            Err(CaCheckError::NotCa)
        );
    }

    #[test]
    fn a_pem_text_splits_into_its_certificates() {
        let a = new_ca("a", NOW, DAY).unwrap();
        let b = new_ca("b", NOW, DAY).unwrap();
        let text = format!("{}{}{}", a.cert_pem, a.key_pem, b.cert_pem);
        let blocks = certificate_blocks(&text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            inspect(&blocks[0], "a").unwrap(),
            inspect(&a.cert_pem, "a").unwrap()
        );
        assert_eq!(
            inspect(&blocks[1], "b").unwrap(),
            inspect(&b.cert_pem, "b").unwrap()
        );
        assert!(certificate_blocks("nothing").is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(inspect("not pem", "x").is_err());
        assert!(inspect(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "x"
        )
        .is_err());
    }
}
