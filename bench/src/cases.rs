//! What the bench measures: the producer matrix, the consumer catch-up and end-to-end latency
//! cases, the brokers they run on (one, or a replicated cluster: [`Topology`]), and the sizes
//! of the whole plan (the full A/B comparison, its replicated-cluster variant, the CI smoke run).
//!
//! The transactional cases ([`TransactionCase`], [`TransactionLatencyCase`]) have a plan of
//! their own ([`Plan::transactions`]): a transactional producer commits every `N` records.
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

/// Which client a producer or catch-up row runs: librdkafka (what applications use), or the
/// bench's own wire client ([`crate::wire_client`]), which costs little enough per record
/// that the brokers decide the row on a machine of few cores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Client {
    #[default]
    Librdkafka,
    Wire,
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

/// Consumer catch-up: a topic is filled (acks=1, uncompressed, not timed), then one consumer
/// reads all of it from the beginning, as fast as it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumeCase {
    pub record_size: usize,
    pub partitions: i32,
    pub records: u64,
}

impl ConsumeCase {
    /// How the topic (named by [`ConsumeCase::key`]) is filled before the catch-up.
    pub fn fill(&self) -> ProduceCase {
        ProduceCase {
            record_size: self.record_size,
            acks: Acks::Leader,
            compression: Compression::None,
            partitions: self.partitions,
            records: self.records,
        }
    }

    pub fn key(&self) -> String {
        format!("consume-{}b-{}p", self.record_size, self.partitions)
    }
}

/// End-to-end latency at a fixed rate: one producer sends for `seconds` at `rate_fraction` of
/// a reference rate (Apache Kafka's measured maximum on the matching producer row), one
/// consumer reads them; the first `warmup_seconds` are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyCase {
    pub record_size: usize,
    pub acks: Acks,
    pub compression: Compression,
    pub partitions: i32,
    pub rate_fraction: f64,
    pub seconds: f64,
    pub warmup_seconds: f64,
}

impl LatencyCase {
    pub fn key(&self) -> String {
        format!(
            "latency-{}b-acks{}-{}-{}p-at{:.0}pct",
            self.record_size,
            self.acks,
            self.compression,
            self.partitions,
            self.rate_fraction * 100.0
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

/// Transactional producer throughput: one librdkafka transactional producer (`acks=all`,
/// idempotent, as transactions imply) sends `records` records of `record_size` bytes as fast as
/// it can, in transactions of `records_per_transaction` records each committed before the next
/// begins, to a fresh topic of `partitions` partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionCase {
    pub record_size: usize,
    pub partitions: i32,
    pub records_per_transaction: u64,
    pub records: u64,
}

impl TransactionCase {
    /// Also the topic the case writes to and the prefix of its `transactional.id`.
    pub fn key(&self) -> String {
        format!(
            "txn-{}b-{}p-{}pertxn",
            self.record_size, self.partitions, self.records_per_transaction
        )
    }

    pub fn bytes(&self) -> u64 {
        self.records * self.record_size as u64
    }

    /// Transactions the case commits (the last one may be shorter).
    pub fn transactions(&self) -> u64 {
        self.records.div_ceil(self.records_per_transaction.max(1))
    }
}

/// End-to-end latency through transactions: a transactional producer sends at a fixed `rate`
/// (records/s) for `seconds`, committing every `records_per_transaction` records, and a
/// `read_committed` consumer reads them; a record's latency runs from the moment it is handed
/// to librdkafka to the moment the consumer gets it, so it includes waiting for the rest of its
/// transaction and the commit. The first `warmup_seconds` are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TransactionLatencyCase {
    pub record_size: usize,
    pub partitions: i32,
    pub records_per_transaction: u64,
    pub rate: f64,
    pub seconds: f64,
    pub warmup_seconds: f64,
}

impl TransactionLatencyCase {
    pub fn key(&self) -> String {
        format!(
            "txn-latency-{}b-{}p-{}pertxn-at{:.0}",
            self.record_size, self.partitions, self.records_per_transaction, self.rate
        )
    }
}

/// How many brokers a run starts and how the topics it creates are replicated. Both systems
/// get the same: for Kafka the brokers are combined broker+controller nodes, for Weir every
/// broker is a voter of the metadata quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Broker processes per run.
    pub brokers: usize,
    /// Replicas of every topic the bench creates.
    pub replication_factor: i32,
    /// The topics' `min.insync.replicas` (also the brokers' default).
    pub min_insync_replicas: i32,
}

impl Topology {
    pub const SINGLE_NODE: Topology = Topology {
        brokers: 1,
        replication_factor: 1,
        min_insync_replicas: 1,
    };

    /// `brokers` brokers, topics with replication factor 3 and `min.insync.replicas=2`: the
    /// usual production shape, where `acks=all` survives the loss of one replica.
    pub fn cluster(brokers: usize) -> Topology {
        Topology {
            brokers,
            replication_factor: 3,
            min_insync_replicas: 2,
        }
    }

    pub fn is_cluster(&self) -> bool {
        self.brokers > 1
    }
}

impl Default for Topology {
    /// Results saved before clusters existed were single-node runs.
    fn default() -> Topology {
        Topology::SINGLE_NODE
    }
}

/// Everything one broker run measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The brokers each run starts and the replication of its topics.
    #[serde(default)]
    pub topology: Topology,
    /// Before the measured produce cases, each one runs unmeasured with this fraction of its
    /// records, so that neither broker is timed while cold (the JVM's JIT compiler, page
    /// faults on fresh buffers, first segment files).
    pub warmup_fraction: f64,
    pub produce: Vec<ProduceCase>,
    pub consume: Vec<ConsumeCase>,
    /// The producer and catch-up cases run again by the bench's wire client
    /// ([`crate::wire_client`]), after the librdkafka ones: what the brokers take when the
    /// client costs them nothing (absent in results saved before it existed).
    #[serde(default)]
    pub wire_produce: Vec<ProduceCase>,
    #[serde(default)]
    pub wire_consume: Vec<ConsumeCase>,
    pub latency: Vec<LatencyCase>,
    /// Transactional producer cases (absent in results saved before they existed).
    #[serde(default)]
    pub transactions: Vec<TransactionCase>,
    /// Transactional end-to-end latency cases, run in the throughput phase after the
    /// transactional producer cases.
    #[serde(default)]
    pub transaction_latency: Vec<TransactionLatencyCase>,
}

impl Plan {
    /// The full comparison: 100 B and 1 KiB, acks 1 and all, none and lz4, 1 and 16
    /// partitions; catch-up over the 1 KiB topics; latency for 1 KiB, acks=1, 1 partition at
    /// half of Kafka's maximum (the issue's rate) and at a tenth of it (an unsaturated machine).
    pub fn full(sizes: &PlanSizes) -> Plan {
        let latency_seconds = sizes.latency_seconds;
        let mut produce = Vec::new();
        for (record_size, records) in [(100, sizes.records_100b), (1024, sizes.records_1k)] {
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
        let latency = |rate_fraction| LatencyCase {
            record_size: 1024,
            acks: Acks::Leader,
            compression: Compression::None,
            partitions: 1,
            rate_fraction,
            seconds: latency_seconds,
            warmup_seconds: (latency_seconds / 5.0).min(5.0),
        };
        let consume = vec![
            ConsumeCase {
                record_size: 1024,
                partitions: 1,
                records: sizes.records_catch_up,
            },
            ConsumeCase {
                record_size: 1024,
                partitions: 16,
                records: sizes.records_catch_up,
            },
        ];
        Plan {
            topology: Topology::SINGLE_NODE,
            warmup_fraction: 0.1,
            wire_produce: produce.clone(),
            wire_consume: consume.clone(),
            produce,
            consume,
            latency: vec![latency(0.5), latency(0.1)],
            transactions: Vec::new(),
            transaction_latency: Vec::new(),
        }
    }

    /// The replicated comparison on `topology`: every producer row `acks=all` (the only
    /// setting where replication is on the produce path), 100 B and 1 KiB, none and lz4, 1 and
    /// 16 partitions; latency for 1 KiB, `acks=all`, 1 partition at half and a tenth of
    /// Kafka's maximum on that row. No catch-up: a consumer reads from the leader alone, as on
    /// a single node.
    pub fn cluster(sizes: &PlanSizes, topology: Topology) -> Plan {
        let mut produce = Vec::new();
        for (record_size, records) in [(100, sizes.records_100b), (1024, sizes.records_1k)] {
            for compression in [Compression::None, Compression::Lz4] {
                for partitions in [1, 16] {
                    produce.push(ProduceCase {
                        record_size,
                        acks: Acks::All,
                        compression,
                        partitions,
                        records,
                    });
                }
            }
        }
        let latency = |rate_fraction| LatencyCase {
            record_size: 1024,
            acks: Acks::All,
            compression: Compression::None,
            partitions: 1,
            rate_fraction,
            seconds: sizes.latency_seconds,
            warmup_seconds: (sizes.latency_seconds / 5.0).min(5.0),
        };
        Plan {
            topology,
            warmup_fraction: 0.1,
            wire_produce: produce.clone(),
            produce,
            consume: Vec::new(),
            wire_consume: Vec::new(),
            latency: vec![latency(0.5), latency(0.1)],
            transactions: Vec::new(),
            transaction_latency: Vec::new(),
        }
    }

    /// A few seconds against a debug build: one of each kind of case, small counts.
    pub fn smoke() -> Plan {
        let produce = vec![
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
        ];
        let consume = vec![ConsumeCase {
            record_size: 100,
            partitions: 4,
            records: 20_000,
        }];
        Plan {
            topology: Topology::SINGLE_NODE,
            warmup_fraction: 0.1,
            wire_produce: produce.clone(),
            produce,
            wire_consume: consume.clone(),
            consume,
            latency: vec![LatencyCase {
                record_size: 1024,
                acks: Acks::Leader,
                compression: Compression::None,
                partitions: 1,
                rate_fraction: 0.5,
                seconds: 2.0,
                warmup_seconds: 0.5,
            }],
            transactions: Vec::new(),
            transaction_latency: Vec::new(),
        }
    }

    /// Transactions only (issue 15), on `topology`: 1 KiB records, transactions of 100 and
    /// of 1,000 records, the same number of transactions in each case, to 16 partitions; then
    /// `read_committed`
    /// end-to-end latency at `latency_rate` records/s, 100 records per transaction, to one
    /// partition.
    pub fn transactions(sizes: &TransactionSizes, topology: Topology) -> Plan {
        let transactions = [100, 1_000]
            .into_iter()
            .map(|records_per_transaction| TransactionCase {
                record_size: 1024,
                partitions: 16,
                records_per_transaction,
                records: sizes.transactions * records_per_transaction,
            })
            .collect();
        Plan {
            topology,
            warmup_fraction: 0.1,
            produce: Vec::new(),
            consume: Vec::new(),
            wire_produce: Vec::new(),
            wire_consume: Vec::new(),
            latency: Vec::new(),
            transactions,
            transaction_latency: vec![TransactionLatencyCase {
                record_size: 1024,
                partitions: 1,
                records_per_transaction: 100,
                rate: sizes.latency_rate,
                seconds: sizes.latency_seconds,
                warmup_seconds: (sizes.latency_seconds / 5.0).min(5.0),
            }],
        }
    }
}

/// How big the full plan is: records per producer row, per catch-up, seconds per latency run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanSizes {
    pub records_100b: u64,
    pub records_1k: u64,
    pub records_catch_up: u64,
    pub latency_seconds: f64,
}

/// How big the transactions plan is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransactionSizes {
    /// Transactions per transactional producer row.
    pub transactions: u64,
    /// Records per second of the latency case.
    pub latency_rate: f64,
    pub latency_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: PlanSizes = PlanSizes {
        records_100b: 1_000,
        records_1k: 100,
        records_catch_up: 50,
        latency_seconds: 10.0,
    };

    #[test]
    fn full_plan_covers_the_issue_matrix_once() {
        let plan = Plan::full(&SIZES);
        assert_eq!(plan.produce.len(), 16);
        let mut keys: Vec<String> = plan.produce.iter().map(ProduceCase::key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 16, "every produce case has its own topic");
        assert!(keys.contains(&"produce-1024b-acks1-none-1p".to_string()));
        assert!(keys.contains(&"produce-100b-acksall-lz4-16p".to_string()));
    }

    #[test]
    fn cluster_plan_is_replicated_acks_all_with_a_reference_row() {
        let plan = Plan::cluster(&SIZES, Topology::cluster(3));
        assert_eq!(plan.topology.brokers, 3);
        assert_eq!(plan.topology.replication_factor, 3);
        assert_eq!(plan.topology.min_insync_replicas, 2);
        assert_eq!(plan.produce.len(), 8);
        assert!(plan.produce.iter().all(|p| p.acks == Acks::All));
        let keys: Vec<String> = plan.produce.iter().map(ProduceCase::key).collect();
        for needed in [
            "produce-1024b-acksall-none-1p",
            "produce-1024b-acksall-none-16p",
            "produce-100b-acksall-none-16p",
            "produce-100b-acksall-lz4-16p",
        ] {
            assert!(keys.contains(&needed.to_string()), "{needed} missing");
        }
        let first = plan.latency.first().expect("a latency case");
        assert_eq!(first.rate_fraction, 0.5);
        assert!(plan.produce.iter().any(|p| first.matches(p)));
    }

    #[test]
    fn transactions_plan_has_the_issue_sizes_and_nothing_else() {
        let sizes = TransactionSizes {
            transactions: 10,
            latency_rate: 5_000.0,
            latency_seconds: 20.0,
        };
        let plan = Plan::transactions(&sizes, Topology::cluster(3));
        assert!(plan.produce.is_empty() && plan.consume.is_empty() && plan.latency.is_empty());
        let per_txn: Vec<u64> = plan
            .transactions
            .iter()
            .map(|c| c.records_per_transaction)
            .collect();
        assert_eq!(per_txn, [100, 1_000]);
        assert!(plan.transactions.iter().all(|c| c.record_size == 1024));
        assert!(plan.transactions.iter().all(|c| c.transactions() == 10));
        assert_eq!(plan.transactions[1].records, 10_000);
        assert_ne!(plan.transactions[0].key(), plan.transactions[1].key());
        let latency = plan.transaction_latency[0];
        assert_eq!(latency.records_per_transaction, 100);
        assert_eq!(latency.warmup_seconds, 4.0);
    }

    #[test]
    fn results_saved_before_transactions_have_none() {
        let mut value = serde_json::to_value(Plan::full(&SIZES)).unwrap();
        let object = value.as_object_mut().unwrap();
        object.remove("transactions");
        object.remove("transaction_latency");
        let plan: Plan = serde_json::from_value(value).unwrap();
        assert!(plan.transactions.is_empty() && plan.transaction_latency.is_empty());
    }

    #[test]
    fn results_saved_before_clusters_read_as_single_node() {
        let mut value = serde_json::to_value(Plan::full(&SIZES)).unwrap();
        value.as_object_mut().unwrap().remove("topology");
        let plan: Plan = serde_json::from_value(value).unwrap();
        assert_eq!(plan.topology, Topology::SINGLE_NODE);
    }

    #[test]
    fn every_topic_is_distinct_and_latency_rates_have_a_reference_row() {
        let plan = Plan::full(&SIZES);
        let mut topics: Vec<String> = plan.produce.iter().map(ProduceCase::key).collect();
        topics.extend(plan.consume.iter().map(ConsumeCase::key));
        topics.extend(plan.latency.iter().map(LatencyCase::key));
        let count = topics.len();
        topics.sort();
        topics.dedup();
        assert_eq!(topics.len(), count, "two cases would share a topic");
        for latency in &plan.latency {
            assert!(plan.produce.iter().any(|p| latency.matches(p)));
        }
    }
}
