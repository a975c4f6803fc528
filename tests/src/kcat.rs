//! kcat (librdkafka built with SSL and SASL, from the system) for the tests that need TLS
//! from a librdkafka client: the rdkafka crate's bundled librdkafka is built without SSL.

use std::process::{Child, Command, Output, Stdio};

/// Whether kcat is installed; with `CI` set its absence fails the test.
pub fn available() -> bool {
    let found = Command::new("kcat").arg("-V").output().is_ok();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "kcat is missing: run scripts/install-test-deps.sh"
    );
    found
}

/// kcat against `bootstrap` with `-X` for each of `security`, then `args`, its standard
/// streams piped.
pub fn spawn(bootstrap: &str, security: &[String], args: &[&str]) -> Child {
    // Cargo points LD_LIBRARY_PATH at build outputs, which may hold a librdkafka built
    // without SSL (the rdkafka crate's); kcat must load the system's.
    Command::new("kcat")
        .env_remove("LD_LIBRARY_PATH")
        .arg("-b")
        .arg(bootstrap)
        .args(security.iter().flat_map(|s| ["-X", s.as_str()]))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kcat")
}

/// Runs kcat with `input` on its standard input, to the end.
pub fn run(bootstrap: &str, security: &[String], args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = spawn(bootstrap, security, args);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
