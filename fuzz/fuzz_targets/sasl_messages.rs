//! Any bytes a client can send during a SASL exchange (a PLAIN message, SCRAM client-first
//! and client-final messages, an OAUTHBEARER message and its token) and any JAAS config text
//! must be refused with an error or accepted, never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use weir_broker::config::BrokerConfig;
use weir_broker::security::scram::{ScramMechanism, ScramServer};
use weir_broker::security::{jaas, sasl};

/// An OAUTHBEARER validator over a one-key JWKS file written once per process.
fn oauth() -> &'static weir_broker::security::oauth::OAuthValidator {
    static VALIDATOR: OnceLock<weir_broker::security::oauth::OAuthValidator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("weir-fuzz-jwks-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#,
        )
        .expect("writing the fuzz JWKS");
        let settings = [(
            "sasl.oauthbearer.jwks.endpoint.url".to_string(),
            format!("file://{}", path.display()),
        )];
        let config = BrokerConfig::new(0, "fuzz".into(), &settings).expect("valid settings");
        weir_broker::security::oauth::OAuthValidator::new(&config, "SASL_SSL")
            .expect("a valid key set")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = jaas::parse(&String::from_utf8_lossy(data));
    let _ = oauth().authenticate(data);
    // The input as the token of a well-formed message, so the JWT decoding is reached.
    let mut message = b"n,,\x01auth=Bearer ".to_vec();
    message.extend_from_slice(data);
    message.extend_from_slice(b"\x01\x01");
    let _ = oauth().authenticate(&message);
    let settings = [
        ("sasl.enabled.mechanisms".to_string(), "PLAIN".to_string()),
        (
            "listener.name.sasl_ssl.plain.sasl.jaas.config".to_string(),
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_a="b";"#
                .to_string(),
        ),
    ];
    let config = BrokerConfig::new(0, "fuzz".into(), &settings).expect("valid settings");
    let plain = sasl::SaslConfig::new(&config, "SASL_SSL").expect("valid PLAIN settings");
    let _ = sasl::authenticate_plain(&plain, data);
    // The input split in two: client-first, then client-final.
    let cut = data.iter().position(|&b| b == 0xff).unwrap_or(data.len());
    let (first, last) = (&data[..cut], data.get(cut + 1..).unwrap_or_default());
    for mechanism in ScramMechanism::ALL {
        let credential = mechanism.credential(b"salt", &[7; 32], 4096);
        let mut server = ScramServer::Start(mechanism);
        if server
            .step(first, || "nonce".to_string(), |_| Some(credential.clone()))
            .is_ok()
        {
            let _ = server.step(last, || "nonce".to_string(), |_| Some(credential.clone()));
        }
    }
});
