//! AddOffsetsToTxn: a transactional producer about to send consumer offsets
//! (`sendOffsetsToTransaction`) adds the group's `__consumer_offsets` partition to its
//! transaction, so the group's offsets commit or abort with it.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::transactions::ClientVersion;

/// Answers AddOffsetsToTxn.
pub async fn handle(
    broker: &Broker,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let partition = (
        OFFSETS_TOPIC.to_string(),
        broker.groups.partition_for(&request.group_id),
    );
    let code = broker
        .transactions
        .add_partitions(
            request.transactional_id.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            &[partition],
            ClientVersion::V1,
        )
        .await;
    let code = super::fenced_for(code, version, 2);
    broker.count_error("AddOffsetsToTxn", code);
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
