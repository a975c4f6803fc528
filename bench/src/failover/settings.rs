//! The settings a failover run gives both systems, by their Kafka names: the broker's (how
//! fast a dead broker is noticed and replaced) and the client's (how fast a client notices and
//! retries). The report's header states them, so a reader knows what the gaps depend on.

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// Broker and client settings of one failover run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Both brokers' own names and values (Weir `--set`, Kafka `server.properties`).
    pub broker: Vec<(String, String)>,
    /// librdkafka's names and values, for the producer and the committer alike.
    pub client: Vec<(String, String)>,
}

impl Default for Settings {
    /// Kafka's defaults for the broker timings, stated explicitly so that neither system runs
    /// on a default of its own; the client's are librdkafka's usual ones with the metadata max
    /// age shortened to what a failover-sensitive application would use.
    fn default() -> Settings {
        let pairs = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Settings {
            broker: pairs(&[
                ("broker.session.timeout.ms", "9000"),
                ("broker.heartbeat.interval.ms", "2000"),
                ("controller.quorum.election.timeout.ms", "1000"),
                ("replica.lag.time.max.ms", "30000"),
                ("min.insync.replicas", "2"),
                ("offsets.topic.replication.factor", "3"),
                // One partition: every group's coordinator is that partition's leader, and
                // the run loads one small log rather than fifty.
                ("offsets.topic.num.partitions", "1"),
                ("unclean.leader.election.enable", "false"),
            ]),
            client: pairs(&[
                ("request.timeout.ms", "30000"),
                ("retry.backoff.ms", "100"),
                ("retry.backoff.max.ms", "1000"),
                ("metadata.max.age.ms", "15000"),
                ("topic.metadata.refresh.interval.ms", "5000"),
                ("socket.timeout.ms", "30000"),
            ]),
        }
    }
}

impl Settings {
    pub fn broker_pairs(&self) -> Vec<(&str, String)> {
        self.broker
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect()
    }

    pub fn apply_to_client(&self, config: &mut ClientConfig) {
        for (name, value) in &self.client {
            config.set(name, value);
        }
    }

    /// One broker setting's value, if the run sets it.
    pub fn broker_value(&self, name: &str) -> Option<&str> {
        self.broker
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `name=value` pairs on one line, for a report's header.
    pub fn describe(pairs: &[(String, String)]) -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("`{k}={v}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
