//! Apache Kafka's command-line tools (the kafka-tools 4.1.1 jar and its dependencies, copied to
//! `target/kafka-tools-deps` by `scripts/install-test-deps.sh`) run as the shell scripts of a
//! Kafka distribution would run them: `java -cp ... <main class> ARGS`.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The tools' classpath, or `None` (after saying so) when java or the jars are missing and the
/// run does not require them (`WEIR_REQUIRE_JAVA` or `CI` unset).
pub fn classpath() -> Option<String> {
    let deps = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .join("target/kafka-tools-deps");
    let java = Command::new("java").arg("-version").output().is_ok();
    if java && deps.join("kafka-tools-4.1.1.jar").exists() {
        return Some(format!("{}/*", deps.display()));
    }
    let required =
        std::env::var_os("WEIR_REQUIRE_JAVA").is_some() || std::env::var_os("CI").is_some();
    assert!(
        !required,
        "java or the Kafka tools jars are missing: run scripts/install-test-deps.sh"
    );
    eprintln!("kafka tools jars missing: skipping (scripts/install-test-deps.sh installs them)");
    None
}

/// Runs the tool `main_class` with `args` and returns its output, whatever its exit status.
pub fn run(classpath: &str, main_class: &str, args: &[&str]) -> Output {
    Command::new("java")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .args(["-cp", classpath])
        .arg(main_class)
        .args(args)
        .output()
        .expect("running java")
}

/// Runs the tool and returns its stdout; panics with both streams if it fails.
pub fn run_ok(classpath: &str, main_class: &str, args: &[&str]) -> String {
    let output = run(classpath, main_class, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{main_class} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
