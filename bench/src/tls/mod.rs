//! What TLS and SASL_SSL cost (issue 16): the 1 KiB, acks=1, one-partition producer row of
//! the comparison over PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512) listeners, and the rate of
//! new TLS connections, Weir and Apache Kafka alternately on the same machine.
//!
//! Each case is a fresh single broker with a PLAINTEXT listener (inter-broker, and where the
//! bench creates topics and the SCRAM user) and, for SSL and SASL_SSL, a second listener of
//! that protocol, both brokers given the same PEM material ([`pki`]: Weir's
//! `ssl.keystore.location`, Kafka's with `ssl.keystore.type=PEM`) and the same SCRAM user,
//! created through AlterUserScramCredentials on the PLAINTEXT listener (`create_user`). On
//! it: the producer of [`crate::produce`] with the listener's security settings added (the
//! same librdkafka and settings as the comparison's row), then, on SSL and SASL_SSL,
//! [`handshake`]'s connection loop. The cost of a protocol is its throughput over PLAINTEXT's
//! on the same system in the same round (the median of the rounds' ratios).

pub mod handshake;
pub mod pki;
pub mod scram;
pub mod wire;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

use crate::cases::{Acks, Compression, ProduceCase, Topology};
use crate::payload::Payload;
use crate::process::{Launcher, RunningBrokers};
use crate::results::BrokerKind;
use crate::{client, machine, produce, stats};
use handshake::{HandshakeCase, HandshakeRate, SaslUser};
use pki::Pki;

/// The SCRAM user both brokers get.
const USER: &str = "weir-bench";
const PASSWORD: &str = "weir-bench-secret";
/// Kafka's least iteration count for SCRAM (the client's PBKDF2 is cached anyway).
const ITERATIONS: i32 = 4096;
/// How long a created SCRAM user may take to be usable on the SASL_SSL listener.
const USER_TIMEOUT: Duration = Duration::from_secs(60);

/// A listener's security protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslSsl,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Plaintext, Protocol::Ssl, Protocol::SaslSsl];

    /// Kafka's name, which is also the listener's.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Plaintext => "PLAINTEXT",
            Protocol::Ssl => "SSL",
            Protocol::SaslSsl => "SASL_SSL",
        }
    }

    fn is_tls(self) -> bool {
        self != Protocol::Plaintext
    }

    fn is_sasl(self) -> bool {
        self == Protocol::SaslSsl
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub launcher: Launcher,
    pub systems: Vec<BrokerKind>,
    pub protocols: Vec<Protocol>,
    pub rounds: usize,
    /// 1 KiB records per producer case.
    pub records: u64,
    /// Handshake loops side by side.
    pub connectors: usize,
    pub warmup: Duration,
    pub window: Duration,
}

/// One case: one broker start, one protocol.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsPoint {
    pub system: String,
    pub round: usize,
    pub protocol: Protocol,
    pub records: u64,
    pub records_per_second: f64,
    pub megabytes_per_second: f64,
    /// The broker's CPU seconds while the producer ran.
    pub broker_cpu_seconds: f64,
    /// On SSL and SASL_SSL.
    pub handshake: Option<HandshakeRate>,
    /// The one-minute load average when the case ended.
    pub load_average: Option<f64>,
}

/// The broker settings of `protocol`'s listener on `kind`, by Kafka's names.
fn settings(kind: BrokerKind, protocol: Protocol, pki: &Pki) -> Vec<(&'static str, String)> {
    let mut s = Vec::new();
    if protocol.is_tls() {
        s.push(("ssl.keystore.type", "PEM".to_string()));
        s.push(("ssl.keystore.location", pki.server.display().to_string()));
    }
    if protocol.is_sasl() {
        s.push(("sasl.enabled.mechanisms", scram::MECHANISM.to_string()));
        if kind == BrokerKind::Kafka {
            // Kafka wants a login module for every SASL listener's mechanism; Weir needs none
            // for SCRAM (and its --set splits at ';').
            s.push((
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required;".to_string(),
            ));
        }
    }
    s
}

/// librdkafka's settings for `protocol`.
fn client_settings(protocol: Protocol, pki: &Pki) -> Vec<(String, String)> {
    let mut s = Vec::new();
    let mut set = |k: &str, v: &str| s.push((k.to_string(), v.to_string()));
    match protocol {
        Protocol::Plaintext => {}
        Protocol::Ssl => set("security.protocol", "ssl"),
        Protocol::SaslSsl => {
            set("security.protocol", "sasl_ssl");
            set("sasl.mechanism", scram::MECHANISM);
            set("sasl.username", USER);
            set("sasl.password", PASSWORD);
        }
    }
    if protocol.is_tls() {
        set("ssl.ca.location", &pki.ca.display().to_string());
    }
    s
}

/// Runs every case: per round, per system, per protocol, a fresh broker.
pub fn run(options: &TlsOptions) -> anyhow::Result<Vec<TlsPoint>> {
    std::fs::create_dir_all(&options.launcher.work_dir)?;
    let pki_dir = tempfile::Builder::new()
        .prefix("tls-pki-")
        .tempdir_in(&options.launcher.work_dir)?;
    let pki = Pki::create(pki_dir.path())?;
    let tls = handshake::client_config(&pki.ca)?;
    let payload = Payload::new(1024);
    let mut points = Vec::new();
    for round in 0..options.rounds {
        for &kind in &options.systems {
            for &protocol in &options.protocols {
                let point = case(options, &pki, &tls, &payload, kind, protocol, round)?;
                eprintln!("  {point:?}");
                points.push(point);
            }
        }
    }
    Ok(points)
}

fn case(
    options: &TlsOptions,
    pki: &Pki,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    payload: &Payload,
    kind: BrokerKind,
    protocol: Protocol,
    round: usize,
) -> anyhow::Result<TlsPoint> {
    let label = format!(
        "{}-tls-{}-{round}",
        kind.name().to_lowercase(),
        protocol.name().to_lowercase()
    );
    let settings = settings(kind, protocol, pki);
    let mut broker = if protocol.is_tls() {
        options
            .launcher
            .start_with_listeners(kind, &label, &settings, &[protocol.name()])?
    } else {
        options
            .launcher
            .start_with(kind, &label, &Topology::SINGLE_NODE, &settings)?
    };
    crate::scale::wait_ready(&mut broker)?;
    let outcome = measure(options, pki, tls, payload, &broker, protocol);
    broker.stop()?;
    let (throughput, cpu, handshake) = outcome?;
    Ok(TlsPoint {
        system: kind.name().to_string(),
        round,
        protocol,
        records: throughput.records,
        records_per_second: throughput.records_per_second(),
        megabytes_per_second: throughput.megabytes_per_second(),
        broker_cpu_seconds: cpu,
        handshake,
        load_average: machine::load_average(),
    })
}

type Measured = (crate::results::Throughput, f64, Option<HandshakeRate>);

fn measure(
    options: &TlsOptions,
    pki: &Pki,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    payload: &Payload,
    broker: &RunningBrokers,
    protocol: Protocol,
) -> anyhow::Result<Measured> {
    let plaintext = broker.bootstrap();
    let addr = match protocol {
        Protocol::Plaintext => broker.addrs[0],
        _ => broker
            .listener(protocol.name())
            .ok_or_else(|| anyhow::anyhow!("no {} listener", protocol.name()))?,
    };
    let sasl = protocol.is_sasl().then(|| SaslUser {
        user: USER.to_string(),
        password: PASSWORD.to_string(),
    });
    if let Some(user) = &sasl {
        create_user(broker.addrs[0], user)?;
        wait_usable(addr, user, tls)?;
    }
    let case = ProduceCase {
        record_size: 1024,
        acks: Acks::Leader,
        compression: Compression::None,
        partitions: 1,
        records: options.records,
    };
    let topic = format!("tls-{}", protocol.name().to_lowercase());
    client::create_topic(&plaintext, &topic, 1, &Topology::SINGLE_NODE)?;
    let cpu_before = broker.usage()?.cpu_seconds;
    let throughput = produce::fill_with(
        &addr.to_string(),
        &topic,
        &case,
        payload,
        &client_settings(protocol, pki),
    )?;
    let cpu = broker.usage()?.cpu_seconds - cpu_before;
    let handshake = if protocol.is_tls() {
        let case = HandshakeCase {
            addr,
            sasl,
            connectors: options.connectors,
            warmup: options.warmup,
            window: options.window,
        };
        Some(handshake::run(&case, tls.clone())?)
    } else {
        None
    };
    Ok((throughput, cpu, handshake))
}

/// Creates (or replaces) the SCRAM-SHA-512 credential of `user` through
/// AlterUserScramCredentials on the plaintext listener at `addr`, as kafka-configs does.
fn create_user(addr: SocketAddr, user: &SaslUser) -> anyhow::Result<()> {
    let salt = uuid::Uuid::new_v4().as_bytes().to_vec();
    let salted = scram::salted_password(&user.password, &salt, ITERATIONS as u32);
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.user.clone()))
            .with_mechanism(scram::MECHANISM_TYPE)
            .with_iterations(ITERATIONS)
            .with_salt(Bytes::from(salt))
            .with_salted_password(Bytes::from(salted)),
    ]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let response: AlterUserScramCredentialsResponse = runtime.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        anyhow::Ok(
            wire::call(
                &mut stream,
                ApiKey::AlterUserScramCredentials,
                0,
                1,
                &request,
            )
            .await?,
        )
    })?;
    for result in response.results {
        anyhow::ensure!(
            result.error_code == 0,
            "AlterUserScramCredentials for {}: error code {} ({:?})",
            result.user,
            result.error_code,
            result.error_message
        );
    }
    Ok(())
}

/// Waits until `user` can log in on the SASL_SSL listener at `addr` (the credential is in
/// the broker's metadata image).
fn wait_usable(
    addr: SocketAddr,
    user: &SaslUser,
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let mut scram = scram::ScramClient::new(&user.user, &user.password);
    let deadline = Instant::now() + USER_TIMEOUT;
    loop {
        match runtime.block_on(handshake::connection(&connector, addr, Some(&mut scram))) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(anyhow::Error::from(e).context(format!(
                    "SCRAM user {} not usable within {USER_TIMEOUT:?}",
                    user.user
                )))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The comments that delimit the TLS section of docs/BENCHMARKS.md.
pub const BEGIN_MARKER: &str = "<!-- weir-bench:tls:begin -->";
pub const END_MARKER: &str = "<!-- weir-bench:tls:end -->";

/// The median over rounds of `value` of `system`'s points of `protocol` (those that have it).
fn median_of(
    points: &[TlsPoint],
    system: &str,
    protocol: Protocol,
    value: impl Fn(&TlsPoint) -> Option<f64>,
) -> Option<f64> {
    let values: Vec<f64> = points
        .iter()
        .filter(|p| p.system == system && p.protocol == protocol)
        .filter_map(value)
        .collect();
    stats::median(&values)
}

/// The median over rounds of `system`'s throughput on `protocol` over its PLAINTEXT
/// throughput in the same round.
fn cost_ratio(points: &[TlsPoint], system: &str, protocol: Protocol) -> Option<f64> {
    let ratios: Vec<f64> = points
        .iter()
        .filter(|p| p.system == system && p.protocol == protocol)
        .filter_map(|p| {
            let plain = points.iter().find(|q| {
                q.system == system && q.round == p.round && q.protocol == Protocol::Plaintext
            })?;
            Some(p.records_per_second / plain.records_per_second)
        })
        .collect();
    stats::median(&ratios)
}

/// The tables: producer throughput per protocol (with each system's cost against its own
/// PLAINTEXT) and new connections per second per TLS listener, Weir beside Kafka.
pub fn render(points: &[TlsPoint], conditions: &str) -> String {
    let weir = BrokerKind::Weir.name();
    let kafka = BrokerKind::Kafka.name();
    let show =
        |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "–".to_string(),
    };
    let rounds = |system: &str, protocol: Protocol| {
        points
            .iter()
            .filter(|p| p.system == system && p.protocol == protocol)
            .count()
    };
    let protocols: Vec<Protocol> = Protocol::ALL
        .into_iter()
        .filter(|p| points.iter().any(|q| q.protocol == *p))
        .collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "{conditions}\n\n**Producer, 1 KiB, acks=1, 1 partition**\n\n\
         | listener | Weir records/s | Kafka records/s | Weir MB/s | Kafka MB/s | Weir/Kafka | \
         Weir vs its PLAINTEXT | Kafka vs its PLAINTEXT | broker CPU s per GB Weir / Kafka | rounds |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for &protocol in &protocols {
        let rate = |system| median_of(points, system, protocol, |p| Some(p.records_per_second));
        let mb = |system| median_of(points, system, protocol, |p| Some(p.megabytes_per_second));
        let cpu = |system| {
            median_of(points, system, protocol, |p| {
                Some(p.broker_cpu_seconds / (p.records as f64 * 1024.0 / 1e9))
            })
        };
        let cost = |system| {
            if protocol == Protocol::Plaintext {
                let measured = rounds(system, protocol) > 0;
                if measured { "1.00x" } else { "–" }.to_string()
            } else {
                cost_ratio(points, system, protocol)
                    .map_or("–".to_string(), |r| format!("{r:.2}x"))
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {}/{} |",
            protocol.name(),
            show(rate(weir), 0),
            show(rate(kafka), 0),
            show(mb(weir), 1),
            show(mb(kafka), 1),
            ratio(rate(weir), rate(kafka)),
            cost(weir),
            cost(kafka),
            show(cpu(weir), 2),
            show(cpu(kafka), 2),
            rounds(weir, protocol),
            rounds(kafka, protocol),
        );
    }
    let tls: Vec<Protocol> = protocols.into_iter().filter(|p| p.is_tls()).collect();
    if !tls.is_empty() {
        let _ = write!(
            out,
            "\n**New connections per second** (connect, full TLS handshake, ApiVersions, SCRAM-SHA-512 \
             on SASL_SSL, close)\n\n\
             | listener | Weir conn/s | Kafka conn/s | Weir/Kafka | Weir p50 / p99 ms | \
             Kafka p50 / p99 ms | failed Weir / Kafka | rounds |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n"
        );
    }
    for protocol in tls {
        let of = |system, f: fn(&HandshakeRate) -> f64| {
            median_of(points, system, protocol, |p| p.handshake.as_ref().map(f))
        };
        let failed = |system: &str| -> u64 {
            points
                .iter()
                .filter(|p| p.system == system && p.protocol == protocol)
                .filter_map(|p| p.handshake.as_ref().map(|h| h.failed))
                .sum()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} / {} | {} / {} | {} / {} | {}/{} |",
            protocol.name(),
            show(of(weir, |h| h.per_second), 0),
            show(of(kafka, |h| h.per_second), 0),
            ratio(of(weir, |h| h.per_second), of(kafka, |h| h.per_second)),
            show(of(weir, |h| h.p50_ms), 2),
            show(of(weir, |h| h.p99_ms), 2),
            show(of(kafka, |h| h.p50_ms), 2),
            show(of(kafka, |h| h.p99_ms), 2),
            failed(weir),
            failed(kafka),
            rounds(weir, protocol),
            rounds(kafka, protocol),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(system: &str, round: usize, protocol: Protocol, rate: f64) -> TlsPoint {
        TlsPoint {
            system: system.to_string(),
            round,
            protocol,
            records: 1000,
            records_per_second: rate,
            megabytes_per_second: rate * 1024.0 / 1e6,
            broker_cpu_seconds: 0.5,
            handshake: protocol.is_tls().then(|| HandshakeRate {
                connections: 10,
                failed: 0,
                seconds: 1.0,
                per_second: rate / 100.0,
                p50_ms: 1.0,
                p99_ms: 2.0,
            }),
            load_average: None,
        }
    }

    #[test]
    fn the_cost_is_the_median_of_each_rounds_ratio_to_its_own_plaintext() {
        let weir = BrokerKind::Weir.name();
        let points = vec![
            point(weir, 0, Protocol::Plaintext, 1000.0),
            point(weir, 0, Protocol::Ssl, 500.0),
            point(weir, 1, Protocol::Plaintext, 2000.0),
            point(weir, 1, Protocol::Ssl, 1600.0),
            point(weir, 2, Protocol::Plaintext, 1000.0),
            point(weir, 2, Protocol::Ssl, 700.0),
        ];
        // Ratios 0.5, 0.8, 0.7: the median is 0.7, not 700 / 1000 of the medians.
        let cost = cost_ratio(&points, weir, Protocol::Ssl).unwrap();
        assert!((cost - 0.7).abs() < 1e-9, "{cost}");
        let table = render(&points, "conditions");
        assert!(table.contains("| SSL | 700 | – |"), "{table}");
        assert!(table.contains("| 0.70x |"), "{table}");
        assert!(table.contains("| SSL | 7 | – | – |"), "{table}");
        // Kafka was not run: no cost is shown for it, not even PLAINTEXT's own 1.00x.
        assert!(table.contains("| 1.00x | – |"), "{table}");
    }
}
