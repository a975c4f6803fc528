//! ListTransactions (`kafka-transactions list`): the transactional ids this broker
//! coordinates, filtered by state and producer id (v0+) and by how long they have run (v1+).

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse};

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::transactions::TxnState;

/// Answers ListTransactions.
pub async fn handle(
    broker: &Broker,
    request: ListTransactionsRequest,
    authz: &Authz<'_>,
) -> ListTransactionsResponse {
    let known = |name: &str| {
        (0..8)
            .filter_map(TxnState::from_id)
            .any(|s| s.name() == name)
    };
    let unknown_filters: Vec<_> = request
        .state_filters
        .iter()
        .filter(|f| !known(f.as_str()))
        .cloned()
        .collect();
    let now = broker.transactions.now_ms();
    let states = broker
        .transactions
        .list()
        .await
        .into_iter()
        .filter(|l| {
            request.state_filters.is_empty()
                || request
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == l.metadata.state.name())
        })
        .filter(|l| {
            request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .iter()
                    .any(|p| p.0 == l.metadata.producer_id)
        })
        .filter(|l| {
            // v1: only transactions open longer than this (-1: all).
            request.duration_filter < 0
                || (l.metadata.state == TxnState::Ongoing
                    && now - l.metadata.start_ms >= request.duration_filter)
        })
        // Only those the principal may DESCRIBE, as Kafka.
        .filter(|l| authz.transactional_id(AclOperation::Describe, &l.transactional_id))
        .map(|l| {
            TransactionState::default()
                .with_transactional_id(text(l.transactional_id).into())
                .with_producer_id(l.metadata.producer_id.into())
                .with_transaction_state(text(l.metadata.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown_filters)
        .with_transaction_states(states)
}
