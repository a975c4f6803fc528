//! ACL bindings as the metadata log stores them, and the index every broker keeps of them to
//! authorize requests (Kafka's `StandardAuthorizer` semantics, KIP-11 and KIP-290).
//!
//! A binding is a resource pattern (type, name, LITERAL or PREFIXED) and an entry (principal,
//! host, operation, ALLOW or DENY). [`AclFilter`] selects bindings for DescribeAcls and
//! DeleteAcls (ANY and MATCH included). [`Acls`] is the set in the image: bindings kept sorted
//! for the log and snapshots, and an index by resource type with literal names in a hash map
//! and prefixes in a sorted map, rebuilt whenever the set changes (ACL changes are rare,
//! authorizations are per partition on the hot path).
//!
//! Decision rules, in order ([`Acls::authorize`]): a DENY matching the principal, host and
//! operation (or ALL) on any matching pattern denies; else a matching ALLOW (the operation,
//! ALL, or one implying it: DESCRIBE by READ/WRITE/DELETE/ALTER, DESCRIBE_CONFIGS by
//! ALTER_CONFIGS) allows; else, when no binding at all names the resource, the caller's
//! `allow.everyone.if.no.acl.found`; else deny. Super users are the caller's business.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A LITERAL resource name or a principal/host that matches every one.
pub const WILDCARD: &str = "*";
/// The principal that matches every user.
pub const WILDCARD_USER: &str = "User:*";

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:expr, $text:expr;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// The wire code, `None` for codes Kafka does not define.
            pub fn from_code(code: i8) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// The wire code.
            pub fn code(self) -> i8 {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            /// The value Kafka names `name` (as kafka-acls prints it), `None` for any other.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// Kafka's name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum!(
    /// Kafka's `ResourceType`.
    ResourceType {
        /// Not a type (filters only never carry it either).
        Unknown = 0, "UNKNOWN";
        /// Filters: every type.
        Any = 1, "ANY";
        /// A topic.
        Topic = 2, "TOPIC";
        /// A consumer group.
        Group = 3, "GROUP";
        /// The cluster (`kafka-cluster`).
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token.
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user (quotas, SCRAM credentials).
        User = 7, "USER";
    }
);

wire_enum!(
    /// Kafka's `PatternType`.
    PatternType {
        /// Not a pattern type.
        Unknown = 0, "UNKNOWN";
        /// Filters: every pattern type.
        Any = 1, "ANY";
        /// Filters: every pattern that matches the named resource.
        Match = 2, "MATCH";
        /// The name exactly (or `*`, every resource of the type).
        Literal = 3, "LITERAL";
        /// Every name starting with the pattern's name.
        Prefixed = 4, "PREFIXED";
    }
);

wire_enum!(
    /// Kafka's `AclOperation`.
    AclOperation {
        /// Not an operation.
        Unknown = 0, "UNKNOWN";
        /// Filters: every operation.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        /// Read.
        Read = 3, "READ";
        /// Write.
        Write = 4, "WRITE";
        /// Create.
        Create = 5, "CREATE";
        /// Delete.
        Delete = 6, "DELETE";
        /// Alter.
        Alter = 7, "ALTER";
        /// Describe.
        Describe = 8, "DESCRIBE";
        /// Broker-to-broker actions.
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Describe configs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Alter configs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent produce.
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Create delegation tokens.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

wire_enum!(
    /// Kafka's `AclPermissionType`.
    AclPermissionType {
        /// Not a permission.
        Unknown = 0, "UNKNOWN";
        /// Filters: both.
        Any = 1, "ANY";
        /// Deny.
        Deny = 2, "DENY";
        /// Allow.
        Allow = 3, "ALLOW";
    }
);

impl AclOperation {
    /// Whether an ALLOW of `self` grants `requested`: the same operation, ALL, or an
    /// operation Kafka says implies it.
    fn allows(self, requested: AclOperation) -> bool {
        use AclOperation::*;
        self == requested
            || self == All
            || match requested {
                Describe => matches!(self, Read | Write | Delete | Alter),
                DescribeConfigs => self == AlterConfigs,
                _ => false,
            }
    }

    /// Whether a DENY of `self` refuses `requested`: the same operation or ALL (a DENY
    /// implies nothing else).
    fn denies(self, requested: AclOperation) -> bool {
        self == requested || self == AclOperation::All
    }
}

/// One ACL: who may (or may not) do what to which resources. Kafka's `AclBinding`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// The resource type (never ANY/UNKNOWN).
    pub resource_type: ResourceType,
    /// The resource name, or the prefix.
    pub resource_name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: PatternType,
    /// `User:alice`, `User:*`.
    pub principal: String,
    /// A client IP address, or `*`.
    pub host: String,
    /// The operation (never ANY/UNKNOWN).
    pub operation: AclOperation,
    /// ALLOW or DENY.
    pub permission: AclPermissionType,
}

impl AclBinding {
    /// Why Kafka would refuse to create this binding (INVALID_REQUEST), if it would.
    pub fn invalid_reason(&self) -> Option<String> {
        if matches!(
            self.resource_type,
            ResourceType::Unknown | ResourceType::Any
        ) {
            return Some(format!("Invalid resource type {}", self.resource_type));
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Some(format!(
                "Invalid pattern type {}: only LITERAL and PREFIXED ACLs can be created",
                self.pattern_type
            ));
        }
        if matches!(self.operation, AclOperation::Unknown | AclOperation::Any) {
            return Some(format!("Invalid operation {}", self.operation));
        }
        if matches!(
            self.permission,
            AclPermissionType::Unknown | AclPermissionType::Any
        ) {
            return Some(format!("Invalid permission type {}", self.permission));
        }
        if self.resource_name.is_empty() {
            return Some("Resource name should not be empty".to_string());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Some(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return Some(format!(
                    "Could not parse principal `{}`: expected `<type>:<name>`",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return Some("Host should not be empty".to_string());
        }
        None
    }

    /// Whether this binding's pattern covers the resource `name` of its type.
    fn pattern_matches(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => self.resource_name == name || self.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&self.resource_name),
            _ => false,
        }
    }
}

/// A selection of bindings (DescribeAcls, DeleteAcls). `None` fields match everything; ANY
/// enums too; `MATCH` selects the patterns that cover the named resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    /// Resource type, or ANY.
    pub resource_type: ResourceType,
    /// Resource name.
    pub resource_name: Option<String>,
    /// Pattern type, ANY or MATCH.
    pub pattern_type: PatternType,
    /// Principal.
    pub principal: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Operation, or ANY.
    pub operation: AclOperation,
    /// Permission, or ANY.
    pub permission: AclPermissionType,
}

impl AclFilter {
    /// Why Kafka would refuse this filter (INVALID_REQUEST), if it would: an UNKNOWN element.
    pub fn invalid_reason(&self) -> Option<String> {
        (self.resource_type == ResourceType::Unknown
            || self.pattern_type == PatternType::Unknown
            || self.operation == AclOperation::Unknown
            || self.permission == AclPermissionType::Unknown)
            .then(|| "The filter contains an UNKNOWN element".to_string())
    }

    /// Whether `binding` is selected.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        let same =
            |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        (self.resource_type == ResourceType::Any || self.resource_type == binding.resource_type)
            && self.pattern_matches(binding)
            && same(&self.principal, &binding.principal)
            && same(&self.host, &binding.host)
            && (self.operation == AclOperation::Any || self.operation == binding.operation)
            && (self.permission == AclPermissionType::Any || self.permission == binding.permission)
    }

    fn pattern_matches(&self, binding: &AclBinding) -> bool {
        let name = self.resource_name.as_deref();
        match self.pattern_type {
            PatternType::Any => name.is_none_or(|n| n == binding.resource_name),
            PatternType::Match => name.is_none_or(|n| binding.pattern_matches(n)),
            exact => {
                exact == binding.pattern_type && name.is_none_or(|n| n == binding.resource_name)
            }
        }
    }
}

/// Every ACL of the cluster, with the index authorization uses. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Acls {
    inner: Arc<AclsInner>,
}

#[derive(Debug, Default)]
struct AclsInner {
    bindings: BTreeSet<AclBinding>,
    by_type: HashMap<ResourceType, TypeIndex>,
}

/// One resource type's bindings: literal names (the `*` wildcard included) and prefixes by
/// name, and the lengths of the prefixes, so that a name costs one lookup per prefix length
/// in use rather than a scan.
#[derive(Debug, Default)]
struct TypeIndex {
    literal: HashMap<String, Vec<AclBinding>>,
    prefixed: HashMap<String, Vec<AclBinding>>,
    prefix_lengths: BTreeSet<usize>,
}

/// What [`Acls::authorize`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclDecision {
    /// A matching ALLOW and no matching DENY.
    Allowed,
    /// A matching DENY, or no matching ALLOW.
    Denied,
    /// No binding names the resource at all: the caller's `allow.everyone.if.no.acl.found`.
    NoAclFound,
}

impl Acls {
    /// A set of `bindings`, indexed.
    pub fn new(bindings: BTreeSet<AclBinding>) -> Self {
        let mut by_type: HashMap<ResourceType, TypeIndex> = HashMap::new();
        for b in &bindings {
            let index = by_type.entry(b.resource_type).or_default();
            let slot = match b.pattern_type {
                PatternType::Prefixed => {
                    index.prefix_lengths.insert(b.resource_name.len());
                    index.prefixed.entry(b.resource_name.clone()).or_default()
                }
                _ => index.literal.entry(b.resource_name.clone()).or_default(),
            };
            slot.push(b.clone());
        }
        Self {
            inner: Arc::new(AclsInner { bindings, by_type }),
        }
    }

    /// Every binding, sorted.
    pub fn bindings(&self) -> &BTreeSet<AclBinding> {
        &self.inner.bindings
    }

    /// Whether there are no ACLs.
    pub fn is_empty(&self) -> bool {
        self.inner.bindings.is_empty()
    }

    /// The bindings `filter` selects.
    pub fn matching<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = &'a AclBinding> {
        self.inner.bindings.iter().filter(|b| filter.matches(b))
    }

    /// Decides whether `principal` from `host` may do `operation` on the resource
    /// (`resource_type`, `name`), by the rules in the module doc.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> AclDecision {
        let Some(index) = self.inner.by_type.get(&resource_type) else {
            return AclDecision::NoAclFound;
        };
        let mut found = false;
        let mut allowed = false;
        let mut check = |bindings: &[AclBinding]| -> bool {
            for b in bindings {
                found = true;
                let who = b.principal == principal
                    || (b.principal == WILDCARD_USER && principal.starts_with("User:"));
                if !who || (b.host != WILDCARD && b.host != host) {
                    continue;
                }
                match b.permission {
                    AclPermissionType::Deny if b.operation.denies(operation) => return true,
                    AclPermissionType::Allow if b.operation.allows(operation) => allowed = true,
                    _ => {}
                }
            }
            false
        };
        let literal = [name, WILDCARD]
            .into_iter()
            .filter_map(|n| index.literal.get(n));
        for bindings in literal {
            if check(bindings) {
                return AclDecision::Denied;
            }
        }
        let prefixes = index
            .prefix_lengths
            .range(..=name.len())
            .filter(|&&len| name.is_char_boundary(len))
            .filter_map(|&len| index.prefixed.get(&name[..len]));
        for bindings in prefixes {
            if check(bindings) {
                return AclDecision::Denied;
            }
        }
        match (allowed, found) {
            (true, _) => AclDecision::Allowed,
            (false, true) => AclDecision::Denied,
            (false, false) => AclDecision::NoAclFound,
        }
    }
}

impl Acls {
    /// Whether some ALLOW lets `principal` from `host` do `operation` on some resource of
    /// `resource_type`, and no DENY on every such resource (LITERAL `*`) refuses it: Kafka's
    /// `authorizeByResourceType`, which lets a producer with WRITE on any topic be
    /// idempotent (KIP-679).
    pub fn allows_some(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        let Some(index) = self.inner.by_type.get(&resource_type) else {
            return false;
        };
        let applies = |b: &AclBinding| {
            (b.principal == principal
                || (b.principal == WILDCARD_USER && principal.starts_with("User:")))
                && (b.host == WILDCARD || b.host == host)
        };
        let denied_everywhere = index.literal.get(WILDCARD).is_some_and(|bindings| {
            bindings.iter().any(|b| {
                applies(b)
                    && b.permission == AclPermissionType::Deny
                    && b.operation.denies(operation)
            })
        });
        !denied_everywhere
            && index
                .literal
                .values()
                .chain(index.prefixed.values())
                .flatten()
                .any(|b| {
                    applies(b)
                        && b.permission == AclPermissionType::Allow
                        && b.operation.allows(operation)
                })
    }
}

impl PartialEq for Acls {
    fn eq(&self, other: &Self) -> bool {
        self.inner.bindings == other.inner.bindings
    }
}

impl Eq for Acls {}

impl Serialize for Acls {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.inner.bindings.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Acls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Acls::new(BTreeSet::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        host: &str,
        operation: AclOperation,
        permission: AclPermissionType,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.to_string(),
            pattern_type,
            principal: principal.to_string(),
            host: host.to_string(),
            operation,
            permission,
        }
    }

    fn topic(
        name: &str,
        pattern: PatternType,
        who: &str,
        op: AclOperation,
        p: AclPermissionType,
    ) -> AclBinding {
        binding(ResourceType::Topic, name, pattern, who, "*", op, p)
    }

    fn acls(bindings: Vec<AclBinding>) -> Acls {
        Acls::new(bindings.into_iter().collect())
    }

    use AclDecision::*;
    use AclOperation::*;
    use AclPermissionType::{Allow, Deny};
    use PatternType::{Literal, Prefixed};

    #[test]
    fn no_acl_on_a_resource_is_left_to_the_caller() {
        let set = acls(vec![topic("other", Literal, "User:alice", Read, Allow)]);
        assert_eq!(
            set.authorize(
                "User:alice",
                "10.0.0.1",
                Read,
                ResourceType::Topic,
                "orders"
            ),
            NoAclFound
        );
        assert_eq!(
            set.authorize("User:alice", "10.0.0.1", Read, ResourceType::Group, "g"),
            NoAclFound
        );
        // An ACL for someone else on the resource: denied, not "no ACL".
        assert_eq!(
            set.authorize("User:bob", "10.0.0.1", Read, ResourceType::Topic, "other"),
            Denied
        );
        assert_eq!(
            set.authorize("User:alice", "10.0.0.1", Read, ResourceType::Topic, "other"),
            Allowed
        );
    }

    #[test]
    fn deny_wins_over_allow_from_any_pattern() {
        let set = acls(vec![
            topic("*", Literal, "User:*", All, Allow),
            topic("secret-", Prefixed, "User:alice", Read, Deny),
        ]);
        assert_eq!(
            set.authorize("User:alice", "h", Read, ResourceType::Topic, "secret-1"),
            Denied
        );
        assert_eq!(
            set.authorize("User:alice", "h", Write, ResourceType::Topic, "secret-1"),
            Allowed
        );
        assert_eq!(
            set.authorize("User:alice", "h", Read, ResourceType::Topic, "public"),
            Allowed
        );
        assert_eq!(
            set.authorize("User:bob", "h", Read, ResourceType::Topic, "secret-1"),
            Allowed
        );
        // A DENY READ implies no DENY DESCRIBE.
        assert_eq!(
            set.authorize("User:alice", "h", Describe, ResourceType::Topic, "secret-1"),
            Allowed
        );
        let all = acls(vec![
            topic("t", Literal, "User:alice", Read, Allow),
            topic("t", Literal, "User:alice", All, Deny),
        ]);
        assert_eq!(
            all.authorize("User:alice", "h", Describe, ResourceType::Topic, "t"),
            Denied
        );
    }

    #[test]
    fn prefixes_match_names_that_start_with_them() {
        let set = acls(vec![
            topic("app-", Prefixed, "User:alice", Write, Allow),
            topic("app-internal", Prefixed, "User:alice", Write, Deny),
            topic("b", Prefixed, "User:alice", Read, Allow),
        ]);
        assert_eq!(
            set.authorize("User:alice", "h", Write, ResourceType::Topic, "app-orders"),
            Allowed
        );
        assert_eq!(
            set.authorize(
                "User:alice",
                "h",
                Write,
                ResourceType::Topic,
                "app-internal-x"
            ),
            Denied
        );
        assert_eq!(
            set.authorize("User:alice", "h", Write, ResourceType::Topic, "app"),
            NoAclFound
        );
        assert_eq!(
            set.authorize("User:alice", "h", Read, ResourceType::Topic, "bz"),
            Allowed
        );
        assert_eq!(
            set.authorize("User:alice", "h", Read, ResourceType::Topic, "az"),
            NoAclFound
        );
    }

    #[test]
    fn implied_operations() {
        let set = acls(vec![
            topic("r", Literal, "User:a", Read, Allow),
            topic("w", Literal, "User:a", Write, Allow),
            topic("c", Literal, "User:a", AlterConfigs, Allow),
            topic("all", Literal, "User:a", All, Allow),
        ]);
        for t in ["r", "w", "all"] {
            assert_eq!(
                set.authorize("User:a", "h", Describe, ResourceType::Topic, t),
                Allowed,
                "{t}"
            );
        }
        assert_eq!(
            set.authorize("User:a", "h", DescribeConfigs, ResourceType::Topic, "c"),
            Allowed
        );
        assert_eq!(
            set.authorize("User:a", "h", Describe, ResourceType::Topic, "c"),
            Denied
        );
        assert_eq!(
            set.authorize("User:a", "h", Write, ResourceType::Topic, "r"),
            Denied
        );
        assert_eq!(
            set.authorize("User:a", "h", Delete, ResourceType::Topic, "all"),
            Allowed
        );
    }

    /// The hot-path cost: a check against a few hundred ACLs (literal and prefixed, several
    /// users) is a handful of hash lookups. Printed with `--nocapture`; the bound is loose
    /// enough for a debug build on a loaded machine.
    #[test]
    fn a_few_hundred_acls_cost_little_per_check() {
        let mut bindings = Vec::new();
        for user in 0..30 {
            for t in 0..5 {
                let who = format!("User:u{user}");
                bindings.push(topic(&format!("topic-{t}"), Literal, &who, Read, Allow));
                bindings.push(topic(&format!("app{t}-"), Prefixed, &who, Write, Allow));
            }
        }
        bindings.push(topic("*", Literal, "User:producer", Write, Allow));
        let set = acls(bindings);
        assert_eq!(set.bindings().len(), 301);
        let checks = 100_000u32;
        let started = std::time::Instant::now();
        for i in 0..checks {
            let name = if i % 2 == 0 { "app3-orders" } else { "topic-4" };
            let decision = set.authorize("User:u7", "10.0.0.1", Write, ResourceType::Topic, name);
            std::hint::black_box(decision);
        }
        let per_check = started.elapsed() / checks;
        eprintln!("{per_check:?} per check against 301 ACLs");
        assert!(
            per_check < std::time::Duration::from_micros(100),
            "{per_check:?}"
        );
    }

    #[test]
    fn some_resource_of_a_type() {
        let set = acls(vec![topic("app-", Prefixed, "User:a", Write, Allow)]);
        assert!(set.allows_some("User:a", "h", Write, ResourceType::Topic));
        assert!(!set.allows_some("User:b", "h", Write, ResourceType::Topic));
        assert!(!set.allows_some("User:a", "h", Write, ResourceType::Group));
        let denied = acls(vec![
            topic("app-", Prefixed, "User:a", Write, Allow),
            topic("*", Literal, "User:*", Write, Deny),
        ]);
        assert!(!denied.allows_some("User:a", "h", Write, ResourceType::Topic));
    }

    #[test]
    fn wildcard_principal_and_host() {
        let set = acls(vec![
            binding(
                ResourceType::Group,
                "g",
                Literal,
                "User:*",
                "10.0.0.1",
                Read,
                Allow,
            ),
            binding(
                ResourceType::Group,
                "h",
                Literal,
                "User:bob",
                "*",
                Read,
                Allow,
            ),
        ]);
        assert_eq!(
            set.authorize("User:x", "10.0.0.1", Read, ResourceType::Group, "g"),
            Allowed
        );
        assert_eq!(
            set.authorize("User:x", "10.0.0.2", Read, ResourceType::Group, "g"),
            Denied
        );
        assert_eq!(
            set.authorize("User:bob", "10.0.0.2", Read, ResourceType::Group, "h"),
            Allowed
        );
        assert_eq!(
            set.authorize("User:bobby", "10.0.0.2", Read, ResourceType::Group, "h"),
            Denied
        );
    }

    #[test]
    fn filters_select_as_kafka_does() {
        let lit = topic("orders", Literal, "User:a", Read, Allow);
        let star = topic("*", Literal, "User:a", Read, Allow);
        let pre = topic("ord", Prefixed, "User:b", Write, Deny);
        let set = acls(vec![lit.clone(), star.clone(), pre.clone()]);
        let filter = |pattern_type, name: Option<&str>| AclFilter {
            resource_type: ResourceType::Any,
            resource_name: name.map(str::to_string),
            pattern_type,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermissionType::Any,
        };
        let got = |f: AclFilter| set.matching(&f).cloned().collect::<Vec<_>>();
        assert_eq!(got(filter(PatternType::Match, Some("orders"))).len(), 3);
        assert_eq!(
            got(filter(PatternType::Any, Some("orders"))),
            vec![lit.clone()]
        );
        assert_eq!(got(filter(Literal, None)).len(), 2);
        assert_eq!(got(filter(Prefixed, Some("ord"))), vec![pre.clone()]);
        let mut by_principal = filter(PatternType::Any, None);
        by_principal.principal = Some("User:b".to_string());
        assert_eq!(got(by_principal), vec![pre]);
        assert!(filter(PatternType::Unknown, None)
            .invalid_reason()
            .is_some());
    }

    #[test]
    fn invalid_bindings_are_named() {
        let ok = topic("t", Literal, "User:a", Read, Allow);
        assert_eq!(ok.invalid_reason(), None);
        let mut b = ok.clone();
        b.pattern_type = PatternType::Match;
        assert!(b.invalid_reason().is_some());
        let mut b = ok.clone();
        b.principal = "alice".to_string();
        assert!(b.invalid_reason().is_some());
        let mut b = ok.clone();
        b.resource_type = ResourceType::Cluster;
        assert!(b.invalid_reason().is_some());
        b.resource_name = CLUSTER_NAME.to_string();
        assert_eq!(b.invalid_reason(), None);
        let mut b = ok;
        b.operation = AclOperation::Any;
        assert!(b.invalid_reason().is_some());
    }

    #[test]
    fn serialized_as_the_bindings_and_reindexed_on_load() {
        let set = acls(vec![topic("t", Literal, "User:a", Read, Allow)]);
        let json = serde_json::to_string(&set).unwrap();
        let back: Acls = serde_json::from_str(&json).unwrap();
        assert_eq!(back, set);
        assert_eq!(
            back.authorize("User:a", "h", Read, ResourceType::Topic, "t"),
            Allowed
        );
    }
}
