//! SASL on SASL_PLAINTEXT and SASL_SSL listeners: the mechanisms a listener enables and the
//! per-connection exchange (KIP-152: SaslHandshake v1, then SaslAuthenticate requests).
//!
//! Only PLAIN (RFC 4616) is implemented; its users are the `user_<name>="<password>"` options
//! of the listener's `listener.name.<l>.plain.sasl.jaas.config`, as Kafka's
//! `PlainLoginModule` reads them. A listener that enables another mechanism fails startup.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{jaas, Principal, SecurityError};
use crate::config::BrokerConfig;

/// The mechanisms Weir implements, by Kafka's names.
pub const SUPPORTED_MECHANISMS: &[&str] = &["PLAIN"];

/// Kafka's login module for PLAIN.
const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// The SASL configuration of one listener.
#[derive(Debug, Clone)]
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms`, in the configured order.
    pub mechanisms: Vec<String>,
    /// PLAIN's users and passwords.
    plain_users: BTreeMap<String, String>,
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
        let key = format!(
            "listener.name.{}.plain.sasl.jaas.config",
            listener.to_ascii_lowercase()
        );
        let text = config
            .listener_setting(listener, "plain.sasl.jaas.config")
            .ok_or_else(|| error(format!("PLAIN is enabled but `{key}` is not set")))?;
        let entry = jaas::parse(text).map_err(|e| error(format!("{key}: {e}")))?;
        if entry.login_module != PLAIN_LOGIN_MODULE {
            return Err(error(format!(
                "{key}: PLAIN needs {PLAIN_LOGIN_MODULE}, found {}",
                entry.login_module
            )));
        }
        let plain_users = entry
            .options
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v)))
            .collect();
        Ok(Self {
            mechanisms,
            plain_users,
        })
    }
}

/// Why a SASL exchange failed; the Display is the message the client gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Wrong user or password (the message does not say which, as in Kafka).
    #[error("Authentication failed: Invalid username or password")]
    BadCredentials,
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
    /// The mechanism was agreed; waiting for SaslAuthenticate.
    AwaitAuthenticate(String),
    /// The mechanism was agreed by a v0 handshake; waiting for a bare token frame.
    AwaitRawToken(String),
}

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
    /// The client authenticated as this principal.
    Authenticated(Principal),
    /// Authentication failed (counted): close once the response is sent.
    Failed,
    /// The handshake named a mechanism not enabled: close once the response is sent.
    Close,
}

impl Exchange {
    /// Handles `request` (at `version`) in the current state.
    pub fn on_request(&mut self, config: &SaslConfig, request: &RequestKind, version: i16) -> Step {
        match (&*self, request) {
            (Exchange::AwaitHandshake, RequestKind::ApiVersions(_)) => Step::Serve,
            (Exchange::AwaitHandshake, RequestKind::SaslHandshake(r)) => {
                let mechanism = r.mechanism.to_string();
                let enabled = config.mechanisms.contains(&mechanism);
                let response = SaslHandshakeResponse::default()
                    .with_error_code(if enabled {
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
                let after = if enabled {
                    *self = if version == 0 {
                        Exchange::AwaitRawToken(mechanism)
                    } else {
                        Exchange::AwaitAuthenticate(mechanism)
                    };
                    After::Continue
                } else {
                    After::Close
                };
                Step::Respond(Box::new(ResponseKind::SaslHandshake(response)), after)
            }
            (Exchange::AwaitAuthenticate(mechanism), RequestKind::SaslAuthenticate(r)) => {
                let outcome = authenticate(config, mechanism, &r.auth_bytes);
                let response = SaslAuthenticateResponse::default();
                match outcome {
                    Ok(principal) => Step::Respond(
                        Box::new(ResponseKind::SaslAuthenticate(response)),
                        After::Authenticated(principal),
                    ),
                    Err(e) => Step::Respond(
                        Box::new(ResponseKind::SaslAuthenticate(
                            response
                                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                        )),
                        After::Failed,
                    ),
                }
            }
            (Exchange::AwaitHandshake, _) => Step::Refuse("waiting for SaslHandshake"),
            (Exchange::AwaitAuthenticate(_), _) => Step::Refuse("waiting for SaslAuthenticate"),
            (Exchange::AwaitRawToken(_), _) => Step::Refuse("waiting for a SASL token"),
        }
    }

    /// The bare token frame expected after a v0 handshake, if that is where the exchange is.
    pub fn awaits_raw_token(&self) -> Option<&str> {
        match self {
            Exchange::AwaitRawToken(mechanism) => Some(mechanism),
            _ => None,
        }
    }
}

/// Runs `mechanism` (one enabled on the listener) over the client's token.
pub fn authenticate(
    config: &SaslConfig,
    mechanism: &str,
    token: &[u8],
) -> Result<Principal, AuthError> {
    match mechanism {
        "PLAIN" => authenticate_plain(config, token),
        other => Err(AuthError::Malformed(format!("{other} is not implemented"))),
    }
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
            exchange.on_request(&c, &api_versions, 3),
            Step::Serve
        ));
        let step = exchange.on_request(&c, &handshake("PLAIN"), 1);
        assert_eq!(error_code(&step), 0);
        assert_eq!(exchange, Exchange::AwaitAuthenticate("PLAIN".into()));
        // Only SaslAuthenticate now.
        assert!(matches!(
            exchange.clone().on_request(&c, &api_versions, 3),
            Step::Refuse(_)
        ));
        let step = exchange.on_request(&c, &authenticate_request(b"\0alice\0alice-secret"), 2);
        assert!(matches!(
            &step,
            Step::Respond(_, After::Authenticated(p)) if *p == Principal::user("alice")
        ));

        let mut exchange = Exchange::AwaitHandshake;
        exchange.on_request(&c, &handshake("PLAIN"), 1);
        let step = exchange.on_request(&c, &authenticate_request(b"\0alice\0nope"), 2);
        assert_eq!(
            error_code(&step),
            ResponseError::SaslAuthenticationFailed.code()
        );
        assert!(matches!(step, Step::Respond(_, After::Failed)));
    }

    #[test]
    fn other_mechanisms_and_early_requests_are_refused() {
        let c = plain_listener();
        let mut exchange = Exchange::AwaitHandshake;
        let step = exchange.on_request(&c, &handshake("SCRAM-SHA-512"), 1);
        assert_eq!(
            error_code(&step),
            ResponseError::UnsupportedSaslMechanism.code()
        );
        assert!(matches!(step, Step::Respond(_, After::Close)));
        let mut exchange = Exchange::AwaitHandshake;
        let metadata = RequestKind::Metadata(Default::default());
        assert!(matches!(
            exchange.on_request(&c, &metadata, 12),
            Step::Refuse(_)
        ));
        assert!(matches!(
            exchange.on_request(&c, &authenticate_request(b"\0alice\0alice-secret"), 2),
            Step::Refuse(_)
        ));
    }

    #[test]
    fn a_v0_handshake_is_followed_by_a_bare_token() {
        let c = plain_listener();
        let mut exchange = Exchange::AwaitHandshake;
        assert_eq!(
            error_code(&exchange.on_request(&c, &handshake("PLAIN"), 0)),
            0
        );
        assert_eq!(exchange.awaits_raw_token(), Some("PLAIN"));
        assert_eq!(
            authenticate(&c, "PLAIN", b"\0bob\0b"),
            Ok(Principal::user("bob"))
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
