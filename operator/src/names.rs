//! Names, labels and addresses of the objects that make up a cluster. One place, so the
//! builders, the reconcilers and the tests agree.

use std::collections::BTreeMap;

use crate::crd::Cluster;

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "weir-operator";
/// Label naming the `Cluster` an object belongs to.
pub const CLUSTER_LABEL: &str = "weir.dev/cluster";
/// Pod-template annotation carrying the hash of the broker settings, so a change rolls pods.
pub const CONFIG_HASH_ANNOTATION: &str = "weir.dev/config-hash";
/// The StatefulSet controller's pod label naming the revision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// Where the broker's volume is mounted, and its data directory on it.
pub const DATA_MOUNT: &str = "/var/lib/weir";
pub const DATA_DIR: &str = "/var/lib/weir/data";
/// Where the broker settings (`server.properties`) are mounted.
pub const CONFIG_MOUNT: &str = "/etc/weir";
pub const CONFIG_FILE: &str = "server.properties";
/// The ConfigMap key holding the metadata quorum's voters (`ID@HOST:PORT,...`), which every
/// broker reads into `WEIR_VOTERS` when its container starts: the contact list of a broker
/// that starts with an empty volume. Not hashed into the pod template: a new voter reaches
/// each broker at its next start, without a rolling restart.
pub const VOTERS_KEY: &str = "voters";
/// The broker's environment variable for `--voters`.
pub const VOTERS_ENV: &str = "WEIR_VOTERS";
/// Where the rack init container writes `rack.properties`.
pub const RACK_MOUNT: &str = "/var/run/weir";
pub const RACK_FILE: &str = "rack.properties";
/// The ClusterRole (installed with the operator) that lets a broker's init container read its
/// node's labels.
pub const RACK_READER_ROLE: &str = "weir-rack-reader";
/// Where the TLS material is mounted: the broker's own key and certificate chain
/// (`<pod>.pem`, all brokers' in one Secret: a pod template cannot name a Secret per pod), the
/// cluster CA's and the clients CA's trust bundles (`ca.crt`, one or two CA certificates).
pub const BROKER_CERTS_MOUNT: &str = "/etc/weir/tls/broker";
pub const CLUSTER_CA_MOUNT: &str = "/etc/weir/tls/cluster-ca";
pub const CLIENTS_CA_MOUNT: &str = "/etc/weir/tls/clients-ca";
/// Where an OAuth listener's JSON Web Key Set Secret is mounted: `<mount>/<listener>/jwks.json`.
pub const JWKS_MOUNT: &str = "/etc/weir/oauth";
pub const JWKS_KEY: &str = "jwks.json";
/// Keys of the CA Secrets: the certificate (or trust bundle) and the private key.
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
/// Name of the volume claim template (PVCs are `data-<pod>`).
pub const DATA_VOLUME: &str = "data";

/// Names derived from one `Cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNames {
    pub cluster: String,
    pub namespace: String,
}

impl ClusterNames {
    pub fn of(cluster: &Cluster) -> Self {
        Self {
            cluster: cluster.metadata.name.clone().unwrap_or_default(),
            namespace: cluster
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        }
    }

    /// The StatefulSet; pods are `<cluster>-<ordinal>`.
    pub fn statefulset(&self) -> String {
        self.cluster.clone()
    }
    /// The headless Service that gives each pod a DNS name.
    pub fn headless_service(&self) -> String {
        format!("{}-brokers", self.cluster)
    }
    /// The client Service (bootstrap address for Kafka clients).
    pub fn client_service(&self) -> String {
        self.cluster.clone()
    }
    pub fn config_map(&self) -> String {
        format!("{}-config", self.cluster)
    }
    pub fn pod_disruption_budget(&self) -> String {
        self.cluster.clone()
    }
    /// The brokers' ServiceAccount (only with rack awareness: it may read nodes).
    pub fn broker_service_account(&self) -> String {
        format!("{}-broker", self.cluster)
    }
    /// The cluster-scoped binding of [`RACK_READER_ROLE`] to the brokers' account.
    pub fn rack_binding(&self) -> String {
        format!("weir-rack-{}-{}", self.namespace, self.cluster)
    }
    /// The cluster CA (`ca.crt`, `ca.key`): signs the brokers' certificates.
    pub fn cluster_ca(&self) -> String {
        format!("{}-cluster-ca", self.cluster)
    }
    /// The cluster CA's trust bundle, for clients and brokers (`ca.crt`).
    pub fn cluster_ca_cert(&self) -> String {
        format!("{}-cluster-ca-cert", self.cluster)
    }
    /// The clients CA: signs the certificates of `User`s with `tls` authentication.
    pub fn clients_ca(&self) -> String {
        format!("{}-clients-ca", self.cluster)
    }
    /// The clients CA's trust bundle, which the brokers check client certificates against.
    pub fn clients_ca_cert(&self) -> String {
        format!("{}-clients-ca-cert", self.cluster)
    }
    /// Every broker's key and certificate chain, `<pod>.pem` (and `<pod>.crt`).
    pub fn broker_certs(&self) -> String {
        format!("{}-broker-certs", self.cluster)
    }
    pub fn pod(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.cluster)
    }
    /// The PVC the StatefulSet makes for `ordinal`.
    pub fn data_claim(&self, ordinal: i32) -> String {
        format!("{DATA_VOLUME}-{}", self.pod(ordinal))
    }
    /// The ordinal of one of this cluster's pods, from its name.
    pub fn ordinal_of(&self, pod: &str) -> Option<i32> {
        pod.strip_prefix(&self.cluster)?
            .strip_prefix('-')?
            .parse()
            .ok()
            .filter(|o: &i32| *o >= 0)
    }
    /// The labels every object of the cluster carries; pods are selected by them.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "weir".to_string()),
            (
                "app.kubernetes.io/instance".to_string(),
                self.cluster.clone(),
            ),
            (
                "app.kubernetes.io/managed-by".to_string(),
                "weir-operator".to_string(),
            ),
            (CLUSTER_LABEL.to_string(), self.cluster.clone()),
        ])
    }
    /// The pod selector (a stable subset of [`Self::labels`]).
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "weir".to_string()),
            (CLUSTER_LABEL.to_string(), self.cluster.clone()),
        ])
    }
    pub fn selector_string(&self) -> String {
        self.selector()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// How the operator reaches brokers, and how brokers name each other.
///
/// In a cluster every pod has a DNS name through the headless Service:
/// `{pod}.{service}.{namespace}.svc.{domain}`. Outside one (the operator's end-to-end tests run
/// brokers as local processes), `host_template` overrides the host the operator dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    /// The cluster DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// Overrides the host the operator dials, with `{pod}`, `{ordinal}`, `{cluster}`,
    /// `{service}` and `{namespace}` replaced.
    pub host_template: Option<String>,
}

impl Default for Addressing {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".into(),
            host_template: None,
        }
    }
}

impl Addressing {
    /// The DNS name of `pod_expr` (a pod name, or `$(POD_NAME)` inside container args).
    pub fn pod_dns(&self, names: &ClusterNames, pod_expr: &str) -> String {
        format!(
            "{pod_expr}.{}.{}.svc.{}",
            names.headless_service(),
            names.namespace,
            self.cluster_domain
        )
    }

    /// The host the operator dials for broker `ordinal`.
    pub fn operator_host(&self, names: &ClusterNames, ordinal: i32) -> String {
        let pod = names.pod(ordinal);
        match &self.host_template {
            Some(t) => t
                .replace("{pod}", &pod)
                .replace("{ordinal}", &ordinal.to_string())
                .replace("{cluster}", &names.cluster)
                .replace("{service}", &names.headless_service())
                .replace("{namespace}", &names.namespace),
            None => self.pod_dns(names, &pod),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ClusterNames {
        ClusterNames {
            cluster: "events".into(),
            namespace: "prod".into(),
        }
    }

    #[test]
    fn ordinals_round_trip_and_foreign_pods_are_not_ours() {
        let n = names();
        assert_eq!(n.ordinal_of(&n.pod(12)), Some(12));
        assert_eq!(n.ordinal_of("events-x"), None);
        assert_eq!(n.ordinal_of("eventsource-1"), None);
        assert_eq!(n.ordinal_of("other-1"), None);
        assert_eq!(n.data_claim(2), "data-events-2");
    }

    #[test]
    fn pods_are_dialled_by_dns_unless_overridden() {
        let n = names();
        let dns = Addressing::default();
        assert_eq!(
            dns.operator_host(&n, 1),
            "events-1.events-brokers.prod.svc.cluster.local"
        );
        let local = Addressing {
            host_template: Some("127.5.{ordinal}.1".into()),
            ..Addressing::default()
        };
        assert_eq!(local.operator_host(&n, 3), "127.5.3.1");
    }
}
