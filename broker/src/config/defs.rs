//! The table of settings Weir understands: Kafka's names, Kafka's defaults, and how each value
//! is validated. One table for the broker, one for topics; both are the single source for
//! parsing, validation and DescribeConfigs.

use super::ConfigError;

/// The type and allowed range of a setting's value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A 64-bit integer in `min..=max`.
    Long {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A floating-point number in `min..=max`.
    Double {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// `true` or `false`.
    Bool,
    /// A comma-separated list of distinct items from a fixed list, at least one (Kafka's
    /// `cleanup.policy`: `compact,delete`).
    List(&'static [&'static str]),
    /// One of a fixed list of strings.
    Choice(&'static [&'static str]),
    /// Any string.
    Text,
    /// A secret (a private key, a password): any string, never shown by DescribeConfigs
    /// (Kafka's PASSWORD type, reported sensitive with a null value).
    Password,
    /// Kafka's throttled replica list: empty, `*`, or `partition:broker` pairs separated by
    /// commas.
    ReplicaList,
    /// `max.connections.per.ip.overrides`: `ip:count` pairs separated by commas, or empty.
    IpCounts,
}

impl Kind {
    /// Checks `value` for the setting `key`.
    pub fn validate(&self, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        match *self {
            Kind::Long { min, max } => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| invalid("not an integer".to_string()))?;
                if n < min || n > max {
                    return Err(invalid(format!("must be between {min} and {max}")));
                }
            }
            Kind::Double { min, max } => {
                let n: f64 = value
                    .parse()
                    .map_err(|_| invalid("not a number".to_string()))?;
                if !(min..=max).contains(&n) {
                    return Err(invalid(format!("must be between {min} and {max}")));
                }
            }
            Kind::List(options) => {
                let items: Vec<&str> = value.split(',').map(str::trim).collect();
                if let Some(bad) = items.iter().find(|i| !options.contains(i)) {
                    return Err(invalid(format!(
                        "`{bad}` is not one of {}",
                        options.join(", ")
                    )));
                }
                let distinct: std::collections::BTreeSet<&&str> = items.iter().collect();
                if distinct.len() != items.len() {
                    return Err(invalid("an item is listed twice".to_string()));
                }
            }
            Kind::Bool => {
                if value != "true" && value != "false" {
                    return Err(invalid("must be true or false".to_string()));
                }
            }
            Kind::Choice(options) => {
                if !options.contains(&value) {
                    return Err(invalid(format!("must be one of {}", options.join(", "))));
                }
            }
            Kind::Text | Kind::Password => {}
            Kind::IpCounts => {
                super::parse_ip_counts(value).map_err(invalid)?;
            }
            Kind::ReplicaList => {
                let pair = |item: &str| {
                    item.split_once(':').is_some_and(|(p, b)| {
                        p.trim().parse::<i32>().is_ok_and(|p| p >= 0)
                            && b.trim().parse::<i32>().is_ok_and(|b| b >= 0)
                    })
                };
                let value = value.trim();
                if !(value.is_empty() || value == "*" || value.split(',').all(pair)) {
                    return Err(invalid(
                        "must be `*` or a list of partition:broker pairs".to_string(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Kafka's config type name, for DescribeConfigs v3+ (`config_type`).
    pub fn kafka_type(&self) -> i8 {
        match self {
            Kind::Bool => 1,
            Kind::Long { .. } => 5,
            Kind::Double { .. } => 6,
            Kind::Choice(_) | Kind::Text | Kind::IpCounts => 2,
            Kind::List(_) | Kind::ReplicaList => 7,
            Kind::Password => 9,
        }
    }

    /// Whether values are secrets DescribeConfigs must not return.
    pub fn is_sensitive(&self) -> bool {
        matches!(self, Kind::Password)
    }
}

/// One setting: its Kafka name, default and type.
#[derive(Debug)]
pub struct KeyDef {
    /// Kafka's name for it.
    pub name: &'static str,
    /// Kafka's default, as text.
    pub default: &'static str,
    /// How values are validated.
    pub kind: Kind,
}

const fn long(name: &'static str, default: &'static str, min: i64, max: i64) -> KeyDef {
    KeyDef {
        name,
        default,
        kind: Kind::Long { min, max },
    }
}

const fn flag(name: &'static str, default: &'static str) -> KeyDef {
    KeyDef {
        name,
        default,
        kind: Kind::Bool,
    }
}

const fn double(name: &'static str, default: &'static str, min: f64, max: f64) -> KeyDef {
    KeyDef {
        name,
        default,
        kind: Kind::Double { min, max },
    }
}

const fn text(name: &'static str, default: &'static str) -> KeyDef {
    KeyDef {
        name,
        default,
        kind: Kind::Text,
    }
}

const fn password(name: &'static str) -> KeyDef {
    KeyDef {
        name,
        default: "",
        kind: Kind::Password,
    }
}

const I32: i64 = i32::MAX as i64;
/// `ssl.enabled.protocols` items Weir (rustls) speaks.
pub const TLS_PROTOCOLS: &[&str] = &["TLSv1.2", "TLSv1.3"];
/// Kafka's default `listener.security.protocol.map`: each protocol's name maps to itself.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";
/// `cleanup.policy` items: `delete` (retention), `compact` (the log cleaner), or both.
pub const CLEANUP_POLICIES: &[&str] = &["delete", "compact"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

/// Broker-level settings (`server.properties`, `--set`).
pub static BROKER_KEYS: &[KeyDef] = &[
    long("num.partitions", "1", 1, 1_000_000),
    // Threads that open (create, or load and recover) the logs of a metadata change: at
    // start-up, and when a topic of many partitions is created here. Kafka's default is 2 and
    // it only loads at start-up; opening a log is mostly waiting for fsyncs, so more help.
    long("num.recovery.threads.per.data.dir", "8", 1, 1024),
    long("default.replication.factor", "1", 1, i16::MAX as i64),
    flag("auto.create.topics.enable", "true"),
    flag("delete.topic.enable", "true"),
    long("message.max.bytes", "1048588", 0, I32),
    long("socket.request.max.bytes", "104857600", 1024, I32),
    long("fetch.max.bytes", "57671680", 1024, I32),
    // Negative (or 0): idle connections stay open.
    long("connections.max.idle.ms", "600000", i64::MIN, i64::MAX),
    long("max.connections", "2147483647", 0, I32),
    long("max.connections.per.ip", "2147483647", 0, I32),
    KeyDef {
        name: "max.connections.per.ip.overrides",
        default: "",
        kind: Kind::IpCounts,
    },
    long("max.connection.creation.rate", "2147483647", 0, I32),
    long("log.segment.bytes", "1073741824", 1024, I32),
    long("log.roll.ms", "604800000", 1, i64::MAX),
    long("log.roll.hours", "168", 1, I32),
    long("log.retention.ms", "604800000", -1, i64::MAX),
    long("log.retention.minutes", "10080", -1, I32),
    long("log.retention.hours", "168", -1, I32),
    long("log.retention.bytes", "-1", -1, i64::MAX),
    long("log.retention.check.interval.ms", "300000", 1, i64::MAX),
    long("log.index.interval.bytes", "4096", 0, I32),
    long("log.index.size.max.bytes", "10485760", 4, I32),
    long(
        "log.flush.interval.messages",
        "9223372036854775807",
        1,
        i64::MAX,
    ),
    long("log.flush.interval.ms", "9223372036854775807", 0, i64::MAX),
    long(
        "log.flush.scheduler.interval.ms",
        "9223372036854775807",
        0,
        i64::MAX,
    ),
    long("log.flush.offset.checkpoint.interval.ms", "60000", 0, I32),
    KeyDef {
        name: "log.message.timestamp.type",
        default: "CreateTime",
        kind: Kind::Choice(TIMESTAMP_TYPES),
    },
    KeyDef {
        name: "log.cleanup.policy",
        default: "delete",
        kind: Kind::List(CLEANUP_POLICIES),
    },
    // The log cleaner (compaction), with Kafka's names, defaults and bounds.
    flag("log.cleaner.enable", "true"),
    long("log.cleaner.threads", "1", 0, I32),
    long("log.cleaner.backoff.ms", "15000", 0, i64::MAX),
    double(
        "log.cleaner.io.max.bytes.per.second",
        "1.7976931348623157E308",
        f64::MIN_POSITIVE,
        f64::MAX,
    ),
    long("log.cleaner.dedupe.buffer.size", "134217728", 0, i64::MAX),
    long("log.cleaner.io.buffer.size", "524288", 0, I32),
    double("log.cleaner.io.buffer.load.factor", "0.9", 0.0, 1.0),
    double("log.cleaner.min.cleanable.ratio", "0.5", 0.0, 1.0),
    long("log.cleaner.delete.retention.ms", "86400000", 0, i64::MAX),
    long("log.cleaner.min.compaction.lag.ms", "0", 0, i64::MAX),
    long(
        "log.cleaner.max.compaction.lag.ms",
        "9223372036854775807",
        1,
        i64::MAX,
    ),
    KeyDef {
        name: "compression.type",
        default: "producer",
        kind: Kind::Choice(&["producer"]),
    },
    long("min.insync.replicas", "1", 1, I32),
    flag("unclean.leader.election.enable", "false"),
    long("offsets.topic.num.partitions", "50", 1, 100_000),
    long("offsets.topic.replication.factor", "3", 1, i16::MAX as i64),
    long("offsets.topic.segment.bytes", "104857600", 1024, I32),
    // Kafka's codec ids: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    long("offsets.topic.compression.codec", "0", 0, 4),
    long("offsets.retention.minutes", "10080", 1, I32),
    long("transaction.state.log.num.partitions", "50", 1, 100_000),
    long(
        "transaction.state.log.replication.factor",
        "3",
        1,
        i16::MAX as i64,
    ),
    long("transaction.state.log.min.isr", "2", 1, I32),
    long(
        "transaction.state.log.segment.bytes",
        "104857600",
        1024,
        I32,
    ),
    long("transaction.max.timeout.ms", "900000", 1, I32),
    long("transactional.id.expiration.ms", "604800000", 1, I32),
    long("producer.id.expiration.ms", "86400000", 1, I32),
    long("producer.id.expiration.check.interval.ms", "600000", 1, I32),
    long(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "3600000",
        1,
        I32,
    ),
    long(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
        1,
        I32,
    ),
    // KIP-890: a partition leader asks the coordinator before a producer's first
    // transactional batch in it.
    flag("transaction.partition.verification.enable", "true"),
    long("offsets.retention.check.interval.ms", "600000", 1, i64::MAX),
    long("offsets.commit.timeout.ms", "5000", 1, I32),
    // Client quotas (AlterClientQuotas): the rate is measured over this many windows.
    long("quota.window.num", "11", 1, I32),
    long("quota.window.size.seconds", "1", 1, I32),
    long("offset.metadata.max.bytes", "4096", 0, I32),
    long("group.initial.rebalance.delay.ms", "3000", 0, I32),
    long("group.min.session.timeout.ms", "6000", 0, I32),
    long("group.max.session.timeout.ms", "1800000", 0, I32),
    long("group.max.size", "2147483647", 1, I32),
    // KIP-227 fetch sessions; 0 turns them off (every fetch is a full fetch).
    long("max.incremental.fetch.session.cache.slots", "1000", 0, I32),
    // KIP-848 consumer groups (group.protocol=consumer); Kafka 4's defaults and bounds.
    long("group.consumer.session.timeout.ms", "45000", 1, I32),
    long("group.consumer.min.session.timeout.ms", "45000", 1, I32),
    long("group.consumer.max.session.timeout.ms", "60000", 1, I32),
    long("group.consumer.heartbeat.interval.ms", "5000", 1, I32),
    long("group.consumer.min.heartbeat.interval.ms", "5000", 1, I32),
    long("group.consumer.max.heartbeat.interval.ms", "15000", 1, I32),
    long("group.consumer.max.size", "2147483647", 1, I32),
    KeyDef {
        name: "group.consumer.assignors",
        default: "uniform,range",
        kind: Kind::Text,
    },
    // Online migration of a non-empty group between the classic and the consumer protocol
    // (Kafka 4's default: both ways).
    KeyDef {
        name: "group.consumer.migration.policy",
        default: "bidirectional",
        kind: Kind::Choice(&["bidirectional", "upgrade", "downgrade", "disabled"]),
    },
    // KIP-932 share groups; Kafka 4.1's defaults and bounds. `group.share.enable` is Kafka
    // 4.0's switch: the share APIs are advertised only with it.
    flag("group.share.enable", "false"),
    long("group.share.session.timeout.ms", "45000", 1, I32),
    long("group.share.heartbeat.interval.ms", "5000", 1, I32),
    long("group.share.max.size", "200", 1, 1000),
    long(
        "group.share.record.lock.duration.ms",
        "30000",
        1000,
        3600000,
    ),
    long("group.share.delivery.count.limit", "5", 2, 10),
    long("group.share.partition.max.record.locks", "2000", 100, 10000),
    // The share coordinator's `__share_group_state` (Kafka's names and defaults).
    long(
        "share.coordinator.state.topic.num.partitions",
        "50",
        1,
        100_000,
    ),
    long(
        "share.coordinator.state.topic.replication.factor",
        "3",
        1,
        i16::MAX as i64,
    ),
    long("share.coordinator.state.topic.min.isr", "2", 1, I32),
    long(
        "share.coordinator.state.topic.segment.bytes",
        "104857600",
        1024,
        I32,
    ),
    long(
        "share.coordinator.snapshot.update.records.per.snapshot",
        "500",
        0,
        500,
    ),
    long("share.coordinator.write.timeout.ms", "5000", 1, I32),
    // Kafka's group config `share.auto.offset.reset`; Weir has no group configs, so this
    // broker default holds for every share group.
    KeyDef {
        name: "share.auto.offset.reset",
        default: "latest",
        kind: Kind::Choice(&["latest", "earliest"]),
    },
    KeyDef {
        name: "broker.rack",
        default: "",
        kind: Kind::Text,
    },
    long("broker.session.timeout.ms", "9000", 100, I32),
    long("broker.heartbeat.interval.ms", "2000", 10, I32),
    long("controller.quorum.election.timeout.ms", "1000", 40, I32),
    flag("controller.quorum.auto.join.enable", "true"),
    long("replica.lag.time.max.ms", "30000", 100, i64::MAX),
    long("replica.fetch.wait.max.ms", "500", 0, I32),
    long("replica.fetch.max.bytes", "1048576", 0, I32),
    long("replica.socket.timeout.ms", "30000", 100, I32),
    long("replica.fetch.min.bytes", "1", 1, I32),
    long("replica.fetch.response.max.bytes", "10485760", 0, I32),
    // Kafka's default is 1000: a follower whose leader just failed waits that long before
    // asking the next one, which is most of Kafka's gap in the failover comparison.
    long("replica.fetch.backoff.ms", "100", 0, I32),
    flag("auto.leader.rebalance.enable", "true"),
    long("leader.imbalance.check.interval.seconds", "300", 1, I32),
    long("controlled.shutdown.timeout.ms", "30000", 0, I32),
    // Listeners and their security (config/listeners.rs, security/). Empty `listeners` means
    // the single PLAINTEXT listener of `--listen`.
    text("listeners", ""),
    text("advertised.listeners", ""),
    text("listener.security.protocol.map", DEFAULT_PROTOCOL_MAP),
    text("inter.broker.listener.name", ""),
    // The internal gRPC port (`--rpc-listen`: quorum, controller, admin API): PLAINTEXT or
    // SSL with a required client certificate (controller/rpc_tls.rs); Weir's own setting,
    // as Kafka has no such port.
    KeyDef {
        name: "rpc.security.protocol",
        default: "PLAINTEXT",
        kind: Kind::Choice(&["PLAINTEXT", "SSL"]),
    },
    KeyDef {
        name: "ssl.keystore.type",
        default: "PEM",
        kind: Kind::Choice(&["PEM"]),
    },
    text("ssl.keystore.location", ""),
    password("ssl.keystore.certificate.chain"),
    password("ssl.keystore.key"),
    password("ssl.key.password"),
    KeyDef {
        name: "ssl.truststore.type",
        default: "PEM",
        kind: Kind::Choice(&["PEM"]),
    },
    text("ssl.truststore.location", ""),
    password("ssl.truststore.certificates"),
    KeyDef {
        name: "ssl.client.auth",
        default: "none",
        kind: Kind::Choice(&["none", "requested", "required"]),
    },
    KeyDef {
        name: "ssl.enabled.protocols",
        default: "TLSv1.2,TLSv1.3",
        kind: Kind::List(TLS_PROTOCOLS),
    },
    text("sasl.enabled.mechanisms", "GSSAPI"),
    // KIP-368: a SASL session lasts at most this long (0: for ever); clients re-authenticate.
    long("connections.max.reauth.ms", "0", 0, i64::MAX),
    // SASL/OAUTHBEARER token validation (KIP-768): security/oauth.rs.
    text("sasl.oauthbearer.jwks.endpoint.url", ""),
    long(
        "sasl.oauthbearer.jwks.endpoint.refresh.ms",
        "3600000",
        1,
        i64::MAX,
    ),
    long(
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
        "100",
        1,
        i64::MAX,
    ),
    long(
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
        "10000",
        1,
        i64::MAX,
    ),
    text("sasl.oauthbearer.expected.audience", ""),
    text("sasl.oauthbearer.expected.issuer", ""),
    text("sasl.oauthbearer.sub.claim.name", "sub"),
    long("sasl.oauthbearer.clock.skew.seconds", "30", 0, I32),
    // Authorization (security/authorizer.rs): ACLs in the metadata log, checked when an
    // authorizer is named; empty is Kafka's default (no authorizer, everything allowed).
    KeyDef {
        name: "authorizer.class.name",
        default: "",
        kind: Kind::Choice(AUTHORIZERS),
    },
    text("super.users", ""),
    flag("allow.everyone.if.no.acl.found", "false"),
    text("ssl.principal.mapping.rules", "DEFAULT"),
    // Replication throttles (bytes per second), set dynamically by `kafka-reassign-partitions
    // --throttle` and `kafka-configs`; the default is unthrottled.
    long(
        "leader.replication.throttled.rate",
        "9223372036854775807",
        0,
        i64::MAX,
    ),
    long(
        "follower.replication.throttled.rate",
        "9223372036854775807",
        0,
        i64::MAX,
    ),
];

/// The `authorizer.class.name` values Weir accepts: none, or Kafka's two ACL authorizers
/// (the same semantics here).
pub const AUTHORIZERS: &[&str] = &[
    "",
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// Looks up a broker setting by name.
pub fn broker_key(name: &str) -> Option<&'static KeyDef> {
    BROKER_KEYS.iter().find(|k| k.name == name)
}

const THREADS: &str = "connections, requests and background work run on the async runtime's worker threads, one per core";
const AUTOTUNED: &str = "socket buffers are left to the kernel's autotuning";
const NO_PURGATORY: &str =
    "a waiting request is woken by the change it waits for; there is no purgatory to purge";
const PROMETHEUS: &str = "metrics are served in Prometheus' format on --metrics-listen (/metrics)";
const NODE_ID: &str = "--node-id (WEIR_NODE_ID)";
const VOTERS: &str =
    "--voters (WEIR_VOTERS), ID@HOST:PORT of each voter's internal listener (--rpc-listen)";
const TIMESTAMPS_UNCHECKED: &str = "record timestamps are not checked against the broker's clock";

/// Kafka broker settings that size machinery Weir does not have: accepted, so that tuning
/// copied from a Kafka `server.properties` does not stop the broker, named at start as having
/// no effect, and otherwise ignored. Each with the reason the broker logs.
pub static NO_EFFECT_KEYS: &[(&str, &str)] = &[
    ("num.network.threads", THREADS),
    ("num.io.threads", THREADS),
    ("background.threads", THREADS),
    ("queued.max.requests", "a connection's requests are handled in order on its own task, not queued between thread pools"),
    ("num.replica.fetchers", "a follower fetches from each leader broker on one task, over one connection"),
    ("num.replica.alter.log.dirs.threads", "a broker keeps one data directory"),
    ("socket.send.buffer.bytes", AUTOTUNED),
    ("socket.receive.buffer.bytes", AUTOTUNED),
    ("replica.socket.receive.buffer.bytes", AUTOTUNED),
    ("socket.listen.backlog.size", "listeners use the kernel's default backlog"),
    ("fetch.purgatory.purge.interval.requests", NO_PURGATORY),
    ("producer.purgatory.purge.interval.requests", NO_PURGATORY),
    ("delete.records.purgatory.purge.interval.requests", NO_PURGATORY),
    ("log.preallocate", "segment files grow as they are written"),
    ("log.segment.delete.delay.ms", "a deleted segment's file is removed at once; a read that holds it open finishes from it"),
    ("offsets.load.buffer.size", "a coordinator loads its partition with the log's own reads"),
    ("metric.reporters", PROMETHEUS),
    ("kafka.metrics.reporters", PROMETHEUS),
    ("auto.include.jmx.reporter", PROMETHEUS),
    ("metrics.num.samples", PROMETHEUS),
    ("metrics.sample.window.ms", PROMETHEUS),
    ("metrics.recording.level", PROMETHEUS),
    ("unstable.api.versions.enable", "only the API versions Weir implements are advertised"),
    ("group.coordinator.rebalance.protocols", "the classic and consumer group protocols are always served; share groups follow group.share.enable"),
    ("controlled.shutdown.enable", "a broker stopped with SIGTERM always moves its leaderships away first, within controlled.shutdown.timeout.ms"),
];

/// Kafka broker settings that Weir takes from its command line (or the environment), with
/// where: a file carrying one is refused with that pointer rather than as an unknown key.
pub static COMMAND_LINE_KEYS: &[(&str, &str)] = &[
    ("node.id", NODE_ID),
    ("broker.id", NODE_ID),
    ("log.dirs", "--data-dir (WEIR_DATA_DIR), one directory"),
    ("log.dir", "--data-dir (WEIR_DATA_DIR)"),
    ("metadata.log.dir", "--data-dir (WEIR_DATA_DIR): the metadata log is kept in the data directory"),
    ("process.roles", "--voters (WEIR_VOTERS): every broker runs the metadata quorum, and the voters listed vote"),
    ("controller.quorum.voters", VOTERS),
    ("controller.quorum.bootstrap.servers", VOTERS),
    ("controller.listener.names", "--rpc-listen and --advertised-rpc: the metadata quorum has its own internal listener, not a Kafka one"),
];

/// Kafka broker settings whose behaviour Weir does not have, with what it does instead: a file
/// carrying one is refused with that, rather than as an unknown key, since ignoring it would
/// leave the user believing it holds.
pub static UNSUPPORTED_KEYS: &[(&str, &str)] = &[
    ("log.message.timestamp.before.max.ms", TIMESTAMPS_UNCHECKED),
    ("log.message.timestamp.after.max.ms", TIMESTAMPS_UNCHECKED),
    (
        "replica.selector.class",
        "consumers fetch from partition leaders only (no fetching from followers, KIP-392)",
    ),
];

/// The entry of `keys` for `name`: the key as `'static` and what the table says of it.
pub fn kafka_key(
    keys: &'static [(&'static str, &'static str)],
    name: &str,
) -> Option<(&'static str, &'static str)> {
    keys.iter().copied().find(|(k, _)| *k == name)
}

/// A topic-level setting and the broker setting that supplies its default.
#[derive(Debug)]
pub struct TopicKeyDef {
    /// The topic setting's name (`retention.ms`).
    pub name: &'static str,
    /// The broker setting it defaults to (`log.retention.ms`).
    pub broker_synonym: &'static str,
    /// How values are validated.
    pub kind: Kind,
}

const fn topic(name: &'static str, broker_synonym: &'static str, kind: Kind) -> TopicKeyDef {
    TopicKeyDef {
        name,
        broker_synonym,
        kind,
    }
}

/// Topic-level settings (CreateTopics configs, IncrementalAlterConfigs).
pub static TOPIC_KEYS: &[TopicKeyDef] = &[
    topic(
        "cleanup.policy",
        "log.cleanup.policy",
        Kind::List(CLEANUP_POLICIES),
    ),
    topic(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        Kind::Double { min: 0.0, max: 1.0 },
    ),
    topic(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        Kind::Long {
            min: 0,
            max: i64::MAX,
        },
    ),
    topic(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        Kind::Long {
            min: 1,
            max: i64::MAX,
        },
    ),
    topic(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        Kind::Long {
            min: 0,
            max: i64::MAX,
        },
    ),
    topic(
        "compression.type",
        "compression.type",
        Kind::Choice(&["producer"]),
    ),
    topic(
        "segment.bytes",
        "log.segment.bytes",
        Kind::Long { min: 14, max: I32 },
    ),
    topic(
        "segment.ms",
        "log.roll.ms",
        Kind::Long {
            min: 1,
            max: i64::MAX,
        },
    ),
    topic(
        "retention.ms",
        "log.retention.ms",
        Kind::Long {
            min: -1,
            max: i64::MAX,
        },
    ),
    topic(
        "retention.bytes",
        "log.retention.bytes",
        Kind::Long {
            min: -1,
            max: i64::MAX,
        },
    ),
    topic(
        "max.message.bytes",
        "message.max.bytes",
        Kind::Long { min: 0, max: I32 },
    ),
    topic(
        "index.interval.bytes",
        "log.index.interval.bytes",
        Kind::Long { min: 0, max: I32 },
    ),
    topic(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        Kind::Long { min: 4, max: I32 },
    ),
    topic(
        "flush.messages",
        "log.flush.interval.messages",
        Kind::Long {
            min: 1,
            max: i64::MAX,
        },
    ),
    topic(
        "flush.ms",
        "log.flush.interval.ms",
        Kind::Long {
            min: 0,
            max: i64::MAX,
        },
    ),
    topic(
        "message.timestamp.type",
        "log.message.timestamp.type",
        Kind::Choice(TIMESTAMP_TYPES),
    ),
    topic(
        "min.insync.replicas",
        "min.insync.replicas",
        Kind::Long { min: 1, max: I32 },
    ),
    topic(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        Kind::Bool,
    ),
    // Which replicas the brokers' replication throttles apply to: `*` or
    // `partition:broker,...`. No broker-level default (empty).
    topic(
        "leader.replication.throttled.replicas",
        "",
        Kind::ReplicaList,
    ),
    topic(
        "follower.replication.throttled.replicas",
        "",
        Kind::ReplicaList,
    ),
];

/// Looks up a topic setting by name.
pub fn topic_key(name: &str) -> Option<&'static TopicKeyDef> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}
