//! The `Cluster` status: broker entries and conditions from what one reconcile observed and
//! did. Returns whether the cluster is busy (so the reconciler comes back soon).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use weir_api::proto::admin as pb;

use super::plan::{AdminView, PodView};
use crate::context::Context;
use crate::crd::condition::{merge, types, Desired};
use crate::crd::{BrokerStatus, CaStatus, CertificatesStatus, Cluster, ClusterStatus};
use crate::error::Error;
use crate::names::{ClusterNames, FIELD_MANAGER};
use crate::tls::renewal::CaPhase;
use crate::tls::{CaReport, TlsOutcome};

/// What the reconcile is doing or could not do, for the conditions.
#[derive(Debug, Default)]
pub struct Progress {
    /// The spec is invalid in a way the schema could not catch.
    pub invalid: Option<String>,
    /// The admin API did not answer.
    pub admin_error: Option<String>,
    pub scale_down_blocked: Option<String>,
    pub storage_refused: Option<String>,
    /// Scaling, draining, rebalancing: one line each.
    pub working: Vec<String>,
    /// A rolling restart is under way (or waiting): why.
    pub rolling: Option<String>,
    /// A change of the metadata quorum's voters is under way (or waiting): the `Progressing`
    /// reason (`GrowingQuorum`, `ReplacingVoter`) and why.
    pub quorum: Option<(&'static str, String)>,
    /// With TLS listeners: the CAs and broker certificates after this reconcile.
    pub certificates: Option<TlsOutcome>,
}

/// RFC 3339 of unix seconds.
pub fn rfc3339(unix: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn ca_status(ca: &CaReport) -> CaStatus {
    CaStatus {
        phase: ca.phase.as_str().into(),
        not_after: ca.not_after.map(rfc3339).unwrap_or_default(),
        user_provided: ca.user_provided,
    }
}

/// The `CertificateAuthoritiesValid` condition: false while a CA Secret of the user's is
/// missing or holds no usable CA (the operator then issues nothing with it).
pub fn ca_secrets(tls: &TlsOutcome) -> Desired {
    let problems: Vec<(&str, String)> = tls
        .problems()
        .map(|(which, p)| (which, format!("{which}: {p}")))
        .collect();
    match problems.first() {
        None => Desired::new(
            types::CERTIFICATE_AUTHORITIES_VALID,
            true,
            "Valid",
            "the cluster CA and the clients CA can sign",
        ),
        Some((which, _)) => {
            let first = tls.problems().next().map_or("", |(_, p)| p.reason());
            let mut message: Vec<String> = problems.iter().map(|(_, m)| m.clone()).collect();
            if tls.blocked {
                message.push("the brokers cannot start without their certificates".into());
            } else {
                message.push("the certificates issued before stay in place".into());
            }
            Desired::new(
                types::CERTIFICATE_AUTHORITIES_VALID,
                false,
                format!("{which}{first}"),
                message.join("; "),
            )
        }
    }
}

/// The status's certificates entry and the `CertificatesRenewing` condition.
pub fn certificates(tls: &TlsOutcome) -> (CertificatesStatus, Desired) {
    let entry = CertificatesStatus {
        cluster_ca: ca_status(&tls.cluster_ca),
        clients_ca: ca_status(&tls.clients_ca),
        brokers_not_after: tls.brokers_not_after.map(rfc3339),
    };
    let until = |t: &str| {
        if t.is_empty() {
            "unknown".to_string()
        } else {
            t.to_string()
        }
    };
    let mut message = format!(
        "cluster CA valid until {}, clients CA until {}",
        until(&entry.cluster_ca.not_after),
        until(&entry.clients_ca.not_after)
    );
    if let Some(b) = &entry.brokers_not_after {
        message.push_str(&format!(", broker certificates until {b}"));
    }
    if !tls.issued.is_empty() {
        let issued: Vec<String> = tls
            .issued
            .iter()
            .map(|(p, why)| format!("{p} ({why})"))
            .collect();
        message.push_str(&format!("; issued certificates for {}", issued.join(", ")));
    }
    let renewing = [
        ("ClusterCa", &tls.cluster_ca),
        ("ClientsCa", &tls.clients_ca),
    ]
    .into_iter()
    .find(|(_, ca)| ca.phase != CaPhase::Current);
    let condition = match renewing {
        Some((which, ca)) => Desired::new(
            types::CERTIFICATES_RENEWING,
            true,
            format!("{which}{}", ca.phase.as_str()),
            message,
        ),
        None => Desired::new(types::CERTIFICATES_RENEWING, false, "Current", message),
    };
    (entry, condition)
}

pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

pub fn now_string() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn state_name(state: pb::BrokerState) -> &'static str {
    match state {
        pb::BrokerState::Active => "Active",
        pb::BrokerState::Fenced => "Fenced",
        pb::BrokerState::Draining => "Draining",
        pb::BrokerState::Unregistered => "Unregistered",
        pb::BrokerState::Unspecified => "Unknown",
    }
}

/// One entry per pod or registered broker, by id.
pub fn broker_entries(
    names: &ClusterNames,
    pods: &[PodView],
    view: Option<&AdminView>,
) -> Vec<BrokerStatus> {
    let mut ids: Vec<i32> = pods.iter().map(|p| p.ordinal).collect();
    if let Some(v) = view {
        ids.extend(v.brokers.iter().map(|b| b.id));
    }
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let pod = pods.iter().find(|p| p.ordinal == id);
            let broker = view.and_then(|v| v.broker(id));
            BrokerStatus {
                id,
                pod: pod.map(|_| names.pod(id)),
                rack: broker.and_then(|b| b.rack.clone()),
                ready: pod.is_some_and(|p| p.ready),
                state: broker
                    .map_or("Unknown", |b| state_name(b.state))
                    .to_string(),
                replicas: broker.map_or(0, |b| i32::try_from(b.replicas).unwrap_or(i32::MAX)),
                leaders: broker.map_or(0, |b| i32::try_from(b.leaders).unwrap_or(i32::MAX)),
            }
        })
        .collect()
}

/// The conditions, and whether anything is in progress.
pub fn conditions(
    spec_replicas: i32,
    status: &ClusterStatus,
    progress: &Progress,
    view: Option<&AdminView>,
) -> (Vec<Desired>, bool) {
    let mut out = Vec::new();
    let ready_brokers = status
        .brokers
        .iter()
        .filter(|b| b.id < spec_replicas && b.ready && b.state == "Active")
        .count() as i32;
    let busy =
        !progress.working.is_empty() || progress.rolling.is_some() || progress.quorum.is_some();
    let (ready, reason, message) = if let Some(why) = &progress.invalid {
        (false, "InvalidSpec", why.clone())
    } else if ready_brokers < spec_replicas {
        let why = progress
            .admin_error
            .clone()
            .map(|e| format!("; {e}"))
            .unwrap_or_default();
        (
            false,
            "BrokersNotReady",
            format!("{ready_brokers} of {spec_replicas} brokers ready and active{why}"),
        )
    } else if view.is_some_and(|v| v.offline > 0) {
        (
            false,
            "OfflinePartitions",
            "some partitions have no leader".into(),
        )
    } else {
        (true, "Ready", format!("{spec_replicas} brokers ready"))
    };
    out.push(Desired::new(types::READY, ready, reason, message));

    let (progressing, reason, message) = if let Some(why) = &progress.rolling {
        (true, "RollingRestart", why.clone())
    } else if let Some((reason, why)) = &progress.quorum {
        (true, *reason, why.clone())
    } else if let Some(first) = progress.working.first() {
        let reason = if first.starts_with("draining") {
            "Draining"
        } else if first.starts_with("rebalancing") || first.contains("moving") {
            "Rebalancing"
        } else {
            "Scaling"
        };
        (true, reason, progress.working.join("; "))
    } else if !ready && progress.invalid.is_none() {
        (true, "Starting", "waiting for brokers".to_string())
    } else {
        (false, "Stable", "nothing in progress".to_string())
    };
    out.push(Desired::new(
        types::PROGRESSING,
        progressing,
        reason,
        message,
    ));

    let fenced: Vec<String> = status
        .brokers
        .iter()
        .filter(|b| b.id < spec_replicas && b.state == "Fenced")
        .map(|b| b.id.to_string())
        .collect();
    let (degraded, reason, message) = match view {
        Some(v) if v.offline > 0 => (
            true,
            "OfflinePartitions",
            format!("{} partitions have no leader", v.offline),
        ),
        Some(v) if v.under_replicated > 0 => (
            true,
            "UnderReplicated",
            format!("{} partitions are under-replicated", v.under_replicated),
        ),
        _ if !fenced.is_empty() => (
            true,
            "BrokersDown",
            format!("brokers {} are fenced", fenced.join(", ")),
        ),
        _ => (
            false,
            "Healthy",
            "every partition fully replicated".to_string(),
        ),
    };
    out.push(Desired::new(types::DEGRADED, degraded, reason, message));

    out.push(match &progress.scale_down_blocked {
        Some(why) => Desired::new(
            types::SCALE_DOWN_BLOCKED,
            true,
            "WouldLoseData",
            why.clone(),
        ),
        None => Desired::new(types::SCALE_DOWN_BLOCKED, false, "NotBlocked", ""),
    });
    out.push(match &progress.storage_refused {
        Some(why) => Desired::new(
            types::STORAGE_RESIZE_REFUSED,
            true,
            "ShrinkNotSupported",
            why.clone(),
        ),
        None => Desired::new(types::STORAGE_RESIZE_REFUSED, false, "NotRefused", ""),
    });
    let renewing = progress.certificates.as_ref().is_some_and(|t| t.renewing());
    if let Some(tls) = &progress.certificates {
        out.push(certificates(tls).1);
        out.push(ca_secrets(tls));
    }
    (out, busy || !ready || renewing)
}

/// Writes the status (server-side apply of the status subresource). Returns whether the
/// cluster is busy.
pub async fn write(
    ctx: &Context,
    cluster: &Cluster,
    names: &ClusterNames,
    mut status: ClusterStatus,
    progress: &Progress,
    pods: &[PodView],
    view: Option<&AdminView>,
) -> Result<bool, Error> {
    status.observed_generation = cluster.metadata.generation;
    status.ready_replicas = pods.iter().filter(|p| p.ready).count() as i32;
    status.brokers = broker_entries(names, pods, view);
    if let Some(v) = view {
        status.controller_id = v.controller;
        status.cluster_id = Some(v.cluster_id.clone()).filter(|c| !c.is_empty());
        status.under_replicated_partitions = i32::try_from(v.under_replicated).unwrap_or(i32::MAX);
        status.offline_partitions = i32::try_from(v.offline).unwrap_or(i32::MAX);
    }
    status.certificates = progress.certificates.as_ref().map(|t| certificates(t).0);
    let (desired, busy) = conditions(cluster.spec.replicas, &status, progress, view);
    status.conditions = merge(
        &status.conditions,
        desired,
        cluster.metadata.generation,
        &now(),
    );
    ctx.metrics.observe_cluster(names, &status);
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let patch = serde_json::json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "Cluster",
        "status": status,
    });
    api.patch_status(
        &names.cluster,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(busy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::CaSecretProblem;

    fn outcome(cluster_phase: CaPhase) -> TlsOutcome {
        TlsOutcome {
            cluster_ca: CaReport {
                phase: cluster_phase,
                not_after: Some(1_800_000_000),
                user_provided: false,
                problem: None,
            },
            clients_ca: CaReport {
                phase: CaPhase::Current,
                not_after: Some(1_800_086_400),
                user_provided: true,
                problem: None,
            },
            brokers_not_after: Some(1_799_000_000),
            issued: vec![("events-0".into(), "a new CA signs")],
            next_check: 0,
            blocked: false,
        }
    }

    #[test]
    fn certificates_report_each_phase_and_the_expiry_dates() {
        let (entry, condition) = certificates(&outcome(CaPhase::ReissuingCertificates));
        assert_eq!(entry.cluster_ca.phase, "ReissuingCertificates");
        assert_eq!(entry.cluster_ca.not_after, "2027-01-15T08:00:00Z");
        assert!(entry.clients_ca.user_provided);
        assert_eq!(
            entry.brokers_not_after.as_deref(),
            Some("2027-01-03T18:13:20Z")
        );
        assert!(condition.status);
        assert_eq!(condition.type_, types::CERTIFICATES_RENEWING);
        assert_eq!(condition.reason, "ClusterCaReissuingCertificates");
        assert!(condition
            .message
            .contains("cluster CA valid until 2027-01-15T08:00:00Z"));
        assert!(condition.message.contains("events-0 (a new CA signs)"));

        let (_, steady) = certificates(&outcome(CaPhase::Current));
        assert!(!steady.status);
        assert_eq!(steady.reason, "Current");
        assert!(!outcome(CaPhase::Current).renewing());
        assert!(outcome(CaPhase::TrustingNewCa).renewing());
    }

    #[test]
    fn an_unusable_ca_secret_of_the_users_is_a_false_condition_naming_it() {
        let valid = ca_secrets(&outcome(CaPhase::Current));
        assert!(valid.status);
        assert_eq!(valid.reason, "Valid");

        let mut broken = outcome(CaPhase::Current);
        broken.clients_ca.problem = Some(CaSecretProblem::Missing("my-ca".into()));
        broken.clients_ca.not_after = None;
        let condition = ca_secrets(&broken);
        assert!(!condition.status);
        assert_eq!(condition.type_, types::CERTIFICATE_AUTHORITIES_VALID);
        assert_eq!(condition.reason, "ClientsCaSecretMissing");
        assert!(
            condition
                .message
                .contains("the CA Secret my-ca does not exist")
                && condition.message.contains("stay in place"),
            "{}",
            condition.message
        );
        let (entry, renewing) = certificates(&broken);
        assert_eq!(entry.clients_ca.not_after, "");
        assert!(renewing.message.contains("clients CA until unknown"));

        broken.blocked = true;
        broken.cluster_ca.problem = Some(CaSecretProblem::Unusable {
            secret: "root".into(),
            error: crate::tls::pki::CaCheckError::NotCa,
        });
        let condition = ca_secrets(&broken);
        assert_eq!(condition.reason, "ClusterCaSecretInvalid");
        assert!(condition.message.contains("is not a CA"));
        assert!(condition.message.contains("cannot start"));
    }
}
