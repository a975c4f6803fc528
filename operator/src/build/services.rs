//! The headless Service (a stable DNS name per broker pod) and the client Service (one
//! bootstrap address for Kafka clients).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{owned_meta, BuildInput};

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port: number,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// Every broker port, with DNS records published before pods are ready: brokers must find
/// each other to form the quorum, which is what makes them ready.
pub fn headless_service(input: &BuildInput<'_>) -> Service {
    let l = &input.cluster.spec.listeners;
    Service {
        metadata: owned_meta(input, input.names.headless_service()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(input.names.selector()),
            ports: Some(vec![
                port("kafka", l.kafka_port),
                port("internal", l.internal_port),
                port("metrics", l.metrics_port),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Kafka port of ready brokers: what clients put in `bootstrap.servers`.
pub fn client_service(input: &BuildInput<'_>) -> Service {
    Service {
        metadata: owned_meta(input, input.names.client_service()),
        spec: Some(ServiceSpec {
            selector: Some(input.names.selector()),
            ports: Some(vec![port("kafka", input.cluster.spec.listeners.kafka_port)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
