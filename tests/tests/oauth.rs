//! SASL/OAUTHBEARER: tokens signed at test time (an ES256 key made with rcgen, its public half
//! in a JWKS file the broker reads). The Java client reads its token from a file
//! (`sasl.oauthbearer.token.endpoint.url=file:...`) and runs ClientSmoke; the SASL exchange
//! itself, over the wire, shows expired, wrongly signed, wrong-audience, unknown-key and
//! unsigned tokens refused with their reason, and a new key in the JWKS file taken without a
//! restart; the same set served by an HTTPS endpoint, fetched again early when a token names a
//! new key. (librdkafka as built here has no OAUTHBEARER: it needs OpenSSL.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kafka_protocol::messages::{MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rcgen::KeyPair;
use weir_tests::http::{get, parse_prometheus};
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::raw::RawClient;
use weir_tests::{unique_topic, Broker, BrokerOptions};

const AUDIENCE: &str = "weir-test";
const ISSUER: &str = "https://issuer.weir.test";

/// A signing key and its JWKS entry.
struct Issuer {
    key: KeyPair,
    kid: String,
}

impl Issuer {
    fn new(kid: &str) -> Issuer {
        Issuer {
            key: KeyPair::generate().expect("an ES256 key"),
            kid: kid.to_string(),
        }
    }

    /// The public key as a JWK (P-256: the raw key is 0x04 || x || y).
    fn jwk(&self) -> serde_json::Value {
        let raw = self.key.public_key_raw();
        assert_eq!(raw.len(), 65, "an uncompressed P-256 point");
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&raw[33..]),
        })
    }

    /// A token for `subject`, expiring `ttl_s` seconds from now (negative: already expired),
    /// for `audience`.
    fn token(&self, subject: &str, ttl_s: i64, audience: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = serde_json::json!({
            "sub": subject, "iss": ISSUER, "aud": audience,
            "iat": now, "exp": now + ttl_s, "scope": "kafka",
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let key = EncodingKey::from_ec_pem(self.key.serialize_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

fn write_jwks(path: &Path, issuers: &[&Issuer]) {
    let set = serde_json::json!({ "keys": issuers.iter().map(|i| i.jwk()).collect::<Vec<_>>() });
    // Written beside and renamed over, as a mounted Secret is updated.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, set.to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A broker with a PLAINTEXT (inter-broker) listener and a SASL_PLAINTEXT one enabling
/// OAUTHBEARER, validating against `jwks`.
fn oauth_broker(jwks: &Path) -> Broker {
    Broker::start(oauth_options(jwks))
}

fn oauth_options(jwks: &Path) -> BrokerOptions {
    BrokerOptions::default()
        .set(
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        )
        .set("inter.broker.listener.name", "PLAINTEXT")
        .set("sasl.enabled.mechanisms", "OAUTHBEARER")
        .set(
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
        )
        .set(
            "sasl.oauthbearer.jwks.endpoint.url",
            format!("file://{}", jwks.display()),
        )
        .set("sasl.oauthbearer.expected.audience", AUDIENCE)
        .set("sasl.oauthbearer.expected.issuer", ISSUER)
}

/// One SASL exchange on a new connection to the SASL listener (see [`exchange`]), then a
/// Metadata request, which only an authenticated connection is answered.
fn authenticate(broker: &Broker, token: &str) -> Result<(), String> {
    let mut raw = RawClient::connect(broker.listener_addr("SASL_PLAINTEXT"));
    exchange(&mut raw, token)?;
    metadata(&mut raw).expect("Metadata once authenticated");
    Ok(())
}

fn metadata(raw: &mut RawClient) -> std::io::Result<()> {
    let metadata = raw.request(&MetadataRequest::default().with_topics(None), 12)?;
    assert_eq!(metadata.brokers.len(), 1);
    Ok(())
}

/// SaslHandshake v1 for OAUTHBEARER, then SaslAuthenticate v2 with `token`: the session
/// lifetime the broker gave, or its error message.
fn exchange(raw: &mut RawClient, token: &str) -> Result<i64, String> {
    let handshake = raw
        .request(
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str("OAUTHBEARER")),
            1,
        )
        .expect("SaslHandshake");
    assert_eq!(handshake.error_code, 0, "{:?}", handshake.mechanisms);
    let message = format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}");
    let answer = raw
        .request(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message)),
            2,
        )
        .expect("SaslAuthenticate");
    if answer.error_code != 0 {
        assert_eq!(answer.error_code, 58, "SASL_AUTHENTICATION_FAILED");
        return Err(answer
            .error_message
            .map(|m| m.to_string())
            .unwrap_or_default());
    }
    Ok(answer.session_lifetime_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_tokens_authenticate_and_bad_ones_are_refused_and_keys_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let issuer = Issuer::new("k1");
    write_jwks(&jwks, &[&issuer]);
    let broker = oauth_broker(&jwks);

    authenticate(&broker, &issuer.token("alice", 600, AUDIENCE)).expect("a valid token");
    let refused = |token: &str, what: &str, because: &str| {
        let error = authenticate(&broker, token).expect_err(what);
        assert!(
            error.contains("invalid_token") && error.contains(because),
            "{what}: {error}"
        );
    };
    refused(
        &issuer.token("alice", -300, AUDIENCE),
        "an expired token",
        "ExpiredSignature",
    );
    refused(
        &issuer.token("alice", 600, "someone-else"),
        "a token for another audience",
        "InvalidAudience",
    );
    let stranger = Issuer::new("k1");
    refused(
        &stranger.token("mallory", 600, AUDIENCE),
        "a token signed by a key not in the set",
        "InvalidSignature",
    );
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(r#"{"sub":"mallory","exp":4102444800,"aud":"weir-test"}"#)
    );
    refused(&unsigned, "an unsigned token", "");
    let unknown_key = Issuer::new("k9");
    refused(
        &unknown_key.token("mallory", 600, AUDIENCE),
        "a token of a key id not in the set",
        "k9",
    );
    assert!(
        broker.stderr_log().contains("invalid_token"),
        "the refusals are logged with their reason"
    );

    // The issuer rotates its key: the file changes and the broker takes the new key at once.
    let rotated = Issuer::new("k2");
    write_jwks(&jwks, &[&issuer, &rotated]);
    authenticate(&broker, &rotated.token("bob", 600, AUDIENCE)).expect("a token of the new key");
}

/// KIP-368: with `connections.max.reauth.ms` a session is given a lifetime (shorter if the
/// token expires first), the client re-authenticates on the same connection (as the same
/// principal only), and a connection that does not is closed once its session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_unless_the_client_re_authenticates_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let issuer = Issuer::new("k1");
    write_jwks(&jwks, &[&issuer]);
    let broker = Broker::start(oauth_options(&jwks).set("connections.max.reauth.ms", 3000));
    let addr = broker.listener_addr("SASL_PLAINTEXT");

    let mut raw = RawClient::connect(addr);
    let lifetime = exchange(&mut raw, &issuer.token("alice", 600, AUDIENCE)).unwrap();
    assert!(
        (1..=3000).contains(&lifetime),
        "session lifetime {lifetime} ms"
    );
    metadata(&mut raw).unwrap();
    // Again on the same connection, as alice: a new session.
    let lifetime = exchange(&mut raw, &issuer.token("alice", 600, AUDIENCE)).unwrap();
    assert!(
        (1..=3000).contains(&lifetime),
        "session lifetime {lifetime} ms"
    );
    metadata(&mut raw).unwrap();
    // A token that expires in 1 s bounds the session by it (`exp` has whole seconds).
    let mut short = RawClient::connect(addr);
    let lifetime = exchange(&mut short, &issuer.token("alice", 1, AUDIENCE)).unwrap();
    assert!(
        lifetime <= 1000,
        "session lifetime {lifetime} ms past the token's expiry"
    );
    // Re-authenticating as someone else is refused and ends the connection.
    let error = exchange(&mut raw, &issuer.token("bob", 600, AUDIENCE)).unwrap_err();
    assert!(error.contains("Cannot change principals"), "{error}");
    assert!(metadata(&mut raw).is_err(), "the connection is closed");

    // A connection that never re-authenticates is served until its session ends, then closed.
    let mut idle = RawClient::connect(addr);
    exchange(&mut idle, &issuer.token("carol", 600, AUDIENCE)).unwrap();
    metadata(&mut idle).unwrap();
    weir_tests::wait_until(
        Duration::from_secs(20),
        "the connection closed after its session",
        || metadata(&mut idle).is_err().then_some(()),
    );
    assert!(broker.stderr_log().contains("SASL session expired"));
}

#[test]
fn the_java_client_reads_its_token_from_a_file_and_authenticates() {
    // The tools' classpath: the client's OAuth login needs jackson and jose4j beside it.
    let Some(java) = KafkaTools::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let issuer = Issuer::new("k1");
    write_jwks(&jwks, &[&issuer]);
    // Sessions of 1 s: the client re-authenticates (reading its token file again) during the
    // run.
    let broker = Broker::start(oauth_options(&jwks).set("connections.max.reauth.ms", 1000));
    let token = dir.path().join("token.jwt");
    std::fs::write(&token, issuer.token("carol", 600, AUDIENCE)).unwrap();
    let properties = dir.path().join("client.properties");
    std::fs::write(
        &properties,
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\n\
             sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n\
             sasl.oauthbearer.token.endpoint.url=file://{}\n\
             sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;\n",
            token.display()
        ),
    )
    .unwrap();
    let program = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("java/ClientSmoke.java");
    let output = Command::new("java")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg(format!(
            "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=file://{}",
            token.display()
        ))
        .args(["-cp", java.classpath()])
        .arg(program)
        .arg(broker.listener_addr("SASL_PLAINTEXT").to_string())
        .arg(unique_topic("oauth-java"))
        .arg(&properties)
        .output()
        .expect("running java");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("java client OK: 1000 records, committed 1000"),
        "ClientSmoke over OAUTHBEARER failed:\n{stdout}\n{stderr}"
    );
    let body = get(broker.metrics_addr(), "/metrics").body;
    let reauthentications: f64 = parse_prometheus(&body)
        .iter()
        .filter(|s| {
            s.name == "kafka_server_socket_server_metrics_successful_reauthentication_total"
        })
        .map(|s| s.value)
        .sum();
    assert!(
        reauthentications > 0.0,
        "the Java client never re-authenticated"
    );
}

#[test]
fn oauthbearer_without_the_issuers_keys_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(weir_tests::broker::broker_bin())
        .args(["--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--set",
            "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0;inter.broker.listener.name=PLAINTEXT;sasl.enabled.mechanisms=OAUTHBEARER",
        ])
        .output()
        .expect("running weir-broker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Without a key set it would have to take any token: it names what is missing instead.
    assert!(!output.status.success(), "started anyway:\n{stderr}");
    assert!(
        stderr.contains("sasl.oauthbearer.jwks.endpoint.url"),
        "{stderr}"
    );
}

/// An issuer's HTTPS endpoint serving its key set (what `jwks_uri` points at): a TLS server
/// with the test CA's certificate for `localhost`, answering every request with the set of
/// the moment and counting requests.
struct JwksEndpoint {
    port: u16,
    body: std::sync::Arc<std::sync::Mutex<String>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksEndpoint {
    async fn start(pki: &weir_tests::tls::Pki, issuers: &[&Issuer]) -> JwksEndpoint {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let pem = std::fs::read(pki.server()).unwrap();
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(&pem).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let endpoint = JwksEndpoint {
            port,
            body: Default::default(),
            requests: Default::default(),
        };
        endpoint.serve(issuers);
        let (body, requests) = (endpoint.body.clone(), endpoint.requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, body, requests) = (acceptor.clone(), body.clone(), requests.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    let body = body.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        endpoint
    }

    /// Serves the keys of `issuers` from now on.
    fn serve(&self, issuers: &[&Issuer]) {
        let set =
            serde_json::json!({ "keys": issuers.iter().map(|i| i.jwk()).collect::<Vec<_>>() });
        *self.body.lock().unwrap() = set.to_string();
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `sasl.oauthbearer.jwks.endpoint.url=https://...`: the broker fetches the issuer's key set
/// from its endpoint (trusting the test CA through `SSL_CERT_FILE`, as it would a platform's
/// roots), accepts tokens of its keys, refuses others; when the issuer rotates to a new key, a
/// token of that key makes the broker fetch again early (refused until then, accepted after),
/// without waiting for the hour-long refresh, and a flood of unknown keys does not become a
/// flood of fetches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_fetched_from_the_issuers_https_endpoint_and_refetched_on_rotation() {
    let pki = weir_tests::tls::Pki::new();
    pki.issue("server", "localhost", 1);
    let issuer = Issuer::new("k1");
    let endpoint = JwksEndpoint::start(&pki, &[&issuer]).await;
    let mut options = oauth_options(Path::new("unused"));
    options
        .sets
        .retain(|(key, _)| key != "sasl.oauthbearer.jwks.endpoint.url");
    let mut options = options
        .set(
            "sasl.oauthbearer.jwks.endpoint.url",
            format!("https://localhost:{}/oauth2/jwks", endpoint.port),
        )
        .set("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", 1000);
    options.env.push(("SSL_CERT_FILE".into(), pki.ca()));
    let broker = tokio::task::spawn_blocking(move || Broker::start(options))
        .await
        .unwrap();

    let token = issuer.token("alice", 600, AUDIENCE);
    weir_tests::wait_until(
        Duration::from_secs(20),
        "a token of the endpoint's key accepted",
        || authenticate(&broker, &token).ok(),
    );
    let fetched = endpoint.requests();
    assert!(fetched >= 1, "the key set was fetched");
    let stranger = Issuer::new("k1");
    let error = authenticate(&broker, &stranger.token("mallory", 600, AUDIENCE))
        .expect_err("a token of a key the endpoint does not serve");
    assert!(error.contains("InvalidSignature"), "{error}");

    // Rotation: the issuer serves a new key and signs with it.
    let rotated = Issuer::new("k2");
    endpoint.serve(&[&issuer, &rotated]);
    let token = rotated.token("bob", 600, AUDIENCE);
    let first = authenticate(&broker, &token).expect_err("not fetched yet");
    assert!(first.contains("k2"), "{first}");
    weir_tests::wait_until(
        Duration::from_secs(20),
        "a token of the rotated key accepted",
        || authenticate(&broker, &token).ok(),
    );

    // Unknown keys ask for early fetches, at most one per retry.backoff.max.ms (1 s here).
    let before = endpoint.requests();
    let started = std::time::Instant::now();
    let unknown = Issuer::new("k9").token("mallory", 600, AUDIENCE);
    for _ in 0..50 {
        assert!(authenticate(&broker, &unknown).is_err());
    }
    let fetches = endpoint.requests() - before;
    let bound = started.elapsed().as_secs() as usize + 2;
    assert!(
        fetches <= bound,
        "{fetches} fetches for 50 unknown-key tokens in {:?}",
        started.elapsed()
    );
}
