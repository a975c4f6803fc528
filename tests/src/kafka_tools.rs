//! Apache Kafka's own command-line tools (the kafka-tools and kafka_2.13 jars, run with `java`)
//! against Weir, as operators run `kafka-configs`, `kafka-delete-records` or
//! `kafka-reassign-partitions`; and the class path of other Java applications from Maven
//! (Kafka Connect, a Kafka Streams application). `scripts/install-test-deps.sh` copies the jars to
//! `target/kafka-tools-deps`; without them (or without `java`) a test says so and passes,
//! unless `WEIR_REQUIRE_JAVA=1` (set by `scripts/test.sh`) or `CI` is set.

use std::path::PathBuf;
use std::process::Command;

/// What one tool run printed.
#[derive(Debug)]
pub struct ToolOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The tools' class path.
#[derive(Debug, Clone)]
pub struct KafkaTools {
    classpath: String,
}

impl KafkaTools {
    /// The installed tools, or `None` (with a line saying why) when they are missing outside
    /// CI; panics when they are missing and required.
    pub fn find() -> Option<KafkaTools> {
        Self::find_in(
            "kafka-tools-deps",
            &["kafka-tools-4.1.1.jar", "kafka_2.13-4.1.1.jar"],
        )
    }

    /// Jars that `scripts/install-test-deps.sh` copied to `target/<dir>` (Kafka Connect, a
    /// Kafka Streams application), found by the `jars` that must be there; as [`Self::find`].
    pub fn find_in(dir: &str, jars: &[&str]) -> Option<KafkaTools> {
        let deps = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ has a parent")
            .join("target")
            .join(dir);
        let java = Command::new("java").arg("-version").output().is_ok();
        if java && jars.iter().all(|jar| deps.join(jar).exists()) {
            return Some(KafkaTools {
                classpath: format!("{}/*", deps.display()),
            });
        }
        let required =
            std::env::var_os("WEIR_REQUIRE_JAVA").is_some() || std::env::var_os("CI").is_some();
        assert!(
            !required,
            "java or the Kafka tools jars are missing: run scripts/install-test-deps.sh"
        );
        eprintln!(
            "kafka tools jars missing: skipping (scripts/install-test-deps.sh installs them)"
        );
        None
    }

    /// The class path, for callers that run other main classes themselves.
    pub fn classpath(&self) -> &str {
        &self.classpath
    }

    /// Runs the tool whose main class is `main_class` with `args`.
    pub fn run(&self, main_class: &str, args: &[&str]) -> ToolOutput {
        let output = Command::new("java")
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .args(["-cp", &self.classpath])
            .arg(main_class)
            .args(args)
            .output()
            .expect("running java");
        ToolOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// [`KafkaTools::run`], panicking with both outputs unless it succeeded; returns stdout.
    pub fn run_ok(&self, main_class: &str, args: &[&str]) -> String {
        let out = self.run(main_class, args);
        assert!(
            out.success,
            "{main_class} {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}
