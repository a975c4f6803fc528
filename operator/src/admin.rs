//! The operator's side of the brokers' admin API (`weir.admin.v1`, served on every broker's
//! internal port). Any broker answers: the brokers forward writes to the active controller.
//!
//! A cluster whose internal port runs TLS (`status.internalTls`, brokers started with
//! `rpc.security.protocol=SSL`) is called over TLS: the operator trusts the cluster CA's
//! bundle, checks that the broker's certificate names the host it dials, and presents a
//! client certificate of its own, issued by the cluster CA for `weir-operator`, kept in
//! memory only and reissued before it expires or when the CA changes, once every broker
//! trusts the new CA ([`Identities`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use weir_api::proto::admin::admin_client::AdminClient;

use crate::context::Context;
use crate::crd::Cluster;
use crate::error::Error;
use crate::names::{Addressing, ClusterNames, CA_CERT_KEY};
use crate::tls::pki::{issue, KeyedCert, LeafKind};

/// How long the operator waits to connect to one broker before trying the next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of one admin call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The common name of the operator's client certificate (the principal brokers see).
pub const OPERATOR_COMMON_NAME: &str = "weir-operator";
/// How long the operator's client certificate is valid (never beyond the CA's expiry).
const IDENTITY_VALIDITY_SECS: i64 = 2 * 24 * 3600;
/// Reissued when less than this is left of it.
const IDENTITY_RENEW_BEFORE_SECS: i64 = 24 * 3600;

/// A connected admin client and the broker it reached.
#[derive(Debug, Clone)]
pub struct Admin {
    pub client: AdminClient<Channel>,
    pub broker: i32,
}

/// What a TLS connection to a cluster's internal port needs.
#[derive(Clone)]
pub struct AdminTls {
    /// The cluster CA's trust bundle (PEM; two CAs while one is renewed).
    pub ca_bundle: String,
    /// The operator's client certificate and key.
    pub identity: KeyedCert,
}

impl std::fmt::Debug for AdminTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("AdminTls").finish_non_exhaustive()
    }
}

/// One operator client certificate, and what it was issued for.
struct Issued {
    ca_cert_pem: String,
    identity: KeyedCert,
    not_after: i64,
}

/// The operator's client certificates, one per cluster (`namespace/name`), in memory.
#[derive(Default)]
pub struct Identities {
    issued: Mutex<HashMap<String, Issued>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities").finish_non_exhaustive()
    }
}

impl Identities {
    /// The client certificate last issued for `cluster`, while it is valid.
    pub fn cached(&self, cluster: &ClusterNames, now: i64) -> Option<KeyedCert> {
        let key = format!("{}/{}", cluster.namespace, cluster.cluster);
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued
            .get(&key)
            .filter(|i| now < i.not_after)
            .map(|i| i.identity.clone())
    }

    /// The client certificate for `cluster` signed by `ca` (valid until `ca_not_after`),
    /// issued now if there is none or it is about to expire, or when the CA changed and every
    /// broker trusts the new one (`ca_trusted_from`, unix seconds: the trust bundle's change
    /// plus the time a Secret takes to reach the pods). Until then the certificate of the
    /// previous CA, which the brokers still trust during a renewal, keeps being used.
    pub fn for_cluster(
        &self,
        cluster: &ClusterNames,
        ca: &KeyedCert,
        ca_not_after: i64,
        ca_trusted_from: i64,
        now: i64,
    ) -> Result<KeyedCert, Error> {
        let key = format!("{}/{}", cluster.namespace, cluster.cluster);
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = issued.get(&key) {
            let fresh = now + IDENTITY_RENEW_BEFORE_SECS < i.not_after;
            let same_ca = i.ca_cert_pem == ca.cert_pem;
            if fresh && (same_ca || now < ca_trusted_from) {
                return Ok(i.identity.clone());
            }
        }
        let identity = issue(
            ca,
            ca_not_after,
            OPERATOR_COMMON_NAME,
            &LeafKind::Client,
            now,
            IDENTITY_VALIDITY_SECS,
        )?;
        issued.insert(
            key,
            Issued {
                ca_cert_pem: ca.cert_pem.clone(),
                identity: identity.clone(),
                not_after: (now + IDENTITY_VALIDITY_SECS).min(ca_not_after),
            },
        );
        Ok(identity)
    }
}

/// The TLS material to call `cluster`'s admin API when its internal port runs TLS
/// (`internal_tls`), `None` otherwise. An error when it should but the cluster CA or its
/// bundle is not there.
pub async fn tls_for(
    ctx: &Context,
    cluster: &Cluster,
    internal_tls: bool,
    now: i64,
) -> Result<Option<AdminTls>, Error> {
    if !internal_tls {
        return Ok(None);
    }
    let names = ClusterNames::of(cluster);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let signing = match crate::tls::cluster_ca(&secrets, cluster).await {
        Ok(signing) => signing,
        Err(Error::Certificate(problem)) => {
            // The cluster CA is a user's Secret that cannot be used: the certificate issued
            // before keeps working with the brokers as long as it lasts.
            let Some(identity) = ctx.identities.cached(&names, now) else {
                return Err(Error::Certificate(problem));
            };
            let ca_bundle = secrets
                .get_opt(&names.cluster_ca_cert())
                .await?
                .and_then(|s| s.data?.get(CA_CERT_KEY).cloned())
                .and_then(|b| String::from_utf8(b.0).ok())
                .ok_or(Error::Certificate(problem))?;
            return Ok(Some(AdminTls {
                ca_bundle,
                identity,
            }));
        }
        Err(e) => return Err(e),
    };
    let Some((ca, info, trust_changed_at)) = signing else {
        return Err(Error::Certificate(format!(
            "cluster {} runs TLS on its internal port but has no cluster CA",
            names.cluster
        )));
    };
    let bundle = secrets
        .get_opt(&names.cluster_ca_cert())
        .await?
        .and_then(|s| s.data?.get(CA_CERT_KEY).cloned())
        .and_then(|b| String::from_utf8(b.0).ok())
        .unwrap_or_else(|| ca.cert_pem.clone());
    let settle = i64::try_from(ctx.settings.certificate_settle.as_secs()).unwrap_or(i64::MAX);
    let identity = ctx.identities.for_cluster(
        &names,
        &ca,
        info.not_after,
        trust_changed_at.saturating_add(settle),
        now,
    )?;
    Ok(Some(AdminTls {
        ca_bundle: bundle,
        identity,
    }))
}

/// The admin API of a cluster's brokers for the Topic and User controllers: every broker the
/// cluster has or is getting, over TLS when its status says the internal port runs it.
pub async fn for_cluster(cluster: &Cluster, ctx: &Context) -> Result<Admin, Error> {
    let names = ClusterNames::of(cluster);
    let status = cluster.status.as_ref();
    let brokers = status.map_or(cluster.spec.replicas, |s| {
        s.current_replicas.max(cluster.spec.replicas)
    });
    let internal_tls = status.and_then(|s| s.internal_tls).unwrap_or(false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let tls = tls_for(ctx, cluster, internal_tls, now).await?;
    connect(
        &names,
        &ctx.settings.addressing,
        cluster.spec.listeners.internal_port,
        0..brokers,
        tls.as_ref(),
    )
    .await
    .map_err(Error::Unreachable)
}

/// Connects to the first of `ordinals` that accepts a connection (and, with `tls`, completes
/// the handshake).
pub async fn connect(
    names: &ClusterNames,
    addressing: &Addressing,
    internal_port: i32,
    ordinals: impl IntoIterator<Item = i32>,
    tls: Option<&AdminTls>,
) -> Result<Admin, String> {
    let mut failures = Vec::new();
    for ordinal in ordinals {
        let host = addressing.operator_host(names, ordinal);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let uri = format!("{scheme}://{host}:{internal_port}");
        let endpoint = Endpoint::from_shared(uri.clone()).and_then(|e| {
            let e = e.connect_timeout(CONNECT_TIMEOUT).timeout(REQUEST_TIMEOUT);
            match tls {
                None => Ok(e),
                Some(t) => e.tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(&t.ca_bundle))
                        .identity(Identity::from_pem(
                            &t.identity.cert_pem,
                            &t.identity.key_pem,
                        ))
                        .domain_name(host.clone()),
                ),
            }
        });
        let endpoint = match endpoint {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{uri}: {e}"));
                continue;
            }
        };
        match endpoint.connect().await {
            Ok(channel) => {
                return Ok(Admin {
                    client: AdminClient::new(channel),
                    broker: ordinal,
                })
            }
            Err(e) => failures.push(format!("{uri}: {}", error_chain(&e))),
        }
    }
    Err(if failures.is_empty() {
        "no broker to ask".to_string()
    } else {
        format!("no broker's admin API answered ({})", failures.join("; "))
    })
}

/// An error with its sources (tonic's transport error says only "transport error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::pki::{inspect, new_ca};

    const DAY: i64 = 24 * 3600;

    fn names() -> ClusterNames {
        ClusterNames {
            cluster: "events".into(),
            namespace: "prod".into(),
        }
    }

    #[test]
    fn the_operator_certificate_follows_the_ca_once_the_brokers_trust_it() {
        let now = 1_800_000_000;
        let old = new_ca("old CA", now - DAY, 365 * DAY).unwrap();
        let new = new_ca("new CA", now, 365 * DAY).unwrap();
        let old_info = inspect(&old.cert_pem, "old").unwrap();
        let new_info = inspect(&new.cert_pem, "new").unwrap();
        let ids = Identities::default();

        let first = ids
            .for_cluster(&names(), &old, old_info.not_after, now - DAY, now)
            .unwrap();
        let info = inspect(&first.cert_pem, "operator").unwrap();
        assert!(info.issued_by(&old_info), "signed by the cluster CA");
        assert_eq!(
            ids.for_cluster(&names(), &old, old_info.not_after, now - DAY, now + 60)
                .unwrap(),
            first,
            "kept while valid"
        );

        // A renewal started: the new CA signs, but the brokers may not trust it yet.
        let trusted_from = now + 120;
        let during = ids
            .for_cluster(&names(), &new, new_info.not_after, trusted_from, now + 60)
            .unwrap();
        assert_eq!(
            during, first,
            "the old CA's certificate until the new CA is trusted"
        );
        let after = ids
            .for_cluster(&names(), &new, new_info.not_after, trusted_from, now + 121)
            .unwrap();
        assert!(inspect(&after.cert_pem, "operator")
            .unwrap()
            .issued_by(&new_info));

        // Reissued a day before it expires, by the same CA.
        let later = now + 121 + IDENTITY_VALIDITY_SECS - IDENTITY_RENEW_BEFORE_SECS;
        let renewed = ids
            .for_cluster(&names(), &new, new_info.not_after, trusted_from, later)
            .unwrap();
        assert_ne!(renewed, after);
    }
}
