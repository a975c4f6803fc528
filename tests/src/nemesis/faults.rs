//! The kinds of fault and the schedule drawn from a seeded RNG. Applying them is the
//! harness's job (`super::Harness::inject`); this module only decides what comes next.

use super::rng::SeededRng;

/// One kind of fault. Each is applied, held for a while, healed, and the cluster is let
/// settle before the next one (faults never overlap, so each outcome is attributable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL of the leader of a random partition of the workload topic.
    KillPartitionLeader,
    /// SIGKILL of the group's coordinator (FindCoordinator).
    KillCoordinator,
    /// SIGKILL of the metadata quorum leader (Metadata's controller id).
    KillController,
    /// SIGKILL of a random broker.
    KillRandom,
    /// SIGSTOP of a random broker past every session timeout, then SIGCONT.
    PauseRandom,
    /// SIGKILL of two brokers at once (the quorum is lost until they are back).
    KillTwo,
    /// A random broker cut off from everyone (its link taken down).
    IsolateRandom,
    /// The quorum leader cut off from everyone.
    IsolateController,
    /// The group coordinator cut off from everyone.
    IsolateCoordinator,
    /// One broker drops every packet from one peer (iptables DROP in its namespace).
    OneWayDrop,
    /// One broker's data directory filled to the last byte, then freed.
    DiskFull,
}

impl FaultKind {
    pub const ALL: [FaultKind; 11] = [
        FaultKind::KillPartitionLeader,
        FaultKind::KillCoordinator,
        FaultKind::KillController,
        FaultKind::KillRandom,
        FaultKind::PauseRandom,
        FaultKind::KillTwo,
        FaultKind::IsolateRandom,
        FaultKind::IsolateController,
        FaultKind::IsolateCoordinator,
        FaultKind::OneWayDrop,
        FaultKind::DiskFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillPartitionLeader => "kill partition leader",
            FaultKind::KillCoordinator => "kill group coordinator",
            FaultKind::KillController => "kill quorum leader",
            FaultKind::KillRandom => "kill random broker",
            FaultKind::PauseRandom => "pause past session timeout",
            FaultKind::KillTwo => "kill two brokers",
            FaultKind::IsolateRandom => "isolate random broker",
            FaultKind::IsolateController => "isolate quorum leader",
            FaultKind::IsolateCoordinator => "isolate group coordinator",
            FaultKind::OneWayDrop => "one-way partition",
            FaultKind::DiskFull => "disk full",
        }
    }

    /// The kind [`FaultKind::name`] names.
    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the fault needs network namespaces.
    pub fn needs_network(self) -> bool {
        matches!(
            self,
            FaultKind::IsolateRandom
                | FaultKind::IsolateController
                | FaultKind::IsolateCoordinator
                | FaultKind::OneWayDrop
        )
    }

    /// Whether the fault needs a small mounted disk.
    pub fn needs_disk(self) -> bool {
        self == FaultKind::DiskFull
    }
}

/// `count` faults from `kinds`: shuffled rounds in which every kind comes once, so even a
/// short run sees every kind when `count >= kinds.len()`.
pub fn schedule(rng: &mut SeededRng, kinds: &[FaultKind], count: usize) -> Vec<FaultKind> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let mut round = kinds.to_vec();
        for i in (1..round.len()).rev() {
            round.swap(i, rng.below(i as u64 + 1) as usize);
        }
        out.extend(round.into_iter().take(count - out.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_covers_every_kind_and_repeats_from_its_seed() {
        let a = schedule(&mut SeededRng::new(7), &FaultKind::ALL, 14);
        let b = schedule(&mut SeededRng::new(7), &FaultKind::ALL, 14);
        assert_eq!(a, b);
        for kind in FaultKind::ALL {
            assert!(a.contains(&kind), "{kind:?} missing from {a:?}");
        }
    }
}
