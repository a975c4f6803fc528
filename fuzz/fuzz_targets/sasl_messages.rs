//! Any bytes a client can send during a SASL exchange (a PLAIN message, SCRAM client-first
//! and client-final messages) and any JAAS config text must be refused with an error or
//! accepted, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_broker::config::BrokerConfig;
use weir_broker::security::scram::{ScramMechanism, ScramServer};
use weir_broker::security::{jaas, sasl};

fuzz_target!(|data: &[u8]| {
    let _ = jaas::parse(&String::from_utf8_lossy(data));
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
