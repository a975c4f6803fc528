//! A broker that cannot start says why and exits non-zero: an unknown flag, an unknown setting,
//! a bad value, an unusable data directory, or a data directory another broker holds.

use std::process::{Command, Output};

use weir_tests::broker::broker_bin;
use weir_tests::Broker;

fn run(args: &[&str]) -> Output {
    Command::new(broker_bin())
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .expect("running weir-broker")
}

fn assert_refused(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "weir-broker started anyway:\n{stderr}"
    );
    assert!(
        stderr.contains(needle),
        "the error does not name `{needle}`:\n{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("ready"),
        "weir-broker reported ready"
    );
}

#[test]
fn bad_flags_and_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    assert_refused(
        &run(&["--data-dir", data, "--no-such-flag"]),
        "--no-such-flag",
    );
    // An unknown key, a bad value, and Kafka's settings that Weir takes from its command line
    // (which point to the flag).
    for (setting, named) in [
        ("log.segmnt.bytes=1", "log.segmnt.bytes"),
        ("num.partitions=many", "num.partitions"),
        ("node.id=1", "--node-id"),
        ("log.dirs=/var/lib/kafka", "--data-dir"),
    ] {
        assert_refused(&run(&["--data-dir", data, "--set", setting]), named);
    }
    assert_refused(
        &run(&["--data-dir", data, "--advertised-listener", "nowhere"]),
        "nowhere",
    );
    let config = dir.path().join("server.properties");
    std::fs::write(&config, "num.partitions=3\nthis line is wrong\n").unwrap();
    assert_refused(
        &run(&["--data-dir", data, "--config", config.to_str().unwrap()]),
        "server.properties:2",
    );
}

#[test]
fn unusable_data_directories_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    assert_refused(&run(&["--data-dir", file.to_str().unwrap()]), "a-file");

    let broker = Broker::start_default();
    let held = broker.data_dir().to_str().unwrap().to_string();
    assert_refused(
        &run(&["--data-dir", &held]),
        "another weir-broker is using it",
    );
}
