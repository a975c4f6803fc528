//! DescribeCluster: this broker, which is also its own controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::DescribeClusterRequest;
use kafka_protocol::messages::DescribeClusterResponse;

use super::text;
use crate::broker::Broker;

/// Answers DescribeCluster.
pub fn handle(broker: &Broker, request: DescribeClusterRequest) -> DescribeClusterResponse {
    // endpoint_type 1 = brokers, 2 = controllers; a single node is both.
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(text(broker.cluster_id.clone()))
        .with_controller_id(broker.node_id().into())
        .with_cluster_authorized_operations(i32::MIN)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(broker.node_id().into())
            .with_host(text(broker.advertised.host.clone()))
            .with_port(broker.advertised.port as i32)
            .with_rack(broker.config.rack().map(text))])
}
