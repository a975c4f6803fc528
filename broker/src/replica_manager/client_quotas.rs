//! Client quotas in the metadata log: written by AlterClientQuotas, enforced by every broker
//! (`crate::quota`) from its image.

use super::{AdminError, ReplicaManager};
use crate::controller::client_quotas::QuotaAlteration;
use crate::controller::command::MetadataCommand;

impl ReplicaManager {
    /// Applies `alterations` in one metadata record; returns once this broker's image shows
    /// them, so the next request on this broker is measured against them.
    pub async fn alter_client_quotas(
        &self,
        alterations: Vec<QuotaAlteration>,
    ) -> Result<(), AdminError> {
        let wanted = alterations.clone();
        self.write(MetadataCommand::AlterClientQuotas { alterations })
            .await?;
        self.wait_for_image(|image| {
            wanted.iter().all(|(entity, ops)| {
                let settings = image.client_quotas.get(entity);
                ops.iter()
                    .all(|(key, value)| settings.and_then(|s| s.get(key)).copied() == *value)
            })
        })
        .await
    }
}
