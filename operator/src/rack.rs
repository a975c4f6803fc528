//! `weir-operator rack`: the brokers' init container. Reads the node's value of the rack label
//! and writes `broker.rack=<value>` for the broker's `--config` (the downward API exposes pod
//! fields, not node labels).

use std::path::Path;

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};

/// The properties line for `value` (an empty file when the node lacks the label: the broker
/// then has no rack, and placement treats it as a rack of its own).
pub fn rack_properties(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => format!("broker.rack={v}\n"),
        _ => String::new(),
    }
}

/// Reads `node`'s `label` and writes the file.
pub async fn write_rack_file(node: &str, label: &str, out: &Path) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let nodes: Api<Node> = Api::all(client);
    let node = nodes.get(node).await?;
    let value = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(label))
        .cloned();
    if value.is_none() {
        tracing::warn!(label, "the node has no such label: the broker gets no rack");
    }
    std::fs::write(out, rack_properties(value.as_deref()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_or_empty_label_means_no_rack() {
        assert_eq!(super::rack_properties(Some("eu-1a")), "broker.rack=eu-1a\n");
        assert_eq!(super::rack_properties(Some("")), "");
        assert_eq!(super::rack_properties(None), "");
    }
}
