//! Volume size changes. A StatefulSet's claim template cannot change, so growth patches each
//! broker's claim in place (the storage class must allow expansion) and the template keeps its
//! original size (claims of new brokers are grown on the next pass). Shrinking is refused.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;

use crate::crd::quantity::to_units;
use crate::crd::ClusterSpec;
use crate::error::Error;
use crate::names::{ClusterNames, DATA_VOLUME};

/// The storage request in the existing StatefulSet's claim template.
pub fn template_size(existing: Option<&StatefulSet>) -> Option<String> {
    existing?
        .spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .iter()
        .find(|t| t.metadata.name.as_deref() == Some(DATA_VOLUME))?
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

fn requested(claim: &PersistentVolumeClaim) -> Option<u128> {
    let q = claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    to_units(&q.0)
}

/// Grows claims smaller than the spec; returns why the spec was refused when it asks for less
/// than the volumes already have.
pub async fn reconcile(
    client: &Client,
    names: &ClusterNames,
    spec: &ClusterSpec,
    template: &str,
    replicas: i32,
) -> Result<Option<String>, Error> {
    let Some(wanted) = to_units(&spec.storage.size) else {
        return Ok(Some(format!("`{}` is not a quantity", spec.storage.size)));
    };
    if to_units(template).is_some_and(|t| wanted < t) {
        return Ok(Some(format!(
            "volumes cannot shrink from {template} to {}",
            spec.storage.size
        )));
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &names.namespace);
    let mut refused = None;
    for ordinal in 0..replicas {
        let Some(claim) = claims.get_opt(&names.data_claim(ordinal)).await? else {
            continue;
        };
        // Only a bound claim can grow (the API server refuses to change a pending one).
        let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        match requested(&claim) {
            Some(have) if have < wanted && bound => {
                let patch = serde_json::json!({
                    "spec": {"resources": {"requests": BTreeMap::from([("storage", &spec.storage.size)])}}
                });
                claims
                    .patch(
                        &names.data_claim(ordinal),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                tracing::info!(claim = %names.data_claim(ordinal), size = %spec.storage.size, "growing a broker volume");
            }
            Some(have) if have > wanted => {
                refused = Some(format!(
                    "volume {} is already larger than {}; volumes cannot shrink",
                    names.data_claim(ordinal),
                    spec.storage.size
                ));
            }
            _ => {}
        }
    }
    Ok(refused)
}
