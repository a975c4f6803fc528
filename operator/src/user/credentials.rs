//! A user's credentials as the operator makes them, and the Secret that hands them to clients:
//! pure functions (randomness from the OS, time passed in), no client.
//!
//! SCRAM: the operator derives the credential (salt, StoredKey, ServerKey, RFC 5802) from the
//! password itself and sends only that to the brokers, as `kafka-configs` does (it sends the
//! salted password): the password stays in the user's Secret and the operator's memory, and is
//! never logged (nothing here implements `Debug` over it). The Secret carries a fingerprint of
//! the password whose credential the brokers were given ([`FINGERPRINT_ANNOTATION`]), so a
//! reconcile re-sends the credential only when the password changed or the brokers lost it.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::Resource;
use sha2::{Digest, Sha256, Sha512};

use crate::crd::User;

/// The SCRAM mechanism the operator manages.
pub const MECHANISM: &str = "SCRAM-SHA-512";
/// PBKDF2 iterations of the credentials the operator makes (Kafka's tools default to 4096;
/// the brokers accept up to 16384).
pub const ITERATIONS: u32 = 8192;
/// Keys of the user's Secret.
pub const PASSWORD_KEY: &str = "password";
pub const JAAS_KEY: &str = "sasl.jaas.config";
pub const CERT_KEY: &str = "user.crt";
pub const KEY_KEY: &str = "user.key";
pub const CA_KEY: &str = "ca.crt";
/// Annotation of the user's Secret: the fingerprint of the password the brokers hold.
pub const FINGERPRINT_ANNOTATION: &str = "weir.dev/scram-credential";

/// A SCRAM credential as the brokers store it. Its `Debug` leaves the keys out: they are as
/// good as the password against a server.
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// 32 random bytes from the OS's generator (UUID v4 draws them from it), as hex.
fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A new password: 32 random hex digits (about 122 bits).
pub fn generate_password() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The SCRAM-SHA-512 credential of `password` with `salt` (RFC 5802, RFC 7677).
pub fn scram_credential(password: &str, salt: &[u8], iterations: u32) -> ScramCredential {
    let mut salted = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: Sha512::digest(&client_key).to_vec(),
        server_key: hmac(&salted, b"Server Key"),
        iterations: i32::try_from(iterations).unwrap_or(i32::MAX),
    }
}

/// A credential for `password` with a fresh random salt.
pub fn new_scram_credential(password: &str) -> ScramCredential {
    scram_credential(password, random_hex().as_bytes(), ITERATIONS)
}

/// What the Secret records of the password the brokers were given: a SHA-256 under a label
/// (the Secret holds the password itself anyway; the label keeps the value from matching a
/// plain hash of the password elsewhere).
pub fn fingerprint(password: &str) -> String {
    let digest = Sha256::digest(format!("weir.dev/scram-credential:{password}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `sasl.jaas.config` a Java client uses with this password.
pub fn jaas_config(user: &str, password: &str) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{}\" password=\"{}\";",
        quote(user),
        quote(password)
    )
}

/// The user's Secret: named after the user, owned by it (deleting the `User` deletes it).
pub fn user_secret(
    user: &User,
    entries: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> Secret {
    let owner = OwnerReference {
        api_version: User::api_version(&()).to_string(),
        kind: User::kind(&()).to_string(),
        name: user.kafka_name(),
        uid: user.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    Secret {
        metadata: ObjectMeta {
            name: Some(user.kafka_name()),
            namespace: user.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "weir-operator".to_string(),
                ),
                ("weir.dev/user".to_string(), user.kafka_name()),
                (
                    "weir.dev/cluster".to_string(),
                    user.spec.cluster_ref.clone(),
                ),
            ])),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            entries
                .into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The text under `key` of a Secret, if it is there and UTF-8.
pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 gives a SCRAM-SHA-256 example only; this checks SHA-512 against the same
    /// derivation done step by step with the primitives, and the shapes Kafka expects.
    #[test]
    fn the_credential_follows_rfc_5802() {
        let c = scram_credential("pencil", b"salt", 4096);
        assert_eq!(c.iterations, 4096);
        assert_eq!(c.salt, b"salt");
        assert_eq!(c.stored_key.len(), 64);
        assert_eq!(c.server_key.len(), 64);
        let mut salted = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha512>(b"pencil", b"salt", 4096, &mut salted);
        assert_eq!(c.server_key, hmac(&salted, b"Server Key"));
        assert_ne!(c.stored_key, hmac(&salted, b"Client Key"));
        assert_eq!(
            c.stored_key,
            Sha512::digest(hmac(&salted, b"Client Key")).to_vec()
        );
    }

    #[test]
    fn passwords_and_salts_are_fresh_each_time() {
        assert_ne!(generate_password(), generate_password());
        assert_eq!(generate_password().len(), 32);
        let a = new_scram_credential("p");
        let b = new_scram_credential("p");
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.stored_key, b.stored_key);
    }

    #[test]
    fn the_fingerprint_tells_passwords_apart_without_showing_them() {
        assert_eq!(fingerprint("a"), fingerprint("a"));
        assert_ne!(fingerprint("a"), fingerprint("b"));
        assert!(!fingerprint("secret").contains("secret"));
    }

    #[test]
    fn the_jaas_config_quotes_the_password() {
        assert_eq!(
            jaas_config("alice", r#"p"w"#),
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="p\"w";"#
        );
    }
}
