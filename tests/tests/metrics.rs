//! The metrics HTTP endpoint: `/healthz` and `/readyz` answer 200, and after producing,
//! `/metrics` (Prometheus text) counts the Produce requests and the bytes written to the topic.

use weir_tests::http::{get, parse_prometheus, Sample};
use weir_tests::raw::{record_batch, RawClient};
use weir_tests::{unique_topic, Broker};

const BATCHES: usize = 5;

fn has_label_value(sample: &Sample, wanted: &str) -> bool {
    sample
        .labels
        .iter()
        .any(|(_, value)| value.eq_ignore_ascii_case(wanted))
}

#[test]
fn health_and_request_metrics() {
    let broker = Broker::start_default();
    for path in ["/healthz", "/readyz"] {
        let response = get(broker.metrics_addr(), path);
        assert_eq!(response.status, 200, "GET {path}: {}", response.body);
    }
    assert_eq!(get(broker.metrics_addr(), "/no-such-page").status, 404);

    let topic = unique_topic("metrics");
    let mut client = RawClient::connect(broker.kafka_addr());
    client.create_topic_ok(&topic, 1);
    let mut batch_bytes = 0;
    for index in 0..BATCHES {
        let value = vec![b'm'; 1000 + index];
        let batch = record_batch(&[&value], None);
        batch_bytes += batch.len();
        assert_eq!(client.produce(&topic, 0, batch, -1).error_code, 0);
    }

    let response = get(broker.metrics_addr(), "/metrics");
    assert_eq!(response.status, 200);
    let samples = parse_prometheus(&response.body);

    // A request counter labelled with the Produce API.
    let produce_requests: f64 = samples
        .iter()
        .filter(|s| {
            s.name.contains("request")
                && s.name.ends_with("_total")
                && has_label_value(s, "Produce")
        })
        .map(|s| s.value)
        .fold(0.0, f64::max);
    assert!(
        produce_requests >= BATCHES as f64,
        "no request counter labelled Produce reaching {BATCHES} in /metrics:\n{}",
        response.body
    );

    // Bytes in for the topic: at least the batches produced.
    let bytes_in: f64 = samples
        .iter()
        .filter(|s| s.name.contains("bytes_in") && s.label("topic") == Some(topic.as_str()))
        .map(|s| s.value)
        .sum();
    assert!(
        bytes_in >= batch_bytes as f64,
        "bytes-in for topic {topic} is {bytes_in}, below the {batch_bytes} bytes produced:\n{}",
        response.body
    );
}

/// The volume gauges describe the file system holding the broker's data directory: what the
/// disk dashboard and the log-dir alerts read.
#[test]
fn log_dir_volume_usage_is_reported_for_the_data_directory() {
    let broker = Broker::start_default();
    let response = get(broker.metrics_addr(), "/metrics");
    assert_eq!(response.status, 200);
    let samples = parse_prometheus(&response.body);
    let value = |name: &str| {
        let sample = samples
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{}", response.body));
        let dir = sample.label("log_dir").unwrap_or_default();
        assert_eq!(
            std::path::Path::new(dir),
            broker.data_dir(),
            "{name} names the data directory"
        );
        sample.value
    };
    let total = value("weir_log_dir_total_bytes");
    let usable = value("weir_log_dir_usable_bytes");
    let used = value("weir_log_dir_used_bytes");
    assert!(total > 0.0, "total {total}");
    assert!(used > 0.0 && used <= total, "used {used} of {total}");
    assert!(
        usable <= total - used,
        "usable {usable}, used {used}, total {total}"
    );
}
