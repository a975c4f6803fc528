//! Listener security: TLS ([`tls`]) and SASL ([`sasl`]) as each listener's security protocol
//! asks, and the principal a connection authenticated as.
//!
//! [`ListenerSecurity`] is built once per listener at start (bad settings fail startup with
//! the setting named); [`crate::server`] uses it for every connection of that listener.

pub mod authorizer;
pub mod jaas;
pub mod oauth;
pub mod principal;
pub mod sasl;
pub mod scram;
pub mod tls;

use std::borrow::Cow;
use std::sync::Arc;

use crate::config::listeners::{ListenerSpec, SecurityProtocol};
use crate::config::BrokerConfig;

/// A listener's security settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// TLS material or options of a listener.
    #[error("listener {listener}: TLS: {reason}")]
    Tls {
        /// The listener name.
        listener: String,
        /// What is wrong.
        reason: String,
    },
    /// SASL settings of a listener.
    #[error("listener {listener}: SASL: {reason}")]
    Sasl {
        /// The listener name.
        listener: String,
        /// What is wrong.
        reason: String,
    },
}

/// Who a connection is, as Kafka names principals: `User:alice` after SASL, the mapped
/// subject of the client certificate on SSL (`User:CN=alice,O=Example` by default),
/// `User:ANONYMOUS` on a listener without authentication.
///
/// The anonymous principal is borrowed: every connection starts as it, and an allocation each
/// would be held by every idle connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(Cow<'static, str>);

impl Principal {
    /// `User:ANONYMOUS`.
    pub fn anonymous() -> Self {
        Principal(Cow::Borrowed("User:ANONYMOUS"))
    }

    /// `User:<name>`.
    pub fn user(name: &str) -> Self {
        Principal(Cow::Owned(format!("User:{name}")))
    }

    /// The name without its type (`alice` of `User:alice`): what user quotas are set on.
    pub fn name(&self) -> &str {
        self.0
            .split_once(':')
            .map_or(self.as_str(), |(_, name)| name)
    }

    /// `User:alice`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One listener's name, protocol, TLS config and SASL config.
#[derive(Debug)]
pub struct ListenerSecurity {
    /// The listener name (`SASL_SSL`); shared with each of its connections.
    pub name: Arc<str>,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// TLS, on SSL and SASL_SSL listeners.
    pub tls: Option<tls::TlsSource>,
    /// SASL, on SASL_PLAINTEXT and SASL_SSL listeners.
    pub sasl: Option<sasl::SaslConfig>,
    /// How an SSL listener names a client by its certificate (`ssl.principal.mapping.rules`).
    pub principal_mapper: Option<principal::PrincipalMapper>,
    /// The broker's authorizer (shared by all listeners), when one is configured.
    pub authorizer: Option<std::sync::Arc<authorizer::Authorizer>>,
}

impl ListenerSecurity {
    /// Builds the security of `spec` from the broker settings.
    pub fn new(config: &BrokerConfig, spec: &ListenerSpec) -> Result<Self, SecurityError> {
        let name = spec.bind.name.clone();
        let tls = spec
            .protocol
            .uses_tls()
            .then(|| tls::TlsSource::new(config, &name))
            .transpose()?;
        let sasl = spec
            .protocol
            .uses_sasl()
            .then(|| sasl::SaslConfig::new(config, &name))
            .transpose()?;
        // On SASL_SSL the SASL exchange names the client; on SSL its certificate does.
        let principal_mapper = (spec.protocol == SecurityProtocol::Ssl)
            .then(|| {
                let rules = config
                    .listener_setting(&name, "ssl.principal.mapping.rules")
                    .unwrap_or("DEFAULT");
                principal::PrincipalMapper::parse(rules).map_err(|reason| SecurityError::Tls {
                    listener: name.clone(),
                    reason: format!("ssl.principal.mapping.rules: {reason}"),
                })
            })
            .transpose()?;
        Ok(Self {
            name: name.into(),
            protocol: spec.protocol,
            tls,
            sasl,
            principal_mapper,
            authorizer: None,
        })
    }

    /// A PLAINTEXT listener named `name` (tests, and the `--listen` shorthand).
    pub fn plaintext(name: &str) -> Self {
        Self {
            name: name.into(),
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
            principal_mapper: None,
            authorizer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anonymous_principal_is_not_allocated_and_names_like_any_other() {
        let anonymous = Principal::anonymous();
        assert!(matches!(anonymous.0, Cow::Borrowed(_)));
        assert_eq!(anonymous.as_str(), "User:ANONYMOUS");
        assert_eq!(anonymous.name(), "ANONYMOUS");
        assert_eq!(anonymous, Principal::user("ANONYMOUS"));
        assert_ne!(anonymous, Principal::user("alice"));
        assert_eq!(Principal::user("alice").name(), "alice");
    }
}
