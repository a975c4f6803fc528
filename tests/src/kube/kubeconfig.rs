//! Kubeconfig files and `kube::Client`s for the test control plane.
//!
//! Every client is made from a [`Kubeconfig`] (the same type `kubectl` config files
//! deserialize into), so the file the control plane writes for the admin, which the operator
//! binary will read, is exactly what the tests' own admin client uses. Certificates and keys
//! are embedded (`*-data` fields, base64 of the PEM) so the file works from any directory.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use kube::{Client, Config};

use super::pki::CertAndKey;

/// The cluster's and the context's name in every kubeconfig written here.
pub const CLUSTER_NAME: &str = "weir-test";

/// How a kubeconfig's user authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A client certificate signed by the control plane's CA (user = CN, group = O).
    ClientCert(CertAndKey),
    /// A bearer token, e.g. a service account's from the TokenRequest API.
    Token(String),
}

/// A kubeconfig with one cluster (`server`, trusting `ca_pem`), one user and one context,
/// which is current.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, credentials: &Credentials) -> Kubeconfig {
    let mut auth_info = AuthInfo::default();
    match credentials {
        Credentials::ClientCert(cert) => {
            auth_info.client_certificate_data = Some(BASE64.encode(&cert.cert_pem));
            auth_info.client_key_data = Some(BASE64.encode(&cert.key_pem).into());
        }
        Credentials::Token(token) => auth_info.token = Some(token.clone().into()),
    }
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: CLUSTER_NAME.to_string(),
            cluster: Some(Cluster {
                server: Some(server.to_string()),
                certificate_authority_data: Some(BASE64.encode(ca_pem)),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.to_string(),
            auth_info: Some(auth_info),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: CLUSTER_NAME.to_string(),
            context: Some(Context {
                cluster: CLUSTER_NAME.to_string(),
                user: Some(user.to_string()),
                namespace: None,
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(CLUSTER_NAME.to_string()),
        api_version: Some("v1".to_string()),
        kind: Some("Config".to_string()),
        ..Kubeconfig::default()
    }
}

/// Writes `kubeconfig` as YAML to `path`.
pub fn write(kubeconfig: &Kubeconfig, path: &Path) {
    let yaml = serde_yaml::to_string(kubeconfig)
        .unwrap_or_else(|e| panic!("serializing a kubeconfig: {e}"));
    std::fs::write(path, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Reads the kubeconfig file at `path` back, as `kubectl` or the operator would.
pub fn read(path: &Path) -> Kubeconfig {
    Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A client for the current context of `kubeconfig`.
pub async fn client(kubeconfig: Kubeconfig) -> Client {
    install_crypto_provider();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("loading a kubeconfig: {e}"));
    Client::try_from(config).unwrap_or_else(|e| panic!("building a kube client: {e}"))
}

/// kube's rustls needs a process-wide crypto provider and the workspace's kube features name
/// none, so the tests install ring's (compiled in already, for rcgen).
pub fn install_crypto_provider() {
    // Err only means one is installed already, which is all this wants.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
