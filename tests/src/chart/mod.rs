//! The chart's static checks (`tests/tests/chart.rs`): the tools, rendering, and the pieces
//! they need.
//!
//! - [`ChartTools`]: helm, kubeconform, promtool and the Prometheus Operator CRDs, built by
//!   `scripts/chart-tools.sh build` (cached; a no-op once built).
//! - [`openapi`]: kubeconform schemas written from the test apiserver's OpenAPI document.
//! - [`promql`]: the metric names a PromQL expression reads, and Grafana variables replaced
//!   so promtool can parse a dashboard query.

pub mod openapi;
pub mod promql;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde::Deserialize;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    workspace().join("charts/weir")
}

/// Paths of the built tools. Invariant: every path exists.
#[derive(Debug, Clone)]
pub struct ChartTools {
    pub helm: PathBuf,
    pub kubeconform: PathBuf,
    pub promtool: PathBuf,
    pub prometheus: PathBuf,
    /// The Prometheus Operator's CRD YAML files.
    pub prometheus_operator_crds: PathBuf,
}

impl ChartTools {
    /// Builds the tools once per test process (`scripts/chart-tools.sh build`). Without Go the
    /// tests skip (`None`, saying so), unless `WEIR_REQUIRE_CHART_TOOLS=1` (set by
    /// `scripts/test.sh`) or `CI` is set: then a missing tool fails the test.
    pub fn get() -> Option<ChartTools> {
        static TOOLS: OnceLock<Option<ChartTools>> = OnceLock::new();
        TOOLS.get_or_init(build_tools).clone()
    }
}

fn required() -> bool {
    std::env::var_os("WEIR_REQUIRE_CHART_TOOLS").is_some() || std::env::var_os("CI").is_some()
}

fn build_tools() -> Option<ChartTools> {
    let go = Command::new("go").arg("version").output();
    if !go.is_ok_and(|o| o.status.success()) {
        assert!(
            !required(),
            "go is not on PATH: scripts/chart-tools.sh builds helm, kubeconform and promtool with it"
        );
        eprintln!("go is not on PATH: skipping the chart checks (scripts/chart-tools.sh needs it)");
        return None;
    }
    let script = workspace().join("scripts/chart-tools.sh");
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
    let ask = |what: &str| {
        let out = run(Command::new("bash").arg(&script).arg(what));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    };
    let bin = ask("bin-dir");
    let tools = ChartTools {
        helm: bin.join("helm"),
        kubeconform: bin.join("kubeconform"),
        promtool: bin.join("promtool"),
        prometheus: bin.join("prometheus"),
        prometheus_operator_crds: ask("crd-dir"),
    };
    for path in [
        &tools.helm,
        &tools.kubeconform,
        &tools.promtool,
        &tools.prometheus,
        &tools.prometheus_operator_crds,
    ] {
        assert!(
            path.exists(),
            "{} is missing after the build",
            path.display()
        );
    }
    Some(tools)
}

/// Runs `command`, panicking with its output unless it succeeds.
pub fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `command` expecting it to fail; returns its stderr and stdout.
pub fn run_failing(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        !output.status.success(),
        "{command:?} succeeded, expected a failure:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    )
}

impl ChartTools {
    /// `helm` with its configuration, cache and data kept in `home` (nothing of the user's).
    pub fn helm(&self, home: &Path) -> Command {
        let mut c = Command::new(&self.helm);
        c.env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env_remove("KUBECONFIG");
        c
    }

    /// `helm template <release> charts/weir --namespace <namespace> <args>`: the rendered
    /// documents (empty ones dropped), CRDs included.
    pub fn template(
        &self,
        home: &Path,
        release: &str,
        namespace: &str,
        args: &[&str],
    ) -> Vec<serde_json::Value> {
        let out = run(self
            .helm(home)
            .args(["template", release])
            .arg(chart_dir())
            .args(["--namespace", namespace, "--include-crds"])
            .args(args));
        parse_documents(&String::from_utf8_lossy(&out.stdout))
    }
}

/// The YAML documents of a multi-document stream, as JSON values; empty documents dropped.
pub fn parse_documents(text: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            serde_json::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{text}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// `kind` and `metadata.name` of each document, for assertions and messages.
pub fn kinds_and_names(docs: &[serde_json::Value]) -> Vec<(String, String)> {
    docs.iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or_default().to_string(),
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}
