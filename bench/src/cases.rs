//! What the bench measures: the producer matrix, the consumer catch-up and end-to-end latency
//! cases, and the two sizes of the whole plan (the full A/B comparison and the CI smoke run).
//!
//! A case is plain data with a stable `key` (the row of a table and the topic name); the
//! scenario modules run one case against one broker.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Producer `acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    #[value(name = "1")]
    #[serde(rename = "1")]
    Leader,
    All,
}

impl Acks {
    /// The value of librdkafka's `acks` setting.
    pub fn config_value(self) -> &'static str {
        match self {
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_value())
    }
}

/// Producer `compression.codec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Lz4,
}

impl Compression {
    pub fn config_value(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_value())
    }
}

/// One row of the producer throughput table: `records` records of `record_size` bytes sent
/// as fast as one librdkafka producer can, to a fresh topic of `partitions` partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceCase {
    pub record_size: usize,
    pub acks: Acks,
    pub compression: Compression,
    pub partitions: i32,
    pub records: u64,
}

impl ProduceCase {
    /// Also the topic the case writes to (and catch-up reads from).
    pub fn key(&self) -> String {
        format!(
            "produce-{}b-acks{}-{}-{}p",
            self.record_size, self.acks, self.compression, self.partitions
        )
    }

    pub fn bytes(&self) -> u64 {
        self.records * self.record_size as u64
    }
}

/// Consumer catch-up: read everything a produce case wrote (acks=1, uncompressed, the given
/// size and partition count) from the beginning, as fast as one consumer can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumeCase {
    pub record_size: usize,
    pub partitions: i32,
}

impl ConsumeCase {
    /// The produce case whose topic this case reads.
    pub fn source(&self) -> ProduceCase {
        ProduceCase {
            record_size: self.record_size,
            acks: Acks::Leader,
            compression: Compression::None,
            partitions: self.partitions,
            records: 0,
        }
    }

    pub fn key(&self) -> String {
        format!("consume-{}b-{}p", self.record_size, self.partitions)
    }
}

/// End-to-end latency at a fixed rate: one producer sends at `rate` records/s for `seconds`,
/// one consumer reads them; the first `warmup_seconds` are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyCase {
    pub record_size: usize,
    pub acks: Acks,
    pub compression: Compression,
    pub partitions: i32,
    pub seconds: f64,
    pub warmup_seconds: f64,
}

impl LatencyCase {
    pub fn key(&self) -> String {
        format!(
            "latency-{}b-acks{}-{}-{}p",
            self.record_size, self.acks, self.compression, self.partitions
        )
    }

    /// The producer row whose Apache Kafka maximum sets this case's rate.
    pub fn matches(&self, produce: &ProduceCase) -> bool {
        produce.record_size == self.record_size
            && produce.acks == self.acks
            && produce.compression == self.compression
            && produce.partitions == self.partitions
    }
}

/// Everything one broker run measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub produce: Vec<ProduceCase>,
    pub consume: Vec<ConsumeCase>,
    pub latency: Vec<LatencyCase>,
}

impl Plan {
    /// The full comparison: 100 B and 1 KiB, acks 1 and all, none and lz4, 1 and 16
    /// partitions; catch-up over the 1 KiB topics; latency for 1 KiB, acks=1, 1 partition.
    /// `records_1k` and `records_100b` size the producer rows (see docs/BENCHMARKS.md).
    pub fn full(records_100b: u64, records_1k: u64, latency_seconds: f64) -> Plan {
        let mut produce = Vec::new();
        for (record_size, records) in [(100, records_100b), (1024, records_1k)] {
            for acks in [Acks::Leader, Acks::All] {
                for compression in [Compression::None, Compression::Lz4] {
                    for partitions in [1, 16] {
                        produce.push(ProduceCase {
                            record_size,
                            acks,
                            compression,
                            partitions,
                            records,
                        });
                    }
                }
            }
        }
        Plan {
            produce,
            consume: vec![
                ConsumeCase {
                    record_size: 1024,
                    partitions: 1,
                },
                ConsumeCase {
                    record_size: 1024,
                    partitions: 16,
                },
            ],
            latency: vec![LatencyCase {
                record_size: 1024,
                acks: Acks::Leader,
                compression: Compression::None,
                partitions: 1,
                seconds: latency_seconds,
                warmup_seconds: (latency_seconds / 5.0).min(5.0),
            }],
        }
    }

    /// A few seconds against a debug build: one of each kind of case, small counts.
    pub fn smoke() -> Plan {
        Plan {
            produce: vec![
                ProduceCase {
                    record_size: 100,
                    acks: Acks::Leader,
                    compression: Compression::None,
                    partitions: 1,
                    records: 20_000,
                },
                ProduceCase {
                    record_size: 1024,
                    acks: Acks::All,
                    compression: Compression::Lz4,
                    partitions: 16,
                    records: 5_000,
                },
            ],
            consume: vec![ConsumeCase {
                record_size: 100,
                partitions: 1,
            }],
            latency: vec![LatencyCase {
                record_size: 1024,
                acks: Acks::Leader,
                compression: Compression::None,
                partitions: 1,
                seconds: 2.0,
                warmup_seconds: 0.5,
            }],
        }
    }

    /// The produce case a consume case reads, with its record count.
    pub fn source_of(&self, consume: &ConsumeCase) -> Option<ProduceCase> {
        let wanted = consume.source();
        self.produce.iter().copied().find(|p| {
            p.record_size == wanted.record_size
                && p.acks == wanted.acks
                && p.compression == wanted.compression
                && p.partitions == wanted.partitions
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_plan_covers_the_issue_matrix_once() {
        let plan = Plan::full(1_000, 100, 10.0);
        assert_eq!(plan.produce.len(), 16);
        let mut keys: Vec<String> = plan.produce.iter().map(ProduceCase::key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 16, "every produce case has its own topic");
        assert!(keys.contains(&"produce-1024b-acks1-none-1p".to_string()));
        assert!(keys.contains(&"produce-100b-acksall-lz4-16p".to_string()));
    }

    #[test]
    fn every_consume_and_latency_case_has_a_source_row() {
        for plan in [Plan::full(1_000, 100, 10.0), Plan::smoke()] {
            for consume in &plan.consume {
                let source = plan
                    .source_of(consume)
                    .expect("consume case without a source");
                assert!(source.records > 0);
            }
            if plan == Plan::smoke() {
                continue; // the smoke run sets its latency rate itself
            }
            for latency in &plan.latency {
                assert!(plan.produce.iter().any(|p| latency.matches(p)));
            }
        }
    }
}
