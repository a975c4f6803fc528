//! What a comparison measured, run by run, as plain serializable data.
//!
//! `weir-bench compare` appends one [`BrokerRun`] per broker start to [`Results`] and saves it
//! as JSON after every run, so a long comparison that fails half-way keeps what it measured,
//! and `weir-bench report` can render the tables again without re-running anything.

use serde::{Deserialize, Serialize};

use crate::cases::{
    ConsumeCase, LatencyCase, Plan, ProduceCase, TransactionCase, TransactionLatencyCase,
};

/// Which broker a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    Weir,
    Kafka,
}

impl BrokerKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Weir => "Weir",
            BrokerKind::Kafka => "Kafka",
        }
    }
}

/// `records` records of `bytes` payload bytes in `seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl Throughput {
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds
    }

    /// Payload megabytes (10^6 bytes) per second.
    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }
}

/// End-to-end latency of one fixed-rate run, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Records per second asked for.
    pub target_rate: f64,
    /// Records per second the producer actually sent at.
    pub achieved_rate: f64,
    /// Records whose latency was recorded (sent after the warm-up).
    pub measured: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProduceMeasurement {
    pub case: ProduceCase,
    pub throughput: Throughput,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumeMeasurement {
    pub case: ConsumeCase,
    pub throughput: Throughput,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyMeasurement {
    pub case: LatencyCase,
    pub latency: LatencySummary,
}

/// A latency case that produced no number: the brokers stayed up but did not deliver every
/// record within the client's timeouts (the rate was more than they sustain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyFailure {
    pub case: LatencyCase,
    /// What the client reported.
    pub error: String,
}

/// One transactional producer run: its throughput, and how long the commits took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionMeasurement {
    pub case: TransactionCase,
    pub throughput: Throughput,
    /// Committed transactions.
    pub transactions: u64,
    /// `commit_transaction` calls, from the call to its return (the flush of the
    /// transaction's last records included), in milliseconds.
    pub commit_p50_ms: f64,
    pub commit_p99_ms: f64,
    /// Of the commit, the flush of the transaction's records (absent in results saved before
    /// it was timed apart).
    #[serde(default)]
    pub flush_p50_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionLatencyMeasurement {
    pub case: TransactionLatencyCase,
    pub latency: LatencySummary,
}

/// A transactional case that produced no number, and what the client said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionFailure {
    /// The case's key.
    pub case: String,
    pub error: String,
}

/// What the broker process cost over a run (see `procstat`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// `VmHWM` at the end of the run.
    pub peak_rss_bytes: u64,
    /// Broker CPU seconds from the first acknowledged produce to the end of the workload.
    pub workload_cpu_seconds: f64,
    /// Payload bytes produced plus payload bytes consumed over the same span.
    pub bytes_moved: u64,
}

impl Resources {
    /// CPU seconds per 10^9 payload bytes moved.
    pub fn cpu_seconds_per_gb(&self) -> f64 {
        self.workload_cpu_seconds / (self.bytes_moved as f64 / 1e9)
    }
}

/// One broker start: a fresh data directory, then the cases of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerRun {
    pub broker: BrokerKind,
    /// Which A/B round this was (0-based).
    pub round: usize,
    /// From spawning the process to the first acknowledged produce.
    pub start_to_first_produce_seconds: f64,
    pub produce: Vec<ProduceMeasurement>,
    pub consume: Vec<ConsumeMeasurement>,
    pub latency: Vec<LatencyMeasurement>,
    /// The plan's `wire_produce` and `wire_consume` cases (absent in results saved before the
    /// wire client existed).
    #[serde(default)]
    pub wire_produce: Vec<ProduceMeasurement>,
    #[serde(default)]
    pub wire_consume: Vec<ConsumeMeasurement>,
    /// Latency cases of this run that failed (absent in results saved before failures were
    /// kept).
    #[serde(default)]
    pub failed_latency: Vec<LatencyFailure>,
    /// Transactional producer cases of this run (absent in results saved before them).
    #[serde(default)]
    pub transactions: Vec<TransactionMeasurement>,
    #[serde(default)]
    pub transaction_latency: Vec<TransactionLatencyMeasurement>,
    /// Transactional cases of this run that failed while the brokers stayed up.
    #[serde(default)]
    pub failed_transactions: Vec<TransactionFailure>,
    /// Present for throughput runs (the latency phase's broker is mostly idle).
    pub resources: Option<Resources>,
    /// The machine's one-minute load average once the run's cases were done: this run's own
    /// brokers and client plus whatever else the shared machine was doing. Absent in results
    /// saved before it was recorded.
    #[serde(default)]
    pub load_average: Option<f64>,
}

/// The machine the numbers come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub java: String,
}

/// A whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub machine: Machine,
    pub plan: Plan,
    pub weir_version: String,
    pub kafka_version: String,
    pub kafka_heap: String,
    /// The exact command that produced these results.
    pub command: String,
    /// The records/s the latency cases' rate fractions apply to, once known: Apache Kafka's
    /// median maximum on the matching producer row, unless given on the command line.
    pub latency_reference_rate: Option<f64>,
    pub runs: Vec<BrokerRun>,
}
