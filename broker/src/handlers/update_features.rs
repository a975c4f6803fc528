//! UpdateFeatures (API 57): Weir's features ([`super::api_versions::FEATURES`]) are each
//! finalized at one level, so no update changes anything. Asking for the level a feature already has (or
//! level 0 of a feature Weir does not list, which is where it is) succeeds as a no-op; any
//! other level is refused with INVALID_UPDATE_VERSION and a message saying which level Weir
//! has, so `kafka-features upgrade/downgrade/disable` tell the operator why.
//!
//! As in Kafka, v0–v1 answer per feature and v2 only at the top level (the first refusal).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};

use super::api_versions::FEATURES;
use super::text;
use crate::broker::Broker;

/// Why `level` of `feature` cannot be set, if it cannot.
fn refusal(feature: &str, level: i16) -> Option<String> {
    match FEATURES.iter().find(|f| f.name == feature) {
        Some(f) if f.level == level => None,
        Some(f) if f.min_level == f.level => Some(format!(
            "Weir implements {feature} at level {} only; it cannot be set to {level}",
            f.level
        )),
        Some(f) => Some(format!(
            "Weir runs {feature} finalized at level {} (clients may use {} to {}); it cannot be set to {level}",
            f.level, f.min_level, f.level
        )),
        None if level <= 0 => None,
        None => Some(format!(
            "Weir does not implement {feature}: it stays at level 0, not {level}"
        )),
    }
}

/// Answers UpdateFeatures.
pub fn handle(
    broker: &Broker,
    request: UpdateFeaturesRequest,
    version: i16,
) -> UpdateFeaturesResponse {
    let error = ResponseError::InvalidUpdateVersion;
    let outcomes: Vec<(String, Option<String>)> = request
        .feature_updates
        .iter()
        .map(|u| {
            let name = u.feature.to_string();
            let refused = refusal(&name, u.max_version_level);
            (name, refused)
        })
        .collect();
    for _ in outcomes.iter().filter(|(_, refused)| refused.is_some()) {
        broker.count_error("UpdateFeatures", error.code());
    }
    if version >= 2 {
        return match outcomes.into_iter().find_map(|(_, refused)| refused) {
            Some(message) => UpdateFeaturesResponse::default()
                .with_error_code(error.code())
                .with_error_message(Some(text(message))),
            None => UpdateFeaturesResponse::default(),
        };
    }
    UpdateFeaturesResponse::default().with_results(
        outcomes
            .into_iter()
            .map(|(name, refused)| {
                let result = UpdatableFeatureResult::default().with_feature(text(name));
                match refused {
                    Some(message) => result
                        .with_error_code(error.code())
                        .with_error_message(Some(text(message))),
                    None => result,
                }
            })
            .collect(),
    )
}
