//! A real Kubernetes control plane for tests: etcd, kube-apiserver and
//! kube-controller-manager as processes on loopback, with nothing faked.
//!
//! The binaries come from `scripts/kube-control-plane.sh build` (Kubernetes and etcd built from
//! the Go module proxy into `~/.cache/weir/kube-<version>/bin`, a no-op once cached);
//! [`ControlPlane::start`] runs that script once per test process. Each control plane gets a
//! temporary directory with fresh certificates ([`pki`]), etcd's data, a kubeconfig for the
//! admin user ([`kubeconfig`]) and every component's log ([`process`]). The apiserver enforces
//! RBAC and serves service-account tokens; the controller manager runs the default
//! controllers (StatefulSet, garbage collector, PVC protection, namespace, service accounts,
//! ...). There is no scheduler and no kubelet: pods stay Pending unless a test runs the
//! kubelet stand-in ([`crate::kubelet`]).
//!
//! Dropping a [`ControlPlane`] kills its processes; when the test is panicking the directory
//! (logs included) is kept and its path printed.

pub mod kubeconfig;
pub mod pki;
pub mod process;

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::config::Kubeconfig;
use kube::{Api, Client};
use tempfile::TempDir;

use self::kubeconfig::Credentials;
use self::pki::Pki;
use self::process::LoggedProcess;
use crate::admin::eventually;

/// How long the apiserver may take to report ready and the controller manager to act: both
/// are Go binaries starting dozens of informers on a shared two-core machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(180);
/// The admin user of every control plane (a client certificate in `system:masters`).
pub const ADMIN_USER: &str = "weir-admin";
/// The Service IP range the apiserver allocates from (no Service traffic flows: no kube-proxy).
const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";
/// The first address of that range: the `kubernetes` Service, named in the serving certificate.
const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// How often start-up conditions are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A running control plane. Invariant: from [`ControlPlane::start`]'s return until drop, the
/// apiserver at [`ControlPlane::server_url`] was ready and `processes` holds etcd, the
/// apiserver and the controller manager, in start order.
pub struct ControlPlane {
    processes: Vec<LoggedProcess>,
    /// Certificates, etcd data, kubeconfigs and logs; `None` once kept after a failure.
    dir: Option<TempDir>,
    dir_path: PathBuf,
    server_url: String,
    pki: Pki,
    kubeconfig_path: PathBuf,
    client: Client,
}

impl ControlPlane {
    /// Builds the binaries if needed, starts etcd, kube-apiserver and kube-controller-manager
    /// on free loopback ports, and returns once the apiserver's `/readyz` answers `ok` and the
    /// controller manager has created the `default` service account. Panics (printing the
    /// components' log tails) when that does not happen within [`START_TIMEOUT`].
    pub async fn start() -> ControlPlane {
        let bin_dir = tokio::task::spawn_blocking(control_plane_bin_dir)
            .await
            .unwrap_or_else(|e| panic!("building the control plane: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("weir-kube-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
        let dir_path = dir.path().to_path_buf();
        let file = |name: &str, contents: &str| {
            let path = dir_path.join(name);
            std::fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            path
        };

        let pki = Pki::new();
        let ca_pem = pki.ca_pem();
        let ca_cert = file("ca.crt", &ca_pem);
        let serving = pki.serving_cert(
            &[
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V4(KUBERNETES_SERVICE_IP),
            ],
            &[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        );
        let serving_cert = file("apiserver.crt", &serving.cert_pem);
        let serving_key = file("apiserver.key", &serving.key_pem);
        // Service-account tokens: signed with the private key (apiserver's TokenRequest, the
        // controller manager's token controller), verified with the public one.
        let service_account = pki::key_pair_pem();
        let service_account_key = file("service-account.key", &service_account.private_pem);
        let service_account_pub = file("service-account.pub", &service_account.public_pem);

        let [etcd_client_port, etcd_peer_port, apiserver_port] = free_ports();
        let server_url = format!("https://127.0.0.1:{apiserver_port}");
        let admin = Credentials::ClientCert(pki.client_cert(ADMIN_USER, Some("system:masters")));
        let kubeconfig_path = dir_path.join("admin.kubeconfig");
        kubeconfig::write(
            &kubeconfig::kubeconfig(&server_url, &ca_pem, ADMIN_USER, &admin),
            &kubeconfig_path,
        );
        // The tests' admin client reads the file back: what works for them works for the
        // operator binary given the same path.
        let client = kubeconfig::client(kubeconfig::read(&kubeconfig_path)).await;

        let etcd_url = format!("http://127.0.0.1:{etcd_client_port}");
        let etcd_peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let mut etcd = Command::new(bin_dir.join("etcd"));
        etcd.arg("--name=weir-test")
            .arg(format!("--data-dir={}", dir_path.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={etcd_peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={etcd_peer_url}"))
            .arg(format!("--initial-cluster=weir-test={etcd_peer_url}"))
            // A throwaway single-member store: durability buys nothing, fsyncs cost seconds
            // on a busy disk.
            .arg("--unsafe-no-fsync")
            .arg("--log-level=warn");

        let mut apiserver = Command::new(bin_dir.join("kube-apiserver"));
        apiserver
            .arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={apiserver_port}"))
            .arg(format!(
                "--cert-dir={}",
                dir_path.join("apiserver-certs").display()
            ))
            .arg(format!("--tls-cert-file={}", serving_cert.display()))
            .arg(format!("--tls-private-key-file={}", serving_key.display()))
            .arg(format!("--client-ca-file={}", ca_cert.display()))
            .arg("--authorization-mode=RBAC")
            .arg(format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"))
            .arg(format!(
                "--service-account-key-file={}",
                service_account_pub.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                service_account_key.display()
            ))
            .arg(format!(
                "--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"
            ))
            // The `kubernetes` Service's endpoint would be the advertise address, 127.0.0.1,
            // which Endpoints validation rejects as loopback (an error every 10 s otherwise).
            .arg("--endpoint-reconciler-type=none")
            .arg("--profiling=false");

        let mut controller_manager = Command::new(bin_dir.join("kube-controller-manager"));
        controller_manager
            .arg(format!("--kubeconfig={}", kubeconfig_path.display()))
            .arg("--leader-elect=false")
            // Every controller that is on by default in a real cluster.
            .arg("--controllers=*")
            // Its own HTTPS endpoint (health, metrics) is not needed, and a fixed default port
            // would collide between control planes running side by side.
            .arg("--secure-port=0")
            .arg(format!(
                "--service-account-private-key-file={}",
                service_account_key.display()
            ))
            .arg(format!("--root-ca-file={}", ca_cert.display()))
            .arg(format!(
                "--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"
            ))
            .arg("--profiling=false");

        let mut plane = ControlPlane {
            processes: Vec::new(),
            dir: Some(dir),
            dir_path: dir_path.clone(),
            server_url,
            pki,
            kubeconfig_path,
            client,
        };
        plane
            .processes
            .push(LoggedProcess::spawn("etcd", etcd, &dir_path));
        plane
            .processes
            .push(LoggedProcess::spawn("kube-apiserver", apiserver, &dir_path));
        plane
            .wait_started(
                "the apiserver's /readyz to answer ok",
                |client| async move {
                    let request = http::Request::get("/readyz").body(Vec::new()).ok()?;
                    let body = client.request_text(request).await.ok()?;
                    (body.trim() == "ok").then_some(())
                },
            )
            .await;
        plane.processes.push(LoggedProcess::spawn(
            "kube-controller-manager",
            controller_manager,
            &dir_path,
        ));
        plane
            .wait_started(
                "the controller manager to create the default service account",
                |client| async move {
                    let accounts = Api::<ServiceAccount>::namespaced(client, "default");
                    accounts.get_opt("default").await.ok()?.map(|_| ())
                },
            )
            .await;
        plane
    }

    /// A client authenticated as the admin (`system:masters`).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The admin kubeconfig file (certificates embedded), for processes such as the operator.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The temporary directory: certificates, kubeconfigs, etcd data and `<component>.log`.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Creates namespace `name` and waits until its `default` service account exists (pods
    /// are refused before that).
    pub async fn create_namespace(&self, name: &str) {
        let namespaces = Api::<Namespace>::all(self.client());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let accounts = Api::<ServiceAccount>::namespaced(self.client(), name);
        eventually(
            START_TIMEOUT,
            &format!("the default service account of namespace {name}"),
            || {
                let accounts = accounts.clone();
                async move { accounts.get_opt("default").await.ok().flatten() }
            },
        )
        .await;
    }

    /// A kubeconfig authenticating with a fresh token (TokenRequest API, one hour) of service
    /// account `namespace/name`, which must exist.
    pub async fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> Kubeconfig {
        let accounts = Api::<ServiceAccount>::namespaced(self.client(), namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let issued = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for service account {namespace}/{name}: {e}"));
        let token = issued
            .status
            .and_then(|status| status.token)
            .unwrap_or_else(|| panic!("TokenRequest for {namespace}/{name} returned no token"));
        let user = format!("system:serviceaccount:{namespace}:{name}");
        kubeconfig::kubeconfig(
            &self.server_url,
            &self.pki.ca_pem(),
            &user,
            &Credentials::Token(token),
        )
    }

    /// A client acting as service account `namespace/name` (see
    /// [`ControlPlane::service_account_kubeconfig`]): what its RBAC bindings allow, and no more.
    pub async fn service_account_client(&self, namespace: &str, name: &str) -> Client {
        kubeconfig::client(self.service_account_kubeconfig(namespace, name).await).await
    }

    /// A kubeconfig for user `user` in `group` (a client certificate from the control plane's CA).
    pub fn user_kubeconfig(&self, user: &str, group: Option<&str>) -> Kubeconfig {
        let cert = self.pki.client_cert(user, group);
        kubeconfig::kubeconfig(
            &self.server_url,
            &self.pki.ca_pem(),
            user,
            &Credentials::ClientCert(cert),
        )
    }

    /// Writes `kubeconfig` as `<dir>/<name>.kubeconfig` and returns the path, for processes.
    pub fn write_kubeconfig(&self, name: &str, kubeconfig: &Kubeconfig) -> PathBuf {
        let path = self.dir_path.join(format!("{name}.kubeconfig"));
        kubeconfig::write(kubeconfig, &path);
        path
    }

    /// Polls `condition` with the admin client until it yields `Some`; panics with every
    /// component's log tail when a component exits or [`START_TIMEOUT`] passes.
    async fn wait_started<F, Fut>(&mut self, what: &str, condition: F)
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Option<()>>,
    {
        let started = Instant::now();
        loop {
            if condition(self.client()).await.is_some() {
                return;
            }
            let exited = self
                .processes
                .iter_mut()
                .find_map(|process| Some((process.name().to_string(), process.exit_status()?)));
            if let Some((name, status)) = exited {
                self.print_log_tails();
                panic!("{name} exited ({status}) while waiting for {what}");
            }
            if started.elapsed() >= START_TIMEOUT {
                self.print_log_tails();
                panic!("timed out after {START_TIMEOUT:?} waiting for {what}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn print_log_tails(&self) {
        for process in &self.processes {
            process.print_log_tail();
        }
    }
}

impl std::fmt::Debug for ControlPlane {
    // By hand: kube::Client has no Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server_url", &self.server_url)
            .field("dir", &self.dir_path)
            .field("processes", &self.processes)
            .finish_non_exhaustive()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Controller manager first, etcd last: nothing logs errors about a peer already gone.
        while let Some(process) = self.processes.pop() {
            drop(process);
        }
        // A failed test keeps what it saw; WEIR_TEST_KEEP_DIRS=1 keeps it after a pass too
        // (to read the operator's log of a slow run).
        if std::thread::panicking() || std::env::var_os("WEIR_TEST_KEEP_DIRS").is_some() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!(
                    "kept the control plane's certificates, data and logs in {}",
                    kept.display()
                );
            }
        }
    }
}

/// Runs `scripts/kube-control-plane.sh build` once per test process and returns its bin dir.
fn control_plane_bin_dir() -> PathBuf {
    static BIN_DIR: OnceLock<PathBuf> = OnceLock::new();
    BIN_DIR
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("scripts")
                .join("kube-control-plane.sh");
            let status = Command::new("bash")
                .arg(&script)
                .arg("build")
                .status()
                .unwrap_or_else(|e| panic!("running {} build: {e}", script.display()));
            assert!(
                status.success(),
                "{} build failed ({status})",
                script.display()
            );
            let output = Command::new("bash")
                .arg(&script)
                .arg("bin-dir")
                .output()
                .unwrap_or_else(|e| panic!("running {} bin-dir: {e}", script.display()));
            assert!(
                output.status.success(),
                "{} bin-dir failed",
                script.display()
            );
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        })
        .clone()
}

/// `N` distinct free loopback ports. The listeners are held until all are chosen so the same
/// port is not handed out twice; another process could still take one before the component
/// binds it, which start-up then reports as that component exiting.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap_or_else(|e| panic!("binding a free loopback port: {e}"))
        })
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .unwrap_or_else(|e| panic!("reading a bound port: {e}"))
            .port()
    })
}
