//! EndTxn: a transactional producer commits or aborts its transaction. Answered once the
//! coordinator's PrepareCommit/PrepareAbort is replicated; the markers follow in the
//! background. From v5 (transactions version 2) the end bumps the producer epoch and the
//! answer carries the producer id and epoch the client continues with.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use crate::broker::Broker;
use crate::transactions::ClientVersion;

/// Answers EndTxn.
pub async fn handle(broker: &Broker, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let client = if version >= 5 {
        ClientVersion::V2
    } else {
        ClientVersion::V1
    };
    let outcome = broker
        .transactions
        .end_txn(
            request.transactional_id.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
            client,
        )
        .await;
    let (code, (producer_id, producer_epoch)) = match outcome {
        Ok(continues_with) => (0, continues_with),
        Err(code) => (code, (-1, -1)),
    };
    let code = super::fenced_for(code, version, 2);
    broker.count_error("EndTxn", code);
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(producer_id.into())
        .with_producer_epoch(producer_epoch)
}
