//! DescribeAcls (API 29): Weir has no authorizer yet, so, as a Kafka broker without
//! `authorizer.class.name`, it answers SECURITY_DISABLED with no ACLs. UIs and Terraform
//! providers read that as "ACLs are not in use" and carry on loading.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use super::text;
use crate::broker::Broker;

/// Answers DescribeAcls.
pub fn handle(broker: &Broker, _request: DescribeAclsRequest) -> DescribeAclsResponse {
    let error = ResponseError::SecurityDisabled;
    broker.count_error("DescribeAcls", error.code());
    DescribeAclsResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(text("no authorizer is configured on this broker")))
}
