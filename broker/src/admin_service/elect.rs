//! Preferred leader election, shared by the admin API's ElectLeaders and Kafka's ElectLeaders
//! (PREFERRED): one `ElectPreferredLeaders` metadata command; the image decides per partition
//! whether the preferred replica (the first target replica) can lead, with Kafka's codes.

use kafka_protocol::error::ResponseError;
use weir_api::proto::admin as pb;

use super::{wait_for_image, write, AdminError};
use crate::broker::Broker;
use crate::controller::command::{CommandResult, MetadataCommand};
use crate::controller::image::{
    MetadataImage, TopicPartition, ELECTION_NOT_NEEDED, NO_LEADER, PREFERRED_LEADER_NOT_AVAILABLE,
};

/// Kafka's UNKNOWN_TOPIC_OR_PARTITION, as the image answers it.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();

/// The outcome of one partition's election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Election {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Kafka's code: 0 (elected), ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE or
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub code: i16,
    /// The leader after the election, if the partition has one.
    pub leader: Option<i32>,
}

/// Partitions whose leader is not their preferred replica.
fn not_led_by_preferred(image: &MetadataImage) -> Vec<TopicPartition> {
    let mut out = Vec::new();
    for topic in image.topics.values() {
        for (p, index) in topic.partitions.iter().zip(0..) {
            if p.target_replicas().first() != Some(&p.leader) {
                out.push((topic.name.clone(), index));
            }
        }
    }
    out
}

/// Elects preferred leaders of `partitions`, or, with `None`, of every partition whose leader is
/// not its preferred replica (then partitions that turn out not to need it are left out).
pub async fn elect_preferred(
    broker: &Broker,
    partitions: Option<Vec<TopicPartition>>,
) -> Result<Vec<Election>, AdminError> {
    let before = broker.replicas.image();
    let only_needed = partitions.is_none();
    let partitions = partitions.unwrap_or_else(|| not_led_by_preferred(&before));
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let result = write(
        broker,
        MetadataCommand::ElectPreferredLeaders {
            partitions: partitions.clone(),
        },
    )
    .await?;
    let CommandResult::Elections(results) = result else {
        return Err(AdminError::Internal(format!(
            "unexpected election result {result:?}"
        )));
    };
    // Partitions led by their preferred replica when the command applied (elected, or not
    // needing it): wait until this broker's image shows that too (or a later change), so the
    // leaders answered are not older than the outcome.
    let elected: Vec<(TopicPartition, i32)> = results
        .iter()
        .filter(|(_, code)| *code == 0 || *code == ELECTION_NOT_NEEDED)
        .map(|((t, i), _)| {
            let epoch = before.partition(t, *i).map_or(-1, |p| p.leader_epoch);
            ((t.clone(), *i), epoch)
        })
        .collect();
    wait_for_image(broker, |image| {
        elected.iter().all(|((t, i), epoch)| {
            image.partition(t, *i).is_none_or(|p| {
                p.leader_epoch > *epoch || p.target_replicas().first() == Some(&p.leader)
            })
        })
    })
    .await?;
    let image = broker.replicas.image();
    Ok(results
        .into_iter()
        .filter(|(_, code)| !(only_needed && *code == ELECTION_NOT_NEEDED))
        .map(|((topic, partition), code)| {
            let leader = image
                .partition(&topic, partition)
                .map(|p| p.leader)
                .filter(|l| *l != NO_LEADER);
            Election {
                topic,
                partition,
                code,
                leader,
            }
        })
        .collect())
}

/// ElectLeaders of the admin API.
pub(super) async fn elect_leaders_rpc(
    broker: &Broker,
    request: pb::ElectLeadersRequest,
) -> Result<pb::ElectLeadersResponse, AdminError> {
    let partitions = (!request.partitions.is_empty()).then(|| {
        request
            .partitions
            .into_iter()
            .map(|tp| (tp.topic, tp.partition))
            .collect()
    });
    let results = elect_preferred(broker, partitions).await?;
    Ok(pb::ElectLeadersResponse {
        results: results
            .into_iter()
            .map(|e| {
                let outcome = match e.code {
                    0 => pb::ElectionOutcome::Elected,
                    ELECTION_NOT_NEEDED => pb::ElectionOutcome::NotNeeded,
                    PREFERRED_LEADER_NOT_AVAILABLE => pb::ElectionOutcome::PreferredNotAvailable,
                    UNKNOWN_TOPIC_OR_PARTITION => pb::ElectionOutcome::UnknownPartition,
                    _ => pb::ElectionOutcome::Unspecified,
                };
                pb::ElectionResult {
                    topic: e.topic,
                    partition: e.partition,
                    outcome: outcome as i32,
                    leader: e.leader,
                }
            })
            .collect(),
    })
}
