//! Starting and cancelling partition reassignments, and the reassignment throttle: the checks
//! and writes shared by the admin API (ReassignPartitions, CancelReassignment, DrainBroker) and
//! Kafka's AlterPartitionReassignments.
//!
//! A reassignment is one `Reassign` metadata command per partition. The image then lists the
//! union of old and new replicas, the new ones copy the log from the leader (throttled, see
//! `replication::throttle`), and the move completes by itself once every new replica is in the
//! ISR: the removed replicas drop out and leadership moves to a target replica if needed.
//!
//! A new replica may only go to a broker that is registered, active and not draining; replicas
//! that stay may be anywhere (moving a replica off a dead broker is the point of some moves).

use std::collections::BTreeSet;

use weir_api::proto::admin as pb;

use super::{wait_for_image, write, AdminError};
use crate::broker::Broker;
use crate::controller::command::MetadataCommand;
use crate::controller::image::{MetadataImage, PartitionImage};

type Result<T> = std::result::Result<T, AdminError>;

/// The partition, or NOT_FOUND naming what is missing.
pub fn partition<'a>(
    image: &'a MetadataImage,
    topic: &str,
    index: i32,
) -> Result<&'a PartitionImage> {
    if !image.topics.contains_key(topic) {
        return Err(AdminError::UnknownTopic(topic.to_string()));
    }
    image
        .partition(topic, index)
        .ok_or_else(|| AdminError::UnknownPartition {
            topic: topic.to_string(),
            partition: index,
        })
}

/// Checks a target replica list for `topic`/`index`; `replace_running` lets it replace a
/// reassignment in progress (Kafka does; the admin API answers ABORTED instead).
pub fn check_target(
    image: &MetadataImage,
    topic: &str,
    index: i32,
    target: &[i32],
    replace_running: bool,
) -> Result<()> {
    let p = partition(image, topic, index)?;
    if target.is_empty() {
        return Err(AdminError::InvalidReplicas(format!(
            "the target replicas of {topic}-{index} are empty"
        )));
    }
    let mut seen = BTreeSet::new();
    if let Some(twice) = target.iter().find(|r| !seen.insert(**r)) {
        return Err(AdminError::InvalidReplicas(format!(
            "the target replicas of {topic}-{index} list broker {twice} more than once"
        )));
    }
    if p.is_reassigning() && !replace_running {
        return Err(AdminError::ReassignmentInProgress {
            topic: topic.to_string(),
            partition: index,
        });
    }
    for r in target.iter().filter(|r| !p.replicas.contains(r)) {
        let unavailable = |why: &str| {
            AdminError::InvalidReplicaAssignment(format!(
                "{topic}-{index} cannot get a new replica on broker {r}: it {why}"
            ))
        };
        match image.brokers.get(r) {
            None => return Err(unavailable("is not registered")),
            Some(b) if b.fenced => return Err(unavailable("is fenced")),
            Some(b) if !b.is_active() => return Err(unavailable("is shutting down")),
            Some(b) if b.draining => return Err(unavailable("is being drained")),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Writes the reassignment of `topic`/`index` to `target` (checked by [`check_target`]) and
/// waits until this broker's image shows it started (or already finished).
pub async fn start(broker: &Broker, topic: &str, index: i32, target: Vec<i32>) -> Result<()> {
    write(
        broker,
        MetadataCommand::Reassign {
            topic: topic.to_string(),
            partition: index,
            target: Some(target.clone()),
        },
    )
    .await?;
    wait_for_image(broker, |image| {
        image
            .partition(topic, index)
            .is_none_or(|p| p.target_replicas() == target)
    })
    .await?;
    tracing::info!(topic, partition = index, ?target, "started a reassignment");
    Ok(())
}

/// Checks that `topic`/`index` is being reassigned.
pub fn check_cancel(image: &MetadataImage, topic: &str, index: i32) -> Result<()> {
    if partition(image, topic, index)?.is_reassigning() {
        Ok(())
    } else {
        Err(AdminError::NoReassignmentInProgress {
            topic: topic.to_string(),
            partition: index,
        })
    }
}

/// Cancels the reassignment of `topic`/`index`: it goes back to its original replicas.
pub async fn cancel(broker: &Broker, topic: &str, index: i32) -> Result<()> {
    write(
        broker,
        MetadataCommand::Reassign {
            topic: topic.to_string(),
            partition: index,
            target: None,
        },
    )
    .await?;
    wait_for_image(broker, |image| {
        image
            .partition(topic, index)
            .is_none_or(|p| !p.is_reassigning())
    })
    .await?;
    tracing::info!(topic, partition = index, "cancelled a reassignment");
    Ok(())
}

/// Sets the reassignment throttle (`Some(0)`: remove it; `None`: leave it as it is).
pub async fn set_throttle(broker: &Broker, bytes_per_second: Option<u64>) -> Result<()> {
    let Some(rate) = bytes_per_second else {
        return Ok(());
    };
    let wanted = (rate > 0).then_some(rate);
    write(
        broker,
        MetadataCommand::SetReassignmentThrottle {
            bytes_per_second: wanted,
        },
    )
    .await?;
    wait_for_image(broker, |image| image.reassignment_throttle == wanted).await?;
    tracing::info!(bytes_per_second = ?wanted, "set the reassignment throttle");
    Ok(())
}

/// ReassignPartitions: every entry checked before the first is started.
pub(super) async fn reassign_partitions(
    broker: &Broker,
    request: pb::ReassignPartitionsRequest,
) -> Result<pb::ReassignPartitionsResponse> {
    let image = broker.replicas.image();
    let mut seen = BTreeSet::new();
    let mut started = Vec::new();
    for r in &request.reassignments {
        if !seen.insert((r.topic.as_str(), r.partition)) {
            return Err(AdminError::InvalidArgument(format!(
                "{}-{} is listed more than once",
                r.topic, r.partition
            )));
        }
        check_target(&image, &r.topic, r.partition, &r.target_replicas, false)?;
        started.push(pb::PlannedReassignment {
            topic: r.topic.clone(),
            partition: r.partition,
            current_replicas: partition(&image, &r.topic, r.partition)?.replicas.clone(),
            target_replicas: r.target_replicas.clone(),
        });
    }
    set_throttle(broker, request.throttle_bytes_per_second).await?;
    for r in request.reassignments {
        start(broker, &r.topic, r.partition, r.target_replicas).await?;
    }
    Ok(pb::ReassignPartitionsResponse { started })
}

/// CancelReassignment: the named partitions (all in progress when none is named), every one
/// checked before the first is cancelled.
pub(super) async fn cancel_reassignment(
    broker: &Broker,
    request: pb::CancelReassignmentRequest,
) -> Result<pb::CancelReassignmentResponse> {
    let image = broker.replicas.image();
    let partitions: Vec<pb::TopicPartition> = if request.partitions.is_empty() {
        reassigning(&image)
    } else {
        for tp in &request.partitions {
            check_cancel(&image, &tp.topic, tp.partition)?;
        }
        request.partitions
    };
    for tp in &partitions {
        cancel(broker, &tp.topic, tp.partition).await?;
    }
    Ok(pb::CancelReassignmentResponse {
        cancelled: partitions,
    })
}

/// Every partition being reassigned, in topic and partition order.
pub fn reassigning(image: &MetadataImage) -> Vec<pb::TopicPartition> {
    image
        .topics
        .values()
        .flat_map(|t| {
            t.partitions
                .iter()
                .zip(0..)
                .filter(|(p, _)| p.is_reassigning())
                .map(|(_, partition)| pb::TopicPartition {
                    topic: t.name.clone(),
                    partition,
                })
        })
        .collect()
}
