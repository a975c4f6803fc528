//! Kafka Connect in distributed mode (Apache Kafka's `connect-runtime` and `connect-file` jars
//! from Maven, run with `java`) against Weir: the worker creates its internal topics compacted,
//! a FileStreamSource → topic → FileStreamSink pipeline copies a file exactly, a worker restart
//! resumes where the stored source offsets and the sink's committed group offsets say (nothing
//! copied twice), and two workers share the tasks and survive one of them stopping.
//! `scripts/install-test-deps.sh` copies the jars to `target/kafka-connect-deps`; without them
//! (or without `java`) a test says so and passes, unless `WEIR_REQUIRE_JAVA=1` or `CI` is set.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::protocol::StrBytes;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use weir_tests::cluster::{free_port, Cluster};
use weir_tests::http::request;
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::raw::RawClient;
use weir_tests::{wait_until, Broker};

const TIMEOUT: Duration = Duration::from_secs(90);

fn connect_classpath() -> Option<String> {
    KafkaTools::find_in("kafka-connect-deps", &["connect-file-4.1.1.jar"])
        .map(|jars| jars.classpath().to_string())
}

/// One distributed Connect worker process.
struct Worker {
    child: Option<Child>,
    rest: SocketAddr,
    log: PathBuf,
}

impl Worker {
    /// Starts a worker of group `connect-cluster` and waits until its REST API answers.
    fn start(classpath: &str, bootstrap: &str, dir: &Path, name: &str, replication: i32) -> Worker {
        let rest: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let properties = dir.join(format!("{name}.properties"));
        std::fs::write(
            &properties,
            format!(
                "bootstrap.servers={bootstrap}\n\
                 group.id=connect-cluster\n\
                 key.converter=org.apache.kafka.connect.storage.StringConverter\n\
                 value.converter=org.apache.kafka.connect.storage.StringConverter\n\
                 config.storage.topic=connect-configs\n\
                 offset.storage.topic=connect-offsets\n\
                 status.storage.topic=connect-status\n\
                 config.storage.replication.factor={replication}\n\
                 offset.storage.replication.factor={replication}\n\
                 status.storage.replication.factor={replication}\n\
                 offset.flush.interval.ms=500\n\
                 scheduled.rebalance.max.delay.ms=5000\n\
                 listeners=http://{rest}\n\
                 plugin.discovery=service_load\n"
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("java")
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .args(["-cp", classpath])
            .arg("org.apache.kafka.connect.cli.ConnectDistributed")
            .arg(&properties)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("starting a Connect worker");
        let worker = Worker {
            child: Some(child),
            rest,
            log,
        };
        wait_until(TIMEOUT, &format!("Connect worker {name} answers"), || {
            request(rest, "GET", "/", None, Duration::from_secs(5))
                .ok()
                .filter(|r| r.status == 200 && r.body.contains("kafka_cluster_id"))
                .map(|_| ())
        });
        worker
    }

    fn call(&self, method: &str, path: &str, json: Option<&str>) -> (u16, String) {
        let response = request(self.rest, method, path, json, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log_tail()));
        (response.status, response.body)
    }

    /// Creates a connector; the worker forwards to the group leader if it is not it.
    fn create(&self, name: &str, config: &str) {
        let body = format!(r#"{{"name":"{name}","config":{config}}}"#);
        wait_until(TIMEOUT, &format!("connector {name} created"), || {
            let (status, answer) = self.call("POST", "/connectors", Some(&body));
            // 409 also answers a request made while the group rebalances: try again then.
            (status == 201 || (status == 409 && answer.contains("already exists"))).then_some(())
        });
    }

    /// Waits until connector `name` and its tasks run.
    fn wait_running(&self, name: &str) {
        wait_until(TIMEOUT, &format!("connector {name} running"), || {
            let (status, body) = self.call("GET", &format!("/connectors/{name}/status"), None);
            (status == 200
                && body.contains(r#""connector":{"state":"RUNNING""#)
                && body.contains(r#""tasks":[{"id":0,"state":"RUNNING""#))
            .then_some(())
        });
    }

    /// SIGTERM and wait: Connect stops its tasks and flushes source offsets first.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let status = child.wait().expect("waiting for the worker");
            assert!(
                status.success() || status.code() == Some(143),
                "worker exit: {status}"
            );
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn source_config(input: &Path, topic: &str) -> String {
    format!(
        r#"{{"connector.class":"org.apache.kafka.connect.file.FileStreamSourceConnector","tasks.max":"1","file":"{}","topic":"{topic}"}}"#,
        input.display()
    )
}

fn sink_config(output: &Path, topic: &str) -> String {
    format!(
        r#"{{"connector.class":"org.apache.kafka.connect.file.FileStreamSinkConnector","tasks.max":"1","file":"{}","topics":"{topic}"}}"#,
        output.display()
    )
}

fn append_lines(path: &Path, from: usize, to: usize) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in from..to {
        writeln!(file, "line-{i:06}").unwrap();
    }
    file.sync_all().unwrap();
}

/// Waits until `output` holds exactly the lines of `input`: neither missing nor repeated.
fn wait_copied(input: &Path, output: &Path, worker: &Worker) {
    let expected = std::fs::read_to_string(input).unwrap();
    let copied = wait_until(TIMEOUT, "the sink file holds every line", || {
        let got = std::fs::read_to_string(output).unwrap_or_default();
        (got.lines().count() >= expected.lines().count()).then_some(got)
    });
    assert!(
        copied == expected,
        "the sink copied {} lines for {} written (first difference at line {:?})\n{}",
        copied.lines().count(),
        expected.lines().count(),
        copied
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b),
        worker.log_tail()
    );
}

/// `cleanup.policy` of `topic` as DescribeConfigs answers, once the topic exists.
fn cleanup_policy(addr: SocketAddr, topic: &str) -> String {
    wait_until(TIMEOUT, &format!("the worker creates {topic}"), || {
        try_cleanup_policy(addr, topic)
    })
}

fn try_cleanup_policy(addr: SocketAddr, topic: &str) -> Option<String> {
    let mut raw = RawClient::connect(addr);
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("cleanup.policy")]))]);
    let response = raw.request(&request, 4).expect("DescribeConfigs");
    let result = &response.results[0];
    if result.error_code != 0 {
        return None;
    }
    result.configs[0].value.as_ref().map(|v| v.to_string())
}

#[test]
fn a_file_pipeline_copies_exactly_and_a_restarted_worker_resumes() {
    let Some(classpath) = connect_classpath() else {
        return;
    };
    let broker = Broker::start_default();
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("input.txt"), dir.path().join("output.txt"));
    append_lines(&input, 0, 2_000);
    let mut worker = Worker::start(&classpath, &broker.bootstrap(), dir.path(), "w1", 1);
    for topic in ["connect-configs", "connect-offsets", "connect-status"] {
        assert_eq!(
            cleanup_policy(broker.kafka_addr(), topic),
            "compact",
            "{topic}"
        );
    }
    worker.create("src", &source_config(&input, "connect-lines"));
    worker.create("sink", &sink_config(&output, "connect-lines"));
    worker.wait_running("src");
    worker.wait_running("sink");
    wait_copied(&input, &output, &worker);

    // Restarted, the worker reads its configs and source offsets back from the compacted
    // topics and the sink's committed offsets from its group: only new lines are copied.
    worker.stop();
    append_lines(&input, 2_000, 3_000);
    let worker = Worker::start(&classpath, &broker.bootstrap(), dir.path(), "w1-again", 1);
    worker.wait_running("src");
    worker.wait_running("sink");
    wait_copied(&input, &output, &worker);
}

#[test]
fn two_workers_share_the_tasks_and_one_carries_on_when_the_other_stops() {
    let Some(classpath) = connect_classpath() else {
        return;
    };
    let cluster = Cluster::start(3, &[]);
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("input.txt"), dir.path().join("output.txt"));
    append_lines(&input, 0, 1_000);
    let mut first = Worker::start(&classpath, &cluster.bootstrap(), dir.path(), "w1", 3);
    let second = Worker::start(&classpath, &cluster.bootstrap(), dir.path(), "w2", 3);
    first.create("src", &source_config(&input, "connect-lines"));
    second.create("sink", &sink_config(&output, "connect-lines"));
    first.wait_running("src");
    second.wait_running("sink");
    wait_copied(&input, &output, &second);

    first.stop();
    append_lines(&input, 1_000, 2_000);
    second.wait_running("src");
    second.wait_running("sink");
    wait_copied(&input, &output, &second);
}
