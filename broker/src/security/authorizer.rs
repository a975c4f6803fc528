//! The authorizer: Kafka's `StandardAuthorizer` over the ACLs of the metadata image.
//!
//! On when `authorizer.class.name` names Kafka's StandardAuthorizer (or the older
//! AclAuthorizer, same semantics here). `super.users` (`User:a;User:b`) are allowed
//! everything; otherwise [`Acls::authorize`] decides, and a resource no ACL names is allowed
//! only with `allow.everyone.if.no.acl.found=true`. Every check is counted in Kafka's
//! authorizer metrics; every denial is logged (principal, host, operation, resource) at most
//! [`AUDIT_LINES_PER_SECOND`] times a second, the rest counted in the next line, so a client
//! retrying a refused request costs a counter increment, not a log line.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::BrokerConfig;
use crate::controller::acl::{AclDecision, AclOperation, Acls, ResourceType};
use crate::metrics::BrokerMetrics;

use super::Principal;

/// Denial log lines per second, at most.
pub const AUDIT_LINES_PER_SECOND: u32 = 20;

/// The authorizer of a broker, shared by its listeners.
#[derive(Debug)]
pub struct Authorizer {
    super_users: HashSet<String>,
    allow_everyone_if_no_acl_found: bool,
    audit: Mutex<AuditWindow>,
}

/// The current second of denial log lines.
#[derive(Debug)]
struct AuditWindow {
    started: Instant,
    lines: u32,
    suppressed: u64,
}

impl Authorizer {
    /// The authorizer `config` asks for, if any.
    pub fn from_config(config: &BrokerConfig) -> Option<Self> {
        let class = config.get("authorizer.class.name").unwrap_or_default();
        if class.trim().is_empty() {
            return None;
        }
        Some(Self::new(
            config.get("super.users").unwrap_or_default(),
            config.get("allow.everyone.if.no.acl.found") == Some("true"),
        ))
    }

    /// An authorizer with `super_users` (Kafka's `super.users` syntax: principals separated
    /// by `;`).
    pub fn new(super_users: &str, allow_everyone_if_no_acl_found: bool) -> Self {
        Self {
            super_users: super_users
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            allow_everyone_if_no_acl_found,
            audit: Mutex::new(AuditWindow {
                started: Instant::now(),
                lines: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether `principal` is a super user.
    pub fn is_super_user(&self, principal: &Principal) -> bool {
        self.super_users.contains(principal.as_str())
    }

    /// Whether `principal` from `host` may do `operation` on (`resource_type`, `name`), by
    /// `acls`; counts the check and logs a denial.
    #[allow(clippy::too_many_arguments)]
    pub fn authorize(
        &self,
        acls: &Acls,
        metrics: &BrokerMetrics,
        principal: &Principal,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        metrics.authorization_requests.inc();
        let allowed = self.is_super_user(principal)
            || match acls.authorize(principal.as_str(), host, operation, resource_type, name) {
                AclDecision::Allowed => true,
                AclDecision::Denied => false,
                AclDecision::NoAclFound => self.allow_everyone_if_no_acl_found,
            };
        if allowed {
            metrics.authorization_allowed.inc();
        } else {
            metrics.authorization_denied.inc();
            self.audit_denial(principal, host, operation, resource_type, name);
        }
        allowed
    }

    fn audit_denial(
        &self,
        principal: &Principal,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) {
        let suppressed = {
            let mut window = self.audit.lock().unwrap_or_else(|e| e.into_inner());
            if window.started.elapsed() >= Duration::from_secs(1) {
                window.started = Instant::now();
                window.lines = 0;
            }
            if window.lines >= AUDIT_LINES_PER_SECOND {
                window.suppressed += 1;
                return;
            }
            window.lines += 1;
            std::mem::take(&mut window.suppressed)
        };
        tracing::info!(
            %principal,
            host,
            operation = operation.name(),
            resource_type = resource_type.name(),
            resource = name,
            suppressed_since_last_line = suppressed,
            "authorization denied"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::acl::{AclBinding, AclPermissionType, PatternType};

    #[test]
    fn super_users_and_the_no_acl_rule() {
        let metrics = BrokerMetrics::new().unwrap();
        let acls = Acls::new(
            [AclBinding {
                resource_type: ResourceType::Topic,
                resource_name: "t".to_string(),
                pattern_type: PatternType::Literal,
                principal: "User:alice".to_string(),
                host: "*".to_string(),
                operation: AclOperation::Read,
                permission: AclPermissionType::Allow,
            }]
            .into_iter()
            .collect(),
        );
        let strict = Authorizer::new("User:admin; User:broker", false);
        let open = Authorizer::new("", true);
        let (alice, bob, admin) = (
            Principal::user("alice"),
            Principal::user("bob"),
            Principal::user("admin"),
        );
        let read = |a: &Authorizer, p: &Principal, topic: &str| {
            a.authorize(
                &acls,
                &metrics,
                p,
                "h",
                AclOperation::Read,
                ResourceType::Topic,
                topic,
            )
        };
        assert!(read(&strict, &alice, "t"));
        assert!(!read(&strict, &bob, "t"));
        assert!(read(&strict, &admin, "t"));
        assert!(read(&strict, &admin, "u"));
        assert!(!read(&strict, &alice, "u"));
        assert!(read(&open, &bob, "u"));
        assert!(!read(&open, &bob, "t"));
        assert_eq!(metrics.authorization_requests.get(), 7);
        assert_eq!(metrics.authorization_denied.get(), 3);
        for _ in 0..100 {
            read(&strict, &bob, "t");
        }
        assert_eq!(metrics.authorization_denied.get(), 103);
    }
}
