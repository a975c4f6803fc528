//! SASL/OAUTHBEARER (RFC 7628; Kafka's KIP-255 and, for validation, KIP-768): the client
//! sends a JSON Web Token, the broker checks its signature against the keys of a JWKS file and
//! its claims, and the principal is `User:<sub>`.
//!
//! Settings with Kafka's names: `sasl.oauthbearer.jwks.endpoint.url`, a `file:` URL (the file
//! is read again when it changes, so keys rotate without a restart) or an `https:` one (the
//! issuer's endpoint, [`HttpsKeys`]: fetched at start and every
//! `sasl.oauthbearer.jwks.endpoint.refresh.ms`, 3600000, and sooner when a token names a key
//! the set lacks, at most once per `sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms`,
//! 10000; failed fetches retried from `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms`, 100,
//! doubling up to that maximum; the server is checked against the platform's trust roots,
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` honoured),
//! `sasl.oauthbearer.expected.audience` (comma-separated; the token must name one),
//! `sasl.oauthbearer.expected.issuer`, `sasl.oauthbearer.sub.claim.name` (`sub`),
//! `sasl.oauthbearer.clock.skew.seconds` (30). Tokens must be signed with a public-key
//! algorithm (RS*, PS*, ES*, EdDSA) by a key of the set (by `kid`, or the only key) and carry
//! `exp`; unsigned tokens are never accepted (Kafka's default, the "unsecured" validator, is
//! for development only and has no place here: a listener with OAUTHBEARER needs a JWKS).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
    keys: KeySource,
    audience: Vec<String>,
    issuer: Option<String>,
    sub_claim: String,
    clock_skew_s: u64,
}

/// Where the issuer's keys come from.
#[derive(Debug)]
enum KeySource {
    /// A file, read again when its modification time changes; the set last read with that
    /// time.
    File {
        path: PathBuf,
        cached: Mutex<Option<(SystemTime, JwkSet)>>,
    },
    /// The issuer's HTTPS endpoint, refreshed in the background.
    Https(Arc<HttpsKeys>),
}

/// A key set served over HTTPS: the last one fetched, kept fresh by a task of its own (Kafka's
/// `RefreshingHttpsJwks`). Validation never waits for the network: a token signed by a key
/// the set lacks is refused, and the task is asked to fetch again soon.
#[derive(Debug)]
pub struct HttpsKeys {
    url: String,
    keys: Mutex<Option<JwkSet>>,
    /// Asks the task for an early fetch (a token named a key the set lacks).
    expedite: tokio::sync::Notify,
    refresh: Duration,
    backoff: Duration,
    backoff_max: Duration,
}

impl HttpsKeys {
    /// Fetches the set from `url` now and then every `refresh`, on the current tokio runtime.
    fn start(
        url: String,
        refresh: Duration,
        backoff: Duration,
        backoff_max: Duration,
    ) -> Result<Arc<Self>, String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "an https: key set needs the broker's runtime".to_string())?;
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("the HTTPS client: {e}"))?;
        let keys = Arc::new(Self {
            url,
            keys: Mutex::new(None),
            expedite: tokio::sync::Notify::new(),
            refresh,
            backoff,
            backoff_max,
        });
        // Held weakly: the task ends with the listener's validator.
        let weak = Arc::downgrade(&keys);
        runtime.spawn(async move { Self::run(weak, client).await });
        Ok(keys)
    }

    /// Fetch, then wait for the refresh interval, an early-fetch request (at most one per
    /// `backoff_max`), or after a failure the backoff.
    async fn run(keys: std::sync::Weak<Self>, client: reqwest::Client) {
        let mut failures: u32 = 0;
        loop {
            let Some(me) = keys.upgrade() else { return };
            let wait = match me.fetch(&client).await {
                Ok(set) => {
                    let changed = me.keys.lock().as_ref() != Some(&set);
                    if changed {
                        tracing::info!(url = %me.url, keys = set.keys.len(), "fetched the OAUTHBEARER key set");
                    }
                    *me.keys.lock() = Some(set);
                    failures = 0;
                    me.refresh
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = me
                        .backoff
                        .saturating_mul(2u32.saturating_pow(failures.min(16) - 1))
                        .min(me.backoff_max);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(url = %me.url, error = %e, failures, retry_in_ms = wait.as_millis() as u64, "fetching the OAUTHBEARER key set failed");
                    }
                    wait
                }
            };
            let fetched_at = Instant::now();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = me.expedite.notified() => {
                    // Early, but not more often than the backoff's maximum.
                    let gap = me.backoff_max.saturating_sub(fetched_at.elapsed());
                    tokio::time::sleep(gap).await;
                }
            }
        }
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<JwkSet, String> {
        let response = client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let body = response.bytes().await.map_err(|e| error_chain(&e))?;
        serde_json::from_slice(&body).map_err(|e| format!("not a JSON Web Key Set: {e}"))
    }
}

/// An error with its sources (reqwest's top-level message omits the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
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
        let millis = |key: &str, default: u64| -> Result<Duration, SecurityError> {
            match setting(key) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| error(format!("{key} {v}: a positive number of milliseconds"))),
            }
        };
        let keys = if let Some(path) = url
            .strip_prefix("file://")
            .or_else(|| url.strip_prefix("file:"))
        {
            KeySource::File {
                path: PathBuf::from(path),
                cached: Mutex::new(None),
            }
        } else if url.starts_with("https://") {
            let https = HttpsKeys::start(
                url.to_string(),
                millis("sasl.oauthbearer.jwks.endpoint.refresh.ms", 3_600_000)?,
                millis("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", 100)?,
                millis(
                    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
                    10_000,
                )?,
            )
            .map_err(|e| error(format!("sasl.oauthbearer.jwks.endpoint.url {url}: {e}")))?;
            KeySource::Https(https)
        } else {
            return Err(error(format!(
                "sasl.oauthbearer.jwks.endpoint.url {url}: a file: URL (the issuer's key set in a file, e.g. a mounted Secret) or the issuer's https: endpoint"
            )));
        };
        let validator = Self {
            keys,
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
        };
        // A file must be readable at start (a typo in the path stops the broker); an
        // endpoint is fetched in the background (an issuer that is down at start refuses
        // tokens until it answers, and does not stop the broker).
        if let KeySource::File { .. } = validator.keys {
            validator
                .key_set()
                .map_err(|e| error(format!("sasl.oauthbearer.jwks.endpoint.url {url}: {e}")))?;
        }
        Ok(validator)
    }

    /// The key set: a file's read again if it changed since, an endpoint's as last fetched.
    fn key_set(&self) -> Result<JwkSet, String> {
        let (path, cached) = match &self.keys {
            KeySource::File { path, cached } => (path, cached),
            KeySource::Https(https) => {
                return https
                    .keys
                    .lock()
                    .clone()
                    .ok_or_else(|| format!("{} has not been fetched yet", https.url));
            }
        };
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let mut keys = cached.lock();
        if let Some((at, set)) = keys.as_ref() {
            if *at == modified {
                return Ok(set.clone());
            }
        }
        let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let set: JwkSet = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not a JSON Web Key Set: {e}", path.display()))?;
        if keys.is_some() {
            tracing::info!(jwks = %path.display(), keys = set.keys.len(), "reloaded the OAUTHBEARER key set");
        }
        *keys = Some((modified, set.clone()));
        Ok(set)
    }

    /// A token named a key the set lacks: an endpoint's set is fetched again soon (the issuer
    /// may have rotated its keys).
    fn key_missing(&self) {
        if let KeySource::Https(https) = &self.keys {
            https.expedite.notify_one();
        }
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
            self.key_missing();
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
