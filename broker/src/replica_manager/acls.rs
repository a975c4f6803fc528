//! ACL bindings in the metadata log: written by CreateAcls and DeleteAcls, read by every
//! broker's authorizer from the image (`crate::controller::acl`).

use super::{AdminError, ReplicaManager};
use crate::controller::acl::{AclBinding, AclFilter};
use crate::controller::command::{CommandResult, MetadataCommand};

impl ReplicaManager {
    /// Adds `bindings` in one metadata record; returns once this broker's image shows them,
    /// so the next request to this broker is authorized with them.
    pub async fn create_acls(&self, bindings: Vec<AclBinding>) -> Result<(), AdminError> {
        let wanted = bindings.clone();
        self.write(MetadataCommand::CreateAcls { bindings }).await?;
        self.wait_for_image(|image| wanted.iter().all(|b| image.acls.bindings().contains(b)))
            .await
    }

    /// Removes the bindings each of `filters` selects, in one metadata record; returns what
    /// each filter removed, once this broker's image no longer has them.
    pub async fn delete_acls(
        &self,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Vec<AclBinding>>, AdminError> {
        let deleted = match self.write(MetadataCommand::DeleteAcls { filters }).await? {
            CommandResult::DeletedAcls(deleted) => deleted,
            other => {
                return Err(AdminError::Internal(format!(
                    "DeleteAcls was answered with {other:?}"
                )))
            }
        };
        self.wait_for_image(|image| {
            deleted
                .iter()
                .flatten()
                .all(|b| !image.acls.bindings().contains(b))
        })
        .await?;
        Ok(deleted)
    }
}
