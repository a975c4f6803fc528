//! The brokers' listeners in Kafka's settings, from `spec.listeners`.
//!
//! Without client listeners a broker has one PLAINTEXT listener on `kafkaPort`, given as the
//! broker's `--listen` shorthand (what every cluster had before listeners could be named).
//! With them, the broker gets:
//!
//! - `REPLICATION` on `kafkaPort`: SSL, each broker presenting its certificate
//!   (`ssl.client.auth=required` against the cluster CA), the `inter.broker.listener.name`;
//!   whoever it lets in is `User:weir-broker`, a super user when an authorizer is set (added to
//!   the spec's own `super.users`);
//! - each client listener as `<NAME>` with the protocol its `tls` and `authentication` make
//!   (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), and its `listener.name.<name>.` settings;
//! - one key store for every TLS listener: the broker's own `<pod>.pem` from the broker
//!   certificates Secret.
//!
//! With TLS on the internal port (`internal_tls`, see
//! [`crate::crd::ClusterStatus::internal_tls`]) the broker also gets
//! `rpc.security.protocol=SSL` with the same key store (broker certificates are valid for client
//! and server authentication) and the cluster CA's bundle as the internal port's trust store:
//! only brokers and the operator, which the cluster CA also certifies, may call it.
//!
//! What differs per pod (`listeners` binding every interface, `advertised.listeners` with the
//! pod's DNS name, the key store path) goes on the command line, where the kubelet expands
//! `$(POD_NAME)`; the rest goes into `server.properties`, whose hash rolls the pods.

use crate::crd::{AuthenticationType, ClientListener, ClusterSpec};
use crate::names::{BROKER_CERTS_MOUNT, CLIENTS_CA_MOUNT, CLUSTER_CA_MOUNT, JWKS_KEY, JWKS_MOUNT};

/// The brokers' own listener when client listeners are named.
pub const REPLICATION_LISTENER: &str = "REPLICATION";
/// The principal of every client of the REPLICATION listener: only holders of a cluster-CA
/// certificate get in (the brokers, and whoever uses a broker's certificate).
pub const BROKER_PRINCIPAL: &str = "User:weir-broker";
/// Maps every certificate the REPLICATION listener accepts to [`BROKER_PRINCIPAL`].
const BROKER_PRINCIPAL_RULES: &str = "RULE:^.*$/weir-broker/";

/// Maps a client certificate's subject to its CN (`CN=alice,O=x` → `User:alice`), the name of
/// the `User` it was issued for; other subjects keep their whole DN.
pub const CN_PRINCIPAL_RULES: &str = "RULE:^CN=([^,]*)(,.*)?$/$1/,DEFAULT";

/// Whether the cluster needs certificates: named client listeners make the replication
/// listener TLS.
pub fn uses_tls(spec: &ClusterSpec) -> bool {
    !spec.listeners.clients.is_empty()
}

/// Kafka's security protocol of a client listener.
pub fn security_protocol(listener: &ClientListener) -> &'static str {
    let sasl = matches!(
        listener.authentication.as_ref().map(|a| a.type_),
        Some(AuthenticationType::ScramSha512 | AuthenticationType::Oauth)
    );
    match (listener.tls, sasl) {
        (false, false) => "PLAINTEXT",
        (true, false) => "SSL",
        (false, true) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    }
}

/// The broker's name of a client listener (`external` → `EXTERNAL`).
pub fn listener_name(listener: &ClientListener) -> String {
    listener.name.to_ascii_uppercase()
}

/// The internal port's TLS settings (Weir's `rpc.security.protocol`, the `rpc` listener's
/// trust store), and the key store type they share with TLS listeners.
fn internal_tls_properties() -> Vec<(String, String)> {
    vec![
        ("rpc.security.protocol".to_string(), "SSL".to_string()),
        (
            "listener.name.rpc.ssl.truststore.location".to_string(),
            format!("{CLUSTER_CA_MOUNT}/ca.crt"),
        ),
    ]
}

/// The settings every broker shares, for `server.properties`: empty without client listeners
/// and without TLS on the internal port (`internal_tls`).
pub fn listener_properties(spec: &ClusterSpec, internal_tls: bool) -> Vec<(String, String)> {
    if !uses_tls(spec) {
        if !internal_tls {
            return Vec::new();
        }
        let mut settings = vec![
            ("ssl.keystore.type".to_string(), "PEM".to_string()),
            ("ssl.truststore.type".to_string(), "PEM".to_string()),
        ];
        settings.extend(internal_tls_properties());
        return settings;
    }
    let clients = &spec.listeners.clients;
    let protocols = std::iter::once(format!("{REPLICATION_LISTENER}:SSL"))
        .chain(
            clients
                .iter()
                .map(|l| format!("{}:{}", listener_name(l), security_protocol(l))),
        )
        .collect::<Vec<_>>()
        .join(",");
    let cluster_bundle = format!("{CLUSTER_CA_MOUNT}/ca.crt");
    let replication = REPLICATION_LISTENER.to_ascii_lowercase();
    let mut settings = vec![
        ("listener.security.protocol.map".to_string(), protocols),
        (
            "inter.broker.listener.name".to_string(),
            REPLICATION_LISTENER.to_string(),
        ),
        ("ssl.keystore.type".to_string(), "PEM".to_string()),
        ("ssl.truststore.type".to_string(), "PEM".to_string()),
        (
            format!("listener.name.{replication}.ssl.client.auth"),
            "required".to_string(),
        ),
        (
            format!("listener.name.{replication}.ssl.truststore.location"),
            cluster_bundle,
        ),
        (
            format!("listener.name.{replication}.ssl.principal.mapping.rules"),
            BROKER_PRINCIPAL_RULES.to_string(),
        ),
    ];
    // With an authorizer, the brokers' own requests (follower fetches, forwarded writes) must
    // be allowed whatever the ACLs say: their principal is a super user, with any the spec
    // names.
    if spec.config.contains_key("authorizer.class.name") {
        let users = spec
            .config
            .get("super.users")
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map_or_else(
                || BROKER_PRINCIPAL.to_string(),
                |u| format!("{BROKER_PRINCIPAL};{u}"),
            );
        settings.push(("super.users".to_string(), users));
    }
    if internal_tls {
        settings.extend(internal_tls_properties());
    }
    for listener in clients {
        let prefix = format!("listener.name.{}.", listener.name);
        let mut set = |key: &str, value: String| settings.push((format!("{prefix}{key}"), value));
        match listener.authentication.as_ref().map(|a| (a.type_, a)) {
            None => {}
            Some((AuthenticationType::Tls, _)) => {
                set("ssl.client.auth", "required".into());
                set(
                    "ssl.truststore.location",
                    format!("{CLIENTS_CA_MOUNT}/ca.crt"),
                );
                set("ssl.principal.mapping.rules", CN_PRINCIPAL_RULES.into());
            }
            Some((AuthenticationType::ScramSha512, _)) => {
                set("sasl.enabled.mechanisms", "SCRAM-SHA-512".into());
            }
            Some((AuthenticationType::Oauth, auth)) => {
                set("sasl.enabled.mechanisms", "OAUTHBEARER".into());
                if auth.jwks_secret.is_some() {
                    set(
                        "sasl.oauthbearer.jwks.endpoint.url",
                        format!("file:{}", jwks_path(listener)),
                    );
                }
            }
        }
    }
    settings
}

/// Where an OAuth listener's key set is mounted.
pub fn jwks_path(listener: &ClientListener) -> String {
    format!("{JWKS_MOUNT}/{}/{JWKS_KEY}", listener.name)
}

/// The per-pod listener arguments: `--listen`/`--advertised-listener` for the single
/// PLAINTEXT listener (and the key store when the internal port runs TLS), else `listeners`,
/// `advertised.listeners` and the key store as `--set`. `me` is the pod's DNS name (with
/// `$(POD_NAME)` in it).
pub fn listener_args(spec: &ClusterSpec, me: &str, internal_tls: bool) -> Vec<String> {
    let kafka_port = spec.listeners.kafka_port;
    let key_store = format!("--set=ssl.keystore.location={BROKER_CERTS_MOUNT}/$(POD_NAME).pem");
    if !uses_tls(spec) {
        let mut args = vec![
            format!("--listen=0.0.0.0:{kafka_port}"),
            format!("--advertised-listener={me}:{kafka_port}"),
        ];
        if internal_tls {
            args.push(key_store);
        }
        return args;
    }
    let all = std::iter::once((REPLICATION_LISTENER.to_string(), kafka_port)).chain(
        spec.listeners
            .clients
            .iter()
            .map(|l| (listener_name(l), l.port)),
    );
    let (bound, advertised): (Vec<_>, Vec<_>) = all
        .map(|(name, port)| {
            (
                format!("{name}://0.0.0.0:{port}"),
                format!("{name}://{me}:{port}"),
            )
        })
        .unzip();
    vec![
        format!("--set=listeners={}", bound.join(",")),
        format!("--set=advertised.listeners={}", advertised.join(",")),
        key_store,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::tests::cluster;

    /// A listener; an OAuth one with a key set.
    fn listener(
        name: &str,
        port: i32,
        tls: bool,
        auth: Option<AuthenticationType>,
    ) -> ClientListener {
        let mut l = ClientListener::new(name, port, tls, auth);
        if let Some(a) = l.authentication.as_mut() {
            a.jwks_secret = (a.type_ == AuthenticationType::Oauth).then(|| "issuer-keys".into());
        }
        l
    }

    fn spec_with(clients: Vec<ClientListener>) -> ClusterSpec {
        let mut spec = cluster(3).spec;
        spec.listeners.clients = clients;
        spec
    }

    fn get<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
        settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn without_client_listeners_the_broker_keeps_its_one_plaintext_listener() {
        let spec = spec_with(Vec::new());
        assert!(listener_properties(&spec, false).is_empty());
        assert_eq!(
            listener_args(&spec, "me", false),
            vec!["--listen=0.0.0.0:9092", "--advertised-listener=me:9092"]
        );
    }

    #[test]
    fn with_an_authorizer_the_brokers_are_super_users_beside_the_specs_own() {
        let mut spec = spec_with(vec![listener("tls", 9094, true, None)]);
        spec.config.insert(
            "authorizer.class.name".into(),
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        );
        let p = listener_properties(&spec, true);
        assert_eq!(get(&p, "super.users"), Some(BROKER_PRINCIPAL));
        spec.config
            .insert("super.users".into(), "User:admin;User:ops".into());
        let p = listener_properties(&spec, true);
        assert_eq!(
            get(&p, "super.users"),
            Some("User:weir-broker;User:admin;User:ops")
        );
        let text = crate::build::server_properties(&spec, true);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("super.users="))
                .count(),
            1,
            "written once: {text}"
        );
    }

    #[test]
    fn tls_on_the_internal_port_trusts_only_the_cluster_ca() {
        let with_listeners = spec_with(vec![listener("tls", 9094, true, None)]);
        let p = listener_properties(&with_listeners, true);
        assert_eq!(get(&p, "rpc.security.protocol"), Some("SSL"));
        assert_eq!(
            get(&p, "listener.name.rpc.ssl.truststore.location"),
            Some("/etc/weir/tls/cluster-ca/ca.crt")
        );
        let off = listener_properties(&with_listeners, false);
        assert_eq!(get(&off, "rpc.security.protocol"), None);

        // Kept on after the client listeners are gone: the one PLAINTEXT Kafka listener, and
        // the key store for the internal port.
        let without = spec_with(Vec::new());
        let p = listener_properties(&without, true);
        assert_eq!(get(&p, "rpc.security.protocol"), Some("SSL"));
        assert_eq!(get(&p, "ssl.keystore.type"), Some("PEM"));
        assert_eq!(get(&p, "listener.security.protocol.map"), None);
        assert_eq!(
            listener_args(&without, "me", true),
            vec![
                "--listen=0.0.0.0:9092",
                "--advertised-listener=me:9092",
                "--set=ssl.keystore.location=/etc/weir/tls/broker/$(POD_NAME).pem",
            ]
        );
    }

    #[test]
    fn each_listener_kind_gets_its_protocol_and_settings() {
        let spec = spec_with(vec![
            listener("plain", 9093, false, None),
            listener("tls", 9094, true, None),
            listener("mtls", 9095, true, Some(AuthenticationType::Tls)),
            listener("scram", 9096, true, Some(AuthenticationType::ScramSha512)),
            listener(
                "scramplain",
                9097,
                false,
                Some(AuthenticationType::ScramSha512),
            ),
            listener("oauth", 9098, true, Some(AuthenticationType::Oauth)),
        ]);
        let p = listener_properties(&spec, false);
        assert_eq!(
            get(&p, "listener.security.protocol.map"),
            Some("REPLICATION:SSL,PLAIN:PLAINTEXT,TLS:SSL,MTLS:SSL,SCRAM:SASL_SSL,SCRAMPLAIN:SASL_PLAINTEXT,OAUTH:SASL_SSL")
        );
        assert_eq!(get(&p, "inter.broker.listener.name"), Some("REPLICATION"));
        assert_eq!(
            get(&p, "listener.name.replication.ssl.client.auth"),
            Some("required")
        );
        assert_eq!(
            get(&p, "listener.name.replication.ssl.truststore.location"),
            Some("/etc/weir/tls/cluster-ca/ca.crt")
        );
        assert_eq!(
            get(&p, "listener.name.mtls.ssl.client.auth"),
            Some("required")
        );
        assert_eq!(
            get(&p, "listener.name.mtls.ssl.truststore.location"),
            Some("/etc/weir/tls/clients-ca/ca.crt")
        );
        assert_eq!(
            get(&p, "listener.name.mtls.ssl.principal.mapping.rules"),
            Some(CN_PRINCIPAL_RULES)
        );
        assert_eq!(get(&p, "listener.name.tls.ssl.client.auth"), None);
        assert_eq!(
            get(&p, "listener.name.replication.ssl.principal.mapping.rules"),
            Some("RULE:^.*$/weir-broker/")
        );
        assert_eq!(
            get(&p, "super.users"),
            None,
            "no authorizer, no super users"
        );
        assert_eq!(
            get(&p, "listener.name.scram.sasl.enabled.mechanisms"),
            Some("SCRAM-SHA-512")
        );
        assert_eq!(
            get(&p, "listener.name.scramplain.sasl.enabled.mechanisms"),
            Some("SCRAM-SHA-512")
        );
        assert_eq!(
            get(&p, "listener.name.oauth.sasl.enabled.mechanisms"),
            Some("OAUTHBEARER")
        );
        assert_eq!(
            get(&p, "listener.name.oauth.sasl.oauthbearer.jwks.endpoint.url"),
            Some("file:/etc/weir/oauth/oauth/jwks.json")
        );
        assert_eq!(get(&p, "listener.name.plain.sasl.enabled.mechanisms"), None);
    }

    #[test]
    fn pods_bind_every_interface_and_advertise_their_dns_name() {
        let spec = spec_with(vec![listener(
            "scram",
            9093,
            true,
            Some(AuthenticationType::ScramSha512),
        )]);
        assert_eq!(
            listener_args(&spec, "$(POD_NAME).events-brokers", true),
            vec![
                "--set=listeners=REPLICATION://0.0.0.0:9092,SCRAM://0.0.0.0:9093",
                "--set=advertised.listeners=REPLICATION://$(POD_NAME).events-brokers:9092,SCRAM://$(POD_NAME).events-brokers:9093",
                "--set=ssl.keystore.location=/etc/weir/tls/broker/$(POD_NAME).pem",
            ]
        );
    }
}
