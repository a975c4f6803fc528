//! DescribeCluster: the live brokers and the active controller, from the metadata image.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::DescribeClusterRequest;
use kafka_protocol::messages::DescribeClusterResponse;

use super::text;
use crate::broker::Broker;

/// Answers DescribeCluster.
pub fn handle(
    broker: &Broker,
    request: DescribeClusterRequest,
    listener: &str,
) -> DescribeClusterResponse {
    // endpoint_type 1 = brokers, 2 = controllers; every Weir broker serves both roles.
    let image = broker.replicas.image();
    let controller_id = broker
        .replicas
        .controller()
        .and_then(|c| c.leader())
        .map_or(-1, |(id, _)| id);
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(text(broker.cluster_id()))
        .with_controller_id(controller_id.into())
        .with_cluster_authorized_operations(i32::MIN)
        .with_brokers(
            image
                .brokers
                .values()
                .map(|b| {
                    let (host, port) = b.endpoint(listener);
                    DescribeClusterBroker::default()
                        .with_broker_id(b.id.into())
                        .with_host(text(host))
                        .with_port(i32::from(port))
                        .with_rack(b.rack.clone().map(text))
                        .with_is_fenced(b.fenced)
                })
                .collect(),
        )
}
