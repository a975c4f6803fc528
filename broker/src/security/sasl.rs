//! SASL on SASL_PLAINTEXT and SASL_SSL listeners: the mechanisms a listener enables and the
//! per-connection exchange (KIP-152: SaslHandshake v1, then SaslAuthenticate requests).
//!
//! PLAIN (RFC 4616): the users are the `user_<name>="<password>"` options of the listener's
//! `listener.name.<l>.plain.sasl.jaas.config`, as Kafka's `PlainLoginModule` reads them.
//! SCRAM-SHA-256 and SCRAM-SHA-512 ([`super::scram`]): credentials from the metadata log; a
//! JAAS config for them is optional (Kafka's `ScramLoginModule` takes no options on a
//! broker). OAUTHBEARER ([`super::oauth`]): JSON Web Tokens checked against a JWKS file. A
//! listener that enables another mechanism (GSSAPI) fails startup.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::oauth::{self, OAuthValidator};
use super::scram::{ScramMechanism, ScramServer, ScramStep};
use super::{jaas, Principal, SecurityError};
use crate::config::BrokerConfig;
use crate::controller::image::ScramCredential;

/// The mechanisms Weir implements, by Kafka's names.
pub const SUPPORTED_MECHANISMS: &[&str] =
    &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// Kafka's login module for PLAIN.
const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
/// Kafka's login module for SCRAM.
const SCRAM_LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

/// The SASL configuration of one listener.
#[derive(Debug, Clone)]
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms`, in the configured order.
    pub mechanisms: Vec<String>,
    /// PLAIN's users and passwords.
    plain_users: BTreeMap<String, String>,
    /// OAUTHBEARER's token validation, if enabled.
    oauth: Option<Arc<OAuthValidator>>,
    /// `connections.max.reauth.ms` (KIP-368): how long an authentication lasts; `None` for
    /// ever.
    pub max_reauth: Option<Duration>,
}

impl SaslConfig {
    /// Reads `sasl.enabled.mechanisms` and each mechanism's JAAS config for `listener`.
    pub fn new(config: &BrokerConfig, listener: &str) -> Result<Self, SecurityError> {
        let error = |reason: String| SecurityError::Sasl {
            listener: listener.to_string(),
            reason,
        };
        let mechanisms: Vec<String> = config
            .listener_setting(listener, "sasl.enabled.mechanisms")
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty())
            .collect();
        if mechanisms.is_empty() {
            return Err(error("sasl.enabled.mechanisms is empty".to_string()));
        }
        if let Some(m) = mechanisms
            .iter()
            .find(|m| !SUPPORTED_MECHANISMS.contains(&m.as_str()))
        {
            return Err(error(format!(
                "sasl.enabled.mechanisms names {m}, which Weir does not support (supported: {})",
                SUPPORTED_MECHANISMS.join(", ")
            )));
        }
        let mut plain_users = BTreeMap::new();
        for mechanism in &mechanisms {
            let setting = format!("{}.sasl.jaas.config", mechanism.to_ascii_lowercase());
            let key = format!("listener.name.{}.{setting}", listener.to_ascii_lowercase());
            let is_plain = mechanism == "PLAIN";
            let Some(text) = config.listener_setting(listener, &setting) else {
                if is_plain {
                    return Err(error(format!("PLAIN is enabled but `{key}` is not set")));
                }
                continue;
            };
            let entry = jaas::parse(text).map_err(|e| error(format!("{key}: {e}")))?;
            let module = match mechanism.as_str() {
                "PLAIN" => PLAIN_LOGIN_MODULE,
                "OAUTHBEARER" => oauth::LOGIN_MODULE,
                _ => SCRAM_LOGIN_MODULE,
            };
            if entry.login_module != module {
                return Err(error(format!(
                    "{key}: {mechanism} needs {module}, found {}",
                    entry.login_module
                )));
            }
            if is_plain {
                plain_users = entry
                    .options
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v)))
                    .collect();
            }
        }
        let oauth = if mechanisms.iter().any(|m| m == "OAUTHBEARER") {
            Some(Arc::new(OAuthValidator::new(config, listener)?))
        } else {
            None
        };
        let max_reauth = config
            .listener_setting(listener, "connections.max.reauth.ms")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        Ok(Self {
            mechanisms,
            plain_users,
            oauth,
            max_reauth,
        })
    }
}

/// Why a SASL exchange failed; the Display is the message the client gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Wrong user or password (the message does not say which, as in Kafka).
    #[error("Authentication failed: Invalid username or password")]
    BadCredentials,
    /// A SCRAM proof that does not match, or an unknown user (Kafka's message).
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {0}")]
    InvalidCredentials(&'static str),
    /// The client's message is not what the mechanism expects.
    #[error("Authentication failed: {0}")]
    Malformed(String),
}

/// Checks a PLAIN message (`[authzid] NUL authcid NUL passwd`) against the listener's users;
/// the authenticated principal.
pub fn authenticate_plain(config: &SaslConfig, message: &[u8]) -> Result<Principal, AuthError> {
    let text = std::str::from_utf8(message)
        .map_err(|_| AuthError::Malformed("the PLAIN message is not UTF-8".to_string()))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "a PLAIN message has three NUL-separated fields".to_string(),
        ));
    };
    if user.is_empty() || password.is_empty() {
        return Err(AuthError::Malformed(
            "username and password must not be empty".to_string(),
        ));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(AuthError::Malformed(
            "Client requested an authorization id that is different from username".to_string(),
        ));
    }
    match config.plain_users.get(user) {
        Some(expected) if constant_time_eq(expected.as_bytes(), password.as_bytes()) => {
            Ok(Principal::user(user))
        }
        _ => Err(AuthError::BadCredentials),
    }
}

/// Where a connection of a SASL listener is in its exchange (KIP-152): ApiVersions and one
/// SaslHandshake, then SaslAuthenticate until the mechanism is done; or, after a v0
/// handshake (before KIP-152), the mechanism's tokens as bare size-prefixed frames. Nothing
/// else is allowed before that, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// Waiting for SaslHandshake (ApiVersions allowed).
    AwaitHandshake,
    /// The mechanism was agreed; waiting for its next token, in SaslAuthenticate or (`raw`,
    /// after a v0 handshake) as a bare frame.
    Authenticating {
        /// The mechanism's state.
        mechanism: Mechanism,
        /// Tokens come as bare frames.
        raw: bool,
    },
}

/// An agreed mechanism and its state on this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// PLAIN: one token.
    Plain,
    /// SCRAM: client-first, then client-final.
    Scram(ScramServer),
    /// OAUTHBEARER: one token.
    OAuthBearer,
}

/// What a client token led to.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenStep {
    /// Send this challenge; more tokens follow.
    Continue(Vec<u8>),
    /// Authenticated: send this last server message (empty for PLAIN); the credential's own
    /// expiry, if it has one (an OAuth token's `exp`).
    Done(Principal, Vec<u8>, Option<SystemTime>),
}

/// Finds a user's SCRAM credential for a mechanism (in the metadata image).
pub type ScramLookup<'a> = &'a dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>;

/// What the connection does with a request during the exchange.
#[derive(Debug)]
pub enum Step {
    /// Serve it as usual (ApiVersions).
    Serve,
    /// Send this response; `After` says what follows. Boxed: the exchange is a few
    /// requests per connection.
    Respond(Box<ResponseKind>, After),
    /// Close the connection without an answer; the state it came in, for the log line.
    Refuse(&'static str),
}

/// What follows a response sent during the exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// More of the exchange.
    Continue,
    /// The client authenticated as this principal, with a credential valid until then (if
    /// it expires).
    Authenticated(Principal, Option<SystemTime>),
    /// Authentication failed (counted, logged with this reason): close once the response is
    /// sent.
    Failed(String),
    /// The handshake named a mechanism not enabled: close once the response is sent.
    Close,
}

impl Exchange {
    /// Handles `request` (at `version`) in the current state.
    pub fn on_request(
        &mut self,
        config: &SaslConfig,
        request: &RequestKind,
        version: i16,
        scram: ScramLookup<'_>,
    ) -> Step {
        match (&*self, request) {
            (Exchange::AwaitHandshake, RequestKind::ApiVersions(_)) => Step::Serve,
            (Exchange::AwaitHandshake, RequestKind::SaslHandshake(r)) => {
                let name = r.mechanism.to_string();
                let mechanism = config.mechanisms.contains(&name).then(|| {
                    match ScramMechanism::from_name(&name) {
                        Some(m) => Mechanism::Scram(ScramServer::Start(m)),
                        None if name == "OAUTHBEARER" => Mechanism::OAuthBearer,
                        None => Mechanism::Plain,
                    }
                });
                let response = SaslHandshakeResponse::default()
                    .with_error_code(if mechanism.is_some() {
                        0
                    } else {
                        ResponseError::UnsupportedSaslMechanism.code()
                    })
                    .with_mechanisms(
                        config
                            .mechanisms
                            .iter()
                            .map(|m| StrBytes::from_string(m.clone()))
                            .collect(),
                    );
                let after = match mechanism {
                    Some(mechanism) => {
                        *self = Exchange::Authenticating {
                            mechanism,
                            raw: version == 0,
                        };
                        After::Continue
                    }
                    None => After::Close,
                };
                Step::Respond(Box::new(ResponseKind::SaslHandshake(response)), after)
            }
            (Exchange::Authenticating { raw: false, .. }, RequestKind::SaslAuthenticate(r)) => {
                let response = SaslAuthenticateResponse::default();
                match self.token(config, &r.auth_bytes, scram) {
                    Ok(TokenStep::Continue(challenge)) => Step::Respond(
                        Box::new(ResponseKind::SaslAuthenticate(
                            response.with_auth_bytes(challenge.into()),
                        )),
                        After::Continue,
                    ),
                    Ok(TokenStep::Done(principal, last, expires)) => Step::Respond(
                        Box::new(ResponseKind::SaslAuthenticate(
                            response.with_auth_bytes(last.into()),
                        )),
                        After::Authenticated(principal, expires),
                    ),
                    Err(e) => Step::Respond(
                        Box::new(ResponseKind::SaslAuthenticate(
                            response
                                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                        )),
                        After::Failed(e.to_string()),
                    ),
                }
            }
            (Exchange::AwaitHandshake, _) => Step::Refuse("waiting for SaslHandshake"),
            (Exchange::Authenticating { raw: false, .. }, _) => {
                Step::Refuse("waiting for SaslAuthenticate")
            }
            (Exchange::Authenticating { raw: true, .. }, _) => {
                Step::Refuse("waiting for a SASL token")
            }
        }
    }

    /// Whether the next frame is a bare token (after a v0 handshake), not a request.
    pub fn awaits_raw_token(&self) -> bool {
        matches!(self, Exchange::Authenticating { raw: true, .. })
    }

    /// Runs the agreed mechanism over the client's next token.
    pub fn token(
        &mut self,
        config: &SaslConfig,
        token: &[u8],
        scram: ScramLookup<'_>,
    ) -> Result<TokenStep, AuthError> {
        match self {
            Exchange::Authenticating {
                mechanism: Mechanism::Plain,
                ..
            } => authenticate_plain(config, token).map(|p| TokenStep::Done(p, Vec::new(), None)),
            Exchange::Authenticating {
                mechanism: Mechanism::OAuthBearer,
                ..
            } => match &config.oauth {
                Some(validator) => validator
                    .authenticate(token)
                    .map(|(p, expires)| TokenStep::Done(p, Vec::new(), Some(expires))),
                None => Err(AuthError::Malformed(
                    "OAUTHBEARER is not enabled".to_string(),
                )),
            },
            Exchange::Authenticating {
                mechanism: Mechanism::Scram(server),
                ..
            } => {
                let mechanism = server.mechanism();
                let step = server.step(token, server_nonce, |user| scram(user, mechanism))?;
                Ok(match step {
                    ScramStep::Continue(challenge) => TokenStep::Continue(challenge),
                    ScramStep::Done(principal, last) => TokenStep::Done(principal, last, None),
                })
            }
            Exchange::AwaitHandshake => Err(AuthError::Malformed(
                "a token before SaslHandshake".to_string(),
            )),
        }
    }
}

/// A fresh SCRAM server nonce: 32 random hex digits (from the OS's generator, through
/// UUID v4) twice.
fn server_nonce() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Compares without returning early on the first difference, so the time taken does not
/// tell how much of a password was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<SaslConfig, SecurityError> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = BrokerConfig::new(0, "d".into(), &v).unwrap();
        SaslConfig::new(&c, "SASL_SSL")
    }

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret" user_bob="b";"#;

    #[test]
    fn plain_checks_users_from_the_jaas_config() {
        let c = config(&[
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.sasl_ssl.plain.sasl.jaas.config", JAAS),
        ])
        .unwrap();
        assert_eq!(
            authenticate_plain(&c, b"\0alice\0alice-secret").unwrap(),
            Principal::user("alice")
        );
        assert_eq!(
            authenticate_plain(&c, b"alice\0alice\0alice-secret").unwrap(),
            Principal::user("alice")
        );
        for bad in [
            &b"\0alice\0wrong"[..],
            b"\0carol\0alice-secret",
            b"\0alice\0b",
        ] {
            assert_eq!(authenticate_plain(&c, bad), Err(AuthError::BadCredentials));
        }
        for malformed in [
            &b"alice"[..],
            b"\0alice",
            b"bob\0alice\0alice-secret",
            b"\0\0x",
            b"\xff\0a\0b",
            b"\0a\0b\0c",
        ] {
            assert!(matches!(
                authenticate_plain(&c, malformed),
                Err(AuthError::Malformed(_))
            ));
        }
    }

    fn no_scram(_: &str, _: ScramMechanism) -> Option<ScramCredential> {
        None
    }

    fn plain_listener() -> SaslConfig {
        config(&[
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.sasl_ssl.plain.sasl.jaas.config", JAAS),
        ])
        .unwrap()
    }

    fn handshake(mechanism: &'static str) -> RequestKind {
        RequestKind::SaslHandshake(
            kafka_protocol::messages::SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(mechanism)),
        )
    }

    fn authenticate_request(token: &'static [u8]) -> RequestKind {
        RequestKind::SaslAuthenticate(
            kafka_protocol::messages::SaslAuthenticateRequest::default()
                .with_auth_bytes(bytes::Bytes::from_static(token)),
        )
    }

    fn error_code(step: &Step) -> i16 {
        match step {
            Step::Respond(body, _) => match &**body {
                ResponseKind::SaslHandshake(r) => r.error_code,
                ResponseKind::SaslAuthenticate(r) => r.error_code,
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_exchange_follows_kip_152() {
        let c = plain_listener();
        let mut exchange = Exchange::AwaitHandshake;
        let api_versions = RequestKind::ApiVersions(Default::default());
        assert!(matches!(
            exchange.on_request(&c, &api_versions, 3, &no_scram),
            Step::Serve
        ));
        let step = exchange.on_request(&c, &handshake("PLAIN"), 1, &no_scram);
        assert_eq!(error_code(&step), 0);
        assert_eq!(
            exchange,
            Exchange::Authenticating {
                mechanism: Mechanism::Plain,
                raw: false
            }
        );
        // Only SaslAuthenticate now.
        assert!(matches!(
            exchange.clone().on_request(&c, &api_versions, 3, &no_scram),
            Step::Refuse(_)
        ));
        let step = exchange.on_request(
            &c,
            &authenticate_request(b"\0alice\0alice-secret"),
            2,
            &no_scram,
        );
        assert!(matches!(
            &step,
            Step::Respond(_, After::Authenticated(p, None)) if *p == Principal::user("alice")
        ));

        let mut exchange = Exchange::AwaitHandshake;
        exchange.on_request(&c, &handshake("PLAIN"), 1, &no_scram);
        let step = exchange.on_request(&c, &authenticate_request(b"\0alice\0nope"), 2, &no_scram);
        assert_eq!(
            error_code(&step),
            ResponseError::SaslAuthenticationFailed.code()
        );
        assert!(matches!(step, Step::Respond(_, After::Failed(_))));
    }

    #[test]
    fn other_mechanisms_and_early_requests_are_refused() {
        let c = plain_listener();
        let mut exchange = Exchange::AwaitHandshake;
        let step = exchange.on_request(&c, &handshake("SCRAM-SHA-512"), 1, &no_scram);
        assert_eq!(
            error_code(&step),
            ResponseError::UnsupportedSaslMechanism.code()
        );
        assert!(matches!(step, Step::Respond(_, After::Close)));
        let mut exchange = Exchange::AwaitHandshake;
        let metadata = RequestKind::Metadata(Default::default());
        assert!(matches!(
            exchange.on_request(&c, &metadata, 12, &no_scram),
            Step::Refuse(_)
        ));
        assert!(matches!(
            exchange.on_request(
                &c,
                &authenticate_request(b"\0alice\0alice-secret"),
                2,
                &no_scram
            ),
            Step::Refuse(_)
        ));
    }

    #[test]
    fn a_v0_handshake_is_followed_by_a_bare_token() {
        let c = plain_listener();
        let mut exchange = Exchange::AwaitHandshake;
        assert_eq!(
            error_code(&exchange.on_request(&c, &handshake("PLAIN"), 0, &no_scram)),
            0
        );
        assert!(exchange.awaits_raw_token());
        assert_eq!(
            exchange.token(&c, b"\0bob\0b", &no_scram),
            Ok(TokenStep::Done(Principal::user("bob"), Vec::new(), None))
        );
    }

    #[test]
    fn listener_sasl_settings_are_checked_at_start() {
        let e = config(&[]).unwrap_err().to_string();
        assert!(e.contains("GSSAPI"), "{e}");
        let e = config(&[("sasl.enabled.mechanisms", "PLAIN")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("listener.name.sasl_ssl.plain.sasl.jaas.config"),
            "{e}"
        );
        let e = config(&[
            ("sasl.enabled.mechanisms", "PLAIN"),
            (
                "listener.name.sasl_ssl.plain.sasl.jaas.config",
                "Other required;",
            ),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("PlainLoginModule"), "{e}");
    }
}
