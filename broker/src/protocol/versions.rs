//! What Weir implements, per API, as advertised by ApiVersions.
//!
//! The lower bounds are Apache Kafka 4.x's (clients from Kafka 2.1 on); the upper bounds are
//! the newest versions the `kafka-protocol` crate encodes, each checked against the handler:
//! a version is listed only if its fields are honoured (topic ids from Fetch v13 and Produce
//! v13, for instance).

use kafka_protocol::messages::ApiKey;

/// `(api, min, max)` for every API Weir answers.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 2, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    // v5 (transactions version 2): the group coordinator adds the group's partition to the
    // transaction itself (no AddOffsetsToTxn).
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::CreateAcls, 2, 3),
    (ApiKey::DeleteAcls, 2, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // v0: the mechanism's tokens follow as bare frames (before KIP-152); v1: in
    // SaslAuthenticate requests.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::UpdateFeatures, 0, 2),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    // KIP-848 consumer groups (`group.protocol=consumer`); v1 has client-generated member ids
    // and regex subscriptions. With `group.version` 1 in ApiVersions' features.
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// KIP-932 share groups: answered, and advertised in ApiVersions (with `share.version` 1)
/// only when `group.share.enable=true` (Kafka 4.0's switch); without it they answer
/// UNSUPPORTED_VERSION. InitializeShareGroupState, ReadShareGroupState,
/// WriteShareGroupState, DeleteShareGroupState and ReadShareGroupStateSummary are the share
/// coordinator's broker-to-broker APIs (`__share_group_state`); Describe/Alter/
/// DeleteShareGroupOffsets the admin's. Kafka 4.3's versions: ShareFetch/ShareAcknowledge v2
/// (acquire mode, KIP-1206; renew acknowledgements, KIP-1222), DescribeShareGroupOffsets v1
/// and ReadShareGroupStateSummary v1 (lag and the delivery-complete count it is made of,
/// KIP-1226).
pub const SHARE_GROUP_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 2),
    (ApiKey::ShareAcknowledge, 1, 2),
    (ApiKey::ReadShareGroupState, 0, 0),
    (ApiKey::WriteShareGroupState, 0, 0),
    (ApiKey::InitializeShareGroupState, 0, 0),
    (ApiKey::DeleteShareGroupState, 0, 0),
    (ApiKey::ReadShareGroupStateSummary, 0, 1),
    (ApiKey::DescribeShareGroupOffsets, 0, 1),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
];

/// The supported version range of `api`, if Weir implements it.
pub fn supported(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .chain(SHARE_GROUP_APIS)
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| (min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_is_within_what_the_codec_handles() {
        for &(api, min, max) in SUPPORTED.iter().chain(SHARE_GROUP_APIS) {
            let codec = api.valid_versions();
            assert!(min <= max, "{api:?}");
            assert!(
                codec.min <= min && max <= codec.max,
                "{api:?} {min}-{max} vs {codec:?}"
            );
        }
    }
}
