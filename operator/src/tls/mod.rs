//! The certificates of a `Cluster` with TLS listeners: the cluster CA (signs the brokers'
//! certificates; clients trust it), the clients CA (signs `User` certificates; brokers trust
//! it), and one certificate per broker.
//!
//! Stored in Secrets owned by the `Cluster`:
//!
//! - `<cluster>-cluster-ca`, `<cluster>-clients-ca`: `ca.crt`, `ca.key`, and while a renewal
//!   runs `ca-previous.crt`; the annotation [`TRUST_CHANGED_ANNOTATION`] records when the trust
//!   bundle last changed;
//! - `<cluster>-cluster-ca-cert`, `<cluster>-clients-ca-cert`: the trust bundles (`ca.crt`,
//!   current then previous CA), what clients and brokers mount;
//! - `<cluster>-broker-certs`: `<pod>.pem` (key, certificate, CA certificate: the broker's
//!   `ssl.keystore.location`) and `<pod>.crt` for every broker.
//!
//! A CA of the user's own (`spec.certificates.*.secretName`) is read from that Secret and never
//! written: either cert-manager's shape (`tls.crt`, the CA with any chain above it, `tls.key`,
//! and `ca.crt`, the root that clients trust too) or `ca.crt` and `ca.key`. The operator keeps
//! what it trusted so far in the bundle Secret (with [`TRUST_CHANGED_ANNOTATION`] on it), so
//! when the Secret's content changes (cert-manager renewed the CA, or the user replaced it) the
//! new CA is trusted beside the old before anything is reissued with it. A Secret that is
//! missing or does not hold a usable CA is a [`CaSecretProblem`], reported in the status.
//!
//! [`pki`] makes and reads certificates, `provided` reads and checks a CA of the user's,
//! [`renewal`] decides what to renew when (all pure, time passed in); [`reconcile`] reads the
//! Secrets, follows those decisions and writes them back.

pub mod pki;
mod provided;
pub mod renewal;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams};
use kube::Api;

use crate::build::{owned_meta, BuildInput};
use crate::cluster::apply_object;
use crate::crd::CaSpec;
use crate::error::Error;
use crate::names::{ClusterNames, CA_CERT_KEY, CA_KEY_KEY};
use pki::{inspect, issue, new_ca, CertInfo, KeyedCert, LeafKind, PkiError};
use provided::users_ca;
pub use provided::{CaSecretProblem, TLS_CERT_KEY, TLS_KEY_KEY};
use renewal::{next_check, plan_ca, plan_leaf, CaAction, CaPhase, CaState, Policy};

/// Annotation of an operator-made CA Secret, or of the trust bundle of a CA of the user's own:
/// when its trust bundle last changed (unix seconds).
pub const TRUST_CHANGED_ANNOTATION: &str = "weir.dev/trust-changed-at";
/// Annotation on an operator-made CA Secret asking for its renewal now (any value); removed
/// once the renewal starts.
pub const FORCE_RENEW_ANNOTATION: &str = "weir.dev/force-renew";
/// Key of the previous CA's certificate while a renewal runs.
pub const PREVIOUS_CA_KEY: &str = "ca-previous.crt";

impl From<PkiError> for Error {
    fn from(e: PkiError) -> Self {
        Error::Certificate(e.to_string())
    }
}

/// One CA as the status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaReport {
    pub phase: CaPhase,
    /// When the signing CA expires; unknown when its Secret is unusable.
    pub not_after: Option<i64>,
    pub user_provided: bool,
    pub problem: Option<CaSecretProblem>,
}

/// What [`reconcile`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOutcome {
    pub cluster_ca: CaReport,
    pub clients_ca: CaReport,
    /// The earliest expiry of a broker certificate.
    pub brokers_not_after: Option<i64>,
    /// Broker pods whose certificate was (re)issued now, with why.
    pub issued: Vec<(String, &'static str)>,
    /// When the plans may change next (unix seconds).
    pub next_check: i64,
    /// A Secret the brokers mount could not be made (an unusable CA of the user's on a cluster
    /// that has none yet): the brokers cannot start.
    pub blocked: bool,
}

impl TlsOutcome {
    /// A CA renewal is under way.
    pub fn renewing(&self) -> bool {
        self.cluster_ca.phase != CaPhase::Current || self.clients_ca.phase != CaPhase::Current
    }

    /// The CA Secrets that cannot be used, with which CA they are for.
    pub fn problems(&self) -> impl Iterator<Item = (&'static str, &CaSecretProblem)> {
        [
            ("ClusterCa", &self.cluster_ca),
            ("ClientsCa", &self.clients_ca),
        ]
        .into_iter()
        .filter_map(|(which, ca)| Some((which, ca.problem.as_ref()?)))
    }
}

/// Which of the two CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Cluster,
    Clients,
}

impl Role {
    fn secret(self, names: &ClusterNames) -> String {
        match self {
            Role::Cluster => names.cluster_ca(),
            Role::Clients => names.clients_ca(),
        }
    }
    fn bundle(self, names: &ClusterNames) -> String {
        match self {
            Role::Cluster => names.cluster_ca_cert(),
            Role::Clients => names.clients_ca_cert(),
        }
    }
    fn common_name(self, names: &ClusterNames) -> String {
        let role = match self {
            Role::Cluster => "cluster",
            Role::Clients => "clients",
        };
        format!("{}.{} {role} CA", names.cluster, names.namespace)
    }
}

/// A CA with its key and its state.
struct LoadedCa {
    /// The signing certificate alone, and its key.
    keyed: KeyedCert,
    /// The signing certificate and any chain above it, as sent after a broker's certificate.
    chain_pem: String,
    /// The certificates that make this CA trusted, the signing one first (a CA of the user's
    /// may add the root above it).
    trust_pems: Vec<String>,
    /// The previous CAs' certificates, in the bundle until the renewal ends.
    previous_pems: Vec<String>,
    state: CaState,
}

impl LoadedCa {
    fn bundle(&self, with_previous: bool) -> String {
        let previous = if with_previous {
            self.previous_pems.as_slice()
        } else {
            &[]
        };
        self.trust_pems.iter().chain(previous).cloned().collect()
    }
}

/// What is stored for one CA.
enum Stored {
    /// The operator has not made its own CA yet.
    Absent,
    Ca(Box<LoadedCa>),
    /// The user's Secret cannot be used.
    Broken(CaSecretProblem),
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

fn data(entries: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, ByteString> {
    entries
        .into_iter()
        .map(|(k, v)| (k, ByteString(v.into_bytes())))
        .collect()
}

fn secret(meta: ObjectMeta, entries: BTreeMap<String, ByteString>) -> Secret {
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        data: Some(entries),
        ..Secret::default()
    }
}

fn trust_changed_at(secret: &Secret) -> i64 {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TRUST_CHANGED_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Reads one CA: the user's Secret when the spec names one, else the operator's.
async fn load_ca(
    secrets: &Api<Secret>,
    names: &ClusterNames,
    role: Role,
    spec: &CaSpec,
    now: i64,
) -> Result<Stored, Error> {
    if let Some(name) = &spec.secret_name {
        return load_users_ca(secrets, names, role, name, now).await;
    }
    let name = role.secret(names);
    let Some(stored) = secrets.get_opt(&name).await? else {
        return Ok(Stored::Absent);
    };
    let (Some(cert_pem), Some(key_pem)) = (text(&stored, CA_CERT_KEY), text(&stored, CA_KEY_KEY))
    else {
        return Err(Error::Certificate(format!(
            "the CA Secret {name} lacks {CA_CERT_KEY} or {CA_KEY_KEY}"
        )));
    };
    let current = inspect(&cert_pem, &format!("{name}/{CA_CERT_KEY}"))?;
    let mut previous = Vec::new();
    let mut previous_pems = Vec::new();
    if let Some(pem) = text(&stored, PREVIOUS_CA_KEY) {
        previous.push(inspect(&pem, &format!("{name}/{PREVIOUS_CA_KEY}"))?);
        previous_pems.push(pem);
    }
    let force_renew = stored
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(FORCE_RENEW_ANNOTATION));
    Ok(Stored::Ca(Box::new(LoadedCa {
        chain_pem: cert_pem.clone(),
        trust_pems: vec![cert_pem.clone()],
        previous_pems,
        keyed: KeyedCert { cert_pem, key_pem },
        state: CaState {
            current,
            previous,
            trusted: true,
            trust_changed_at: trust_changed_at(&stored),
            user_provided: false,
            force_renew,
        },
    })))
}

/// Reads a CA of the user's own from the Secret `name` and what the operator trusts so far
/// from the CA's bundle Secret.
async fn load_users_ca(
    secrets: &Api<Secret>,
    names: &ClusterNames,
    role: Role,
    name: &str,
    now: i64,
) -> Result<Stored, Error> {
    let Some(stored) = secrets.get_opt(name).await? else {
        return Ok(Stored::Broken(CaSecretProblem::Missing(name.into())));
    };
    let bundle = secrets.get_opt(&role.bundle(names)).await?;
    Ok(match users_ca(name, &stored, bundle.as_ref(), now) {
        Ok(ca) => Stored::Ca(Box::new(ca)),
        Err(problem) => Stored::Broken(problem),
    })
}

/// A CA the `User` and admin controllers sign with: key, certificate and what it says of
/// itself, and when its trust bundle last changed (unix seconds; certificates of a new CA wait
/// for the bundle to reach every broker).
pub type SigningCa = (KeyedCert, CertInfo, i64);

async fn signing_ca(
    secrets: &Api<Secret>,
    cluster: &crate::crd::Cluster,
    role: Role,
) -> Result<Option<SigningCa>, Error> {
    let names = ClusterNames::of(cluster);
    let certs = cluster.spec.certificates.clone().unwrap_or_default();
    let spec = match role {
        Role::Cluster => &certs.cluster_ca,
        Role::Clients => &certs.clients_ca,
    };
    match load_ca(secrets, &names, role, spec, unix_now()).await? {
        Stored::Absent => Ok(None),
        Stored::Broken(problem) => Err(Error::Certificate(problem.to_string())),
        Stored::Ca(ca) => {
            // A new CA of the user's that the cluster's reconcile has not put in the bundle
            // yet is as good as trusted from now on: certificates wait before they follow it.
            let changed_at = if ca.state.trusted {
                ca.state.trust_changed_at
            } else {
                unix_now()
            };
            Ok(Some((ca.keyed, ca.state.current, changed_at)))
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The current clients CA of a cluster, which signs `User` certificates. `None` until the
/// cluster's reconcile has made (or trusted) it.
pub async fn clients_ca(
    secrets: &Api<Secret>,
    cluster: &crate::crd::Cluster,
) -> Result<Option<SigningCa>, Error> {
    signing_ca(secrets, cluster, Role::Clients).await
}

/// The current cluster CA of a cluster, which signs the brokers' certificates and the
/// operator's own client certificate. `None` until the cluster's reconcile has made it.
pub async fn cluster_ca(
    secrets: &Api<Secret>,
    cluster: &crate::crd::Cluster,
) -> Result<Option<SigningCa>, Error> {
    signing_ca(secrets, cluster, Role::Cluster).await
}

/// Writes an operator-made CA (with the previous one's certificate while renewing) and its
/// trust bundle.
async fn store_ca(
    secrets: &Api<Secret>,
    input: &BuildInput<'_>,
    role: Role,
    keyed: &KeyedCert,
    previous_pem: Option<&str>,
    now: i64,
) -> Result<(), Error> {
    let names = &input.names;
    let mut meta = owned_meta(input, role.secret(names));
    meta.annotations = Some(trust_annotation(now));
    let mut entries = vec![
        (CA_CERT_KEY.to_string(), keyed.cert_pem.clone()),
        (CA_KEY_KEY.to_string(), keyed.key_pem.clone()),
    ];
    if let Some(previous) = previous_pem {
        entries.push((PREVIOUS_CA_KEY.to_string(), previous.to_string()));
    }
    apply_object(secrets, &secret(meta, data(entries))).await?;
    let bundle = format!("{}{}", keyed.cert_pem, previous_pem.unwrap_or(""));
    store_bundle(secrets, input, role, bundle, None).await
}

fn trust_annotation(now: i64) -> BTreeMap<String, String> {
    BTreeMap::from([(TRUST_CHANGED_ANNOTATION.to_string(), now.to_string())])
}

/// Writes a CA's trust bundle; `changed_at` records the change on the bundle itself (for a CA
/// of the user's own, whose Secret the operator does not write).
async fn store_bundle(
    secrets: &Api<Secret>,
    input: &BuildInput<'_>,
    role: Role,
    bundle: String,
    changed_at: Option<i64>,
) -> Result<(), Error> {
    let mut meta = owned_meta(input, role.bundle(&input.names));
    meta.annotations = changed_at.map(trust_annotation);
    apply_object(
        secrets,
        &secret(meta, data([(CA_CERT_KEY.to_string(), bundle)])),
    )
    .await?;
    Ok(())
}

/// Brings one CA up to date ([`renewal::plan_ca`]) given the certificates it should have
/// signed; returns it as it is afterwards and its phase, or why the user's Secret cannot be
/// used.
async fn ensure_ca(
    secrets: &Api<Secret>,
    input: &BuildInput<'_>,
    role: Role,
    spec: &CaSpec,
    policy: &Policy,
    leaves: &[Option<&CertInfo>],
    now: i64,
) -> Result<Result<(LoadedCa, CaPhase), CaSecretProblem>, Error> {
    let names = &input.names;
    let loaded = match load_ca(secrets, names, role, spec, now).await? {
        Stored::Broken(problem) => {
            tracing::warn!(cluster = %names.cluster, problem = %problem, "a CA Secret of the user's cannot be used");
            return Ok(Err(problem));
        }
        Stored::Absent => None,
        Stored::Ca(ca) => Some(*ca),
    };
    let (action, phase) = plan_ca(loaded.as_ref().map(|l| &l.state), leaves, policy, now);
    let loaded = match (action, loaded) {
        (CaAction::Keep, Some(l)) => l,
        (CaAction::Trust, Some(mut l)) => {
            tracing::info!(cluster = %names.cluster, secret = ?spec.secret_name, previous = l.previous_pems.len(), "trusting a CA of the user's");
            store_bundle(secrets, input, role, l.bundle(true), Some(now)).await?;
            l.state.trusted = true;
            l.state.trust_changed_at = now;
            l
        }
        (CaAction::DropPrevious, Some(mut l)) => {
            tracing::info!(cluster = %names.cluster, ca = %role.bundle(names), "dropping the previous CA from the trust bundle");
            if l.state.user_provided {
                store_bundle(secrets, input, role, l.bundle(false), Some(now)).await?;
            } else {
                store_ca(secrets, input, role, &l.keyed, None, now).await?;
            }
            l.state.previous.clear();
            l.previous_pems.clear();
            l.state.trust_changed_at = now;
            l
        }
        (action, old) => {
            let keyed = new_ca(&role.common_name(names), now, policy.validity_secs)?;
            let previous = match (action, &old) {
                (CaAction::Renew, Some(o)) => Some(o),
                _ => None,
            };
            tracing::info!(cluster = %names.cluster, ca = %role.secret(names), renewal = previous.is_some(), "issued a new CA");
            let previous_pem = previous.map(|o| o.keyed.cert_pem.as_str());
            store_ca(secrets, input, role, &keyed, previous_pem, now).await?;
            if previous.is_some_and(|o| o.state.force_renew) {
                // Set by someone else (kubectl annotate): a merge patch removes it whoever owns it.
                let clear = serde_json::json!({"metadata": {"annotations": {FORCE_RENEW_ANNOTATION: null}}});
                secrets
                    .patch(
                        &role.secret(names),
                        &PatchParams::default(),
                        &Patch::Merge(&clear),
                    )
                    .await?;
            }
            LoadedCa {
                chain_pem: keyed.cert_pem.clone(),
                trust_pems: vec![keyed.cert_pem.clone()],
                previous_pems: previous_pem.map(str::to_string).into_iter().collect(),
                state: CaState {
                    current: inspect(&keyed.cert_pem, "new CA")?,
                    previous: previous
                        .map(|o| o.state.current.clone())
                        .into_iter()
                        .collect(),
                    trusted: true,
                    trust_changed_at: now,
                    user_provided: false,
                    force_renew: false,
                },
                keyed,
            }
        }
    };
    Ok(Ok((loaded, phase)))
}

/// The names in broker `ordinal`'s certificate: its pod DNS names, the headless and
/// bootstrap Services' names, `localhost`, and the host the operator dials when it is told
/// one (brokers outside a cluster).
pub fn broker_names(input: &BuildInput<'_>, ordinal: i32) -> Vec<String> {
    let names = &input.names;
    let ns = &names.namespace;
    let domain = &input.addressing.cluster_domain;
    let pod = names.pod(ordinal);
    let headless = names.headless_service();
    let mut out = vec![
        input.addressing.pod_dns(names, &pod),
        format!("{pod}.{headless}.{ns}.svc"),
    ];
    for service in [headless.clone(), names.client_service()] {
        out.extend([
            service.clone(),
            format!("{service}.{ns}"),
            format!("{service}.{ns}.svc"),
            format!("{service}.{ns}.svc.{domain}"),
        ]);
    }
    out.push("localhost".into());
    let dialled = input.addressing.operator_host(names, ordinal);
    if !out.contains(&dialled) {
        out.push(dialled);
    }
    out
}

fn pem_key(pod: &str) -> String {
    format!("{pod}.pem")
}
fn crt_key(pod: &str) -> String {
    format!("{pod}.crt")
}

/// Creates, renews and reissues the cluster's CAs and broker certificates as
/// [`renewal`] decides; nothing without TLS listeners or TLS on the internal port.
pub async fn reconcile(
    client: &kube::Client,
    input: &BuildInput<'_>,
    settle_secs: i64,
    now: i64,
) -> Result<Option<TlsOutcome>, Error> {
    let spec = &input.cluster.spec;
    if !input.needs_certificates() {
        return Ok(None);
    }
    let names = &input.names;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let certs = spec.certificates.clone().unwrap_or_default();
    let cluster_policy = Policy::of(&certs.cluster_ca, settle_secs);
    let clients_policy = Policy::of(&certs.clients_ca, settle_secs);

    let stored = secrets.get_opt(&names.broker_certs()).await?;
    let pods: Vec<String> = (0..input.statefulset_replicas)
        .map(|o| names.pod(o))
        .collect();
    let mut leaves: Vec<Option<(String, CertInfo)>> = Vec::new();
    for pod in &pods {
        let found = stored
            .as_ref()
            .and_then(|s| Some((text(s, &pem_key(pod))?, text(s, &crt_key(pod))?)));
        // A certificate that does not parse is reissued like a missing one.
        leaves.push(found.and_then(|(pem, crt)| Some((pem, inspect(&crt, pod).ok()?))));
    }
    let infos: Vec<Option<&CertInfo>> = leaves.iter().map(|l| l.as_ref().map(|(_, i)| i)).collect();
    let cluster_ca = ensure_ca(
        &secrets,
        input,
        Role::Cluster,
        &certs.cluster_ca,
        &cluster_policy,
        &infos,
        now,
    )
    .await?;
    // No `User` certificates here: the clients CA has nothing to reissue itself.
    let clients_ca = ensure_ca(
        &secrets,
        input,
        Role::Clients,
        &certs.clients_ca,
        &clients_policy,
        &[],
        now,
    )
    .await?;
    let mut blocked = false;
    if clients_ca.is_err() {
        blocked |= secrets
            .get_opt(&Role::Clients.bundle(names))
            .await?
            .is_none();
    }
    let clients_report = report(&clients_ca, certs.clients_ca.secret_name.is_some());
    let clients_next = clients_ca.as_ref().map_or(i64::MAX, |(ca, _)| {
        next_check(&ca.state, &[], &clients_policy)
    });
    let cluster_report = report(&cluster_ca, certs.cluster_ca.secret_name.is_some());
    let Ok((cluster_ca, _)) = cluster_ca else {
        // Nothing is issued without the CA: what the brokers have stays as it is.
        let kept: Vec<CertInfo> = leaves.into_iter().flatten().map(|(_, i)| i).collect();
        return Ok(Some(TlsOutcome {
            cluster_ca: cluster_report,
            clients_ca: clients_report,
            brokers_not_after: kept.iter().map(|c| c.not_after).min(),
            issued: Vec::new(),
            next_check: clients_next,
            blocked: blocked || stored.is_none(),
        }));
    };

    let mut issued = Vec::new();
    let mut entries = Vec::new();
    let mut fresh = Vec::new();
    for (ordinal, (pod, leaf)) in (0i32..).zip(pods.iter().zip(leaves)) {
        let wanted = broker_names(input, ordinal);
        let reason = plan_leaf(
            leaf.as_ref().map(|(_, i)| i),
            &wanted,
            &cluster_ca.state,
            &cluster_policy,
            now,
        );
        let (pem, info) = match (reason, leaf) {
            (None, Some(kept)) => kept,
            (reason, _) => {
                let made = issue(
                    &cluster_ca.keyed,
                    cluster_ca.state.current.not_after,
                    pod,
                    &LeafKind::Broker { names: wanted },
                    now,
                    cluster_policy.validity_secs,
                )?;
                let why = reason.map_or("missing", |r| r.as_str());
                tracing::info!(cluster = %names.cluster, pod = %pod, reason = why, "issued a broker certificate");
                issued.push((pod.clone(), why));
                let info = inspect(&made.cert_pem, pod)?;
                let pem = format!("{}{}{}", made.key_pem, made.cert_pem, cluster_ca.chain_pem);
                entries.push((crt_key(pod), made.cert_pem));
                (pem, info)
            }
        };
        if !issued.iter().any(|(p, _)| p == pod) {
            if let Some(s) = stored.as_ref() {
                entries.push((crt_key(pod), text(s, &crt_key(pod)).unwrap_or_default()));
            }
        }
        entries.push((pem_key(pod), pem));
        fresh.push(info);
    }
    let pods_gone = stored
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .is_some_and(|d| d.len() != entries.len());
    if !issued.is_empty() || pods_gone || stored.is_none() {
        let meta = owned_meta(input, names.broker_certs());
        apply_object(&secrets, &secret(meta, data(entries))).await?;
    }

    let fresh_refs: Vec<Option<&CertInfo>> = fresh.iter().map(Some).collect();
    Ok(Some(TlsOutcome {
        cluster_ca: cluster_report,
        clients_ca: clients_report,
        brokers_not_after: fresh.iter().map(|c| c.not_after).min(),
        issued,
        next_check: next_check(&cluster_ca.state, &fresh_refs, &cluster_policy).min(clients_next),
        blocked,
    }))
}

/// One CA for the status.
fn report(ca: &Result<(LoadedCa, CaPhase), CaSecretProblem>, user_provided: bool) -> CaReport {
    match ca {
        Ok((ca, phase)) => CaReport {
            phase: *phase,
            not_after: Some(ca.state.current.not_after),
            user_provided,
            problem: None,
        },
        Err(problem) => CaReport {
            phase: CaPhase::Current,
            not_after: None,
            user_provided,
            problem: Some(problem.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::tests::cluster;
    use crate::names::Addressing;

    #[test]
    fn broker_certificates_name_the_pod_the_services_and_localhost() {
        let c = cluster(3);
        let addressing = Addressing::default();
        let input = BuildInput {
            cluster: &c,
            names: ClusterNames::of(&c),
            addressing: &addressing,
            voters: &[0],
            statefulset_replicas: 3,
            claim_size: "1Gi".into(),
            operator_image: "op",
            default_broker_image: "weir",
            internal_tls: false,
        };
        let names = broker_names(&input, 1);
        for expected in [
            "events-1.events-brokers.prod.svc.cluster.local",
            "events-1.events-brokers.prod.svc",
            "events-brokers.prod.svc.cluster.local",
            "events-brokers",
            "events",
            "events.prod",
            "events.prod.svc",
            "events.prod.svc.cluster.local",
            "localhost",
        ] {
            assert!(
                names.contains(&expected.to_string()),
                "{expected} in {names:?}"
            );
        }
        let local = Addressing {
            host_template: Some("127.5.{ordinal}.1".into()),
            ..Addressing::default()
        };
        let input = BuildInput {
            addressing: &local,
            ..input
        };
        assert!(broker_names(&input, 2).contains(&"127.5.2.1".to_string()));
    }
}
