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
            ports: Some(
                [
                    port("kafka", l.kafka_port),
                    port("internal", l.internal_port),
                    port("metrics", l.metrics_port),
                ]
                .into_iter()
                .chain(l.clients.iter().map(|c| port(&c.name, c.port)))
                .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The client ports of ready brokers: what clients put in `bootstrap.servers`. The Kafka port,
/// or with named client listeners each of those (the Kafka port is then the brokers' own).
pub fn client_service(input: &BuildInput<'_>) -> Service {
    let l = &input.cluster.spec.listeners;
    let ports = if l.clients.is_empty() {
        vec![port("kafka", l.kafka_port)]
    } else {
        l.clients.iter().map(|c| port(&c.name, c.port)).collect()
    };
    Service {
        metadata: owned_meta(input, input.names.client_service()),
        spec: Some(ServiceSpec {
            selector: Some(input.names.selector()),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
