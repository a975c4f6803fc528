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
//! annotation `weir.dev/force-renew` (the operator removes it).
//!
//! A CA of the user's own (`secretName`, which cert-manager may renew) is never renewed by the
//! operator; when its content changes the same phases run, started by the new CA not being in
//! the trust bundle yet ([`CaState::trusted`], [`CaAction::Trust`]): trust the new one beside
//! the ones trusted so far, reissue, drop the others.

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
    /// The CAs it replaced, still in the trust bundle (one at most for the operator's own).
    pub previous: Vec<CertInfo>,
    /// The CA (with the certificates that make it trusted) is in the trust bundle. Always for
    /// the operator's own CA, which is written together with its bundle; a CA of the user's
    /// own is not until the operator has added it.
    pub trusted: bool,
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
    /// A CA of the user's own that the bundle lacks: put it first in the bundle, keeping the
    /// CAs trusted so far.
    Trust,
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
    if !state.trusted {
        // Nothing trusted before it (a new cluster): nothing to wait for.
        let phase = if state.previous.is_empty() {
            CaPhase::Current
        } else {
            CaPhase::TrustingNewCa
        };
        return (CaAction::Trust, phase);
    }
    if state.previous.is_empty() {
        if state.user_provided {
            return (CaAction::Keep, CaPhase::Current);
        }
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
    let settling = (!ca.previous.is_empty() || !ca.trusted)
        && now < ca.trust_changed_at.saturating_add(policy.settle_secs);
    if settling || !ca.trusted {
        return None;
    }
    if !leaf.issued_by(&ca.current) {
        return Some(IssueReason::NewCa);
    }
    (renewable(leaf, ca) && now >= leaf.not_after - policy.renew_before_secs)
        .then_some(IssueReason::Expiring)
}

/// Whether a new certificate would outlive `leaf`: not when `leaf` already lasts as long as a
/// CA of the user's own that is close to its end (reissuing would change nothing; the
/// operator's own CA is renewed first).
fn renewable(leaf: &CertInfo, ca: &CaState) -> bool {
    !ca.user_provided || leaf.not_after < ca.current.not_after
}

/// The earliest moment any of these plans could change: the reconciler comes back then at
/// the latest.
pub fn next_check(ca: &CaState, leaves: &[Option<&CertInfo>], policy: &Policy) -> i64 {
    // The user renews a CA of their own (a change to its Secret brings the reconciler back).
    let ca_renewal = (!ca.user_provided).then_some(&ca.current);
    let renewals = ca_renewal
        .into_iter()
        .chain(
            leaves
                .iter()
                .flatten()
                .copied()
                .filter(|l| renewable(l, ca)),
        )
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
            previous: previous.into_iter().cloned().collect(),
            trusted: true,
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
        // The user's CA's own expiry brings nobody back.
        assert_eq!(next_check(&s, &[], &p), NOW + p.settle_secs);
    }

    #[test]
    fn a_users_new_ca_is_trusted_beside_the_old_before_it_signs() {
        let p = policy();
        let old = ca(NOW);
        let l_old = leaf(&old, NOW, names());
        // A new cluster: the user's CA is trusted at once, nothing to wait for.
        let fresh = CaState {
            trusted: false,
            user_provided: true,
            ..state(&old.1, None, 0)
        };
        assert_eq!(
            plan_ca(Some(&fresh), &[], &p, NOW),
            (CaAction::Trust, CaPhase::Current)
        );

        // cert-manager renewed it (a new key): the bundle holds the old one only.
        let t = NOW + 1000;
        let new = ca(t);
        let changed = CaState {
            trusted: false,
            user_provided: true,
            ..state(&new.1, Some(&old.1), NOW)
        };
        assert_eq!(
            plan_ca(Some(&changed), &[Some(&l_old)], &p, t),
            (CaAction::Trust, CaPhase::TrustingNewCa)
        );
        // Nothing is reissued with a CA not yet trusted.
        assert_eq!(plan_leaf(Some(&l_old), &names(), &changed, &p, t), None);

        // Trusted at t: then the same phases as the operator's own renewal.
        let trusting = CaState {
            trusted: true,
            ..changed.clone()
        };
        let trusting = CaState {
            trust_changed_at: t,
            ..trusting
        };
        assert_eq!(
            plan_ca(Some(&trusting), &[Some(&l_old)], &p, t + 1),
            (CaAction::Keep, CaPhase::TrustingNewCa)
        );
        assert_eq!(
            plan_leaf(Some(&l_old), &names(), &trusting, &p, t + 1),
            None
        );
        let t2 = t + p.settle_secs;
        assert_eq!(
            plan_leaf(Some(&l_old), &names(), &trusting, &p, t2),
            Some(IssueReason::NewCa)
        );
        let l_new = leaf(&new, t2, names());
        assert_eq!(
            plan_ca(Some(&trusting), &[Some(&l_new)], &p, t2 + 1),
            (CaAction::Keep, CaPhase::ReissuingCertificates)
        );
        assert_eq!(
            plan_ca(Some(&trusting), &[Some(&l_new)], &p, t2 + p.settle_secs),
            (CaAction::DropPrevious, CaPhase::Current)
        );

        // Replaced again mid-way: both earlier CAs stay trusted beside the newest.
        let newest = ca(t2 + 5);
        let twice = CaState {
            previous: vec![new.1.clone(), old.1.clone()],
            trusted: false,
            ..state(&newest.1, None, t)
        };
        let twice = CaState {
            user_provided: true,
            ..twice
        };
        assert_eq!(
            plan_ca(Some(&twice), &[Some(&l_old)], &p, t2 + 5),
            (CaAction::Trust, CaPhase::TrustingNewCa)
        );
    }

    #[test]
    fn a_certificate_as_old_as_its_users_ca_is_not_reissued_in_a_loop() {
        let p = policy();
        // A CA of the user's with ten days left, less than renewalDays.
        let short = new_ca("short", NOW, 10 * 86_400).unwrap();
        let info = inspect(&short.cert_pem, "ca").unwrap();
        let made = issue(
            &short,
            info.not_after,
            "events-0",
            &LeafKind::Broker { names: names() },
            NOW,
            p.validity_secs,
        )
        .unwrap();
        let l = inspect(&made.cert_pem, "leaf").unwrap();
        assert_eq!(l.not_after, info.not_after);
        let s = CaState {
            user_provided: true,
            ..state(&info, None, NOW)
        };
        assert_eq!(plan_leaf(Some(&l), &names(), &s, &p, NOW + 60), None);
        assert_eq!(next_check(&s, &[Some(&l)], &p), NOW + p.settle_secs);
    }
}
