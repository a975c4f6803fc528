//! ApiVersions: the APIs and version ranges in [`crate::protocol::versions::SUPPORTED`].

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use crate::protocol::versions::SUPPORTED;

/// The ApiVersions answer; the same for every client.
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
