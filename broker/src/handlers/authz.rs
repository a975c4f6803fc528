//! Authorization of one request: the connection's principal and host, the authorizer (if the
//! broker has one) and the ACLs of the image as the request found them, read once so that a
//! request with many partitions costs one image read, not one per partition.

use crate::broker::Broker;
use crate::controller::acl::{AclOperation, Acls, ResourceType, CLUSTER_NAME};

use super::Connection;

/// What one request may do. Without an authorizer everything is allowed.
#[derive(Debug)]
pub struct Authz<'a> {
    broker: &'a Broker,
    connection: &'a Connection,
    /// The ACLs and the client's host, when an authorizer is on.
    checked: Option<(Acls, String)>,
}

impl<'a> Authz<'a> {
    /// The authorization of a request on `connection`.
    pub fn new(broker: &'a Broker, connection: &'a Connection) -> Self {
        let checked = connection.authorizer.as_ref().map(|_| {
            let host = connection
                .peer
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            (broker.replicas.image().acls.clone(), host)
        });
        Self {
            broker,
            connection,
            checked,
        }
    }

    /// Whether an authorizer is configured (ACL APIs answer SECURITY_DISABLED without one).
    pub fn enabled(&self) -> bool {
        self.checked.is_some()
    }

    /// Whether the principal may do `operation` on (`resource_type`, `name`).
    pub fn allowed(
        &self,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let (Some(authorizer), Some((acls, host))) = (&self.connection.authorizer, &self.checked)
        else {
            return true;
        };
        authorizer.authorize(
            acls,
            &self.broker.metrics,
            &self.connection.principal,
            host,
            operation,
            resource_type,
            name,
        )
    }

    /// Whether the principal may do `operation` on some resource of `resource_type`
    /// ([`Acls::allows_some`]); super users may.
    pub fn any(&self, operation: AclOperation, resource_type: ResourceType) -> bool {
        let (Some(authorizer), Some((acls, host))) = (&self.connection.authorizer, &self.checked)
        else {
            return true;
        };
        authorizer.is_super_user(&self.connection.principal)
            || acls.allows_some(
                self.connection.principal.as_str(),
                host,
                operation,
                resource_type,
            )
    }

    /// Whether the principal may do `operation` on the cluster.
    pub fn cluster(&self, operation: AclOperation) -> bool {
        self.allowed(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Whether the principal may do `operation` on `topic`.
    pub fn topic(&self, operation: AclOperation, topic: &str) -> bool {
        self.allowed(operation, ResourceType::Topic, topic)
    }

    /// Whether the principal may do `operation` on `group`.
    pub fn group(&self, operation: AclOperation, group: &str) -> bool {
        self.allowed(operation, ResourceType::Group, group)
    }

    /// Whether the principal may do `operation` on `transactional_id`.
    pub fn transactional_id(&self, operation: AclOperation, transactional_id: &str) -> bool {
        self.allowed(operation, ResourceType::TransactionalId, transactional_id)
    }
}
