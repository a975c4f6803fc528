//! SASL/OAUTHBEARER (RFC 7628; Kafka's KIP-255 and, for validation, KIP-768): the client
//! sends a JSON Web Token, the broker checks its signature against the keys of a JWKS file and
//! its claims, and the principal is `User:<sub>`.
//!
//! Settings with Kafka's names: `sasl.oauthbearer.jwks.endpoint.url` (a `file:` URL; the file
//! is read again when it changes, so keys rotate without a restart),
//! `sasl.oauthbearer.expected.audience` (comma-separated; the token must name one),
//! `sasl.oauthbearer.expected.issuer`, `sasl.oauthbearer.sub.claim.name` (`sub`),
//! `sasl.oauthbearer.clock.skew.seconds` (30). Tokens must be signed with a public-key
//! algorithm (RS*, PS*, ES*, EdDSA) by a key of the set (by `kid`, or the only key) and carry
//! `exp`; unsigned tokens are never accepted (Kafka's default, the "unsecured" validator, is
//! for development only and has no place here: a listener with OAUTHBEARER needs a JWKS).

use std::path::PathBuf;
use std::time::SystemTime;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;

use super::sasl::AuthError;
use super::{Principal, SecurityError};
use crate::config::BrokerConfig;

/// Kafka's login module for OAUTHBEARER.
pub const LOGIN_MODULE: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
/// Kafka's validating server callback handler (the only one Weir accepts naming).
const VALIDATOR_HANDLER: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";

/// How one listener validates tokens.
#[derive(Debug)]
pub struct OAuthValidator {
    jwks: PathBuf,
    audience: Vec<String>,
    issuer: Option<String>,
    sub_claim: String,
    clock_skew_s: u64,
    /// The key set last read, with the file's modification time then.
    keys: Mutex<Option<(SystemTime, JwkSet)>>,
}

impl OAuthValidator {
    /// Reads `listener`'s OAUTHBEARER settings and its JWKS file (which must be readable now).
    pub fn new(config: &BrokerConfig, listener: &str) -> Result<Self, SecurityError> {
        let error = |reason: String| SecurityError::Sasl {
            listener: listener.to_string(),
            reason,
        };
        let setting = |key: &str| {
            config
                .listener_setting(listener, key)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        if let Some(handler) = setting("oauthbearer.sasl.server.callback.handler.class") {
            if handler != VALIDATOR_HANDLER {
                return Err(error(format!(
                    "oauthbearer.sasl.server.callback.handler.class {handler}: Weir validates tokens as {VALIDATOR_HANDLER} does and accepts no other (unsigned tokens are never accepted)"
                )));
            }
        }
        let url = setting("sasl.oauthbearer.jwks.endpoint.url").ok_or_else(|| {
            error("OAUTHBEARER is enabled but sasl.oauthbearer.jwks.endpoint.url is not set (a file: URL of the issuer's JSON Web Key Set)".to_string())
        })?;
        let jwks = url
            .strip_prefix("file://")
            .or_else(|| url.strip_prefix("file:"))
            .map(PathBuf::from)
            .ok_or_else(|| {
                error(format!(
                    "sasl.oauthbearer.jwks.endpoint.url {url}: only file: URLs are supported (keep the issuer's key set in a file, e.g. a mounted Secret)"
                ))
            })?;
        let validator = Self {
            jwks,
            audience: setting("sasl.oauthbearer.expected.audience")
                .map(|a| {
                    a.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            issuer: setting("sasl.oauthbearer.expected.issuer").map(str::to_string),
            sub_claim: setting("sasl.oauthbearer.sub.claim.name")
                .unwrap_or("sub")
                .to_string(),
            clock_skew_s: setting("sasl.oauthbearer.clock.skew.seconds")
                .and_then(|s| s.parse().ok())
                .unwrap_or(30),
            keys: Mutex::new(None),
        };
        validator
            .key_set()
            .map_err(|e| error(format!("sasl.oauthbearer.jwks.endpoint.url {url}: {e}")))?;
        Ok(validator)
    }

    /// The key set, read again if the file changed since.
    fn key_set(&self) -> Result<JwkSet, String> {
        let modified = std::fs::metadata(&self.jwks)
            .and_then(|m| m.modified())
            .map_err(|e| format!("reading {}: {e}", self.jwks.display()))?;
        let mut keys = self.keys.lock();
        if let Some((at, set)) = keys.as_ref() {
            if *at == modified {
                return Ok(set.clone());
            }
        }
        let text = std::fs::read(&self.jwks)
            .map_err(|e| format!("reading {}: {e}", self.jwks.display()))?;
        let set: JwkSet = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not a JSON Web Key Set: {e}", self.jwks.display()))?;
        if keys.is_some() {
            tracing::info!(jwks = %self.jwks.display(), keys = set.keys.len(), "reloaded the OAUTHBEARER key set");
        }
        *keys = Some((modified, set.clone()));
        Ok(set)
    }

    /// Checks the client's first message (`n,,\x01auth=Bearer <token>\x01...\x01`) and its
    /// token; the authenticated principal and when the token expires.
    pub fn authenticate(&self, message: &[u8]) -> Result<(Principal, SystemTime), AuthError> {
        let token = bearer_token(message)?;
        let invalid = |reason: String| AuthError::Malformed(format!("invalid_token: {reason}"));
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(invalid(format!(
                "{:?} is a shared-secret algorithm; tokens must be signed by a key of the JWKS",
                header.alg
            )));
        }
        let set = self
            .key_set()
            .map_err(|e| invalid(format!("the key set cannot be read: {e}")))?;
        let jwk = match &header.kid {
            Some(kid) => set.find(kid),
            None if set.keys.len() == 1 => set.keys.first(),
            None => None,
        }
        .ok_or_else(|| {
            invalid(format!(
                "no key of the key set matches kid {:?}",
                header.kid
            ))
        })?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.clock_skew_s;
        validation.set_required_spec_claims(&["exp"]);
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audience);
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| invalid(e.to_string()))?
        .claims;
        let subject = claims
            .get(&self.sub_claim)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(format!("no `{}` claim", self.sub_claim)))?;
        let expires = claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .map(|s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s))
            .ok_or_else(|| invalid("`exp` is not a number of seconds".to_string()))?;
        Ok((Principal::user(subject), expires))
    }
}

/// The token of an OAUTHBEARER client first message (RFC 7628 3.1).
fn bearer_token(message: &[u8]) -> Result<&str, AuthError> {
    let malformed = |what: &str| AuthError::Malformed(format!("OAUTHBEARER message: {what}"));
    let text = std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))?;
    let (gs2, rest) = text
        .split_once('\u{1}')
        .ok_or_else(|| malformed("no key-value pairs"))?;
    if !(gs2.starts_with("n,") || gs2.starts_with("y,")) || !gs2.ends_with(',') {
        return Err(malformed("bad GS2 header"));
    }
    if !rest.ends_with("\u{1}\u{1}") && rest != "\u{1}" {
        return Err(malformed("not terminated"));
    }
    let auth = rest
        .split('\u{1}')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "auth")
        .map(|(_, value)| value)
        .ok_or_else(|| malformed("no auth pair"))?;
    let (scheme, token) = auth
        .split_once(' ')
        .ok_or_else(|| malformed("the auth pair is not `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(malformed("the auth pair is not `Bearer <token>`"));
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_from_the_client_message() {
        assert_eq!(
            bearer_token(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01"),
            Ok("abc.def.ghi")
        );
        assert_eq!(
            bearer_token(b"n,a=alice,\x01host=h\x01auth=bearer t\x01port=9\x01\x01"),
            Ok("t")
        );
        for bad in [
            &b"auth=Bearer t"[..],
            b"n,,\x01auth=Bearer t",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01host=h\x01\x01",
            b"x,,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"\xff\xfe",
        ] {
            assert!(bearer_token(bad).is_err(), "{bad:?}");
        }
    }
}
