//! InitProducerId for idempotent producers. Transactions are not supported yet, so a request
//! with a transactional id is refused rather than half-served.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::broker::Broker;

/// Answers InitProducerId.
pub async fn handle(broker: &Broker, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        tracing::warn!("InitProducerId with a transactional id: transactions are not supported");
        broker.count_error(
            "InitProducerId",
            ResponseError::TransactionalIdAuthorizationFailed.code(),
        );
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // KIP-360: a producer that already has an id asks for a bumped epoch after a fatal error;
    // the log then accepts sequence 0 at the new epoch.
    if *request.producer_id >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1
    {
        return response
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    let Some(controller) = broker.replicas.controller() else {
        return response.with_error_code(ResponseError::CoordinatorNotAvailable.code());
    };
    match broker.producer_ids.next_id(controller).await {
        Ok(id) => response.with_producer_id(id.into()).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id");
            broker.count_error(
                "InitProducerId",
                ResponseError::CoordinatorNotAvailable.code(),
            );
            response.with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}
