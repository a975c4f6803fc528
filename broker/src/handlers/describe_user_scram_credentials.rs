//! DescribeUserScramCredentials (API 50): Weir stores no SCRAM credentials yet, so all users
//! (null or empty `users`) are none, and each named user gets RESOURCE_NOT_FOUND, as Kafka
//! answers for a user without credentials; a user named twice gets DUPLICATE_RESOURCE for
//! that user, as in Kafka.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::text;
use crate::broker::Broker;

/// Answers DescribeUserScramCredentials.
pub fn handle(
    broker: &Broker,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let users: Vec<String> = request
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    let mut times_named: HashMap<&str, usize> = HashMap::new();
    for user in &users {
        *times_named.entry(user.as_str()).or_default() += 1;
    }
    let mut answered: Vec<&str> = Vec::new();
    let mut results = Vec::new();
    for user in &users {
        if answered.contains(&user.as_str()) {
            continue;
        }
        answered.push(user);
        let (error, message) = if times_named[user.as_str()] > 1 {
            (
                ResponseError::DuplicateResource,
                format!("user `{user}` is named more than once in the request"),
            )
        } else {
            (
                ResponseError::ResourceNotFound,
                format!("user `{user}` has no SCRAM credentials"),
            )
        };
        broker.count_error("DescribeUserScramCredentials", error.code());
        results.push(
            DescribeUserScramCredentialsResult::default()
                .with_user(text(user.clone()))
                .with_error_code(error.code())
                .with_error_message(Some(text(message))),
        );
    }
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
