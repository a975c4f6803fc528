//! DescribeUserScramCredentials (API 50): each user's SCRAM mechanisms and iterations from
//! the metadata log, never the keys. All users with credentials when `users` is null or
//! empty; a named user without any gets RESOURCE_NOT_FOUND, and a user named twice
//! DUPLICATE_RESOURCE, as in Kafka.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::text;
use crate::broker::Broker;
use crate::security::scram::ScramMechanism;

/// Answers DescribeUserScramCredentials.
pub fn handle(
    broker: &Broker,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let image = broker.replicas.image();
    let named: Vec<String> = request
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    let users: Vec<String> = if named.is_empty() {
        image.scram_credentials.keys().cloned().collect()
    } else {
        named.clone()
    };
    let mut times_named: HashMap<&str, usize> = HashMap::new();
    for user in &named {
        *times_named.entry(user.as_str()).or_default() += 1;
    }
    let mut answered: Vec<&str> = Vec::new();
    let mut results = Vec::new();
    for user in &users {
        if answered.contains(&user.as_str()) {
            continue;
        }
        answered.push(user);
        let credentials = image.scram_credentials.get(user);
        let result = DescribeUserScramCredentialsResult::default().with_user(text(user.clone()));
        let error = if times_named.get(user.as_str()).copied().unwrap_or(0) > 1 {
            Some((
                ResponseError::DuplicateResource,
                format!("user `{user}` is named more than once in the request"),
            ))
        } else if credentials.is_none() {
            Some((
                ResponseError::ResourceNotFound,
                format!("Attempt to describe a user credential that does not exist: {user}"),
            ))
        } else {
            None
        };
        let result = match (error, credentials) {
            (Some((error, message)), _) => {
                broker.count_error("DescribeUserScramCredentials", error.code());
                result
                    .with_error_code(error.code())
                    .with_error_message(Some(text(message)))
            }
            (None, Some(credentials)) => result.with_credential_infos(
                credentials
                    .iter()
                    .filter_map(|(name, credential)| {
                        Some(
                            CredentialInfo::default()
                                .with_mechanism(ScramMechanism::from_name(name)?.type_id())
                                .with_iterations(credential.iterations),
                        )
                    })
                    .collect(),
            ),
            (None, None) => result,
        };
        results.push(result);
    }
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
