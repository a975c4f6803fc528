//! The client side of SCRAM-SHA-512 (RFC 5802, RFC 7677's form with SHA-512), as a Kafka
//! client runs it inside SaslAuthenticate, and the credential AlterUserScramCredentials
//! stores.
//!
//! [`ScramClient::new`] computes the salted password once per (salt, iterations): RFC 5802
//! lets a client cache it, and the handshake-rate loop must measure the broker, not the
//! client's PBKDF2 (thousands of HMACs per connection on the same two cores).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha512};

/// The SASL mechanism name.
pub const MECHANISM: &str = "SCRAM-SHA-512";
/// Its `mechanism` number in AlterUserScramCredentials.
pub const MECHANISM_TYPE: i8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    #[error("the server's first message is malformed: {0:?}")]
    ServerFirst(String),
    #[error("the server's nonce does not extend ours")]
    Nonce,
    #[error("the server's final message is not its signature: {0:?}")]
    ServerFinal(String),
    #[error("the server's signature is wrong")]
    Signature,
}

/// SaltedPassword := Hi(password, salt, iterations), PBKDF2 with HMAC-SHA-512.
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut out);
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A user's password and the salted password computed for the broker's salt.
#[derive(Debug, Clone)]
pub struct ScramClient {
    user: String,
    password: String,
    cached: Option<(Vec<u8>, u32, Vec<u8>)>,
}

/// One exchange in progress: what the client sent first.
#[derive(Debug)]
pub struct Exchange {
    nonce: String,
    client_first_bare: String,
}

/// What the client sends second, and what it expects back.
#[derive(Debug)]
pub struct ClientFinal {
    pub message: String,
    server_signature: Vec<u8>,
}

impl ScramClient {
    pub fn new(user: &str, password: &str) -> ScramClient {
        ScramClient {
            user: user.to_string(),
            password: password.to_string(),
            cached: None,
        }
    }

    /// The client-first message (GS2 header `n,,`, no authorization id) and the exchange.
    pub fn first(&self) -> (String, Exchange) {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        // The bench's user names have no ',' or '=' to escape.
        let client_first_bare = format!("n={},r={nonce}", self.user);
        (
            format!("n,,{client_first_bare}"),
            Exchange {
                nonce,
                client_first_bare,
            },
        )
    }

    /// The client-final message for the server-first message `server_first`.
    pub fn last(
        &mut self,
        exchange: &Exchange,
        server_first: &str,
    ) -> Result<ClientFinal, ScramError> {
        let malformed = || ScramError::ServerFirst(server_first.to_string());
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in server_first.split(',') {
            match field.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(BASE64.decode(v).map_err(|_| malformed())?),
                Some(("i", v)) => iterations = Some(v.parse::<u32>().map_err(|_| malformed())?),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(malformed());
        };
        if !nonce.starts_with(&exchange.nonce) || nonce.len() == exchange.nonce.len() {
            return Err(ScramError::Nonce);
        }
        let salted = match &self.cached {
            Some((s, i, salted)) if *s == salt && *i == iterations => salted.clone(),
            _ => {
                let salted = salted_password(&self.password, &salt, iterations);
                self.cached = Some((salt, iterations, salted.clone()));
                salted
            }
        };
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha512::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!(
            "{},{server_first},{without_proof}",
            exchange.client_first_bare
        );
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        Ok(ClientFinal {
            message: format!("{without_proof},p={}", BASE64.encode(proof)),
            server_signature: hmac(&server_key, auth_message.as_bytes()),
        })
    }
}

impl ClientFinal {
    /// Checks the server-final message (`v=<signature>`).
    pub fn verify(&self, server_final: &str) -> Result<(), ScramError> {
        let signature = server_final
            .split(',')
            .find_map(|f| f.strip_prefix("v="))
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or_else(|| ScramError::ServerFinal(server_final.to_string()))?;
        if signature == self.server_signature {
            Ok(())
        } else {
            Err(ScramError::Signature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server side written from RFC 5802 alone, to check the client against.
    fn server_answers(
        password: &str,
        salt: &[u8],
        iterations: u32,
        client_first: &str,
    ) -> (String, impl Fn(&str) -> Option<String>) {
        let bare = client_first.strip_prefix("n,,").unwrap().to_string();
        let client_nonce = bare.split_once(",r=").unwrap().1.to_string();
        let server_first = format!(
            "r={client_nonce}server-part,s={},i={iterations}",
            BASE64.encode(salt)
        );
        let salted = salted_password(password, salt, iterations);
        let first = server_first.clone();
        let check = move |client_final: &str| {
            let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
            let auth = format!("{bare},{first},{without_proof}");
            let stored_key = Sha512::digest(hmac(&salted, b"Client Key"));
            let signature = hmac(&stored_key, auth.as_bytes());
            let client_key: Vec<u8> = BASE64
                .decode(proof)
                .unwrap()
                .iter()
                .zip(&signature)
                .map(|(p, s)| p ^ s)
                .collect();
            (Sha512::digest(&client_key) == stored_key).then(|| {
                format!(
                    "v={}",
                    BASE64.encode(hmac(&hmac(&salted, b"Server Key"), auth.as_bytes()))
                )
            })
        };
        (server_first, check)
    }

    #[test]
    fn the_right_password_authenticates_both_ways_and_a_wrong_one_does_not() {
        let salt = b"0123456789abcdef";
        let mut client = ScramClient::new("bench", "bench-secret");
        for _ in 0..2 {
            // The second exchange uses the cached salted password.
            let (first, exchange) = client.first();
            let (server_first, check) = server_answers("bench-secret", salt, 4096, &first);
            let last = client.last(&exchange, &server_first).unwrap();
            let server_final = check(&last.message).expect("the server accepts the proof");
            last.verify(&server_final).unwrap();
            assert!(matches!(last.verify("v=AAAA"), Err(ScramError::Signature)));
        }
        let mut wrong = ScramClient::new("bench", "wrong");
        let (first, exchange) = wrong.first();
        let (server_first, check) = server_answers("bench-secret", salt, 4096, &first);
        let last = wrong.last(&exchange, &server_first).unwrap();
        assert!(check(&last.message).is_none());
    }

    #[test]
    fn a_server_nonce_that_does_not_extend_the_clients_is_refused() {
        let mut client = ScramClient::new("bench", "bench-secret");
        let (_, exchange) = client.first();
        let server_first = format!("r=other,s={},i=4096", BASE64.encode(b"salt"));
        assert!(matches!(
            client.last(&exchange, &server_first),
            Err(ScramError::Nonce)
        ));
        assert!(matches!(
            client.last(&exchange, "garbage"),
            Err(ScramError::ServerFirst(_))
        ));
    }
}
