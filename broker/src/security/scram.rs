//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side, as Kafka runs them
//! over SaslAuthenticate: client-first, server-first, client-final, server-final.
//!
//! Credentials live in the metadata log ([`ScramCredential`]), set by AlterUserScramCredentials
//! from the salted password the admin client computes; the server never sees a password.
//! Channel binding is not supported (`n` or `y` GS2 flags only), as in Kafka.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::sasl::AuthError;
use super::Principal;
use crate::controller::image::ScramCredential;

/// The SCRAM mechanisms, with Kafka's names and AlterUserScramCredentials type ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (type 1).
    Sha256,
    /// SCRAM-SHA-512 (type 2).
    Sha512,
}

impl ScramMechanism {
    /// Both, in Kafka's order.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// Kafka's mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's type id in the admin APIs.
    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism of a type id.
    pub fn from_type_id(id: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.type_id() == id)
    }

    /// The mechanism of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's bounds on iterations (`ScramMechanism.minIterations()` and the most
    /// AlterUserScramCredentials accepts).
    pub const MIN_ITERATIONS: i32 = 4096;
    /// See [`Self::MIN_ITERATIONS`].
    pub const MAX_ITERATIONS: i32 = 16384;

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// The credential to store for a salted password (what AlterUserScramCredentials carries).
    pub fn credential(
        self,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = self.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: self.hash(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }
}

/// Where one connection's SCRAM exchange is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramServer {
    /// Waiting for client-first.
    Start(ScramMechanism),
    /// Sent server-first; waiting for client-final.
    SentServerFirst {
        /// The mechanism.
        mechanism: ScramMechanism,
        /// The user's name.
        user: String,
        /// The user's credential.
        credential: ScramCredential,
        /// `client-first-message-bare` + "," + `server-first-message`.
        auth_prefix: String,
        /// The GS2 header the client sent, which `c=` must repeat.
        gs2_header: String,
        /// Client nonce + server nonce.
        nonce: String,
    },
}

/// What a SCRAM step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramStep {
    /// Send this challenge and wait for the next message.
    Continue(Vec<u8>),
    /// Authenticated: send this last message (server-final).
    Done(Principal, Vec<u8>),
}

fn failed(mechanism: ScramMechanism) -> AuthError {
    AuthError::InvalidCredentials(mechanism.name())
}

fn malformed(what: &str) -> AuthError {
    AuthError::Malformed(format!("Invalid SCRAM message: {what}"))
}

/// A SCRAM `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is invalid.
fn decode_name(name: &str) -> Result<String, AuthError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("bad escape in the user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ScramServer {
    /// The mechanism being run.
    pub fn mechanism(&self) -> ScramMechanism {
        match self {
            ScramServer::Start(m) => *m,
            ScramServer::SentServerFirst { mechanism, .. } => *mechanism,
        }
    }

    /// Handles the client's next message; `lookup` finds a user's credential for the
    /// mechanism. A wrong proof, an unknown user and a malformed message all fail.
    pub fn step(
        &mut self,
        message: &[u8],
        server_nonce: impl FnOnce() -> String,
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, AuthError> {
        let text = std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))?;
        match self.clone() {
            ScramServer::Start(mechanism) => {
                // gs2-header = cbind-flag "," [authzid] ","; then client-first-message-bare.
                let mut parts = text.splitn(3, ',');
                let (Some(flag), Some(authzid), Some(bare)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(malformed("expected a GS2 header"));
                };
                if flag != "n" && flag != "y" {
                    return Err(malformed("channel binding is not supported"));
                }
                let gs2_header = format!("{flag},{authzid},");
                let mut fields = bare.split(',');
                let user = fields
                    .next()
                    .and_then(|f| f.strip_prefix("n="))
                    .ok_or_else(|| malformed("expected n=<user>"))?;
                let client_nonce = fields
                    .next()
                    .and_then(|f| f.strip_prefix("r="))
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| malformed("expected r=<nonce>"))?;
                let user = decode_name(user)?;
                if let Some(authzid) = authzid.strip_prefix("a=") {
                    if decode_name(authzid)? != user {
                        return Err(AuthError::Malformed(
                            "Authentication failed: Client requested an authorization id that is different from username".to_string(),
                        ));
                    }
                }
                let credential = lookup(&user).ok_or_else(|| failed(mechanism))?;
                let nonce = format!("{client_nonce}{}", server_nonce());
                let server_first = format!(
                    "r={nonce},s={},i={}",
                    BASE64.encode(&credential.salt),
                    credential.iterations
                );
                *self = ScramServer::SentServerFirst {
                    mechanism,
                    user,
                    credential,
                    auth_prefix: format!("{bare},{server_first}"),
                    gs2_header,
                    nonce,
                };
                Ok(ScramStep::Continue(server_first.into_bytes()))
            }
            ScramServer::SentServerFirst {
                mechanism,
                user,
                credential,
                auth_prefix,
                gs2_header,
                nonce,
            } => {
                let (without_proof, proof) = text
                    .rsplit_once(",p=")
                    .ok_or_else(|| malformed("expected p=<proof>"))?;
                let mut fields = without_proof.split(',');
                let binding = fields
                    .next()
                    .and_then(|f| f.strip_prefix("c="))
                    .ok_or_else(|| malformed("expected c=<channel binding>"))?;
                let their_nonce = fields
                    .next()
                    .and_then(|f| f.strip_prefix("r="))
                    .ok_or_else(|| malformed("expected r=<nonce>"))?;
                if BASE64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
                    return Err(malformed(
                        "the channel binding does not repeat the GS2 header",
                    ));
                }
                // Kafka checks only that the nonce ends with the one it sent: librdkafka sends
                // its own nonce again in front of it.
                if !their_nonce.ends_with(&nonce) {
                    return Err(malformed("the nonce does not match"));
                }
                let proof = BASE64
                    .decode(proof)
                    .map_err(|_| malformed("the proof is not base64"))?;
                let auth_message = format!("{auth_prefix},{without_proof}");
                let signature = mechanism.hmac(&credential.stored_key, auth_message.as_bytes());
                if proof.len() != signature.len() {
                    return Err(failed(mechanism));
                }
                let client_key: Vec<u8> =
                    proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
                let computed = mechanism.hash(&client_key);
                let matches = computed.len() == credential.stored_key.len()
                    && computed
                        .iter()
                        .zip(&credential.stored_key)
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0;
                if !matches {
                    return Err(failed(mechanism));
                }
                let server_signature =
                    mechanism.hmac(&credential.server_key, auth_message.as_bytes());
                Ok(ScramStep::Done(
                    Principal::user(&user),
                    format!("v={}", BASE64.encode(server_signature)).into_bytes(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example: user `user`, password `pencil`.
    #[test]
    fn rfc_7677_example_authenticates() {
        let mechanism = ScramMechanism::Sha256;
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        // SaltedPassword = PBKDF2-HMAC-SHA-256("pencil", salt, 4096), from the RFC's numbers.
        let salted = salted_password_sha256(b"pencil", &salt, 4096);
        let credential = mechanism.credential(&salt, &salted, 4096);
        let mut server = ScramServer::Start(mechanism);
        let first = server
            .step(
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                || "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".to_string(),
                |user| (user == "user").then(|| credential.clone()),
            )
            .unwrap();
        assert_eq!(
            first,
            ScramStep::Continue(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
            )
        );
        let last = server
            .step(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                || unreachable!(),
                |_| unreachable!(),
            )
            .unwrap();
        assert_eq!(
            last,
            ScramStep::Done(
                Principal::user("user"),
                b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
            )
        );
    }

    #[test]
    fn a_wrong_proof_an_unknown_user_and_garbage_fail() {
        let mechanism = ScramMechanism::Sha512;
        let credential = mechanism.credential(b"salt", &[7; 64], 4096);
        let mut server = ScramServer::Start(mechanism);
        server
            .step(
                b"n,,n=alice,r=abc",
                || "def".into(),
                |_| Some(credential.clone()),
            )
            .unwrap();
        let e = server
            .step(
                b"c=biws,r=abcdef,p=AAAA",
                || unreachable!(),
                |_| unreachable!(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("invalid credentials"), "{e}");
        let mut server = ScramServer::Start(mechanism);
        assert!(server
            .step(b"n,,n=nobody,r=abc", || "def".into(), |_| None)
            .is_err());
        for garbage in [
            &b""[..],
            b"n",
            b"p=x,,n=a,r=b",
            b"n,,r=b",
            b"n,,n=a=b,r=c",
            b"\xff",
        ] {
            let mut server = ScramServer::Start(mechanism);
            assert!(
                server
                    .step(garbage, || "x".into(), |_| Some(credential.clone()))
                    .is_err(),
                "{garbage:?}"
            );
        }
    }

    /// SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations), as a client
    /// computes it; the broker itself never salts passwords.
    fn salted_password_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
        out.to_vec()
    }
}
