//! Listeners with TLS and SASL against real clients: the Java client (kafka-clients from Maven
//! Central, tests/java/ClientSmoke.java with a client.properties) and kcat (librdkafka built with
//! SSL and SASL), certificates made at test time with rcgen.
//!
//! Each broker has a PLAINTEXT listener (the inter-broker one) next to the secured ones; the
//! clients bootstrap on the secured listener, so they only get through if Metadata advertises
//! that listener's address. Without java or kcat a test says so and passes, unless `CI` is set.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use weir_tests::cluster::{free_port, Cluster};
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::tls::Pki;
use weir_tests::wait::wait_for;
use weir_tests::{unique_topic, Broker, BrokerOptions};

const JAAS_USERS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret" user_bob="bob-secret";"#;

/// A broker with a PLAINTEXT listener and the listeners in `secured` (`SSL`, `SASL_SSL`, ...),
/// with the server certificate of `pki` and `extra` settings.
fn secured_broker(pki: &Pki, secured: &[&str], extra: &[(&str, &str)]) -> Broker {
    let listeners: Vec<String> = std::iter::once("PLAINTEXT")
        .chain(secured.iter().copied())
        .map(|name| format!("{name}://127.0.0.1:0"))
        .collect();
    let mut options = BrokerOptions::default()
        .set("listeners", listeners.join(","))
        .set("inter.broker.listener.name", "PLAINTEXT")
        .set("ssl.keystore.location", pki.server())
        .set(
            "sasl.enabled.mechanisms",
            "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        )
        .set("listener.name.sasl_ssl.plain.sasl.jaas.config", JAAS_USERS)
        .set(
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            JAAS_USERS,
        );
    for (key, value) in extra {
        options = options.set(key, value);
    }
    Broker::start(options)
}

fn java_client() -> Option<KafkaTools> {
    KafkaTools::find_in("java-client-deps", &["kafka-clients-4.1.1.jar"])
}

/// Runs ClientSmoke (create a topic, produce 1000 records, consume them in a group, commit)
/// against `bootstrap` with `properties` as its client settings.
fn java_smoke(java: &KafkaTools, pki: &Pki, bootstrap: SocketAddr, properties: &str) -> Output {
    let file = pki.path(&format!("{}.properties", unique_topic("client")));
    std::fs::write(&file, properties).unwrap();
    let program = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("java/ClientSmoke.java");
    Command::new("java")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .args(["-cp", java.classpath()])
        .arg(program)
        .arg(bootstrap.to_string())
        .arg(unique_topic("secure"))
        .arg(&file)
        .output()
        .expect("running java")
}

fn assert_smoke_ok(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("java client OK: 1000 records, committed 1000"),
        "ClientSmoke failed:\n{stdout}\n{stderr}"
    );
}

fn ssl_client(pki: &Pki) -> String {
    format!(
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n",
        pki.ca()
    )
}

fn sasl_ssl_client(pki: &Pki, user: &str, password: &str) -> String {
    sasl_ssl_client_with(pki, "PLAIN", user, password)
}

fn sasl_ssl_client_with(pki: &Pki, mechanism: &str, user: &str, password: &str) -> String {
    let module = if mechanism == "PLAIN" {
        "org.apache.kafka.common.security.plain.PlainLoginModule"
    } else {
        "org.apache.kafka.common.security.scram.ScramLoginModule"
    };
    format!(
        "security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\nsasl.mechanism={mechanism}\nsasl.jaas.config={module} required username=\"{user}\" password=\"{password}\";\n",
        pki.ca()
    )
}

#[test]
fn java_client_over_ssl_with_a_pem_truststore() {
    let Some(java) = java_client() else { return };
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    let broker = secured_broker(&pki, &["SSL"], &[]);
    assert_smoke_ok(&java_smoke(
        &java,
        &pki,
        broker.listener_addr("SSL"),
        &ssl_client(&pki),
    ));
}

#[test]
fn java_client_over_sasl_ssl_plain_and_a_wrong_password_is_refused() {
    let Some(java) = java_client() else { return };
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    let broker = secured_broker(&pki, &["SASL_SSL"], &[]);
    let addr = broker.listener_addr("SASL_SSL");
    assert_smoke_ok(&java_smoke(
        &java,
        &pki,
        addr,
        &sasl_ssl_client(&pki, "alice", "alice-secret"),
    ));
    let refused = java_smoke(&java, &pki, addr, &sasl_ssl_client(&pki, "alice", "wrong"));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a wrong password got through");
    assert!(
        stderr.contains("SaslAuthenticationException")
            && stderr.contains("Authentication failed: Invalid username or password"),
        "not Kafka's authentication error:\n{stderr}"
    );
    let metrics = weir_tests::http::get(broker.metrics_addr(), "/metrics").body;
    let count = |name: &str| {
        weir_tests::http::parse_prometheus(&metrics)
            .into_iter()
            .filter(|s| s.name == name && s.label("listener") == Some("SASL_SSL"))
            .map(|s| s.value)
            .sum::<f64>()
    };
    assert!(
        count("kafka_server_socket_server_metrics_failed_authentication_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        count("kafka_server_socket_server_metrics_successful_authentication_total") >= 1.0,
        "{metrics}"
    );
}

#[test]
fn mtls_required_refuses_a_client_without_a_certificate() {
    let Some(java) = java_client() else { return };
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    pki.issue("client", "alice", 2);
    let broker = secured_broker(
        &pki,
        &["SSL"],
        &[
            ("listener.name.ssl.ssl.client.auth", "required"),
            ("ssl.truststore.location", &pki.ca()),
        ],
    );
    let addr = broker.listener_addr("SSL");
    let refused = java_smoke(&java, &pki, addr, &ssl_client(&pki));
    assert!(
        !refused.status.success(),
        "a client without a certificate got through"
    );
    let with_certificate = format!(
        "{}ssl.keystore.type=PEM\nssl.keystore.location={}\n",
        ssl_client(&pki),
        pki.path("client.pem").display()
    );
    assert_smoke_ok(&java_smoke(&java, &pki, addr, &with_certificate));
}

fn kcat_available() -> bool {
    weir_tests::kcat::available()
}

fn kcat(addr: SocketAddr, security: &[String], args: &[&str], input: &str) -> Output {
    weir_tests::kcat::run(&addr.to_string(), security, args, input)
}

/// Produces `lines` to a new topic with kcat over `addr` with `security`, and reads them back.
fn kcat_round_trip(addr: SocketAddr, security: &[String], lines: &str) {
    let topic = unique_topic("kcat-secure");
    let produced = kcat(addr, security, &["-P", "-t", &topic], lines);
    assert!(
        produced.status.success(),
        "{addr}: kcat -P failed: {}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let count = lines.lines().count().to_string();
    let consumed = kcat(
        addr,
        security,
        &["-C", "-t", &topic, "-o", "beginning", "-e", "-c", &count],
        "",
    );
    assert_eq!(
        String::from_utf8_lossy(&consumed.stdout),
        lines,
        "{addr}: {}",
        String::from_utf8_lossy(&consumed.stderr)
    );
}

#[test]
fn kcat_over_ssl_and_sasl_ssl_plain() {
    if !kcat_available() {
        return;
    }
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    let broker = secured_broker(&pki, &["SSL", "SASL_SSL"], &[]);
    let ssl = vec![
        "security.protocol=ssl".to_string(),
        format!("ssl.ca.location={}", pki.ca()),
    ];
    let mut sasl = vec![
        "security.protocol=sasl_ssl".to_string(),
        format!("ssl.ca.location={}", pki.ca()),
        "sasl.mechanisms=PLAIN".to_string(),
        "sasl.username=bob".to_string(),
    ];
    for (name, security) in [
        ("SSL", ssl),
        ("SASL_SSL", {
            sasl.push("sasl.password=bob-secret".to_string());
            sasl
        }),
    ] {
        kcat_round_trip(broker.listener_addr(name), &security, "one\ntwo\nthree\n");
    }
}

/// The certificate the broker presents at `addr` to a client trusting `ca`.
fn served_certificate(addr: SocketAddr, ca: &Path) -> Vec<u8> {
    weir_tests::clients::served_certificate(
        addr,
        &std::fs::read_to_string(ca).unwrap(),
        "localhost",
    )
}

#[test]
fn a_rotated_certificate_reaches_new_connections_without_a_restart() {
    let pki = Pki::new();
    let first = pki.issue("server", "localhost", 1001);
    let broker = secured_broker(&pki, &["SSL"], &[]);
    let addr = broker.listener_addr("SSL");
    assert_eq!(served_certificate(addr, &pki.path("ca.pem")), first);
    let second = pki.issue("server", "localhost", 1002);
    assert_ne!(first, second);
    wait_for(
        Duration::from_secs(20),
        "a new connection to get the certificate with serial 1002",
        || served_certificate(addr, &pki.path("ca.pem")) == second,
    );
    assert!(broker.stderr_log().contains("reloaded the TLS key store"));
}

/// Connects to `addr`, sends `bytes`, and returns once the broker closed the connection.
fn send_and_expect_close(addr: SocketAddr, bytes: &[u8]) {
    use std::io::{Read, Write};
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    socket.write_all(bytes).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue, // a TLS alert, say
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the broker kept the connection open: {e}"),
        }
    }
}

#[test]
fn garbage_and_unauthenticated_requests_cost_one_connection() {
    let pki = Pki::new();
    let certificate = pki.issue("server", "localhost", 7);
    let broker = secured_broker(&pki, &["SSL", "SASL_PLAINTEXT"], &[]);
    // Not a ClientHello.
    send_and_expect_close(
        broker.listener_addr("SSL"),
        b"\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n",
    );
    // A Metadata v1 request before any SASL handshake.
    let mut metadata = Vec::new();
    let body: &[u8] = &[0, 3, 0, 1, 0, 0, 0, 7, 0, 1, b'x', 0xff, 0xff, 0xff, 0xff];
    metadata.extend_from_slice(&(body.len() as u32).to_be_bytes());
    metadata.extend_from_slice(body);
    send_and_expect_close(broker.listener_addr("SASL_PLAINTEXT"), &metadata);
    // The broker still serves both listeners.
    assert_eq!(
        served_certificate(broker.listener_addr("SSL"), &pki.path("ca.pem")),
        certificate
    );
    // The broker drops a failed handshake's socket before it logs why: the line can come a
    // moment after the client saw the close.
    for line in ["TLS handshake failed", "request before SASL authentication"] {
        weir_tests::wait_until(Duration::from_secs(10), line, || {
            broker.stderr_log().contains(line).then_some(())
        });
    }
}

#[test]
fn bad_listener_security_settings_fail_startup_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    let run = |sets: &[&str]| {
        let mut command = Command::new(weir_tests::broker::broker_bin());
        command
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--metrics-listen",
                "127.0.0.1:0",
                "--rpc-listen",
                "127.0.0.1:0",
            ]);
        for set in sets {
            command.arg("--set").arg(set);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success(), "{sets:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    for (sets, needle) in [
        (
            &["listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"][..],
            "ssl.keystore.location",
        ),
        (
            &["listeners=INTERNAL://127.0.0.1:0"],
            "listener.security.protocol.map",
        ),
        (
            &[
                "listeners=PLAINTEXT://127.0.0.1:0",
                "inter.broker.listener.name=SSL",
            ],
            "inter.broker.listener.name",
        ),
        (
            &[
                "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                "sasl.enabled.mechanisms=PLAIN",
            ],
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
        ),
        (
            &["listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"],
            "GSSAPI",
        ),
    ] {
        let stderr = run(sets);
        assert!(stderr.contains(needle), "{sets:?}: {stderr}");
    }
    // `--listen` is the shorthand for `listeners`, not an addition to it.
    let both = Command::new(weir_tests::broker::broker_bin())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--set", "listeners=SSL://127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("--listen"));
}

const CONFIGS: &str = "kafka.admin.ConfigCommand";

/// `kafka-configs --alter --add-config '<mechanism>=[iterations=8192,password=...]'` for
/// `user`, over the PLAINTEXT listener.
fn add_scram_user(
    tools: &KafkaTools,
    broker: &Broker,
    mechanism: &str,
    user: &str,
    password: &str,
) {
    let config = format!("{mechanism}=[iterations=8192,password={password}]");
    tools.run_ok(
        CONFIGS,
        &[
            "--bootstrap-server",
            &broker.bootstrap(),
            "--alter",
            "--add-config",
            &config,
            "--entity-type",
            "users",
            "--entity-name",
            user,
        ],
    );
}

#[test]
fn scram_users_made_with_kafka_configs_authenticate_the_java_client() {
    let (Some(tools), Some(java)) = (KafkaTools::find(), java_client()) else {
        return;
    };
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    let broker = secured_broker(&pki, &["SASL_SSL"], &[]);
    add_scram_user(&tools, &broker, "SCRAM-SHA-512", "carol", "carol-secret");
    add_scram_user(&tools, &broker, "SCRAM-SHA-256", "carol", "carol-secret");
    let addr = broker.listener_addr("SASL_SSL");
    assert_smoke_ok(&java_smoke(
        &java,
        &pki,
        addr,
        &sasl_ssl_client_with(&pki, "SCRAM-SHA-512", "carol", "carol-secret"),
    ));
    let refused = java_smoke(
        &java,
        &pki,
        addr,
        &sasl_ssl_client_with(&pki, "SCRAM-SHA-512", "carol", "not-carols"),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a wrong SCRAM password got through"
    );
    assert!(
        stderr.contains("SaslAuthenticationException")
            && stderr.contains("invalid credentials with SASL mechanism SCRAM-SHA-512"),
        "not Kafka's authentication error:\n{stderr}"
    );
    // Deleting the credential refuses the user from then on.
    tools.run_ok(
        CONFIGS,
        &[
            "--bootstrap-server",
            &broker.bootstrap(),
            "--alter",
            "--delete-config",
            "SCRAM-SHA-512",
            "--entity-type",
            "users",
            "--entity-name",
            "carol",
        ],
    );
    let deleted = java_smoke(
        &java,
        &pki,
        addr,
        &sasl_ssl_client_with(&pki, "SCRAM-SHA-512", "carol", "carol-secret"),
    );
    assert!(
        !deleted.status.success(),
        "a deleted SCRAM credential still works"
    );
}

#[test]
fn kcat_over_sasl_ssl_scram_sha_256() {
    if !kcat_available() {
        return;
    }
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    let broker = secured_broker(&pki, &["SASL_SSL"], &[]);
    add_scram_user(&tools, &broker, "SCRAM-SHA-256", "dave", "dave-secret");
    let security = |password: &str| {
        vec![
            "security.protocol=sasl_ssl".to_string(),
            format!("ssl.ca.location={}", pki.ca()),
            "sasl.mechanisms=SCRAM-SHA-256".to_string(),
            "sasl.username=dave".to_string(),
            format!("sasl.password={password}"),
        ]
    };
    let addr = broker.listener_addr("SASL_SSL");
    kcat_round_trip(addr, &security("dave-secret"), "a\nb\n");
    let refused = kcat(addr, &security("wrong"), &["-L"], "");
    assert!(
        !refused.status.success()
            || String::from_utf8_lossy(&refused.stderr).contains("Authentication failed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn a_cluster_with_tls_between_brokers_runs_transactions() {
    let Some(java) = java_client() else { return };
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    // Replication, transaction markers and verification all go to the peers' SSL listener,
    // which requires the brokers' own certificates.
    let cluster = Cluster::start_adjusted(3, 3, &[], |_, options| {
        let plaintext = options
            .kafka_port
            .expect("the cluster picks the Kafka ports");
        options
            .set(
                "listeners",
                format!(
                    "PLAINTEXT://127.0.0.1:{plaintext},SSL://127.0.0.1:{}",
                    free_port()
                ),
            )
            .set("inter.broker.listener.name", "SSL")
            .set("ssl.keystore.location", pki.server())
            .set("ssl.truststore.location", pki.ca())
            .set("listener.name.ssl.ssl.client.auth", "required")
    });
    let program = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("java/TxnSmoke.java");
    let output = Command::new("java")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .args(["-cp", java.classpath()])
        .arg(program)
        .arg(cluster.bootstrap())
        .arg(unique_topic("tls-txn"))
        .output()
        .expect("running java");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("java transactions OK"),
        "TxnSmoke failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// Authorization: ACLs managed with Kafka's kafka-acls, checked against real clients.

const ACLS: &str = "org.apache.kafka.tools.AclCommand";
const TOPICS: &str = "org.apache.kafka.tools.TopicCommand";
const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// A broker with an authorizer and a SASL_SSL listener. The PLAINTEXT (inter-broker) listener
/// authenticates nobody, so its `User:ANONYMOUS` is a super user, as Kafka requires of the
/// brokers' own principal; `alice` is one too, `bob` is not.
fn authorizing_broker(pki: &Pki, secured: &[&str], extra: &[(&str, &str)]) -> Broker {
    let mut settings = vec![
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("super.users", "User:ANONYMOUS;User:alice"),
    ];
    settings.extend_from_slice(extra);
    secured_broker(pki, secured, &settings)
}

/// `kafka-acls` with `args` against `bootstrap`, with the client settings in `properties`
/// (none for the PLAINTEXT listener); returns its output.
fn kafka_acls(
    tools: &KafkaTools,
    pki: &Pki,
    bootstrap: &str,
    properties: Option<&str>,
    args: &[&str],
) -> String {
    let mut all = vec!["--bootstrap-server", bootstrap];
    let file = pki.path(&format!("{}.properties", unique_topic("acls")));
    if let Some(properties) = properties {
        std::fs::write(&file, properties).unwrap();
        all.extend(["--command-config", file.to_str().unwrap()]);
    }
    all.extend_from_slice(args);
    tools.run_ok(ACLS, &all)
}

fn assert_refused_with(output: &Output, exception: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success() && (stderr.contains(exception) || stdout.contains(exception)),
        "expected a {exception}:\n{stdout}\n{stderr}"
    );
}

#[test]
fn kafka_acls_adds_lists_and_removes_acls_that_survive_a_restart() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    // Fixed ports: the restarted broker must bind the same ones.
    let listeners = format!(
        "PLAINTEXT://127.0.0.1:{},SASL_SSL://127.0.0.1:{}",
        free_port(),
        free_port()
    );
    let mut broker = authorizing_broker(&pki, &["SASL_SSL"], &[("listeners", &listeners)]);
    let alice = sasl_ssl_client(&pki, "alice", "alice-secret");
    let bob = sasl_ssl_client(&pki, "bob", "bob-secret");
    let sasl = |broker: &Broker| broker.listener_addr("SASL_SSL").to_string();
    let binding = [
        "--allow-principal",
        "User:bob",
        "--operation",
        "Read",
        "--operation",
        "Write",
        "--topic",
        "orders",
    ];
    let add: Vec<&str> = ["--add"].iter().copied().chain(binding).collect();
    kafka_acls(&tools, &pki, &sasl(&broker), Some(&alice), &add);
    let list = ["--list", "--topic", "orders"];
    let listed = kafka_acls(&tools, &pki, &sasl(&broker), Some(&alice), &list);
    assert!(
        listed.contains("principal=User:bob")
            && listed.contains("operation=READ")
            && listed.contains("operation=WRITE"),
        "{listed}"
    );
    // Bob is no super user: he may not manage ACLs.
    let file = pki.path("bob.properties");
    std::fs::write(&file, &bob).unwrap();
    let refused = tools.run(
        ACLS,
        &[
            "--bootstrap-server",
            &sasl(&broker),
            "--command-config",
            file.to_str().unwrap(),
            "--list",
        ],
    );
    assert!(
        refused.stderr.contains("ClusterAuthorizationException")
            || refused.stdout.contains("ClusterAuthorizationException"),
        "{}\n{}",
        refused.stdout,
        refused.stderr
    );

    broker.restart();
    let listed = kafka_acls(&tools, &pki, &sasl(&broker), Some(&alice), &list);
    assert!(
        listed.contains("principal=User:bob"),
        "after a restart: {listed}"
    );

    let remove: Vec<&str> = ["--remove", "--force"]
        .iter()
        .copied()
        .chain(binding)
        .collect();
    kafka_acls(&tools, &pki, &sasl(&broker), Some(&alice), &remove);
    let listed = kafka_acls(&tools, &pki, &sasl(&broker), Some(&alice), &list);
    assert!(!listed.contains("User:bob"), "after removing: {listed}");
}

#[test]
fn acls_show_on_every_broker_of_a_cluster() {
    use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
    use weir_tests::raw::RawClient;
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let pki = Pki::new();
    let cluster = Cluster::start(
        3,
        &[
            ("authorizer.class.name", STANDARD_AUTHORIZER),
            ("super.users", "User:ANONYMOUS"),
        ],
    );
    kafka_acls(
        &tools,
        &pki,
        &cluster.bootstrap(),
        None,
        &[
            "--add",
            "--deny-principal",
            "User:mallory",
            "--operation",
            "All",
            "--topic",
            "payments-",
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    for broker in &cluster.brokers {
        let addr: SocketAddr = broker.bootstrap().parse().unwrap();
        wait_for(Duration::from_secs(20), "the ACL on every broker", || {
            let mut client = RawClient::connect(addr);
            let request = DescribeAclsRequest::default()
                .with_resource_name_filter(None)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1);
            let version = client.version::<DescribeAclsRequest>(3);
            let response: DescribeAclsResponse = client.request(&request, version).unwrap();
            assert_eq!(response.error_code, 0, "{response:?}");
            response.resources.iter().any(|r| {
                r.resource_name.as_str() == "payments-"
                    && r.pattern_type == 4
                    && r.acls
                        .iter()
                        .any(|a| a.principal.as_str() == "User:mallory" && a.permission_type == 2)
            })
        });
    }
}

#[test]
fn a_scram_user_needs_acls_to_produce_consume_and_see_topics() {
    let (Some(tools), Some(java)) = (KafkaTools::find(), java_client()) else {
        return;
    };
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    let broker = authorizing_broker(&pki, &["SASL_SSL"], &[]);
    add_scram_user(&tools, &broker, "SCRAM-SHA-512", "erin", "erin-secret");
    let erin = sasl_ssl_client_with(&pki, "SCRAM-SHA-512", "erin", "erin-secret");
    let addr = broker.listener_addr("SASL_SSL");
    let plaintext = broker.bootstrap();
    // No ACLs: creating the topic is refused.
    assert_refused_with(
        &java_smoke(&java, &pki, addr, &erin),
        "TopicAuthorizationException",
    );
    let grant = |args: &[&str]| {
        let all: Vec<&str> = ["--add", "--allow-principal", "User:erin"]
            .iter()
            .copied()
            .chain(args.iter().copied())
            .collect();
        kafka_acls(&tools, &pki, &plaintext, None, &all);
    };
    // Topics only: producing works, joining the group is refused.
    grant(&["--operation", "All", "--topic", "*"]);
    assert_refused_with(
        &java_smoke(&java, &pki, addr, &erin),
        "GroupAuthorizationException",
    );
    grant(&["--operation", "Read", "--group", "*"]);
    assert_smoke_ok(&java_smoke(&java, &pki, addr, &erin));
    // A DENY for a prefix beats the ALLOW on every topic (ClientSmoke's topics start with
    // `secure-`).
    kafka_acls(
        &tools,
        &pki,
        &plaintext,
        None,
        &[
            "--add",
            "--deny-principal",
            "User:erin",
            "--operation",
            "Write",
            "--topic",
            "secure-",
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    assert_refused_with(
        &java_smoke(&java, &pki, addr, &erin),
        "TopicAuthorizationException",
    );
    // Metadata leaves out a topic erin may not describe.
    let hidden = unique_topic("hidden");
    let shown = unique_topic("shown");
    for topic in [&hidden, &shown] {
        tools.run_ok(
            TOPICS,
            &[
                "--bootstrap-server",
                &plaintext,
                "--create",
                "--topic",
                topic,
            ],
        );
    }
    kafka_acls(
        &tools,
        &pki,
        &plaintext,
        None,
        &[
            "--add",
            "--deny-principal",
            "User:erin",
            "--operation",
            "Describe",
            "--topic",
            &hidden,
        ],
    );
    let file = pki.path("erin.properties");
    std::fs::write(&file, &erin).unwrap();
    let listed = tools.run_ok(
        TOPICS,
        &[
            "--bootstrap-server",
            &addr.to_string(),
            "--command-config",
            file.to_str().unwrap(),
            "--list",
        ],
    );
    assert!(
        listed.contains(&shown) && !listed.contains(&hidden),
        "{listed}"
    );
    let everything = tools.run_ok(TOPICS, &["--bootstrap-server", &plaintext, "--list"]);
    assert!(everything.contains(&hidden), "{everything}");
}

/// Runs TxnSmoke against `addr` with the client settings `properties`.
fn txn_smoke(
    java: &KafkaTools,
    pki: &Pki,
    addr: SocketAddr,
    topic: &str,
    properties: &str,
) -> Output {
    let file = pki.path(&format!("{}.properties", unique_topic("txn")));
    std::fs::write(&file, properties).unwrap();
    let program = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("java/TxnSmoke.java");
    Command::new("java")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .args(["-cp", java.classpath()])
        .arg(program)
        .arg(addr.to_string())
        .arg(topic)
        .arg(&file)
        .output()
        .expect("running java")
}

#[test]
fn a_transactional_producer_needs_write_on_its_transactional_id() {
    let (Some(tools), Some(java)) = (KafkaTools::find(), java_client()) else {
        return;
    };
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    let broker = authorizing_broker(&pki, &["SASL_SSL"], &[]);
    let bob = sasl_ssl_client(&pki, "bob", "bob-secret");
    let addr = broker.listener_addr("SASL_SSL");
    let plaintext = broker.bootstrap();
    for args in [
        ["--operation", "All", "--topic", "*"],
        ["--operation", "Read", "--group", "*"],
    ] {
        let all: Vec<&str> = ["--add", "--allow-principal", "User:bob"]
            .iter()
            .copied()
            .chain(args)
            .collect();
        kafka_acls(&tools, &pki, &plaintext, None, &all);
    }
    let topic = unique_topic("txn-acl");
    assert_refused_with(
        &txn_smoke(&java, &pki, addr, &topic, &bob),
        "TransactionalIdAuthorizationException",
    );
    kafka_acls(
        &tools,
        &pki,
        &plaintext,
        None,
        &[
            "--add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "Write",
            "--operation",
            "Describe",
            "--transactional-id",
            "txn-acl-",
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    let topic = unique_topic("txn-acl");
    let output = txn_smoke(&java, &pki, addr, &topic, &bob);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("java transactions OK"),
        "TxnSmoke failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn mtls_principals_are_mapped_by_ssl_principal_mapping_rules() {
    let (Some(tools), Some(java)) = (KafkaTools::find(), java_client()) else {
        return;
    };
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    pki.issue("client", "Carol", 2);
    let broker = authorizing_broker(
        &pki,
        &["SSL"],
        &[
            ("listener.name.ssl.ssl.client.auth", "required"),
            ("ssl.truststore.location", &pki.ca()),
            (
                "ssl.principal.mapping.rules",
                "RULE:^CN=([^,]*)(,.*)?$/$1/L,DEFAULT",
            ),
        ],
    );
    let addr = broker.listener_addr("SSL");
    let carol = format!(
        "{}ssl.keystore.type=PEM\nssl.keystore.location={}\n",
        ssl_client(&pki),
        pki.path("client.pem").display()
    );
    assert_refused_with(
        &java_smoke(&java, &pki, addr, &carol),
        "TopicAuthorizationException",
    );
    // Only the mapped name gets in: an ACL for the DN itself would not match.
    for args in [
        ["--operation", "All", "--topic", "*"],
        ["--operation", "Read", "--group", "*"],
    ] {
        let all: Vec<&str> = ["--add", "--allow-principal", "User:carol"]
            .iter()
            .copied()
            .chain(args)
            .collect();
        kafka_acls(&tools, &pki, &broker.bootstrap(), None, &all);
    }
    assert_smoke_ok(&java_smoke(&java, &pki, addr, &carol));
}
