//! The Helm chart's static checks, with the real tools (`scripts/chart-tools.sh`): `helm lint
//! --strict`; `values.schema.json` refusing bad values; what renders with and without
//! monitoring; every rendered object validated by kubeconform against schemas written from the
//! test apiserver's own OpenAPI (never kubeconform's default schema location) and applied to
//! that apiserver with a server-side dry run (CRD kinds meet their real schemas there); the
//! alert rules through `promtool check rules` and their unit tests (`promtool test rules`);
//! every dashboard query parsed by promtool and naming only metrics Weir exports; the plain
//! Prometheus scrape config through `promtool check config`.
//!
//! Without Go the tool-using tests skip, unless `WEIR_REQUIRE_CHART_TOOLS=1` (scripts/test.sh)
//! or `CI` is set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use kube::{Api, Client};
use serde_json::Value;
use tempfile::TempDir;
use weir_tests::admin::eventually;
use weir_tests::chart::openapi::{self, Gvk};
use weir_tests::chart::promql;
use weir_tests::chart::{chart_dir, kinds_and_names, run, run_failing, workspace, ChartTools};
use weir_tests::kube::ControlPlane;

const RELEASE: &str = "weir";
const NAMESPACE: &str = "weir-system";
/// Values that turn everything on: a Cluster, Topics, and monitoring with the Prometheus
/// Operator kinds forced (no API server to ask while templating).
const EVERYTHING: &str = r#"
cluster:
  enabled: true
  replicas: 3
  storage: {size: 1Gi, storageClassName: local}
  config: {num.partitions: "3", log.retention.ms: "604800000"}
  resources: {requests: {cpu: 100m, memory: 256Mi}}
  rebalanceThrottleBytesPerSecond: 10485760
topics:
  - {name: orders, partitions: 6, replicationFactor: 3, config: {retention.ms: "86400000"}}
  - {name: audit-log, topicName: audit_log, partitions: 1, replicationFactor: 3}
monitoring:
  enabled: true
  labels: {release: kube-prometheus-stack}
  podMonitor: {enabled: true}
  prometheusRule: {enabled: true}
"#;
/// Grafana's own interval variables.
const GRAFANA_VARIABLES: &[&str] = &["__rate_interval", "__interval", "__range"];
/// Series a query may read besides Weir's: Prometheus' own scrape health.
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// The tools and a private helm home, or `None` when the checks skip.
fn setup() -> Option<(ChartTools, TempDir)> {
    let tools = ChartTools::get()?;
    let home = tempfile::Builder::new()
        .prefix("weir-chart-")
        .tempdir()
        .unwrap();
    Some((tools, home))
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

fn everything_values(home: &Path) -> String {
    write(home, "everything.yaml", EVERYTHING)
        .display()
        .to_string()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", kinds_and_names(docs)))
}

fn count_kind(docs: &[Value], kind: &str) -> usize {
    docs.iter().filter(|d| d["kind"] == kind).count()
}

/// The Prometheus meta label of a pod label (`weir.dev/cluster` →
/// `__meta_kubernetes_pod_label_weir_dev_cluster`).
fn pod_label_meta(label: &str) -> String {
    let sanitized: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("__meta_kubernetes_pod_label_{sanitized}")
}

#[test]
fn the_charts_crds_are_the_generated_crds() {
    let generated = workspace().join("crds");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&generated).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        let in_chart = chart_dir().join("crds").join(&name);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::fs::read_to_string(&in_chart)
                .unwrap_or_else(|e| panic!("{}: {e}", in_chart.display())),
            "{} differs from {}: copy crds/ into charts/weir/crds/",
            in_chart.display(),
            path.display()
        );
        names.push(name);
    }
    let in_chart = std::fs::read_dir(chart_dir().join("crds")).unwrap().count();
    assert_eq!(
        in_chart,
        names.len(),
        "charts/weir/crds/ has files crds/ has not"
    );
}

#[test]
fn helm_lint_strict_is_clean_with_defaults_and_with_everything_on() {
    let Some((tools, home)) = setup() else { return };
    let everything = everything_values(home.path());
    for args in [vec![], vec!["--values", everything.as_str()]] {
        let out = run(tools
            .helm(home.path())
            .args(["lint", "--strict"])
            .arg(chart_dir())
            .args(&args));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("0 chart(s) failed"), "{args:?}: {text}");
    }
}

#[test]
fn the_values_schema_refuses_values_the_chart_cannot_use() {
    let Some((tools, home)) = setup() else { return };
    for (bad, field) in [
        (vec!["--set", "replica=3"], "replica"),
        (vec!["--set", "cluster.replicas=0"], "replicas"),
        (vec!["--set", "cluster.storage.size=lots"], "size"),
        (vec!["--set", "topics[0].name=orders"], "partitions"),
        (
            vec![
                "--set",
                "topics[0].name=Orders,topics[0].partitions=1,topics[0].replicationFactor=1",
            ],
            "name",
        ),
        (
            vec!["--set", "cluster.config.num\\.partitions=3"],
            "num.partitions",
        ),
        (
            vec!["--set", "monitoring.alerts.consumerLagFor=ten minutes"],
            "consumerLagFor",
        ),
        (vec!["--set", "monitoring.podMonitor.enable=true"], "enable"),
        (vec!["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
    ] {
        let message = run_failing(
            tools
                .helm(home.path())
                .args(["template", RELEASE])
                .arg(chart_dir())
                .args(&bad),
        );
        assert!(
            message.contains("values don't meet the specifications of the schema")
                || message.contains("schema"),
            "{bad:?}: {message}"
        );
        assert!(
            message.contains(field),
            "{bad:?} should name {field}: {message}"
        );
    }
}

#[test]
fn monitoring_renders_dashboards_and_rules_and_the_operator_kinds_only_with_their_api() {
    let Some((tools, home)) = setup() else { return };
    let h = home.path();
    let monitoring_kinds = |docs: &[Value]| {
        (
            count_kind(docs, "PodMonitor"),
            count_kind(docs, "PrometheusRule"),
        )
    };

    let plain = tools.template(h, RELEASE, NAMESPACE, &[]);
    assert_eq!(monitoring_kinds(&plain), (0, 0));
    assert_eq!(
        count_kind(&plain, "ConfigMap"),
        0,
        "{:?}",
        kinds_and_names(&plain)
    );
    assert_eq!(
        count_kind(&plain, "Cluster") + count_kind(&plain, "Topic"),
        0
    );

    // No Prometheus Operator API: dashboards and the plain rules, no PodMonitor or rule.
    let without_api = tools.template(h, RELEASE, NAMESPACE, &["--set", "monitoring.enabled=true"]);
    assert_eq!(monitoring_kinds(&without_api), (0, 0));
    let dashboards: Vec<_> = without_api
        .iter()
        .filter(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    let files = std::fs::read_dir(chart_dir().join("dashboards"))
        .unwrap()
        .count();
    assert_eq!(dashboards.len(), files, "one ConfigMap per dashboard");
    for d in &dashboards {
        let (key, json) = d["data"].as_object().unwrap().iter().next().unwrap();
        let parsed: Value = serde_json::from_str(json.as_str().unwrap())
            .unwrap_or_else(|e| panic!("{key} in its ConfigMap is not JSON: {e}"));
        assert!(parsed["uid"].is_string(), "{key}");
    }
    find(&without_api, "ConfigMap", "weir-alert-rules");

    // The API served (what `helm install` sees on a cluster with the Prometheus Operator).
    let with_api = tools.template(
        h,
        RELEASE,
        NAMESPACE,
        &[
            "--set",
            "monitoring.enabled=true",
            "--api-versions",
            "monitoring.coreos.com/v1",
        ],
    );
    assert_eq!(monitoring_kinds(&with_api), (2, 1));

    let everything = tools.template(h, RELEASE, NAMESPACE, &["--values", &everything_values(h)]);
    assert_eq!(monitoring_kinds(&everything), (2, 1));
    let brokers = find(&everything, "PodMonitor", "weir-brokers");
    assert_eq!(
        brokers["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let endpoint = &brokers["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    let cluster_meta = pod_label_meta(weir_operator::names::CLUSTER_LABEL);
    assert!(
        endpoint["relabelings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["sourceLabels"][0] == cluster_meta.as_str() && r["targetLabel"] == "cluster"),
        "the brokers' series get `cluster` from {cluster_meta}: {endpoint}"
    );
    let operator = find(&everything, "PodMonitor", "weir-operator");
    assert_eq!(
        operator["spec"]["podMetricsEndpoints"][0]["honorLabels"],
        true
    );

    // One source for both forms of the rules.
    let rule = find(&everything, "PrometheusRule", "weir-alerts");
    let config_map = find(&everything, "ConfigMap", "weir-alert-rules");
    let plain_rules: Value =
        serde_yaml::from_str(config_map["data"]["weir-alerts.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(rule["spec"]["groups"], plain_rules["groups"]);

    // A Cluster and Topics from values.
    let cluster = find(&everything, "Cluster", RELEASE);
    assert_eq!(cluster["spec"]["replicas"], 3);
    // The broker image defaults to the operator's: one image holds both binaries.
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap())
            .unwrap();
    let image = format!(
        "{}:{}",
        values["image"]["repository"].as_str().unwrap(),
        values["image"]["tag"].as_str().unwrap()
    );
    assert_eq!(cluster["spec"]["image"], image.as_str());
    assert_eq!(cluster["spec"]["config"]["log.retention.ms"], "604800000");
    assert_eq!(
        cluster["spec"]["rebalance"]["throttleBytesPerSecond"],
        10485760
    );
    let orders = find(&everything, "Topic", "orders");
    assert_eq!(orders["spec"]["clusterRef"], RELEASE);
    assert_eq!(orders["spec"]["partitions"], 6);
    assert_eq!(
        find(&everything, "Topic", "audit-log")["spec"]["topicName"],
        "audit_log"
    );
}

/// The Prometheus Operator CRDs the chart's monitoring kinds need (and ServiceMonitor, which
/// users pair with them).
const PROMETHEUS_OPERATOR_CRDS: &[&str] = &[
    "monitoring.coreos.com_podmonitors.yaml",
    "monitoring.coreos.com_servicemonitors.yaml",
    "monitoring.coreos.com_prometheusrules.yaml",
];

async fn install_prometheus_operator_crds(client: &Client, dir: &Path) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for file in PROMETHEUS_OPERATOR_CRDS {
        let path = dir.join(file);
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = crd.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply("weir-chart-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {}: {e}", path.display()));
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

/// The apiserver's OpenAPI v2 document once it describes every kind in `wanted` (CRDs are
/// published to it a moment after they are established).
async fn openapi_with(client: &Client, wanted: &BTreeSet<Gvk>) -> Value {
    eventually(
        Duration::from_secs(90),
        "the OpenAPI document to describe every rendered kind",
        || {
            let client = client.clone();
            async move {
                let request = http::Request::get("/openapi/v2").body(Vec::new()).ok()?;
                let text = client.request_text(request).await.ok()?;
                let document: Value = serde_json::from_str(&text).ok()?;
                let served = openapi::definitions_by_gvk(&document);
                wanted
                    .iter()
                    .all(|g| served.contains_key(g))
                    .then_some(document)
            }
        },
    )
    .await
}

/// Applies every document with a server-side dry run: the apiserver validates it (built-in
/// kinds, and custom resources against their CRD's schema and CEL rules) and stores nothing.
async fn dry_run_apply(client: &Client, discovery: &Discovery, docs: &[Value], variant: &str) {
    for doc in docs {
        let api_version = doc["apiVersion"].as_str().unwrap();
        let kind = doc["kind"].as_str().unwrap();
        let name = doc["metadata"]["name"].as_str().unwrap();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = discovery.resolve_gvk(&gvk).unwrap_or_else(|| {
            panic!("{variant}: the apiserver does not serve {api_version} {kind}")
        });
        let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
            let namespace = doc["metadata"]["namespace"].as_str().unwrap_or(NAMESPACE);
            Api::namespaced_with(client.clone(), namespace, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        let object: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        api.patch(
            name,
            &PatchParams::apply("weir-chart-test").force().dry_run(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("{variant}: the apiserver refuses {kind} {name}: {e}\n{doc:#}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_are_valid_for_the_test_apiserver() {
    let Some((tools, home)) = setup() else { return };
    let h = home.path();
    let everything = everything_values(h);
    let variants: Vec<(&str, Vec<Value>)> = vec![
        ("defaults", tools.template(h, RELEASE, NAMESPACE, &[])),
        (
            "everything",
            tools.template(h, RELEASE, NAMESPACE, &["--values", &everything]),
        ),
        (
            "monitoring with the operator's API",
            tools.template(
                h,
                RELEASE,
                NAMESPACE,
                &[
                    "--set",
                    "monitoring.enabled=true",
                    "--api-versions",
                    "monitoring.coreos.com/v1",
                ],
            ),
        ),
    ];

    let cp = ControlPlane::start().await;
    let client = cp.client();
    weir_tests::operator::install_crds(&client).await;
    install_prometheus_operator_crds(&client, &tools.prometheus_operator_crds).await;
    cp.create_namespace(NAMESPACE).await;

    let wanted: BTreeSet<Gvk> = variants
        .iter()
        .flat_map(|(_, docs)| docs.iter())
        .map(|d| {
            Gvk::of(
                d["apiVersion"].as_str().unwrap(),
                d["kind"].as_str().unwrap(),
            )
        })
        .collect();
    let document = openapi_with(&client, &wanted).await;
    let schemas = h.join("schemas");
    openapi::write_schemas(&document, &wanted, &schemas).unwrap();
    let location = openapi::SCHEMA_LOCATION.replace("{dir}", &schemas.display().to_string());

    for (variant, docs) in &variants {
        let manifests: Vec<String> = docs
            .iter()
            .map(|d| serde_yaml::to_string(d).unwrap())
            .collect();
        let file = write(h, "manifests.yaml", &manifests.join("---\n"));
        // The only schema location is ours: kubeconform's default is off this machine.
        let out = run(Command::new(&tools.kubeconform)
            .args([
                "-strict",
                "-summary",
                "-output",
                "text",
                "-schema-location",
                &location,
            ])
            .arg(&file));
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(
            summary.contains(&format!("Valid: {}", docs.len())) && summary.contains("Invalid: 0"),
            "{variant}: {summary}"
        );
    }

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    for (variant, docs) in &variants {
        dry_run_apply(&client, &discovery, docs, variant).await;
    }
}

/// The rules file of the `<release>-alert-rules` ConfigMap, rendered with default values.
fn rendered_rules(tools: &ChartTools, home: &Path) -> String {
    let docs = tools.template(
        home,
        RELEASE,
        NAMESPACE,
        &["--set", "monitoring.enabled=true"],
    );
    find(&docs, "ConfigMap", "weir-alert-rules")["data"]["weir-alerts.yaml"]
        .as_str()
        .unwrap()
        .to_string()
}

/// GitHub's anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_has_a_unit_test_and_a_runbook() {
    let Some((tools, home)) = setup() else { return };
    let h = home.path();
    let rules_text = rendered_rules(&tools, h);
    write(h, "weir-alerts.yaml", &rules_text);
    let tests_text = std::fs::read_to_string(chart_dir().join("tests/alerts-test.yaml")).unwrap();
    write(h, "alerts-test.yaml", &tests_text);
    run(Command::new(&tools.promtool)
        .args(["check", "rules"])
        .arg(h.join("weir-alerts.yaml")));
    run(Command::new(&tools.promtool)
        .args(["test", "rules"])
        .arg(h.join("alerts-test.yaml"))
        .current_dir(h));

    let rules: Value = serde_yaml::from_str(&rules_text).unwrap();
    let alerts: BTreeMap<String, Value> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| (r["alert"].as_str().unwrap().to_string(), r.clone()))
        .collect();
    let tests: Value = serde_yaml::from_str(&tests_text).unwrap();
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_array().unwrap() {
        for check in case["alert_rule_test"].as_array().unwrap() {
            let name = check["alertname"].as_str().unwrap().to_string();
            let fires = check["exp_alerts"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
            let set = if fires { &mut firing } else { &mut quiet };
            set.insert(name);
        }
    }
    let names: BTreeSet<String> = alerts.keys().cloned().collect();
    assert_eq!(
        firing, names,
        "every alert has a unit test in which it fires"
    );
    assert_eq!(
        quiet, names,
        "every alert has a unit test in which it does not fire yet"
    );

    let docs = std::fs::read_to_string(workspace().join("docs/operations.md")).unwrap();
    let anchors: BTreeSet<String> = docs
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    for (name, rule) in &alerts {
        let url = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no runbook_url"));
        let (_, section) = url
            .split_once('#')
            .unwrap_or_else(|| panic!("{name}: {url} names no section"));
        assert!(
            anchors.contains(section),
            "{name}: docs/operations.md has no section #{section}"
        );
        for key in ["summary", "description"] {
            assert!(rule["annotations"][key].is_string(), "{name} has no {key}");
        }
        assert!(
            rule["labels"]["severity"].is_string(),
            "{name} has no severity"
        );
    }
}

/// Every metric name Weir's code registers: the string literals `"weir_..."` (and Kafka's
/// names as the JMX exporter shows them, `"kafka_server_..."`) in the broker's
/// and the operator's sources (metric names are only ever written there, once each).
fn exported_metrics() -> BTreeSet<String> {
    fn scan(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scan(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for prefix in ["weir_", "kafka_server_"] {
                    for piece in text.split(&format!("\"{prefix}")).skip(1) {
                        let name: String = piece
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'
                            })
                            .collect();
                        if piece[name.len()..].starts_with('"') {
                            out.insert(format!("{prefix}{name}"));
                        }
                    }
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    scan(&workspace().join("broker/src"), &mut names);
    scan(&workspace().join("operator/src"), &mut names);
    names
}

fn is_exported(name: &str, exported: &BTreeSet<String>) -> bool {
    PROMETHEUS_SERIES.contains(&name)
        || exported.contains(name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| exported.contains(base))
        })
}

/// The selector of a `label_values(<selector>, <label>)` variable query.
fn variable_selector(query: &str) -> &str {
    let inner = query
        .trim()
        .trim_start_matches("label_values(")
        .trim_end_matches(')');
    inner
        .rsplit_once(',')
        .map_or(inner, |(selector, _)| selector)
        .trim()
}

#[test]
fn dashboards_are_grafana_json_whose_queries_parse_and_read_only_exported_metrics() {
    let Some((tools, home)) = setup() else { return };
    let exported = exported_metrics();
    assert!(
        exported.contains("weir_log_dir_usable_bytes"),
        "{exported:?}"
    );
    let mut recording = Vec::new();
    let mut uids = BTreeSet::new();
    let mut variables_seen = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(chart_dir().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        6,
        "overview, topics, consumer groups, replication, operator, disk"
    );
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for key in ["uid", "title"] {
            assert!(
                dashboard[key].as_str().is_some_and(|s| !s.is_empty()),
                "{file}: no {key}"
            );
        }
        assert!(
            uids.insert(dashboard["uid"].as_str().unwrap().to_string()),
            "{file}: uid reused"
        );
        assert!(
            dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{file}: schemaVersion"
        );
        let variables: BTreeMap<String, &Value> = dashboard["templating"]["list"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no templating.list"))
            .iter()
            .map(|v| (v["name"].as_str().unwrap().to_string(), v))
            .collect();
        for required in ["datasource", "namespace", "cluster"] {
            assert!(
                variables.contains_key(required),
                "{file}: no ${required} variable"
            );
        }
        assert_eq!(variables["datasource"]["type"], "datasource");
        let mut queries: Vec<(String, String)> = Vec::new();
        for (name, variable) in &variables {
            variables_seen.insert(name.clone());
            if variable["type"] == "query" {
                let query = variable["query"]["query"]
                    .as_str()
                    .or(variable["query"].as_str())
                    .unwrap();
                queries.push((
                    format!("variable {name}"),
                    variable_selector(query).to_string(),
                ));
            }
        }
        let panels = dashboard["panels"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no panels"));
        assert!(!panels.is_empty(), "{file}: no panels");
        let mut ids = BTreeSet::new();
        for panel in panels {
            let title = panel["title"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: a panel without a title"));
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{file}/{title}: id reused"
            );
            assert!(panel["type"].is_string(), "{file}/{title}: no type");
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{file}/{title}: datasource"
            );
            for key in ["x", "y", "w", "h"] {
                assert!(
                    panel["gridPos"][key].is_u64(),
                    "{file}/{title}: gridPos.{key}"
                );
            }
            let targets = panel["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}/{title}: no targets"));
            assert!(!targets.is_empty(), "{file}/{title}: no targets");
            for target in targets {
                let expr = target["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}/{title}: a target without expr"));
                assert!(target["refId"].is_string(), "{file}/{title}: no refId");
                queries.push((format!("panel {title}"), expr.to_string()));
            }
        }
        for (what, expr) in &queries {
            for variable in promql::variables(expr) {
                assert!(
                    variables.contains_key(&variable)
                        || GRAFANA_VARIABLES.contains(&variable.as_str()),
                    "{file}/{what}: ${variable} is not a variable of the dashboard"
                );
            }
            let names = promql::metric_names(expr);
            assert!(!names.is_empty(), "{file}/{what}: reads no metric: {expr}");
            for name in names {
                assert!(
                    is_exported(&name, &exported),
                    "{file}/{what}: {name} is not a metric Weir exports"
                );
            }
            recording.push((format!("{file}: {what}"), promql::substitute(expr)));
        }
    }
    for needed in ["topic", "group"] {
        assert!(
            variables_seen.contains(needed),
            "no dashboard has a ${needed} variable"
        );
    }

    // promtool parses each query as a recording rule's expression.
    let rules: Vec<Value> = recording
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| serde_json::json!({"record": format!("weir_dashboard_query_{i}"), "expr": expr}))
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboards", "rules": rules}]});
    let path = write(
        home.path(),
        "dashboard-queries.yaml",
        &serde_yaml::to_string(&file).unwrap(),
    );
    let out = Command::new(&tools.promtool)
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool refuses a dashboard query:\n{}\nqueries: {recording:#?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_plain_prometheus_scrape_config_is_valid_and_labels_like_the_pod_monitors() {
    let Some((tools, home)) = setup() else { return };
    let h = home.path();
    let scrape = std::fs::read_to_string(chart_dir().join("files/prometheus-scrape.yaml")).unwrap();
    let jobs: Value = serde_yaml::from_str(&scrape).unwrap();
    let config = serde_json::json!({
        "global": {"scrape_interval": "30s"},
        "rule_files": ["weir-alerts.yaml"],
        "scrape_configs": jobs,
    });
    write(h, "weir-alerts.yaml", &rendered_rules(&tools, h));
    let path = write(
        h,
        "prometheus.yaml",
        &serde_yaml::to_string(&config).unwrap(),
    );
    run(Command::new(&tools.promtool)
        .args(["check", "config"])
        .arg(&path));

    let job_names: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    // The alerts name these jobs; the PodMonitors derive the same from the pods' name label.
    assert_eq!(job_names, ["weir", "weir-operator"]);
    let cluster_meta = pod_label_meta(weir_operator::names::CLUSTER_LABEL);
    let brokers = &jobs[0]["relabel_configs"];
    assert!(
        brokers
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["source_labels"][0] == cluster_meta.as_str()
                && r["target_label"] == "cluster"),
        "{brokers}"
    );
    assert_eq!(jobs[1]["honor_labels"], true);
}
