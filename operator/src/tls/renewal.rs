//! What to renew when: pure decisions with the time passed in (unix seconds).
//!
//! A broker certificate is reissued in place (its Secret rewritten; the kubelet refreshes the
//! mounted files and the broker reloads them before its next handshake) when it is missing,
//! its names changed, it is within `renewalDays` of expiry, or it was signed by a CA that is
//! no longer the signing one.
//!
//! A CA is renewed without cutting anyone off, in phases ([`CaPhase`]), each waiting
//! [`Policy::settle_secs`] (long enough for the kubelet to refresh mounted Secrets) after the
//! change before it:
//!
//! 1. **TrustingNewCa**: a new CA signs from now on; the trust bundle holds the new and the
//!    previous CA, so peers and clients that refresh it trust both;
//! 2. **ReissuingCertificates**: once the bundle has settled, certificates signed by the
//!    previous CA are reissued under the new one;
//! 3. **DroppingPreviousCa**: once every certificate is under the new CA and has settled, the
//!    previous CA leaves the bundle.
//!
//! A renewal starts `renewalDays` before the CA expires, or at once when its Secret carries the
//! annotation `weir.dev/force-renew` (the operator removes it). A CA of the user's own
//! (`secretName`) is never renewed: certificates follow it.

use super::pki::CertInfo;
use crate::crd::CaSpec;

const DAY: i64 = 86_400;

/// Validity periods of one CA and the certificates it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub validity_secs: i64,
    pub renew_before_secs: i64,
    /// How long a change to a mounted Secret takes to reach every pod.
    pub settle_secs: i64,
}

/// The kubelet's default sync period (a minute) plus its Secret cache's time to live.
pub const DEFAULT_SETTLE_SECS: i64 = 120;

impl Policy {
    pub fn of(spec: &CaSpec, settle_secs: i64) -> Self {
        Self {
            validity_secs: i64::from(spec.validity_days) * DAY,
            renew_before_secs: i64::from(spec.renewal_days) * DAY,
            settle_secs,
        }
    }
}

/// One CA as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaState {
    /// The CA that signs.
    pub current: CertInfo,
    /// The CA it replaced, still in the trust bundle.
    pub previous: Option<CertInfo>,
    /// When the trust bundle last changed.
    pub trust_changed_at: i64,
    /// A CA of the user's own: never renewed.
    pub user_provided: bool,
    /// Someone asked for a renewal now ([`super::FORCE_RENEW_ANNOTATION`]).
    pub force_renew: bool,
}

/// Where a CA is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaPhase {
    Current,
    TrustingNewCa,
    ReissuingCertificates,
    DroppingPreviousCa,
}

impl CaPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            CaPhase::Current => "Current",
            CaPhase::TrustingNewCa => "TrustingNewCa",
            CaPhase::ReissuingCertificates => "ReissuingCertificates",
            CaPhase::DroppingPreviousCa => "DroppingPreviousCa",
        }
    }
}

/// What to do to a CA now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaAction {
    /// Nothing stored yet: make one.
    Create,
    /// Make a new CA and trust both.
    Renew,
    /// Remove the previous CA from the trust bundle.
    DropPrevious,
    Keep,
}

/// The CA's next action and the phase it is in after it. `leaves` are the certificates the CA
/// should have signed (the brokers', or the users').
pub fn plan_ca(
    state: Option<&CaState>,
    leaves: &[Option<&CertInfo>],
    policy: &Policy,
    now: i64,
) -> (CaAction, CaPhase) {
    let Some(state) = state else {
        return (CaAction::Create, CaPhase::Current);
    };
    if state.user_provided {
        return (CaAction::Keep, CaPhase::Current);
    }
    if state.previous.is_none() {
        let due = now >= state.current.not_after - policy.renew_before_secs;
        return if due || state.force_renew {
            (CaAction::Renew, CaPhase::TrustingNewCa)
        } else {
            (CaAction::Keep, CaPhase::Current)
        };
    }
    if now < state.trust_changed_at + policy.settle_secs {
        return (CaAction::Keep, CaPhase::TrustingNewCa);
    }
    let all_reissued = leaves
        .iter()
        .all(|l| l.is_some_and(|l| l.issued_by(&state.current)));
    let last_issued = leaves
        .iter()
        .flatten()
        .map(|l| issued_at(l))
        .max()
        .unwrap_or(i64::MIN);
    if !all_reissued || now < last_issued.saturating_add(policy.settle_secs) {
        return (CaAction::Keep, CaPhase::ReissuingCertificates);
    }
    (CaAction::DropPrevious, CaPhase::Current)
}

/// When a certificate was made: certificates are back-dated by an hour (see `pki`).
fn issued_at(cert: &CertInfo) -> i64 {
    cert.not_before + 3600
}

/// Why a certificate is (re)issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueReason {
    Missing,
    NamesChanged,
    Expiring,
    NewCa,
}

impl IssueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueReason::Missing => "missing",
            IssueReason::NamesChanged => "its names changed",
            IssueReason::Expiring => "it expires soon",
            IssueReason::NewCa => "a new CA signs",
        }
    }
}

/// Whether to issue a certificate with `names` now, and why. While the trust in a renewed CA
/// settles, existing certificates are kept (peers may not trust the new CA yet); only a
/// missing certificate or one with other names is issued at once.
pub fn plan_leaf(
    leaf: Option<&CertInfo>,
    names: &[String],
    ca: &CaState,
    policy: &Policy,
    now: i64,
) -> Option<IssueReason> {
    let Some(leaf) = leaf else {
        return Some(IssueReason::Missing);
    };
    let mut have = leaf.names.clone();
    let mut want = names.to_vec();
    have.sort();
    want.sort();
    if have != want {
        return Some(IssueReason::NamesChanged);
    }
    // While the trust in a renewed CA settles, a certificate signed by the new one could be
    // refused by peers and clients: everything else waits (an expiring certificate still has
    // `renewalDays` left, far longer than the settling).
    let settling =
        ca.previous.is_some() && now < ca.trust_changed_at.saturating_add(policy.settle_secs);
    if settling {
        return None;
    }
    if !leaf.issued_by(&ca.current) {
        return Some(IssueReason::NewCa);
    }
    (now >= leaf.not_after - policy.renew_before_secs).then_some(IssueReason::Expiring)
}

/// The earliest moment any of these plans could change: the reconciler comes back then at
/// the latest.
pub fn next_check(ca: &CaState, leaves: &[Option<&CertInfo>], policy: &Policy) -> i64 {
    let renewals = std::iter::once(&ca.current)
        .chain(leaves.iter().flatten().copied())
        .map(|c| c.not_after - policy.renew_before_secs);
    let settles = [
        Some(ca.trust_changed_at + policy.settle_secs),
        leaves
            .iter()
            .flatten()
            .map(|l| issued_at(l) + policy.settle_secs)
            .max(),
    ];
    renewals
        .chain(settles.into_iter().flatten())
        .min()
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::pki::{inspect, issue, new_ca, KeyedCert, LeafKind};

    const NOW: i64 = 1_800_000_000;

    fn policy() -> Policy {
        Policy::of(&CaSpec::default(), DEFAULT_SETTLE_SECS)
    }

    fn names() -> Vec<String> {
        vec!["events-0.events-brokers.prod.svc.cluster.local".into()]
    }

    fn ca(at: i64) -> (KeyedCert, CertInfo) {
        let ca = new_ca("events cluster CA", at, policy().validity_secs).unwrap();
        let info = inspect(&ca.cert_pem, "ca").unwrap();
        (ca, info)
    }

    fn leaf(ca: &(KeyedCert, CertInfo), at: i64, names: Vec<String>) -> CertInfo {
        let pem = issue(
            &ca.0,
            ca.1.not_after,
            "events-0",
            &LeafKind::Broker { names },
            at,
            policy().validity_secs,
        )
        .unwrap();
        inspect(&pem.cert_pem, "leaf").unwrap()
    }

    fn state(current: &CertInfo, previous: Option<&CertInfo>, changed: i64) -> CaState {
        CaState {
            current: current.clone(),
            previous: previous.cloned(),
            trust_changed_at: changed,
            user_provided: false,
            force_renew: false,
        }
    }

    #[test]
    fn a_fresh_cluster_gets_a_ca_and_certificates() {
        assert_eq!(
            plan_ca(None, &[], &policy(), NOW),
            (CaAction::Create, CaPhase::Current)
        );
        let ca = ca(NOW);
        let s = state(&ca.1, None, NOW);
        assert_eq!(
            plan_leaf(None, &names(), &s, &policy(), NOW),
            Some(IssueReason::Missing)
        );
    }

    #[test]
    fn broker_certificates_are_renewed_before_expiry_and_not_before() {
        let ca = ca(NOW);
        let s = state(&ca.1, None, NOW);
        let l = leaf(&ca, NOW, names());
        let p = policy();
        let renew_at = l.not_after - p.renew_before_secs;
        assert_eq!(plan_leaf(Some(&l), &names(), &s, &p, renew_at - 1), None);
        assert_eq!(
            plan_leaf(Some(&l), &names(), &s, &p, renew_at),
            Some(IssueReason::Expiring)
        );
        let mut more = names();
        more.push("localhost".into());
        assert_eq!(
            plan_leaf(Some(&l), &more, &s, &p, NOW),
            Some(IssueReason::NamesChanged)
        );
        assert_eq!(next_check(&s, &[Some(&l)], &p), NOW + p.settle_secs);
    }

    #[test]
    fn a_ca_renewal_trusts_first_reissues_then_drops_the_previous_ca() {
        let p = policy();
        let old = ca(NOW);
        let l_old = leaf(&old, NOW, names());
        let renew_at = old.1.not_after - p.renew_before_secs;
        let steady = state(&old.1, None, NOW);
        assert_eq!(
            plan_ca(Some(&steady), &[Some(&l_old)], &p, renew_at - 1),
            (CaAction::Keep, CaPhase::Current)
        );
        assert_eq!(
            plan_ca(Some(&steady), &[Some(&l_old)], &p, renew_at),
            (CaAction::Renew, CaPhase::TrustingNewCa)
        );
        let forced = CaState {
            force_renew: true,
            ..steady.clone()
        };
        assert_eq!(
            plan_ca(Some(&forced), &[Some(&l_old)], &p, NOW),
            (CaAction::Renew, CaPhase::TrustingNewCa)
        );

        // Phase 1: both trusted; the old CA's certificates stay until the bundle settles.
        let t = renew_at;
        let new = ca(t);
        let renewing = state(&new.1, Some(&old.1), t);
        assert_eq!(
            plan_ca(Some(&renewing), &[Some(&l_old)], &p, t + 1),
            (CaAction::Keep, CaPhase::TrustingNewCa)
        );
        assert_eq!(
            plan_leaf(Some(&l_old), &names(), &renewing, &p, t + 1),
            None
        );

        // Phase 2: reissue under the new CA.
        let t2 = t + p.settle_secs;
        assert_eq!(
            plan_leaf(Some(&l_old), &names(), &renewing, &p, t2),
            Some(IssueReason::NewCa)
        );
        assert_eq!(
            plan_ca(Some(&renewing), &[Some(&l_old)], &p, t2),
            (CaAction::Keep, CaPhase::ReissuingCertificates)
        );
        let l_new = leaf(&new, t2, names());
        assert_eq!(plan_leaf(Some(&l_new), &names(), &renewing, &p, t2), None);
        assert_eq!(
            plan_ca(Some(&renewing), &[Some(&l_new)], &p, t2 + 1),
            (CaAction::Keep, CaPhase::ReissuingCertificates)
        );

        // Phase 3: once the new certificates have reached the pods, the old CA goes.
        assert_eq!(
            plan_ca(Some(&renewing), &[Some(&l_new)], &p, t2 + p.settle_secs),
            (CaAction::DropPrevious, CaPhase::Current)
        );
        // A missing certificate holds the old CA in the bundle.
        assert_eq!(
            plan_ca(
                Some(&renewing),
                &[Some(&l_new), None],
                &p,
                t2 + p.settle_secs
            ),
            (CaAction::Keep, CaPhase::ReissuingCertificates)
        );
    }

    #[test]
    fn a_users_ca_is_never_renewed_and_a_foreign_certificate_is_replaced() {
        let p = policy();
        let users = ca(NOW);
        let mut s = state(&users.1, None, NOW);
        s.user_provided = true;
        assert_eq!(
            plan_ca(Some(&s), &[], &p, users.1.not_after),
            (CaAction::Keep, CaPhase::Current)
        );
        let other = ca(NOW + 5);
        let foreign = leaf(&other, NOW, names());
        assert_eq!(
            plan_leaf(Some(&foreign), &names(), &s, &p, NOW),
            Some(IssueReason::NewCa)
        );
    }
}
