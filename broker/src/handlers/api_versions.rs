//! ApiVersions: the APIs and version ranges in [`crate::protocol::versions::SUPPORTED`], and
//! (v3+) the cluster features Weir has, as a Kafka 4.x broker lists them for `kafka-features
//! describe` and clients.
//!
//! A feature is listed only if it is true of Weir ([`FEATURES`]); each is finalized at its
//! highest supported level, which cannot be changed ([`super::update_features`] refuses). The
//! finalized features epoch is, as in a KRaft broker, the offset of the metadata this broker
//! has applied.

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::ApiVersionsResponse;

use super::text;
use crate::broker::Broker;
use crate::protocol::versions::{SHARE_GROUP_APIS, SUPPORTED};

/// A cluster feature and the levels Weir implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// Kafka's name of the feature.
    pub name: &'static str,
    /// The lowest supported level (Kafka lists `transaction.version` from 0).
    pub min_level: i16,
    /// The highest supported level, and the finalized one.
    pub level: i16,
}

/// The features Weir claims, each at a level whose meaning in Kafka is true of Weir:
///
/// - `metadata.version` 27 is Kafka 4.1's (`4.1-IV1`): the request versions Weir answers
///   ([`SUPPORTED`]) are Kafka 4.1's (Produce 13 and Fetch 18 with topic ids, for instance),
///   so a tool or client comparing levels sees the Kafka release whose protocol Weir speaks.
///   Weir's metadata log is its own (openraft), so there is no older level to run at.
/// - `kraft.version` 1: the metadata quorum is dynamic in KIP-853's sense, a voter being its
///   node id plus its storage's directory id, voters added and removed at runtime (through
///   Weir's admin API; see [`crate::controller::membership`]).
///
/// - `transaction.version` 2 (supported 0–2, as Kafka 4.x lists it): KIP-890's transactions,
///   an epoch bump at every EndTxn v5, implicit partition adds from Produce v12 and
///   TxnOffsetCommit v5. Kafka's Java clients from 4.0 see it finalized and use it; clients
///   of version 1 (librdkafka, franz-go, older Java) keep working, the version being decided
///   per request ([`crate::transactions::TRANSACTION_VERSION`]).
///
/// - `group.version` 1 (supported 0–1): KIP-848 consumer groups, ConsumerGroupHeartbeat and
///   ConsumerGroupDescribe ([`crate::group::consumer`]). Kafka's Java clients from 4.0 use
///   `group.protocol=consumer` only against a cluster that finalizes it.
///
/// Not listed, because Weir does not have them: `eligible.leader.replicas.version`,
/// `share.version` (unless `group.share.enable=true`, see [`SHARE_VERSION`]),
/// `streams.version`. Kafka's clients read an absent feature as level 0.
pub const FEATURES: &[Feature] = &[
    Feature {
        name: "metadata.version",
        min_level: 27,
        level: 27,
    },
    Feature {
        name: "kraft.version",
        min_level: 1,
        level: 1,
    },
    Feature {
        name: "transaction.version",
        min_level: 0,
        level: crate::transactions::TRANSACTION_VERSION,
    },
    Feature {
        name: "group.version",
        min_level: 0,
        level: 1,
    },
];

/// `share.version` 1 (KIP-932 share groups), listed only with `group.share.enable=true`:
/// ShareGroupHeartbeat, ShareGroupDescribe, ShareFetch and ShareAcknowledge
/// ([`crate::share`]).
pub const SHARE_VERSION: Feature = Feature {
    name: "share.version",
    min_level: 0,
    level: 1,
};

/// The ApiVersions answer without features and without the share-group APIs ([`handle`]
/// adds both).
pub fn response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|&(api, min, max)| {
                    ApiVersion::default()
                        .with_api_key(api as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
        .with_finalized_features_epoch(-1)
}

/// Answers ApiVersions: [`response`] plus the features (encoded from v3 on).
pub fn handle(broker: &Broker) -> ApiVersionsResponse {
    let epoch = i64::try_from(broker.replicas.image().applied_index).unwrap_or(i64::MAX);
    let share = broker.config.share_groups_enabled();
    let features = || FEATURES.iter().chain(share.then_some(&SHARE_VERSION));
    let mut answer = response();
    if share {
        answer
            .api_keys
            .extend(SHARE_GROUP_APIS.iter().map(|&(api, min, max)| {
                ApiVersion::default()
                    .with_api_key(api as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            }));
    }
    answer
        .with_supported_features(
            features()
                .map(|f| {
                    SupportedFeatureKey::default()
                        .with_name(text(f.name))
                        .with_min_version(f.min_level)
                        .with_max_version(f.level)
                })
                .collect(),
        )
        .with_finalized_features_epoch(epoch)
        .with_finalized_features(
            features()
                .map(|f| {
                    FinalizedFeatureKey::default()
                        .with_name(text(f.name))
                        .with_min_version_level(f.level)
                        .with_max_version_level(f.level)
                })
                .collect(),
        )
}
