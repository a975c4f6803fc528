//! Programs of `tests/java/` run with the Apache Kafka Java client (kafka-clients from Maven
//! Central, copied to `target/java-client-deps` by `scripts/install-test-deps.sh`). Without
//! the jars or `java` a test says so and passes, unless `WEIR_REQUIRE_JAVA=1` (set by
//! `scripts/test.sh`) or `CI` is set.

use std::path::PathBuf;
use std::process::Command;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The classpath of the Java client jars, if they and `java` are installed.
pub fn client_classpath() -> Option<String> {
    classpath_of("target/java-client-deps", "kafka-clients-4.1.1.jar")
}

/// The classpath of the Kafka 4.3 Java client (share consumers), if it and `java` are
/// installed.
pub fn share_client_classpath() -> Option<String> {
    classpath_of("target/java-share-client-deps", "kafka-clients-4.3.2.jar")
}

fn classpath_of(dir: &str, jar: &str) -> Option<String> {
    let deps = workspace_root().join(dir);
    let java = Command::new("java").arg("-version").output().is_ok();
    let jars = deps.join(jar).exists();
    if java && jars {
        return Some(format!("{}/*", deps.display()));
    }
    let required =
        std::env::var_os("WEIR_REQUIRE_JAVA").is_some() || std::env::var_os("CI").is_some();
    assert!(
        !required,
        "java or the Kafka Java client jars ({jar}) are missing: run scripts/install-test-deps.sh"
    );
    eprintln!("java client jars missing: skipping (scripts/install-test-deps.sh installs them)");
    None
}

/// Runs `tests/java/<program>` with `args` and checks that it succeeded and printed
/// `expected`; `false` if Java is not installed (the test is skipped).
pub fn run_program(program: &str, args: &[String], expected: &str) -> bool {
    let Some(classpath) = client_classpath() else {
        return false;
    };
    run_with(&classpath, program, args, expected);
    true
}

/// Runs `tests/java/<program>` on `classpath` with `args`, checks that it succeeded and
/// printed `expected`, and returns its stdout.
pub fn run_with(classpath: &str, program: &str, args: &[String], expected: &str) -> String {
    let output = Command::new("java")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .args(["-cp", classpath])
        .arg(workspace_root().join("tests/java").join(program))
        .args(args)
        .output()
        .expect("running java");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(expected),
        "unexpected output:\n{stdout}\n{stderr}"
    );
    stdout.into_owned()
}
