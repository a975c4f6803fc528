//! With rack awareness, the brokers' init container reads its node's labels: a ServiceAccount
//! per cluster (owned by it) bound to the `weir-rack-reader` ClusterRole that the chart
//! installs. The binding is cluster-scoped, so no owner reference can remove it: the
//! `Cluster`'s finalizer does.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams};
use kube::Client;

use super::apply_object;
use crate::build::BuildInput;
use crate::error::Error;
use crate::names::{ClusterNames, RACK_READER_ROLE};

pub async fn apply(client: &Client, input: &BuildInput<'_>) -> Result<(), Error> {
    let names = &input.names;
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(names.broker_service_account()),
            namespace: Some(names.namespace.clone()),
            labels: Some(names.labels()),
            owner_references: input
                .cluster
                .metadata
                .uid
                .as_ref()
                .and_then(|_| kube::Resource::controller_owner_ref(input.cluster, &()))
                .map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    apply_object(&Api::namespaced(client.clone(), &names.namespace), &account).await?;
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(names.rack_binding()),
            labels: Some(names.labels()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: RACK_READER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names.broker_service_account(),
            namespace: Some(names.namespace.clone()),
            ..Subject::default()
        }]),
    };
    apply_object(&Api::all(client.clone()), &binding).await?;
    Ok(())
}

/// Deletes the rack binding, if there is one.
pub async fn cleanup(client: &Client, names: &ClusterNames) -> Result<(), Error> {
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    match api
        .delete(&names.rack_binding(), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
