//! SCRAM credentials in the metadata log: written by AlterUserScramCredentials, read by SASL
//! listeners (`crate::security::scram`) from the image.

use super::{AdminError, ReplicaManager};
use crate::controller::command::MetadataCommand;
use crate::controller::image::ScramCredential;

impl ReplicaManager {
    /// Sets `upsertions` ((user, mechanism name, credential)) and removes `deletions`
    /// ((user, mechanism name)) in one metadata record; returns once this broker's image
    /// shows the change, so the next authentication on this broker uses it.
    pub async fn alter_scram_credentials(
        &self,
        upsertions: Vec<(String, String, ScramCredential)>,
        deletions: Vec<(String, String)>,
    ) -> Result<(), AdminError> {
        let wanted = upsertions.clone();
        let removed = deletions.clone();
        self.write(MetadataCommand::AlterScramCredentials {
            upsertions,
            deletions,
        })
        .await?;
        self.wait_for_image(|image| {
            let stored = |user: &str, mechanism: &str| {
                image
                    .scram_credentials
                    .get(user)
                    .and_then(|by_mechanism| by_mechanism.get(mechanism))
            };
            wanted.iter().all(|(u, m, c)| stored(u, m) == Some(c))
                && removed.iter().all(|(u, m)| stored(u, m).is_none())
        })
        .await
    }
}
