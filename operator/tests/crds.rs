//! The committed CRDs under `crds/` are exactly what the Rust types generate: regenerate with
//! `cargo run -p weir-operator --bin crdgen` after changing a type.

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in weir_operator::crd::OUTPUT_DIRS {
        for (file, crd) in weir_operator::crd::definitions() {
            let generated = weir_operator::crd::to_yaml(&crd).unwrap();
            let committed = std::fs::read_to_string(root.join(dir).join(file))
                .unwrap_or_else(|e| panic!("{dir}/{file}: {e}; run crdgen"));
            assert!(
                committed == generated,
                "{dir}/{file} differs from the types: run `cargo run -p weir-operator --bin crdgen`"
            );
        }
    }
}

#[test]
fn schemas_carry_the_checks_the_api_server_enforces() {
    let cluster = weir_operator::crd::to_yaml(&weir_operator::crd::definitions()[0].1).unwrap();
    for needle in [
        "minimum: 1",
        "storageClassName cannot change",
        "self == oldSelf",
        "kafkaPort, internalPort and metricsPort must differ",
        "subresources:",
        "status: {}",
        "specReplicasPath: .spec.replicas",
        "client listener names must be unique",
        "client listener ports must be unique",
        "authentication type tls needs tls: true",
        "renewalDays must be less than validityDays",
    ] {
        assert!(cluster.contains(needle), "cluster CRD lacks {needle}");
    }
    let topic = weir_operator::crd::to_yaml(&weir_operator::crd::definitions()[1].1).unwrap();
    for needle in [
        "clusterRef cannot change",
        "topicName cannot change",
        "maximum: 32",
    ] {
        assert!(topic.contains(needle), "topic CRD lacks {needle}");
    }
    let user = weir_operator::crd::to_yaml(&weir_operator::crd::definitions()[2].1).unwrap();
    for needle in [
        "clusterRef cannot change",
        "- scram-sha-512",
        "- tls",
        "- TRANSACTIONAL_ID",
        "- PREFIXED",
        "- IDEMPOTENT_WRITE",
        "- DENY",
        "status: {}",
    ] {
        assert!(user.contains(needle), "user CRD lacks {needle}");
    }
}
