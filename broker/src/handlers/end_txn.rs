//! EndTxn: a transactional producer commits or aborts its transaction. Answered once the
//! coordinator's PrepareCommit/PrepareAbort is replicated; the markers follow in the
//! background.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use crate::broker::Broker;

/// Answers EndTxn.
pub async fn handle(broker: &Broker, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let code = broker
        .transactions
        .end_txn(
            request.transactional_id.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
        )
        .await;
    let code = super::fenced_for(code, version, 2);
    broker.count_error("EndTxn", code);
    EndTxnResponse::default().with_error_code(code)
}
