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

/// Waits (up to `timeout`) until kcat, connecting to `bootstrap` with `security`, reads a record
/// from each of `partitions` of `topic`: every partition's leader is reachable and has data.
pub async fn wait_for_a_record_in_each(
    bootstrap: &str,
    security: &[String],
    topic: &str,
    partitions: &[i32],
    timeout: std::time::Duration,
) {
    for partition in partitions {
        crate::admin::eventually(timeout, "a record in every partition", || {
            let (bootstrap, security) = (bootstrap.to_string(), security.to_vec());
            let (topic, partition) = (topic.to_string(), partition.to_string());
            async move {
                let out = tokio::task::spawn_blocking(move || {
                    let args = [
                        "-C",
                        "-t",
                        &topic,
                        "-p",
                        &partition,
                        "-o",
                        "beginning",
                        "-e",
                        "-c",
                        "1",
                        "-q",
                    ];
                    run(&bootstrap, &security, &args, "")
                })
                .await
                .ok()?;
                (!out.stdout.is_empty()).then_some(())
            }
        })
        .await;
    }
}
