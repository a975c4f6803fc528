//! AlterUserScramCredentials (API 51): sets and removes users' SCRAM credentials in the
//! metadata log, as `kafka-configs --alter --add-config 'SCRAM-SHA-256=[...]' --entity-type
//! users` sends them (the client salts the password; the broker keeps the stored and server
//! keys derived from it).
//!
//! Checked per user as Kafka does: an unknown mechanism is UNSUPPORTED_SASL_MECHANISM, an
//! empty name or iterations outside 4096..=16384 UNACCEPTABLE_CREDENTIAL, one mechanism named
//! twice for a user DUPLICATE_RESOURCE, deleting a credential that does not exist
//! RESOURCE_NOT_FOUND. A user with any error has none of its changes applied.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};

use super::text;
use crate::broker::Broker;
use crate::controller::image::ScramCredential;
use crate::security::scram::ScramMechanism;

/// One user's changes.
#[derive(Default)]
struct UserChanges {
    upsertions: Vec<(String, String, ScramCredential)>,
    deletions: Vec<(String, String)>,
    /// The first error found for this user.
    error: Option<(ResponseError, String)>,
    /// Mechanisms named so far.
    named: Vec<i8>,
}

impl UserChanges {
    fn fail(&mut self, error: ResponseError, message: String) {
        self.error.get_or_insert((error, message));
    }

    /// Checks the user and mechanism shared by upsertions and deletions.
    fn mechanism(&mut self, user: &str, mechanism: i8) -> Option<ScramMechanism> {
        if user.is_empty() {
            self.fail(
                ResponseError::UnacceptableCredential,
                "Username must not be empty".to_string(),
            );
            return None;
        }
        if self.named.contains(&mechanism) {
            self.fail(
                ResponseError::DuplicateResource,
                format!("A user credential cannot be altered twice in the same request: mechanism {mechanism} of user `{user}`"),
            );
            return None;
        }
        self.named.push(mechanism);
        let found = ScramMechanism::from_type_id(mechanism);
        if found.is_none() {
            self.fail(
                ResponseError::UnsupportedSaslMechanism,
                format!("Unknown SCRAM mechanism {mechanism}"),
            );
        }
        found
    }
}

/// Answers AlterUserScramCredentials.
pub async fn handle(
    broker: &Broker,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let image = broker.replicas.image();
    let mut users: BTreeMap<String, UserChanges> = BTreeMap::new();
    for deletion in &request.deletions {
        let user = deletion.name.to_string();
        let changes = users.entry(user.clone()).or_default();
        let Some(mechanism) = changes.mechanism(&user, deletion.mechanism) else {
            continue;
        };
        let exists = image
            .scram_credentials
            .get(&user)
            .is_some_and(|m| m.contains_key(mechanism.name()));
        if !exists {
            changes.fail(
                ResponseError::ResourceNotFound,
                "Attempt to delete a user credential that does not exist".to_string(),
            );
            continue;
        }
        changes.deletions.push((user, mechanism.name().to_string()));
    }
    for upsertion in &request.upsertions {
        let user = upsertion.name.to_string();
        let changes = users.entry(user.clone()).or_default();
        let Some(mechanism) = changes.mechanism(&user, upsertion.mechanism) else {
            continue;
        };
        let iterations = upsertion.iterations;
        if iterations < ScramMechanism::MIN_ITERATIONS {
            changes.fail(
                ResponseError::UnacceptableCredential,
                format!(
                    "Too few iterations: {iterations} (at least {})",
                    ScramMechanism::MIN_ITERATIONS
                ),
            );
            continue;
        }
        if iterations > ScramMechanism::MAX_ITERATIONS {
            changes.fail(
                ResponseError::UnacceptableCredential,
                format!(
                    "Too many iterations: {iterations} (at most {})",
                    ScramMechanism::MAX_ITERATIONS
                ),
            );
            continue;
        }
        let credential =
            mechanism.credential(&upsertion.salt, &upsertion.salted_password, iterations);
        changes
            .upsertions
            .push((user, mechanism.name().to_string(), credential));
    }
    let mut upsertions = Vec::new();
    let mut deletions = Vec::new();
    for changes in users.values_mut().filter(|c| c.error.is_none()) {
        upsertions.append(&mut changes.upsertions);
        deletions.append(&mut changes.deletions);
    }
    let written = if upsertions.is_empty() && deletions.is_empty() {
        Ok(())
    } else {
        broker
            .replicas
            .alter_scram_credentials(upsertions, deletions)
            .await
    };
    let results = users
        .into_iter()
        .map(|(user, changes)| {
            let (code, message) = match (&changes.error, &written) {
                (Some((error, message)), _) => (error.code(), Some(message.clone())),
                (None, Err(e)) => (e.kafka_code(), Some(e.to_string())),
                (None, Ok(())) => (0, None),
            };
            broker.count_error("AlterUserScramCredentials", code);
            AlterUserScramCredentialsResult::default()
                .with_user(text(user))
                .with_error_code(code)
                .with_error_message(message.map(text))
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
