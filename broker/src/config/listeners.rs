//! Kafka's listener settings: `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map` and `inter.broker.listener.name`, resolved once at start
//! into the [`ListenerSpec`]s the broker binds.
//!
//! A listener is `NAME://HOST:PORT`; its name maps to one of four security protocols
//! (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL). An empty host binds every interface; port 0
//! binds a free port (advertised as the port actually bound). Per-listener settings use the
//! `listener.name.<lowercase name>.` prefix over the broker-wide setting
//! ([`super::BrokerConfig::listener_setting`]).

use std::collections::BTreeMap;

use super::ConfigError;

/// How a listener's connections are secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL authentication over plain TCP.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(s))
    }

    /// Whether connections are encrypted with TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients authenticate with SASL before anything else.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One entry of `listeners` or `advertised.listeners`: `NAME://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerAddress {
    /// The listener name, upper case as Kafka keeps it.
    pub name: String,
    /// Host name or IP; empty means every interface.
    pub host: String,
    /// TCP port; 0 picks a free one when binding.
    pub port: u16,
}

/// A listener to bind: its address, security protocol and the address clients are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Where to bind.
    pub bind: ListenerAddress,
    /// Its security protocol (from `listener.security.protocol.map`).
    pub protocol: SecurityProtocol,
    /// Its entry of `advertised.listeners`, if any; else the bound address is advertised.
    pub advertised: Option<ListenerAddress>,
}

/// The resolved listener settings.
///
/// Invariant: names are distinct, every name has a protocol, `inter_broker` names one of
/// `listeners`, and every advertised name is a listener's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    /// In the order `listeners` lists them.
    pub listeners: Vec<ListenerSpec>,
    /// The listener brokers use to talk the Kafka protocol to each other.
    pub inter_broker: String,
}

fn invalid(key: &str, value: &str, reason: String) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    }
}

/// Parses a comma-separated list of `NAME://HOST:PORT` (IPv6 hosts in brackets).
pub fn parse_addresses(key: &str, value: &str) -> Result<Vec<ListenerAddress>, ConfigError> {
    let mut out: Vec<ListenerAddress> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let bad = |why: &str| invalid(key, value, format!("`{item}`: {why}"));
        let (name, rest) = item
            .split_once("://")
            .ok_or_else(|| bad("expected NAME://HOST:PORT"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad("a listener name is letters, digits and `_`"));
        }
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("expected NAME://HOST:PORT"))?;
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = name.to_ascii_uppercase();
        if out.iter().any(|a| a.name == name) {
            return Err(bad("the listener name appears twice"));
        }
        if port != 0 && out.iter().any(|a| a.port == port && a.host == host) {
            return Err(bad("two listeners on one port"));
        }
        out.push(ListenerAddress {
            name,
            host: host.to_string(),
            port,
        });
    }
    Ok(out)
}

/// Parses `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
pub fn parse_protocol_map(
    key: &str,
    value: &str,
) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let mut map = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, protocol) = item
            .split_once(':')
            .ok_or_else(|| invalid(key, value, format!("`{item}`: expected NAME:PROTOCOL")))?;
        let protocol = SecurityProtocol::parse(protocol.trim()).ok_or_else(|| {
            invalid(
                key,
                value,
                format!("`{protocol}` is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
            )
        })?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

/// Resolves the listener settings. `listeners` empty means the single PLAINTEXT listener
/// of `--listen` (`default_bind`), which is how Weir started before these settings.
pub fn resolve(
    listeners: &str,
    advertised: &str,
    protocol_map: &str,
    inter_broker: &str,
    default_bind: ListenerAddress,
) -> Result<Listeners, ConfigError> {
    let map = parse_protocol_map("listener.security.protocol.map", protocol_map)?;
    let binds = if listeners.trim().is_empty() {
        vec![default_bind]
    } else {
        parse_addresses("listeners", listeners)?
    };
    if binds.is_empty() {
        return Err(invalid("listeners", listeners, "no listener".to_string()));
    }
    let mut advertised_by_name: BTreeMap<String, ListenerAddress> = BTreeMap::new();
    for a in parse_addresses("advertised.listeners", advertised)? {
        if !binds.iter().any(|b| b.name == a.name) {
            return Err(invalid(
                "advertised.listeners",
                advertised,
                format!("`{}` is not a listener in `listeners`", a.name),
            ));
        }
        if a.host.is_empty() || a.port == 0 {
            return Err(invalid(
                "advertised.listeners",
                advertised,
                format!("`{}` needs a host and a non-zero port", a.name),
            ));
        }
        advertised_by_name.insert(a.name.clone(), a);
    }
    let mut specs = Vec::new();
    for bind in binds {
        let protocol = *map.get(&bind.name).ok_or_else(|| {
            invalid(
                "listeners",
                listeners,
                format!(
                    "listener `{}` has no security protocol: add `{}:<PROTOCOL>` to listener.security.protocol.map",
                    bind.name, bind.name
                ),
            )
        })?;
        specs.push(ListenerSpec {
            advertised: advertised_by_name.remove(&bind.name),
            protocol,
            bind,
        });
    }
    let inter_broker = if inter_broker.trim().is_empty() {
        // Kafka's default `security.inter.broker.protocol=PLAINTEXT` names the listener
        // called PLAINTEXT; a broker with a single listener uses that one.
        match specs.as_slice() {
            [only] => only.bind.name.clone(),
            _ if specs.iter().any(|s| s.bind.name == "PLAINTEXT") => "PLAINTEXT".to_string(),
            _ => {
                return Err(invalid(
                    "inter.broker.listener.name",
                    inter_broker,
                    "no listener is named PLAINTEXT: name the one brokers use among themselves"
                        .to_string(),
                ))
            }
        }
    } else {
        inter_broker.trim().to_ascii_uppercase()
    };
    if !specs.iter().any(|s| s.bind.name == inter_broker) {
        return Err(invalid(
            "inter.broker.listener.name",
            &inter_broker,
            "not a listener in `listeners`".to_string(),
        ));
    }
    Ok(Listeners {
        listeners: specs,
        inter_broker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

    fn default_bind() -> ListenerAddress {
        ListenerAddress {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        }
    }

    #[test]
    fn no_listeners_setting_is_the_listen_flag() {
        let l = resolve("", "", MAP, "", default_bind()).unwrap();
        assert_eq!(l.listeners.len(), 1);
        assert_eq!(l.listeners[0].bind, default_bind());
        assert_eq!(l.listeners[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l.inter_broker, "PLAINTEXT");
    }

    #[test]
    fn listeners_map_to_protocols_and_advertise_by_name() {
        let l = resolve(
            "PLAINTEXT://:9092,SSL://127.0.0.1:9094,sasl_ssl://[::1]:0",
            "SSL://broker-0.weir:19094",
            MAP,
            "ssl",
            default_bind(),
        )
        .unwrap();
        let names: Vec<_> = l.listeners.iter().map(|s| s.bind.name.as_str()).collect();
        assert_eq!(names, ["PLAINTEXT", "SSL", "SASL_SSL"]);
        assert_eq!(l.listeners[0].bind.host, "");
        assert_eq!(l.listeners[2].bind.host, "::1");
        assert_eq!(l.listeners[2].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(
            l.listeners[1].advertised.as_ref().unwrap().host,
            "broker-0.weir"
        );
        assert_eq!(l.inter_broker, "SSL");
    }

    #[test]
    fn custom_names_need_a_protocol() {
        let e = resolve("INTERNAL://:9092", "", MAP, "", default_bind()).unwrap_err();
        assert!(
            e.to_string().contains("listener.security.protocol.map"),
            "{e}"
        );
        let l = resolve(
            "INTERNAL://:9092,EXTERNAL://:9093",
            "",
            "INTERNAL:SSL,EXTERNAL:SASL_SSL",
            "INTERNAL",
            default_bind(),
        )
        .unwrap();
        assert_eq!(l.listeners[1].protocol, SecurityProtocol::SaslSsl);
    }

    #[test]
    fn bad_listener_settings_are_named() {
        for (listeners, advertised, inter, needle) in [
            ("PLAINTEXT://:x", "", "", "not a number"),
            ("PLAINTEXT:9092", "", "", "NAME://HOST:PORT"),
            ("PLAINTEXT://:1,PLAINTEXT://:2", "", "", "twice"),
            ("PLAINTEXT://:1,SSL://:1", "", "", "one port"),
            ("PLAINTEXT://:1", "SSL://h:2", "", "not a listener"),
            ("PLAINTEXT://:1", "PLAINTEXT://:2", "", "host"),
            ("PLAINTEXT://:1", "", "SSL", "inter.broker.listener.name"),
            (
                "SSL://:1,SASL_SSL://:2",
                "",
                "",
                "inter.broker.listener.name",
            ),
        ] {
            let e = resolve(listeners, advertised, MAP, inter, default_bind()).unwrap_err();
            assert!(e.to_string().contains(needle), "{listeners}: {e}");
        }
        assert!(resolve("", "", "PLAINTEXT:TLS", "", default_bind()).is_err());
    }
}
