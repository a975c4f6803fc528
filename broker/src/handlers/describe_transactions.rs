//! DescribeTransactions (`kafka-transactions describe`): the state of transactional ids this
//! broker coordinates.

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, TopicName,
};

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use kafka_protocol::error::ResponseError;

/// Answers DescribeTransactions.
pub async fn handle(
    broker: &Broker,
    request: DescribeTransactionsRequest,
    authz: &Authz<'_>,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let state = TransactionState::default().with_transactional_id(id.clone());
        // DESCRIBE on the transactional id, as Kafka.
        if !authz.transactional_id(AclOperation::Describe, &id) {
            let code = ResponseError::TransactionalIdAuthorizationFailed.code();
            broker.count_error("DescribeTransactions", code);
            states.push(state.with_error_code(code));
            continue;
        }
        let state = match broker.transactions.describe(id.as_str()).await {
            Ok(m) => {
                let mut topics: Vec<TopicData> = Vec::new();
                for (topic, partition) in &m.partitions {
                    match topics.last_mut() {
                        Some(t) if t.topic.as_str() == topic => t.partitions.push(*partition),
                        _ => topics.push(
                            TopicData::default()
                                .with_topic(TopicName(text(topic.clone())))
                                .with_partitions(vec![*partition]),
                        ),
                    }
                }
                state
                    .with_transaction_state(text(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(m.start_ms)
                    .with_producer_id(m.producer_id.into())
                    .with_producer_epoch(m.producer_epoch)
                    .with_topics(topics)
            }
            Err(code) => {
                broker.count_error("DescribeTransactions", code);
                state
                    .with_error_code(code)
                    .with_transaction_state(text(""))
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1)
            }
        };
        states.push(state);
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
