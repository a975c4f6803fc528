//! A CA of the user's own (`spec.certificates.*.secretName`), read and checked: pure, no
//! client. The Secret is cert-manager's shape (`tls.crt`: the CA then any chain above it,
//! `tls.key`, `ca.crt`: the root) or `ca.crt` and `ca.key`; what the operator trusted so far is
//! in the CA's trust bundle Secret, so a changed CA is told from one already trusted.

use k8s_openapi::api::core::v1::Secret;

use super::pki::{certificate_blocks, check_ca, inspect, CaCheckError, CertInfo, KeyedCert};
use super::renewal::CaState;
use super::{text, trust_changed_at, LoadedCa};
use crate::names::{CA_CERT_KEY, CA_KEY_KEY};

/// cert-manager's keys in a `kubernetes.io/tls` Secret: the certificate (the CA, then any
/// chain above it) and its key.
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";

/// A CA Secret of the user's that the operator cannot sign with. The operator then issues
/// nothing with that CA and leaves what it made before in place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaSecretProblem {
    #[error("the CA Secret {0} does not exist")]
    Missing(String),
    #[error("the CA Secret {0} has neither {TLS_CERT_KEY} and {TLS_KEY_KEY} nor {CA_CERT_KEY} and {CA_KEY_KEY}")]
    NoCa(String),
    #[error("the CA Secret {secret}: {error}")]
    Unreadable { secret: String, error: String },
    #[error("the CA Secret {secret}: {error}")]
    Unusable { secret: String, error: CaCheckError },
}

impl CaSecretProblem {
    /// The condition's reason (after `ClusterCa` or `ClientsCa`).
    pub fn reason(&self) -> &'static str {
        match self {
            CaSecretProblem::Missing(_) => "SecretMissing",
            _ => "SecretInvalid",
        }
    }
}

/// Every certificate of a PEM text that parses, with what it says of itself.
fn parsed_blocks(pem: &str) -> Vec<(String, CertInfo)> {
    certificate_blocks(pem)
        .into_iter()
        .filter_map(|block| {
            let info = inspect(&block, "bundle").ok()?;
            Some((block, info))
        })
        .collect()
}

/// A CA of the user's own from its Secret `name` (`stored`), checked, and what of it and of
/// earlier CAs the trust `bundle` holds.
pub(super) fn users_ca(
    name: &str,
    stored: &Secret,
    bundle: Option<&Secret>,
    now: i64,
) -> Result<LoadedCa, CaSecretProblem> {
    let (cert_text, key_pem, root_text) =
        match (text(stored, TLS_CERT_KEY), text(stored, TLS_KEY_KEY)) {
            (Some(cert), Some(key)) => (cert, key, text(stored, CA_CERT_KEY)),
            _ => match (text(stored, CA_CERT_KEY), text(stored, CA_KEY_KEY)) {
                (Some(cert), Some(key)) => (cert, key, None),
                _ => return Err(CaSecretProblem::NoCa(name.into())),
            },
        };
    let unreadable = |error: String| CaSecretProblem::Unreadable {
        secret: name.into(),
        error,
    };
    let chain = certificate_blocks(&cert_text);
    let signing_pem = chain
        .first()
        .cloned()
        .ok_or_else(|| unreadable("no PEM certificate".into()))?;
    let current = inspect(&signing_pem, name).map_err(|e| unreadable(e.to_string()))?;
    check_ca(&current, &key_pem, now).map_err(|error| CaSecretProblem::Unusable {
        secret: name.into(),
        error,
    })?;
    // What clients must trust: the signing CA, and the root it chains to when that is another
    // certificate (a verifier such as OpenSSL wants the root, not an intermediate).
    let mut trust = vec![(signing_pem, current.clone())];
    for (pem, info) in parsed_blocks(root_text.as_deref().unwrap_or_default()) {
        if !trust.iter().any(|(_, t)| *t == info) {
            trust.push((pem, info));
        }
    }
    let trusted_now: Vec<(String, CertInfo)> = bundle
        .and_then(|b| text(b, CA_CERT_KEY))
        .map(|pem| parsed_blocks(&pem))
        .unwrap_or_default();
    let trusted = bundle.is_some()
        && trust
            .iter()
            .all(|(_, t)| trusted_now.iter().any(|(_, b)| b == t));
    let (previous_pems, previous): (Vec<String>, Vec<CertInfo>) = trusted_now
        .into_iter()
        .filter(|(_, b)| !trust.iter().any(|(_, t)| t == b))
        .unzip();
    Ok(LoadedCa {
        keyed: KeyedCert {
            cert_pem: trust[0].0.clone(),
            key_pem,
        },
        chain_pem: chain.concat(),
        trust_pems: trust.into_iter().map(|(pem, _)| pem).collect(),
        previous_pems,
        state: CaState {
            current,
            previous,
            trusted,
            trust_changed_at: bundle.map_or(0, trust_changed_at),
            user_provided: true,
            force_renew: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::pki::{issue, new_ca, LeafKind};
    use crate::tls::{data, secret, trust_annotation};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn secret_of(entries: &[(&str, &str)]) -> Secret {
        secret(
            ObjectMeta::default(),
            data(entries.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
        )
    }

    /// A root CA and an intermediate CA it signed (what a cert-manager CA issuer makes).
    fn root_and_intermediate(now: i64) -> (KeyedCert, KeyedCert) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let root = new_ca("root", now, 86_400 * 30).unwrap();
        let issuer =
            Issuer::from_ca_cert_pem(&root.cert_pem, KeyPair::from_pem(&root.key_pem).unwrap())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = time::OffsetDateTime::from_unix_timestamp(now - 60).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(now + 86_400).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let intermediate = KeyedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        (root, intermediate)
    }

    #[test]
    fn a_cert_manager_secret_with_an_intermediate_trusts_the_root_too_and_signs_with_the_intermediate(
    ) {
        let now = 1_800_000_000;
        let (root, intermediate) = root_and_intermediate(now);
        let stored = secret_of(&[
            (
                TLS_CERT_KEY,
                &format!("{}{}", intermediate.cert_pem, root.cert_pem),
            ),
            (TLS_KEY_KEY, &intermediate.key_pem),
            (CA_CERT_KEY, &root.cert_pem),
        ]);
        let ca = users_ca("mine", &stored, None, now).unwrap();
        assert_eq!(ca.keyed.cert_pem, intermediate.cert_pem);
        assert_eq!(
            ca.trust_pems,
            vec![intermediate.cert_pem.clone(), root.cert_pem.clone()]
        );
        assert_eq!(
            ca.chain_pem,
            format!("{}{}", intermediate.cert_pem, root.cert_pem)
        );
        assert!(ca.state.user_provided);
        assert!(!ca.state.trusted, "no bundle yet");
        assert!(ca.state.previous.is_empty());

        // A bundle with an earlier CA only: the new one is not trusted, the old one is previous.
        let old = new_ca("old", now, 86_400).unwrap();
        let mut bundle = secret_of(&[(CA_CERT_KEY, &old.cert_pem)]);
        bundle.metadata.annotations = Some(trust_annotation(now - 10));
        let ca = users_ca("mine", &stored, Some(&bundle), now).unwrap();
        assert!(!ca.state.trusted);
        assert_eq!(ca.previous_pems, vec![old.cert_pem.clone()]);
        assert_eq!(ca.state.trust_changed_at, now - 10);
        assert_eq!(
            ca.bundle(true),
            format!("{}{}{}", intermediate.cert_pem, root.cert_pem, old.cert_pem)
        );

        // Once the bundle holds it (and the old one), it is trusted with the old as previous.
        let bundle = secret_of(&[(CA_CERT_KEY, &ca.bundle(true))]);
        let ca = users_ca("mine", &stored, Some(&bundle), now).unwrap();
        assert!(ca.state.trusted);
        assert_eq!(ca.previous_pems, vec![old.cert_pem.clone()]);
        assert_eq!(
            ca.bundle(false),
            format!("{}{}", intermediate.cert_pem, root.cert_pem)
        );
    }

    #[test]
    fn a_users_secret_without_a_usable_ca_is_a_problem_naming_it() {
        let now = 1_800_000_000;
        let ca = new_ca("plain", now, 86_400).unwrap();
        // The ca.crt / ca.key shape works too.
        let plain = secret_of(&[(CA_CERT_KEY, &ca.cert_pem), (CA_KEY_KEY, &ca.key_pem)]);
        assert!(users_ca("plain", &plain, None, now).is_ok());

        let only_cert = secret_of(&[(CA_CERT_KEY, &ca.cert_pem)]);
        assert_eq!(
            users_ca("x", &only_cert, None, now).err(),
            Some(CaSecretProblem::NoCa("x".into()))
        );
        let garbage = secret_of(&[(TLS_CERT_KEY, "hello"), (TLS_KEY_KEY, "world")]);
        assert!(matches!(
            users_ca("x", &garbage, None, now),
            Err(CaSecretProblem::Unreadable { .. })
        ));
        let leaf = issue(&ca, now + 86_400, "leaf", &LeafKind::Client, now, 3600).unwrap();
        let not_ca = secret_of(&[(TLS_CERT_KEY, &leaf.cert_pem), (TLS_KEY_KEY, &leaf.key_pem)]);
        let problem = users_ca("x", &not_ca, None, now).err().unwrap();
        assert_eq!(problem.reason(), "SecretInvalid");
        assert!(problem
            .to_string()
            .contains("the CA Secret x: its certificate is not a CA"));
        let expired = users_ca("plain", &plain, None, now + 2 * 86_400)
            .err()
            .unwrap();
        assert!(matches!(
            expired,
            CaSecretProblem::Unusable {
                error: CaCheckError::NotValidNow { .. },
                ..
            }
        ));
        assert_eq!(
            CaSecretProblem::Missing("x".into()).reason(),
            "SecretMissing"
        );
    }
}
