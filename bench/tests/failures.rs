//! The harness fails loudly, and fast, when the broker under test is not there: a smoke run
//! that cannot start a broker must exit non-zero naming what went wrong, never report numbers
//! or hang until a client timeout.

use std::process::Command;
use std::time::{Duration, Instant};

/// Well under the first-produce timeout (180 s): the exit must be noticed, not waited out.
const FAIL_FAST: Duration = Duration::from_secs(30);

fn smoke(broker: &str) -> (std::process::Output, Duration) {
    let work_dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_weir-bench"))
        .args(["smoke", "--weir-broker", broker, "--work-dir"])
        .arg(work_dir.path())
        .output()
        .expect("running weir-bench");
    (output, started.elapsed())
}

#[test]
fn missing_broker_binary_fails_naming_it() {
    let (output, _) = smoke("/nonexistent/weir-broker");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/weir-broker"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("smoke: ok"));
}

#[test]
fn broker_that_exits_at_start_fails_fast() {
    // `false` accepts any arguments and exits 1 at once, like a broker refusing its flags.
    let (output, elapsed) = smoke("false");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exited"), "{stderr}");
    assert!(elapsed < FAIL_FAST, "took {elapsed:?}");
}
