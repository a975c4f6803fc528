//! The phase of the data movement the operator runs for a `Cluster`
//! ([`super::RebalanceStatus::phase`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the operator's data movement is doing. Serialized by name (`Idle`, ...), the values
/// the status has always carried.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum RebalancePhase {
    /// Nothing moving: the last plan completed (or none was needed).
    #[default]
    Idle,
    /// Brokers were added: replicas move onto them.
    Rebalancing,
    /// Brokers are being removed: their replicas move off them first.
    Draining,
}

impl RebalancePhase {
    /// The name in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            RebalancePhase::Idle => "Idle",
            RebalancePhase::Rebalancing => "Rebalancing",
            RebalancePhase::Draining => "Draining",
        }
    }
}

impl std::fmt::Display for RebalancePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the name in the status (`phase == "Idle"`), as clients reading it do.
impl PartialEq<&str> for RebalancePhase {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_the_names_the_status_carried() {
        for phase in [
            RebalancePhase::Idle,
            RebalancePhase::Rebalancing,
            RebalancePhase::Draining,
        ] {
            let json = serde_json::to_value(phase).unwrap();
            assert_eq!(json, serde_json::Value::String(phase.to_string()));
            assert_eq!(
                serde_json::from_value::<RebalancePhase>(json).unwrap(),
                phase
            );
            assert!(phase == phase.as_str());
        }
    }
}
