//! kcat (librdkafka's command-line client, from Debian) produces and consumes through the
//! broker. `scripts/install-test-deps.sh` installs kcat; without it the test says so and
//! passes, unless `WEIR_REQUIRE_KCAT=1` (set by `scripts/test.sh`) or `CI` is set.

use std::io::Write;
use std::process::{Command, Stdio};

use weir_tests::raw::RawClient;
use weir_tests::{unique_topic, Broker};

fn kcat_available() -> bool {
    let found = Command::new("kcat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        let required =
            std::env::var_os("WEIR_REQUIRE_KCAT").is_some() || std::env::var_os("CI").is_some();
        assert!(
            !required,
            "kcat is not on PATH: run scripts/install-test-deps.sh"
        );
        eprintln!("kcat is not on PATH: skipping (scripts/install-test-deps.sh installs it)");
    }
    found
}

#[test]
fn kcat_produces_and_consumes() {
    if !kcat_available() {
        return;
    }
    let broker = Broker::start_default();
    let topic = unique_topic("kcat");
    RawClient::connect(broker.kafka_addr()).create_topic_ok(&topic, 1);
    let lines: Vec<String> = (0..25).map(|i| format!("kcat line {i} äöü")).collect();

    let mut producer = Command::new("kcat")
        .args(["-b", &broker.bootstrap(), "-t", &topic, "-p", "0", "-P"])
        .args(["-X", "broker.address.family=v4", "-z", "snappy"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning kcat -P");
    let mut stdin = producer.stdin.take().unwrap();
    for line in &lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let produced = producer.wait_with_output().unwrap();
    assert!(
        produced.status.success(),
        "kcat -P failed: {}",
        String::from_utf8_lossy(&produced.stderr)
    );

    let consumed = Command::new("kcat")
        .args([
            "-b",
            &broker.bootstrap(),
            "-t",
            &topic,
            "-p",
            "0",
            "-C",
            "-o",
            "beginning",
            "-e",
        ])
        .args(["-X", "broker.address.family=v4", "-f", "%o %s\\n"])
        .output()
        .expect("running kcat -C");
    assert!(
        consumed.status.success(),
        "kcat -C failed: {}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    let expected: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(offset, line)| format!("{offset} {line}"))
        .collect();
    let got: Vec<String> = String::from_utf8(consumed.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got, expected, "kcat -C output (offset and value per line)");
}
