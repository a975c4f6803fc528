//! Time from process start to the first acknowledged produce.
//!
//! The clock is the caller's (taken just before the broker process was spawned, or the first
//! of a cluster's). The (first) broker's Kafka port is probed with plain TCP connects every
//! millisecond until it accepts; then one producer (librdkafka defaults: `acks=all`),
//! bootstrapping from every broker, sends one record to a topic that does not exist yet, so
//! the cluster auto-creates it, exactly as a first `kcat -P` would. The time stops at the
//! delivery report. In a cluster the topic gets the brokers' default replication factor, so
//! this is the time until the cluster has formed and replicates. Retry and reconnect back-offs are short so the client does not add
//! its own waiting to what is measured; both brokers get the same settings.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::client;

/// The topic the first record goes to.
pub const TOPIC: &str = "first-produce";
const PROBE_INTERVAL: Duration = Duration::from_millis(1);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum FirstProduceError {
    #[error("{addr} did not accept a connection within {timeout:?}")]
    NeverListened { addr: SocketAddr, timeout: Duration },
    #[error("the broker exited before it listened on {addr}")]
    Exited { addr: SocketAddr },
    #[error("creating the producer")]
    Create(#[source] KafkaError),
    #[error("no produce to {addr} was acknowledged within {timeout:?}; last error: {last}")]
    NeverAcknowledged {
        addr: SocketAddr,
        timeout: Duration,
        last: String,
    },
    #[error("starting a runtime for the producer")]
    Runtime(#[source] std::io::Error),
}

/// Waits for `addr` to accept connections and the brokers at `bootstrap` to acknowledge a
/// first record; returns the time since `spawned_at`. Gives up `timeout` after `spawned_at`,
/// or as soon as `still_running` says a broker process is gone (a broker that cannot start
/// fails fast).
pub fn measure(
    addr: SocketAddr,
    bootstrap: &str,
    spawned_at: Instant,
    timeout: Duration,
    mut still_running: impl FnMut() -> bool,
) -> Result<Duration, FirstProduceError> {
    let deadline = spawned_at + timeout;
    while TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_err() {
        if Instant::now() > deadline {
            return Err(FirstProduceError::NeverListened { addr, timeout });
        }
        if !still_running() {
            return Err(FirstProduceError::Exited { addr });
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
    let producer: FutureProducer = client::base_config(bootstrap)
        .set("linger.ms", "0")
        .set("message.timeout.ms", timeout.as_millis().to_string())
        .set("retry.backoff.ms", "10")
        .set("retry.backoff.max.ms", "50")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "50")
        .set("topic.metadata.refresh.fast.interval.ms", "10")
        .create()
        .map_err(FirstProduceError::Create)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(FirstProduceError::Runtime)?;
    let mut last = String::from("none");
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(FirstProduceError::NeverAcknowledged {
                addr,
                timeout,
                last,
            });
        }
        let record = FutureRecord::<(), [u8]>::to(TOPIC).payload(b"first");
        match runtime.block_on(producer.send(record, Timeout::After(remaining))) {
            Ok(_) => return Ok(spawned_at.elapsed()),
            // A broker that is up but not yet serving may fail the first attempt (for
            // example a leader not yet elected past librdkafka's own retries): try again.
            Err((error, _)) => last = error.to_string(),
        }
    }
}
