//! InitProducerId: a producer id for an idempotent producer (from the broker's block of
//! ids), or, with a `transactional.id`, the id and a new epoch from the transaction
//! coordinator (which fences the previous producer of that id and aborts its open
//! transaction).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::broker::Broker;

/// Answers InitProducerId.
pub async fn handle(
    broker: &Broker,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    if let Some(id) = &request.transactional_id {
        let expected = (*request.producer_id >= 0 && request.producer_epoch >= 0)
            .then_some((*request.producer_id, request.producer_epoch));
        return match broker
            .transactions
            .init_producer_id(id.as_str(), request.transaction_timeout_ms, expected)
            .await
        {
            Ok((producer_id, epoch)) => response
                .with_producer_id(producer_id.into())
                .with_producer_epoch(epoch),
            Err(code) => {
                let code = super::fenced_for(code, version, 4);
                broker.count_error("InitProducerId", code);
                response.with_error_code(code)
            }
        };
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
