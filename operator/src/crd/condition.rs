//! Status conditions as Kubernetes has them (`metav1.Condition`): one entry per type,
//! `lastTransitionTime` moving only when the status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types the operator sets.
pub mod types {
    pub const READY: &str = "Ready";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
    pub const SCALE_DOWN_BLOCKED: &str = "ScaleDownBlocked";
    pub const STORAGE_RESIZE_REFUSED: &str = "StorageResizeRefused";
    pub const PARTITION_DECREASE_REFUSED: &str = "PartitionDecreaseRefused";
    pub const REPLICATION_FACTOR_CHANGE_REFUSED: &str = "ReplicationFactorChangeRefused";
    pub const CERTIFICATES_RENEWING: &str = "CertificatesRenewing";
    pub const CERTIFICATE_AUTHORITIES_VALID: &str = "CertificateAuthoritiesValid";
}

/// A condition to set: type, whether it holds, a CamelCase reason and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Merges `desired` into `current`: conditions of the same type are replaced, keeping their
/// transition time when the status did not change; types not in `desired` are dropped.
pub fn merge(
    current: &[Condition],
    desired: Vec<Desired>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    desired
        .into_iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" }.to_string();
            let since = current
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: d.type_.to_string(),
                status,
                reason: d.reason,
                message: d.message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// Whether `conditions` has `type_` with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first = merge(
            &[],
            vec![Desired::new(types::READY, false, "Starting", "0/3")],
            Some(1),
            &at(10),
        );
        let same = merge(
            &first,
            vec![Desired::new(types::READY, false, "Starting", "1/3")],
            Some(1),
            &at(20),
        );
        assert_eq!(same[0].last_transition_time, at(10));
        assert_eq!(same[0].message, "1/3");
        let flipped = merge(
            &same,
            vec![Desired::new(types::READY, true, "Ready", "3/3")],
            Some(2),
            &at(30),
        );
        assert_eq!(flipped[0].last_transition_time, at(30));
        assert_eq!(flipped[0].observed_generation, Some(2));
        assert!(is_true(&flipped, types::READY));
    }
}
