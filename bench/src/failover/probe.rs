//! The steady clients a failover run watches: an idempotent `acks=all` producer sending one
//! record every [`SEND_INTERVAL`], and a consumer-group member committing an offset
//! synchronously, one commit after another. Each keeps a timeline (when each record or commit
//! was sent, when it was acknowledged) that the fault loop reads the gaps from.
//!
//! The committer assigns itself the topic's partition (no group membership, so no rebalance
//! delay is measured): its commits go to the group coordinator like any member's, which is
//! what a coordinator failover interrupts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::settings::Settings;
use crate::client;

/// Time between two records of the steady producer.
pub const SEND_INTERVAL: Duration = Duration::from_millis(5);
/// Pause between two synchronous commits.
const COMMIT_INTERVAL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("creating the {0}")]
    Create(&'static str, #[source] KafkaError),
    #[error("assigning {topic} to the committer")]
    Assign {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

/// One acknowledged request: a record or a commit.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub sent: Instant,
    pub acked: Instant,
}

/// Acknowledgements in the order they arrived, and failures counted.
#[derive(Debug, Default)]
pub struct Timeline {
    acks: Mutex<Vec<Ack>>,
    failed: AtomicU64,
}

impl Timeline {
    fn push(&self, ack: Ack) {
        self.acks.lock().expect("timeline lock").push(ack);
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.acks.lock().expect("timeline lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first acknowledgement of a request sent at or after `after`.
    pub fn first_sent_after(&self, after: Instant) -> Option<Ack> {
        let acks = self.acks.lock().expect("timeline lock");
        acks.iter().find(|a| a.sent >= after).copied()
    }

    /// When the latest acknowledgement arrived.
    pub fn last_acked(&self) -> Option<Instant> {
        let acks = self.acks.lock().expect("timeline lock");
        acks.last().map(|a| a.acked)
    }

    /// The longest time without any acknowledgement between `from` and `to`: between
    /// consecutive acknowledgements, counting from the last one before `from`.
    pub fn longest_silence(&self, from: Instant, to: Instant) -> Duration {
        let acks = self.acks.lock().expect("timeline lock");
        let mut previous: Option<Instant> = acks
            .iter()
            .rev()
            .map(|a| a.acked)
            .find(|&acked| acked < from);
        let mut longest = Duration::ZERO;
        for acked in acks
            .iter()
            .map(|a| a.acked)
            .filter(|&t| t >= from && t <= to)
        {
            if let Some(previous) = previous {
                longest = longest.max(acked - previous);
            }
            previous = Some(acked);
        }
        longest
    }
}

/// Puts every delivery report on the producer's timeline.
struct Deliveries(Arc<Timeline>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        match result {
            Ok(_) => self.0.push(Ack {
                sent: *sent,
                acked: Instant::now(),
            }),
            Err(_) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The running producer and committer; dropping it stops both.
pub struct Probes {
    pub records: Arc<Timeline>,
    pub commits: Arc<Timeline>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Probes {
    pub fn start(
        bootstrap: &str,
        topic: &str,
        group: &str,
        settings: &Settings,
    ) -> Result<Probes, ProbeError> {
        let records = Arc::new(Timeline::default());
        let commits = Arc::new(Timeline::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut config = client::base_config(bootstrap);
        settings.apply_to_client(&mut config);
        let producer: ThreadedProducer<Deliveries> = config
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            // Never give a record up during a fault: the gap is measured, not a failure.
            .set("message.timeout.ms", "300000")
            .create_with_context(Deliveries(records.clone()))
            .map_err(|e| ProbeError::Create("producer", e))?;
        let consumer: BaseConsumer = config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| ProbeError::Create("committer", e))?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition(topic, 0);
        consumer
            .assign(&assignment)
            .map_err(|source| ProbeError::Assign {
                topic: topic.to_string(),
                source,
            })?;
        let mut threads = Vec::new();
        {
            let (topic, stop) = (topic.to_string(), stop.clone());
            threads.push(std::thread::spawn(move || {
                produce_steadily(&producer, &topic, &stop)
            }));
        }
        {
            let (topic, stop, commits) = (topic.to_string(), stop.clone(), commits.clone());
            threads.push(std::thread::spawn(move || {
                commit_steadily(&consumer, &topic, &commits, &stop)
            }));
        }
        Ok(Probes {
            records,
            commits,
            stop,
            threads,
        })
    }
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes")
            .field("records", &self.records.len())
            .field("commits", &self.commits.len())
            .finish_non_exhaustive()
    }
}

/// How long dropping [`Probes`] waits for its threads: a synchronous commit has no timeout of
/// its own and can wait for a coordinator that a failed run left unavailable.
const STOP_WAIT: Duration = Duration::from_secs(15);

impl Drop for Probes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + STOP_WAIT;
        while self.threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // A thread still blocked in the client is left behind; the process exits soon after.
        for thread in self.threads.drain(..).filter(|t| t.is_finished()) {
            let _ = thread.join();
        }
    }
}

fn produce_steadily(producer: &ThreadedProducer<Deliveries>, topic: &str, stop: &AtomicBool) {
    let payload = [0u8; 100];
    let mut next = Instant::now();
    let mut sequence = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = sequence.to_be_bytes();
        let record = BaseRecord::with_opaque_to(topic, Box::new(Instant::now()))
            .key(&key)
            .payload(&payload[..]);
        // A full local queue (a long stall) drops this tick's record; the next tick tries again.
        if producer.send(record).is_ok() {
            sequence += 1;
        }
        next += SEND_INTERVAL;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    let _ = producer.flush(Duration::from_secs(10));
}

fn commit_steadily(consumer: &BaseConsumer, topic: &str, commits: &Timeline, stop: &AtomicBool) {
    let mut offset = 0i64;
    while !stop.load(Ordering::Relaxed) {
        let mut offsets = TopicPartitionList::new();
        offset += 1;
        let _ = offsets.add_partition_offset(topic, 0, Offset::Offset(offset));
        let sent = Instant::now();
        match consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => commits.push(Ack {
                sent,
                acked: Instant::now(),
            }),
            Err(_) => {
                commits.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Serves the consumer's callbacks; the records it fetches are not needed.
        let _ = consumer.poll(Duration::ZERO);
        std::thread::sleep(COMMIT_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_silence_counts_from_the_last_ack_before_the_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let timeline = Timeline::default();
        for ms in [0, 10, 20, 900, 910, 2000] {
            timeline.push(Ack {
                sent: at(ms),
                acked: at(ms),
            });
        }
        // From 15: the silence 20..900 counts, 910..2000 lies outside.
        assert_eq!(
            timeline.longest_silence(at(15), at(1000)),
            Duration::from_millis(880)
        );
        assert_eq!(
            timeline.longest_silence(at(15), at(2000)),
            Duration::from_millis(1090)
        );
        assert_eq!(
            timeline.first_sent_after(at(11)).map(|a| a.sent),
            Some(at(20))
        );
        assert!(timeline.first_sent_after(at(2001)).is_none());
    }
}
