//! Running `weir-operator` against a test control plane ([`crate::kube::ControlPlane`]):
//! the CRDs from `crds/`, the chart's RBAC rules, and the operator as a real process acting as
//! its own service account, so the tests prove the RBAC is enough.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::admin::eventually;
use crate::kube::ControlPlane;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

/// `weir-operator` next to `weir-broker` (same target directory and profile).
pub fn operator_bin() -> PathBuf {
    let path = crate::broker::broker_bin().with_file_name("weir-operator");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p weir-operator`",
        path.display()
    );
    path
}

/// Applies every CRD in `crds/` and waits until the API server serves them.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = workspace().join("crds");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("crds/") {
        let path = entry.unwrap().path();
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = crd.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply("weir-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {}: {e}", path.display()));
        names.push(name);
    }
    for name in names {
        let api = api.clone();
        eventually(
            Duration::from_secs(60),
            &format!("CRD {name} established"),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    crd.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            },
        )
        .await;
    }
}

fn rules(file: &str) -> Vec<PolicyRule> {
    let path = workspace().join("charts/weir/files").join(file);
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` from the first character boundary at or after byte `start`.
pub fn tail(text: &str, start: usize) -> &str {
    let at = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| i >= start)
        .unwrap_or(text.len());
    &text[at..]
}

/// The operator process. Killed on drop.
#[derive(Debug)]
pub struct OperatorProcess {
    child: Child,
    log: PathBuf,
}

impl OperatorProcess {
    /// Creates the chart's ClusterRoles, a service account `weir-operator` in `namespace` bound
    /// to them, and starts the operator as that account, watching `namespace`, with brokers
    /// dialled at `host_template` when given.
    pub async fn start(cp: &ControlPlane, namespace: &str, host_template: Option<&str>) -> Self {
        Self::start_replica(cp, namespace, host_template, "a").await
    }

    /// Like [`OperatorProcess::start`], as replica `replica` (its identity in the Lease, its
    /// own log): several replicas of one namespace compete for the same lease.
    pub async fn start_replica(
        cp: &ControlPlane,
        namespace: &str,
        host_template: Option<&str>,
        replica: &str,
    ) -> Self {
        let client = cp.client();
        let apply = PatchParams::apply("weir-tests").force();
        let role_name = format!("weir-operator-{namespace}");
        for (name, file) in [
            (role_name.as_str(), "operator-rules.yaml"),
            ("weir-rack-reader", "rack-reader-rules.yaml"),
        ] {
            let role = ClusterRole {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..ObjectMeta::default()
                },
                rules: Some(rules(file)),
                ..ClusterRole::default()
            };
            Api::<ClusterRole>::all(client.clone())
                .patch(name, &apply, &Patch::Apply(&role))
                .await
                .unwrap();
        }
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("weir-operator".into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match Api::<ServiceAccount>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &account)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating the operator's service account: {e}"),
        }
        let binding = ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(role_name.clone()),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: role_name.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: "weir-operator".into(),
                namespace: Some(namespace.into()),
                ..Subject::default()
            }]),
        };
        Api::<ClusterRoleBinding>::all(client.clone())
            .patch(&role_name, &apply, &Patch::Apply(&binding))
            .await
            .unwrap();
        let kubeconfig = cp
            .service_account_kubeconfig(namespace, "weir-operator")
            .await;
        let path = cp.write_kubeconfig(&format!("operator-{namespace}"), &kubeconfig);
        let log = cp.dir().join(format!("operator-{namespace}-{replica}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(operator_bin());
        command
            .env("KUBECONFIG", &path)
            .env("RUST_LOG", "info,weir_operator=debug")
            .env("WEIR_OPERATOR_NAMESPACE", namespace)
            .env("POD_NAMESPACE", namespace)
            .env("POD_NAME", format!("weir-operator-{namespace}-{replica}"))
            .env("WEIR_OPERATOR_METRICS_LISTEN", "127.0.0.1:0")
            .env("WEIR_OPERATOR_BUSY_REQUEUE_SECONDS", "1")
            // The kubelet stand-in (`weir_pods`) refreshes mounted Secrets every second, so
            // a CA renewal's phases need not wait for a real kubelet's minute.
            .env("WEIR_OPERATOR_CERTIFICATE_SETTLE_SECONDS", "3")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if let Some(t) = host_template {
            command.env("WEIR_OPERATOR_BROKER_HOST_TEMPLATE", t);
        }
        let child = command.spawn().expect("starting weir-operator");
        OperatorProcess { child, log }
    }

    /// Where the operator serves `/metrics` and `/healthz` (from its log), once it does.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.log().lines().find_map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).ok()?;
            let fields = entry.get("fields")?;
            (fields.get("message")?.as_str()? == "serving /metrics and /healthz")
                .then(|| fields.get("addr")?.as_str()?.parse().ok())?
        })
    }

    /// The operator's log so far (JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the lease is left to expire.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let start = log.len().saturating_sub(6000);
            eprintln!(
                "--- weir-operator log tail ({}) ---\n{}",
                self.log.display(),
                crate::operator::tail(&log, start)
            );
        }
    }
}
