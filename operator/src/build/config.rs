//! The broker settings ConfigMap (`server.properties`, and the quorum's voters under
//! [`VOTERS_KEY`]) and the settings' hash.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::listeners::listener_properties;
use super::{owned_meta, BuildInput};
use crate::crd::ClusterSpec;
use crate::names::{CONFIG_FILE, VOTERS_KEY};

/// The `server.properties` text of `spec.config`, keys in order, then the listeners'
/// settings ([`listener_properties`]).
pub fn server_properties(spec: &ClusterSpec, internal_tls: bool) -> String {
    let mut text = String::from("# Managed by weir-operator from the Cluster's spec.config.\n");
    let listeners = listener_properties(spec, internal_tls);
    // A key both set (`super.users`, which the listener settings extend) is written once.
    let entries = spec
        .config
        .iter()
        .filter(|(k, _)| !listeners.iter().any(|(l, _)| l == *k))
        .chain(listeners.iter().map(|(k, v)| (k, v)));
    for (key, value) in entries {
        text.push_str(key);
        text.push('=');
        text.push_str(value);
        text.push('\n');
    }
    text
}

/// A stable hash of the settings (FNV-1a), put on the pod template so a change rolls pods.
pub fn config_hash(properties: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in properties.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Entries the properties format cannot carry (the schema checks the reserved keys).
pub fn validate_config(spec: &ClusterSpec) -> Result<(), String> {
    for (key, value) in &spec.config {
        let key_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !key_ok {
            return Err(format!(
                "config key `{key}` is not a setting name (letters, digits, '.', '_', '-')"
            ));
        }
        if value.contains(['\n', '\r']) || value.ends_with('\\') {
            return Err(format!(
                "config value of `{key}` must be one line not ending in a backslash"
            ));
        }
    }
    Ok(())
}

/// The voters as the brokers' `--voters` takes them: `ID@HOST:PORT,...` with each voter's pod
/// DNS name and internal port.
pub fn quorum_voters(input: &BuildInput<'_>) -> String {
    let port = input.cluster.spec.listeners.internal_port;
    input
        .voters
        .iter()
        .map(|id| {
            let host = input
                .addressing
                .pod_dns(&input.names, &input.names.pod(*id));
            format!("{id}@{host}:{port}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn config_map(input: &BuildInput<'_>) -> ConfigMap {
    ConfigMap {
        metadata: owned_meta(input, input.names.config_map()),
        data: Some(BTreeMap::from([
            (
                CONFIG_FILE.to_string(),
                server_properties(&input.cluster.spec, input.internal_tls),
            ),
            (VOTERS_KEY.to_string(), quorum_voters(input)),
        ])),
        ..ConfigMap::default()
    }
}
