//! The container image `scripts/build-images.sh` builds, checked from the outside: the script
//! runs on the debug binaries (stripped, as CI packages them), then the OCI layout is read as
//! a registry or containerd would read it, its one layer unpacked with `tar`, and the binaries
//! run inside that root filesystem as the image's user, each as PID 1 of a new PID namespace
//! as in a container (where a signal without a handler is dropped, not acted on).
//!
//! Needs root (for `unshare --root` and the layer's file owners), `umoci` and `skopeo` (the
//! script's `install-tools`), `tar` and `unshare`. Without them the tests say so and pass,
//! unless `WEIR_REQUIRE_IMAGES=1` (scripts/test.sh sets it), which makes that a failure. Build
//! the binaries first: `cargo build -p weir-broker -p weir-operator`.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use weir_tests::broker::{broker_bin, START_TIMEOUT, STOP_TIMEOUT};
use weir_tests::kube::kubeconfig::{self, Credentials};
use weir_tests::kube::pki::Pki;
use weir_tests::wait::wait_until;

/// The image's non-root user and group.
const IMAGE_USER: &str = "65532:65532";
/// Upper bound of the image's compressed size (layer, config and manifest) built from the
/// debug binaries, stripped. Measured at about 31 MiB; the release image is far smaller.
const MAX_DEBUG_IMAGE_BYTES: u64 = 48 * 1024 * 1024;
/// How long the script may take with the binaries already built.
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// The image as built and unpacked once for every test in this file.
#[derive(Debug)]
struct Image {
    layout: PathBuf,
    archive: PathBuf,
    rootfs: PathBuf,
    /// The directory for files the tests write (logs, a kubeconfig).
    scratch: PathBuf,
    /// The tags in the layout's index (`org.opencontainers.image.ref.name`).
    tags: Vec<String>,
    config: Value,
    compressed_bytes: u64,
}

/// Why there is no image to test.
#[derive(Debug)]
enum NoImage {
    /// Tools or privileges are missing, and the environment does not require the test.
    Skipped(String),
    Failed(String),
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The effective uid (the second field of `Uid:` in /proc/self/status) is 0.
fn effective_uid_is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

/// The full path of a program on this process's PATH.
fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

fn missing_prerequisites() -> Option<String> {
    if !effective_uid_is_root() {
        return Some("not root (unshare --root and the layer's file owners need it)".into());
    }
    let missing: Vec<&str> = ["umoci", "skopeo", "tar", "unshare", "strip", "git"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} not installed (bash scripts/build-images.sh install-tools)",
            missing.join(", ")
        )
    })
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Result<Image, NoImage>> = OnceLock::new();
    match IMAGE.get_or_init(build) {
        Ok(image) => image,
        Err(NoImage::Failed(why)) => panic!("building the image failed: {why}"),
        Err(NoImage::Skipped(why)) => panic!("unreachable: skipped ({why})"),
    }
}

/// Whether the tests run here; prints why not.
fn available() -> bool {
    match missing_prerequisites() {
        None => true,
        Some(why) if std::env::var("WEIR_REQUIRE_IMAGES").as_deref() == Ok("1") => {
            panic!("WEIR_REQUIRE_IMAGES=1 but the image tests cannot run: {why}")
        }
        Some(why) => {
            eprintln!("skipping the image tests: {why}");
            false
        }
    }
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
    layout.join("blobs/sha256").join(hex)
}

fn build() -> Result<Image, NoImage> {
    if let Some(why) = missing_prerequisites() {
        return Err(NoImage::Skipped(why));
    }
    // Under the target directory, replaced on every run (never in /tmp: it is ~100 MB).
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| workspace().join(dir))
        .unwrap_or_else(|| workspace().join("target"));
    let scratch = target.join("images-test");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| NoImage::Failed(e.to_string()))?;
    let layout = scratch.join("oci");
    let archive = scratch.join("weir.tar");
    let bin_dir = broker_bin()
        .parent()
        .expect("the broker binary has a directory")
        .to_path_buf();
    if !bin_dir.join("weir-operator").is_file() {
        return Err(NoImage::Failed(format!(
            "{}/weir-operator does not exist: cargo build -p weir-broker -p weir-operator",
            bin_dir.display()
        )));
    }

    // The script packages $CARGO_TARGET_DIR/<profile>; point it at the directory of the
    // binaries these tests use.
    let profile = bin_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_string();
    let started = Instant::now();
    let mut script = Command::new("bash");
    script
        .arg(workspace().join("scripts/build-images.sh"))
        .args(["--profile", &profile, "--no-build", "--out"])
        .arg(&layout)
        .arg("--archive")
        .arg(&archive)
        .env("CARGO_TARGET_DIR", bin_dir.parent().unwrap());
    let output = run_with_timeout(script, BUILD_TIMEOUT);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.1),
        String::from_utf8_lossy(&output.2)
    );
    if !output.0.success() {
        return Err(NoImage::Failed(format!(
            "scripts/build-images.sh exited with {}:\n{log}",
            output.0
        )));
    }
    eprintln!(
        "scripts/build-images.sh ({profile} binaries) took {:.1}s:\n{log}",
        started.elapsed().as_secs_f64()
    );

    let index = read_json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let tags: Vec<String> = manifests
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_string)
        .collect();
    let first = manifests
        .first()
        .ok_or_else(|| NoImage::Failed("the layout's index has no manifest".into()))?;
    let manifest_digest = first["digest"].as_str().unwrap_or_default().to_string();
    let manifest = read_json(&blob(&layout, &manifest_digest));
    let config = read_json(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap_or_default(),
    ));
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    if layers.len() != 1 {
        return Err(NoImage::Failed(format!(
            "expected one layer (FROM scratch), found {}",
            layers.len()
        )));
    }
    let size_of = |path: PathBuf| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let layer = blob(&layout, layers[0]["digest"].as_str().unwrap_or_default());
    let compressed_bytes = size_of(layer.clone())
        + size_of(blob(&layout, &manifest_digest))
        + size_of(blob(
            &layout,
            manifest["config"]["digest"].as_str().unwrap_or_default(),
        ));

    // Unpack the layer as a container runtime would: owners and modes as recorded.
    let rootfs = scratch.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| NoImage::Failed(e.to_string()))?;
    let mut tar = Command::new("tar");
    tar.arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&rootfs)
        .args(["--numeric-owner", "--same-permissions"]);
    let untar = run_with_timeout(tar, BUILD_TIMEOUT);
    if !untar.0.success() {
        return Err(NoImage::Failed(format!(
            "unpacking the layer: {}",
            String::from_utf8_lossy(&untar.2)
        )));
    }
    Ok(Image {
        layout,
        archive,
        rootfs,
        scratch,
        tags,
        config,
        compressed_bytes,
    })
}

/// Runs a command to completion with a deadline: (status, stdout, stderr).
fn run_with_timeout(mut command: Command, timeout: Duration) -> (ExitStatus, Vec<u8>, Vec<u8>) {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {:?}: {e}", command.get_program()));
    let pid = Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(output)) => (output.status, output.stdout, output.stderr),
        Ok(Err(e)) => panic!("waiting for {:?}: {e}", command.get_program()),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!(
                "{:?} did not finish within {timeout:?}",
                command.get_program()
            );
        }
    }
}

fn git(args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(workspace())
        .args(args)
        .output()
        .expect("running git");
    assert!(output.status.success(), "git {args:?} failed");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// `unshare` running one of the image's binaries as the image's user, in the image's root
/// filesystem and working directory, with only the image's PATH in the environment.
fn in_image(image: &Image, pid_namespace: bool, program: &str, args: &[&str]) -> Command {
    let (uid, gid) = IMAGE_USER.split_once(':').unwrap();
    // By its full path: the command's PATH is the image's.
    let mut command = Command::new(which("unshare"));
    if pid_namespace {
        // --kill-child: if the test dies, so does the process in the namespace.
        command.args(["--pid", "--fork", "--kill-child"]);
    }
    command
        .arg("--root")
        .arg(&image.rootfs)
        .args([
            "--wd",
            "/var/lib/weir",
            "--setuid",
            uid,
            "--setgid",
            gid,
            "--",
        ])
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin")
        .env("NO_COLOR", "1");
    command
}

/// A binary of the image running as PID 1 of its own PID namespace.
struct Pid1 {
    /// `unshare`, which waits for PID 1 and exits with its status.
    unshare: Child,
    /// PID 1's pid in this (the test's) namespace.
    pid: Pid,
    /// Its stdout and stderr.
    output: PathBuf,
}

impl Pid1 {
    fn start(
        image: &Image,
        name: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Pid1 {
        // Both streams: the broker's ready line is on stdout, its log on stderr; the
        // operator logs (JSON) to stdout.
        let output = image.scratch.join(format!("{name}.log"));
        let file = File::create(&output).unwrap();
        let mut command = in_image(image, true, program, args);
        command.envs(env.iter().copied());
        let mut unshare = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawning unshare");
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let pid = wait_until(START_TIMEOUT, "unshare to fork PID 1", || {
            if let Some(status) = unshare.try_wait().unwrap() {
                panic!(
                    "{name} exited at once with {status}:\n{}",
                    std::fs::read_to_string(&output).unwrap_or_default()
                );
            }
            let text = std::fs::read_to_string(&children).ok()?;
            text.split_whitespace().next()?.parse::<i32>().ok()
        });
        // The kernel's view: the process is 1 in the namespace it runs in (the last NSpid).
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let ns_pid = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|pids| pids.split_whitespace().last().map(str::to_string));
        assert_eq!(
            ns_pid.as_deref(),
            Some("1"),
            "{name} is not PID 1:\n{status}"
        );
        Pid1 {
            unshare,
            pid: Pid::from_raw(pid),
            output,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Sends `signal` to PID 1 (from outside its namespace, as a container runtime does) and
    /// waits for it to exit.
    fn signal_and_wait(&mut self, signal: Signal) -> ExitStatus {
        kill(self.pid, signal).expect("signalling PID 1");
        let unshare = &mut self.unshare;
        let what = format!(
            "PID 1 to exit after {signal} (a signal without a handler is dropped for PID 1); \
             its output is in {}",
            self.output.display()
        );
        wait_until(STOP_TIMEOUT, &what, || {
            unshare.try_wait().expect("polling unshare")
        })
    }
}

impl Drop for Pid1 {
    fn drop(&mut self) {
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

#[test]
fn the_image_runs_as_a_non_root_user_and_is_labelled_with_version_and_commit() {
    if !available() {
        return;
    }
    let image = image();
    let config = &image.config["config"];
    assert_eq!(config["User"], IMAGE_USER, "{config:#}");
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["weir-broker"]),
        "{config:#}"
    );
    assert!(config["Entrypoint"].is_null(), "{config:#}");
    assert_eq!(config["StopSignal"], "SIGTERM", "{config:#}");
    assert_eq!(config["WorkingDir"], "/var/lib/weir", "{config:#}");
    assert!(
        config["Env"]
            .as_array()
            .is_some_and(|env| env.contains(&Value::from("PATH=/usr/local/bin"))),
        "{config:#}"
    );
    let labels = &config["Labels"];
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(labels["org.opencontainers.image.version"], version);
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        git(&["rev-parse", "HEAD"])
    );
    assert_eq!(labels["dev.weir.build.profile"], "debug");
    let short = git(&["rev-parse", "--short=12", "HEAD"]);
    assert!(
        image.tags.contains(&version.to_string()),
        "{:?}",
        image.tags
    );
    assert!(
        image.tags.iter().any(|t| t.starts_with(&short)),
        "no tag names commit {short}: {:?}",
        image.tags
    );
    eprintln!(
        "image size (debug binaries, stripped): {:.1} MiB compressed",
        image.compressed_bytes as f64 / (1024.0 * 1024.0)
    );
    assert!(
        image.compressed_bytes < MAX_DEBUG_IMAGE_BYTES,
        "the image is {} bytes, over the bound of {MAX_DEBUG_IMAGE_BYTES}",
        image.compressed_bytes
    );
}

#[test]
fn both_binaries_run_in_the_image_as_its_user_with_nothing_else_there() {
    if !available() {
        return;
    }
    let image = image();
    for binary in ["weir-broker", "weir-operator"] {
        let path = image.rootfs.join("usr/local/bin").join(binary);
        let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions());
        assert_eq!(mode & 0o755, 0o755, "{binary} is not executable: {mode:o}");
        // Found on PATH and loaded with the image's libraries only: a library missing from
        // the image fails here.
        let output = run_with_timeout(
            in_image(image, false, binary, &["--version"]),
            START_TIMEOUT,
        );
        let stdout = String::from_utf8_lossy(&output.1);
        assert!(
            output.0.success(),
            "{binary} --version in the image: {}\n{stdout}{}",
            output.0,
            String::from_utf8_lossy(&output.2)
        );
        assert_eq!(
            stdout.trim(),
            format!("{binary} {}", env!("CARGO_PKG_VERSION"))
        );
    }
    for absent in ["bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/env"] {
        assert!(
            !image.rootfs.join(absent).exists(),
            "the image holds /{absent}"
        );
    }
    let passwd = std::fs::read_to_string(image.rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains(":65532:65532:"), "{passwd}");
}

#[test]
fn the_broker_as_pid_1_in_the_image_serves_and_shuts_down_cleanly_on_sigterm() {
    if !available() {
        return;
    }
    let image = image();
    let mut broker = Pid1::start(
        image,
        "broker",
        "weir-broker",
        &[
            "--data-dir=/var/lib/weir/data",
            "--listen=127.0.0.1:0",
            "--metrics-listen=127.0.0.1:0",
            "--rpc-listen=127.0.0.1:0",
        ],
        &[],
    );
    let kafka = ready_kafka_addr(&mut broker);

    // It serves: a record produced with acks=all is there to read.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", kafka.to_string())
        .set("broker.address.family", "v4")
        .set("message.timeout.ms", "30000");
    let producer: FutureProducer = config.clone().set("acks", "all").create().unwrap();
    runtime
        .block_on(producer.send(
            FutureRecord::to("images").key("k").payload("from PID 1"),
            Duration::from_secs(30),
        ))
        .unwrap_or_else(|(e, _)| {
            panic!(
                "producing to the broker in the image: {e}\n{}",
                broker.output()
            )
        });
    // No group.id: nothing but the topic is created.
    let consumer: BaseConsumer = config.create().unwrap();
    let (_, high) = consumer
        .fetch_watermarks("images", 0, Duration::from_secs(30))
        .unwrap();
    assert_eq!(high, 1);
    drop(consumer);
    drop(producer);

    let status = broker.signal_and_wait(Signal::SIGTERM);
    let log = broker.output();
    assert!(status.success(), "the broker exited with {status}:\n{log}");
    assert!(
        log.contains("shutting down") && log.contains("shut down cleanly"),
        "the broker's log does not show its clean shutdown:\n{log}"
    );
}

/// Waits for the broker's ready line and returns its Kafka address.
fn ready_kafka_addr(broker: &mut Pid1) -> SocketAddr {
    let line = wait_until(START_TIMEOUT, "the broker's ready line", || {
        if let Some(status) = broker.unshare.try_wait().unwrap() {
            panic!("the broker exited with {status}:\n{}", broker.output());
        }
        broker
            .output()
            .lines()
            .find(|line| line.starts_with("weir-broker ready"))
            .map(str::to_string)
    });
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("kafka="))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("malformed ready line: {line}"))
}

#[test]
fn the_operator_as_pid_1_in_the_image_stops_on_sigterm() {
    if !available() {
        return;
    }
    let image = image();
    // An API server nobody listens on: the operator starts, retries reading its Lease, and
    // must still stop at once on SIGTERM. The kubeconfig names its CA, as the in-cluster
    // configuration does (the service account's ca.crt): the image has no CA bundle.
    let kubeconfig = kubeconfig::kubeconfig(
        "https://127.0.0.1:1",
        &Pki::new().ca_pem(),
        "nobody",
        &Credentials::Token("none".into()),
    );
    kubeconfig::write(&kubeconfig, &image.rootfs.join("tmp/kubeconfig"));
    let mut operator = Pid1::start(
        image,
        "operator",
        "weir-operator",
        &[],
        &[
            ("KUBECONFIG", "/tmp/kubeconfig"),
            ("WEIR_OPERATOR_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    );
    wait_until(START_TIMEOUT, "the operator to wait for leadership", || {
        operator
            .output()
            .contains("waiting for leadership")
            .then_some(())
    });
    let status = operator.signal_and_wait(Signal::SIGTERM);
    let log = operator.output();
    assert!(
        status.success(),
        "the operator exited with {status}:\n{log}"
    );
    assert!(log.contains("SIGTERM: stopping"), "{log}");
}

#[test]
fn the_docker_archive_carries_every_tag() {
    if !available() {
        return;
    }
    let image = image();
    let output = Command::new("tar")
        .arg("-xOf")
        .arg(&image.archive)
        .arg("manifest.json")
        .output()
        .expect("running tar");
    assert!(output.status.success(), "{}", image.archive.display());
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    let repo_tags: Vec<&str> = manifest[0]["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for tag in &image.tags {
        // skopeo writes short names fully qualified, as `docker load` and containerd's import
        // read them back (`<default registry>/library/weir:TAG` is what `weir:TAG` means to
        // a container runtime).
        let short = format!("weir:{tag}");
        let qualified = format!("/library/{short}");
        assert!(
            repo_tags
                .iter()
                .any(|t| *t == short || t.ends_with(&qualified)),
            "{short} missing from {repo_tags:?}"
        );
    }
    // The layout and the archive hold the same layer.
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest:#}");
    assert!(image.layout.join("oci-layout").is_file());
}
