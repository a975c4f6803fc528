//! The `User` reconciler: fetch the cluster it names → validate the spec ([`plan::validate`])
//! → describe the user through the admin API → credentials (a SCRAM-SHA-512 credential, or a
//! client certificate from the clients CA) and the user's Secret → the ACL and quota changes
//! [`plan`] finds → status. A finalizer removes the user's SCRAM credential, ACLs and quotas
//! from the cluster with the resource; its Secret goes with it by owner reference.
//!
//! Order: the credential reaches the brokers before the Secret that hands it out is written,
//! so a client never holds a password the brokers do not know yet.

pub mod credentials;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event};
use kube::ResourceExt;
use weir_api::proto::admin as pb;

use crate::admin::{self, Admin};
use crate::cluster::status::now;
use crate::context::Context;
use crate::crd::condition::{merge, types, Desired};
use crate::crd::user::UserAuthenticationType;
use crate::crd::{Cluster, User, UserStatus};
use crate::error::Error;
use crate::names::{ClusterNames, CA_CERT_KEY, FIELD_MANAGER};
use crate::tls::pki::{inspect, issue, LeafKind};
use credentials::{
    fingerprint, jaas_config, new_scram_credential, secret_text, user_secret, CA_KEY, CERT_KEY,
    FINGERPRINT_ANNOTATION, JAAS_KEY, KEY_KEY, MECHANISM, PASSWORD_KEY,
};

/// Removes the user's credentials, ACLs and quotas before the resource goes.
pub const FINALIZER: &str = "weir.dev/user-deletion";

/// How long a user certificate is valid (never beyond its CA); reissued at two thirds.
const CERT_VALIDITY_SECS: i64 = 365 * 24 * 3600;

pub async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = user.namespace().unwrap_or_else(|| "default".into());
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, user, |event| async {
        match event {
            Event::Apply(u) => apply(&u, &ctx).await,
            Event::Cleanup(u) => cleanup(&u, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

async fn find_cluster(user: &User, ctx: &Context) -> Result<Option<Cluster>, Error> {
    let ns = user.namespace().unwrap_or_else(|| "default".into());
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    Ok(clusters.get_opt(&user.spec.cluster_ref).await?)
}

fn secrets(ctx: &Context, user: &User) -> Api<Secret> {
    Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default())
}

/// Writes the user's Secret (server-side apply: the operator owns every key it sets).
async fn write_secret(ctx: &Context, user: &User, secret: &Secret) -> Result<(), Error> {
    secrets(ctx, user)
        .patch(
            &user.kafka_name(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(secret),
        )
        .await?;
    Ok(())
}

/// Why the user is not ready, said in the status; `Ok` carries nothing.
struct NotReady {
    reason: &'static str,
    message: String,
}

async fn apply(user: &User, ctx: &Context) -> Result<Action, Error> {
    let Some(cluster) = find_cluster(user, ctx).await? else {
        let message = format!(
            "no Cluster named {} in this namespace",
            user.spec.cluster_ref
        );
        return not_ready(ctx, user, "ClusterNotFound", message).await;
    };
    let desired_acls = match plan::validate(&user.spec, &user.principal()) {
        Ok(acls) => acls,
        Err(e) => {
            write_status(ctx, user, false, "InvalidSpec", e.to_string()).await?;
            return Ok(Action::await_change());
        }
    };
    let mut admin = match admin::for_cluster(&cluster, ctx).await {
        Ok(a) => a,
        Err(e) => return not_ready(ctx, user, "ClusterUnreachable", e.to_string()).await,
    };
    match converge(user, ctx, &cluster, &mut admin, &desired_acls).await {
        Ok(None) => {
            let message = format!(
                "{} ACL bindings for {}",
                desired_acls.len(),
                user.principal()
            );
            write_status(ctx, user, true, "Ready", message).await?;
            Ok(Action::requeue(ctx.settings.idle_requeue))
        }
        Ok(Some(NotReady { reason, message })) => not_ready(ctx, user, reason, message).await,
        // The brokers refused what the spec asks (a binding or quota they do not accept): only
        // a change to the spec can help.
        Err(Error::Admin(refusal)) if refusal.code() == tonic::Code::InvalidArgument => {
            write_status(ctx, user, false, "Refused", refusal.message().to_string()).await?;
            Ok(Action::await_change())
        }
        Err(e) => Err(e),
    }
}

/// Brings the brokers and the user's Secret to what the spec asks: credentials, then ACLs,
/// then quotas.
async fn converge(
    user: &User,
    ctx: &Context,
    cluster: &Cluster,
    admin: &mut Admin,
    desired_acls: &std::collections::BTreeSet<plan::Acl>,
) -> Result<Option<NotReady>, Error> {
    let name = user.kafka_name();
    let described = admin
        .client
        .describe_user(pb::DescribeUserRequest { user: name.clone() })
        .await?
        .into_inner();

    let outcome = match user.spec.authentication.type_ {
        UserAuthenticationType::ScramSha512 => ensure_scram(user, ctx, admin, &described).await?,
        UserAuthenticationType::Tls => {
            // A user switched from SCRAM to TLS keeps no password on the brokers.
            if has_scram(&described) {
                delete_scram(admin, &name).await?;
            }
            ensure_certificate(user, ctx, cluster).await?
        }
    };
    if outcome.is_some() {
        return Ok(outcome);
    }

    let acl_changes = plan::acl_changes(desired_acls, &described.acls);
    if !acl_changes.add.is_empty() {
        admin
            .client
            .create_acls(pb::CreateAclsRequest {
                bindings: acl_changes.add.iter().map(Into::into).collect(),
            })
            .await?;
    }
    if !acl_changes.remove.is_empty() {
        admin
            .client
            .delete_acls(pb::DeleteAclsRequest {
                bindings: acl_changes.remove.iter().map(Into::into).collect(),
            })
            .await?;
    }
    if !acl_changes.is_empty() {
        tracing::info!(user = %name, added = acl_changes.add.len(), removed = acl_changes.remove.len(), "changed a user's ACLs");
    }
    let current_quotas: BTreeMap<String, f64> = described.quotas.into_iter().collect();
    let quota_changes = plan::quota_changes(
        &plan::desired_quotas(user.spec.quotas.as_ref()),
        &current_quotas,
    );
    if !quota_changes.is_empty() {
        admin
            .client
            .alter_user_quotas(pb::AlterUserQuotasRequest {
                user: name.clone(),
                set: quota_changes.set.clone().into_iter().collect(),
                remove: quota_changes.remove.clone(),
            })
            .await?;
        tracing::info!(user = %name, ?quota_changes, "changed a user's quotas");
    }
    Ok(None)
}

fn has_scram(described: &pb::DescribeUserResponse) -> bool {
    described
        .scram_credentials
        .iter()
        .any(|c| c.mechanism == MECHANISM)
}

async fn delete_scram(admin: &mut Admin, name: &str) -> Result<(), Error> {
    admin
        .client
        .delete_scram_credential(pb::DeleteScramCredentialRequest {
            user: name.to_string(),
            mechanism: MECHANISM.into(),
        })
        .await?;
    tracing::info!(user = %name, "removed a user's SCRAM credential");
    Ok(())
}

/// The password: from the Secret key the spec names, else the one already in the user's
/// Secret, else a new one.
async fn password(
    user: &User,
    ctx: &Context,
    existing: Option<&Secret>,
) -> Result<Result<String, NotReady>, Error> {
    if let Some(source) = &user.spec.authentication.password {
        let r = &source.value_from.secret_key_ref;
        let found = secrets(ctx, user).get_opt(&r.name).await?;
        return Ok(match found.as_ref().and_then(|s| secret_text(s, &r.key)) {
            Some(p) if !p.is_empty() => Ok(p),
            _ => Err(NotReady {
                reason: "PasswordSecretMissing",
                message: format!("no key {} in a Secret named {}", r.key, r.name),
            }),
        });
    }
    Ok(Ok(existing
        .and_then(|s| secret_text(s, PASSWORD_KEY))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(credentials::generate_password)))
}

/// Gives the brokers the password's credential (unless they hold it already) and writes the
/// user's Secret.
async fn ensure_scram(
    user: &User,
    ctx: &Context,
    admin: &mut Admin,
    described: &pb::DescribeUserResponse,
) -> Result<Option<NotReady>, Error> {
    let name = user.kafka_name();
    let existing = secrets(ctx, user).get_opt(&name).await?;
    let password = match password(user, ctx, existing.as_ref()).await? {
        Ok(p) => p,
        Err(not_ready) => return Ok(Some(not_ready)),
    };
    let print = fingerprint(&password);
    let recorded = existing
        .as_ref()
        .and_then(|s| s.metadata.annotations.as_ref())
        .and_then(|a| a.get(FINGERPRINT_ANNOTATION));
    let in_secret = existing.as_ref().and_then(|s| secret_text(s, PASSWORD_KEY));
    let current = has_scram(described)
        && recorded == Some(&print)
        && in_secret.as_deref() == Some(password.as_str());
    if current {
        return Ok(None);
    }
    let credential = new_scram_credential(&password);
    admin
        .client
        .set_scram_credential(pb::SetScramCredentialRequest {
            user: name.clone(),
            mechanism: MECHANISM.into(),
            iterations: credential.iterations,
            salt: credential.salt,
            stored_key: credential.stored_key,
            server_key: credential.server_key,
        })
        .await?;
    tracing::info!(user = %name, mechanism = MECHANISM, "set a user's SCRAM credential");
    let secret = user_secret(
        user,
        BTreeMap::from([
            (JAAS_KEY.to_string(), jaas_config(&name, &password)),
            (PASSWORD_KEY.to_string(), password),
        ]),
        BTreeMap::from([(FINGERPRINT_ANNOTATION.to_string(), print)]),
    );
    write_secret(ctx, user, &secret).await?;
    Ok(None)
}

/// Issues the user's client certificate from the clients CA when the Secret lacks a valid
/// one, and writes the Secret: `user.crt`, `user.key`, and `ca.crt` (the cluster CA bundle,
/// which the client trusts the brokers by).
async fn ensure_certificate(
    user: &User,
    ctx: &Context,
    cluster: &Cluster,
) -> Result<Option<NotReady>, Error> {
    let api = secrets(ctx, user);
    let names = ClusterNames::of(cluster);
    let Some((ca, ca_info, trust_changed_at)) = crate::tls::clients_ca(&api, cluster).await? else {
        return Ok(Some(NotReady {
            reason: "WaitingForClientsCa",
            message: format!(
                "cluster {} has no clients CA yet (it needs a TLS listener)",
                names.cluster
            ),
        }));
    };
    let bundle = api
        .get_opt(&names.cluster_ca_cert())
        .await?
        .and_then(|s| secret_text(&s, CA_CERT_KEY))
        .unwrap_or_default();
    let name = user.kafka_name();
    let existing = api.get_opt(&name).await?;
    let now = now_secs();
    let kept = existing.as_ref().and_then(|s| {
        let cert = secret_text(s, CERT_KEY)?;
        let key = secret_text(s, KEY_KEY)?;
        let info = inspect(&cert, "user.crt").ok()?;
        let lifetime = info.not_after - info.not_before;
        let fresh = now < info.not_before + lifetime * 2 / 3;
        // A new clients CA signs only once the brokers trust it: the trust bundle changed a
        // settling period ago (a certificate of the previous CA is trusted until then).
        let settle = i64::try_from(ctx.settings.certificate_settle.as_secs()).unwrap_or(i64::MAX);
        let ca_trusted = now >= trust_changed_at.saturating_add(settle);
        let valid = now < info.not_after;
        ((info.issued_by(&ca_info) || !ca_trusted) && fresh && valid).then_some((cert, key))
    });
    let (cert, key) = match kept {
        Some(pair) => pair,
        None => {
            let made = issue(
                &ca,
                ca_info.not_after,
                &name,
                &LeafKind::Client,
                now,
                CERT_VALIDITY_SECS,
            )?;
            tracing::info!(user = %name, "issued a user's client certificate");
            (made.cert_pem, made.key_pem)
        }
    };
    let unchanged = existing.as_ref().is_some_and(|s| {
        secret_text(s, CERT_KEY).as_deref() == Some(cert.as_str())
            && secret_text(s, CA_KEY).as_deref() == Some(bundle.as_str())
    });
    if !unchanged {
        let secret = user_secret(
            user,
            BTreeMap::from([
                (CERT_KEY.to_string(), cert),
                (KEY_KEY.to_string(), key),
                (CA_KEY.to_string(), bundle),
            ]),
            BTreeMap::new(),
        );
        write_secret(ctx, user, &secret).await?;
    }
    Ok(None)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Removes the user's SCRAM credential, ACLs and quotas; a cluster that is gone has none.
async fn cleanup(user: &User, ctx: &Context) -> Result<Action, Error> {
    let Some(cluster) = find_cluster(user, ctx).await? else {
        return Ok(Action::await_change());
    };
    let name = user.kafka_name();
    let mut admin = admin::for_cluster(&cluster, ctx).await?;
    let described = admin
        .client
        .describe_user(pb::DescribeUserRequest { user: name.clone() })
        .await?
        .into_inner();
    if has_scram(&described) {
        delete_scram(&mut admin, &name).await?;
    }
    if !described.acls.is_empty() {
        admin
            .client
            .delete_acls(pb::DeleteAclsRequest {
                bindings: described.acls.clone(),
            })
            .await?;
    }
    if !described.quotas.is_empty() {
        admin
            .client
            .alter_user_quotas(pb::AlterUserQuotasRequest {
                user: name.clone(),
                set: Default::default(),
                remove: described.quotas.keys().cloned().collect(),
            })
            .await?;
    }
    tracing::info!(user = %name, acls = described.acls.len(), "removed a user from its cluster");
    Ok(Action::await_change())
}

async fn not_ready(
    ctx: &Context,
    user: &User,
    reason: &'static str,
    message: String,
) -> Result<Action, Error> {
    write_status(ctx, user, false, reason, message).await?;
    Ok(Action::requeue(ctx.settings.busy_requeue))
}

async fn write_status(
    ctx: &Context,
    user: &User,
    ready: bool,
    reason: &str,
    message: String,
) -> Result<(), Error> {
    let previous = user.status.clone().unwrap_or_default();
    let status = UserStatus {
        observed_generation: user.metadata.generation,
        conditions: merge(
            &previous.conditions,
            vec![Desired::new(types::READY, ready, reason, message)],
            user.metadata.generation,
            &now(),
        ),
        username: Some(user.kafka_name()),
        secret: ready.then(|| user.kafka_name()).or(previous.secret),
    };
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "User",
        "status": status,
    });
    api.patch_status(
        &user.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
