//! CreateTopic, AlterTopic, DeleteTopic, DescribeTopic and ListTopics.
//!
//! Every request is checked in full against the image before anything is written, with the
//! status codes `admin.proto` documents (a malformed request is INVALID_ARGUMENT whatever the
//! cluster looks like; a replication factor the live brokers cannot hold is
//! FAILED_PRECONDITION). Replicas are placed here, with the shared placement code, so that
//! `validate_only` can answer the assignment a real call would create.

use std::collections::{BTreeMap, BTreeSet};

use weir_api::admin::{replica_lists, topic_assignment};
use weir_api::placement;
use weir_api::proto::admin as pb;

use super::describe::{is_internal, topic_description};
use super::{wait_for_image, write, AdminError};
use crate::broker::Broker;
use crate::config::defs::topic_key;
use crate::config::topic as topic_config;
use crate::controller::command::MetadataCommand;
use crate::controller::image::{MetadataImage, NO_LEADER};
use crate::replica_manager::{assignment_of, placeable, validate_topic_name, CreateTopic};

type Result<T> = std::result::Result<T, AdminError>;

/// Checks the shape of replica lists given explicitly: each non-empty, without a broker twice,
/// all of `replication_factor` replicas (the first list's size if `None`).
fn check_shape(
    lists: &[Vec<i32>],
    first_partition: i32,
    replication_factor: Option<usize>,
) -> Result<()> {
    let rf = replication_factor.or_else(|| lists.first().map(Vec::len));
    for (replicas, partition) in lists.iter().zip(first_partition..) {
        if replicas.is_empty() {
            return Err(AdminError::InvalidReplicas(format!(
                "partition {partition} has no replicas"
            )));
        }
        if Some(replicas.len()) != rf {
            return Err(AdminError::InvalidReplicas(format!(
                "partition {partition} has {} replicas; the replication factor is {}",
                replicas.len(),
                rf.unwrap_or(0)
            )));
        }
        let mut seen = BTreeSet::new();
        if let Some(twice) = replicas.iter().find(|r| !seen.insert(**r)) {
            return Err(AdminError::InvalidReplicas(format!(
                "partition {partition} lists broker {twice} more than once"
            )));
        }
    }
    Ok(())
}

/// Checks that every broker of explicit replica lists is registered and can take a replica now.
fn check_available(image: &MetadataImage, lists: &[Vec<i32>], first_partition: i32) -> Result<()> {
    for (replicas, partition) in lists.iter().zip(first_partition..) {
        for r in replicas {
            match image.brokers.get(r) {
                None => {
                    return Err(AdminError::InvalidReplicaAssignment(format!(
                        "partition {partition}: broker {r} is not registered"
                    )))
                }
                Some(b) if !b.is_active() => {
                    return Err(AdminError::InvalidReplicaAssignment(format!(
                        "partition {partition}: broker {r} is fenced or shutting down"
                    )))
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

fn positive(value: i32, what: &str) -> Result<i32> {
    if value < 1 {
        return Err(AdminError::InvalidArgument(format!(
            "{what} must be at least 1, got {value}"
        )));
    }
    Ok(value)
}

/// New partitions as the image would create them: led by their first active replica.
fn projected_partitions(
    image: &MetadataImage,
    lists: &[Vec<i32>],
    first_partition: i32,
) -> Vec<pb::PartitionDescription> {
    lists
        .iter()
        .zip(first_partition..)
        .map(|(replicas, partition)| {
            let active: Vec<i32> = replicas
                .iter()
                .copied()
                .filter(|r| image.brokers.get(r).is_some_and(|b| b.is_active()))
                .collect();
            pb::PartitionDescription {
                partition,
                replicas: replicas.clone(),
                leader: active.first().copied().filter(|l| *l != NO_LEADER),
                isr: active,
                ..Default::default()
            }
        })
        .collect()
}

/// CreateTopic.
pub(super) async fn create(
    broker: &Broker,
    request: pb::CreateTopicRequest,
) -> Result<pb::CreateTopicResponse> {
    let name = request.name.as_str();
    validate_topic_name(name).map_err(AdminError::InvalidArgument)?;
    let configs: BTreeMap<String, String> = request.configs.into_iter().collect();
    topic_config::validate_all(&configs)?;
    if let Some(p) = request.partitions {
        positive(p, "partitions")?;
    }
    let replication_factor = match request.replication_factor {
        Some(rf) => Some(
            i16::try_from(positive(rf, "replication factor")?).map_err(|_| {
                AdminError::InvalidArgument(format!("replication factor {rf} is too large"))
            })?,
        ),
        None => None,
    };
    let explicit = if request.assignment.is_empty() {
        None
    } else {
        let lists = topic_assignment(&request.assignment)
            .map_err(|e| AdminError::InvalidReplicas(e.to_string()))?
            .partitions;
        if let Some(p) = request.partitions.filter(|p| *p as usize != lists.len()) {
            return Err(AdminError::InvalidArgument(format!(
                "partitions is {p} but the assignment lists {} partitions",
                lists.len()
            )));
        }
        check_shape(&lists, 0, replication_factor.map(|rf| rf as usize))?;
        Some(lists)
    };
    let image = broker.replicas.image();
    if image.topics.contains_key(name) {
        return Err(AdminError::TopicAlreadyExists(name.to_string()));
    }
    let lists = match explicit {
        Some(lists) => {
            check_available(&image, &lists, 0)?;
            lists
        }
        None => {
            let partitions = request.partitions.unwrap_or(broker.config.num_partitions());
            let rf = replication_factor.unwrap_or(broker.config.default_replication_factor());
            let brokers = placeable(&image);
            if rf as usize > brokers.len() {
                return Err(AdminError::InvalidReplicationFactor(format!(
                    "replication factor {rf} is larger than the {} broker(s) able to take replicas",
                    brokers.len()
                )));
            }
            placement::assign_new_topic(&brokers, &assignment_of(&image), partitions, rf)
                .map_err(AdminError::Placement)?
                .partitions
        }
    };
    if request.validate_only {
        return Ok(pb::CreateTopicResponse {
            topic: Some(pb::TopicDescription {
                name: name.to_string(),
                topic_id: String::new(),
                internal: is_internal(name),
                partitions: projected_partitions(&image, &lists, 0),
                configs: configs.into_iter().collect(),
            }),
        });
    }
    let meta = broker
        .replicas
        .create_topic(CreateTopic {
            configs,
            assignment: Some(lists),
            ..CreateTopic::new(name)
        })
        .await?;
    let image = broker.replicas.image();
    let topic = image
        .topics
        .get(name)
        .filter(|t| t.id == meta.id)
        .ok_or_else(|| {
            AdminError::Precondition(format!("topic `{name}` was deleted concurrently"))
        })?;
    Ok(pb::CreateTopicResponse {
        topic: Some(topic_description(&image, topic)),
    })
}

/// The configs after AlterTopic's sets and deletes, checked.
fn altered_configs(
    current: &BTreeMap<String, String>,
    set: BTreeMap<String, String>,
    delete: &[String],
) -> Result<BTreeMap<String, String>> {
    let mut configs = current.clone();
    for key in delete {
        if set.contains_key(key) {
            return Err(AdminError::InvalidArgument(format!(
                "config `{key}` is both set and deleted"
            )));
        }
        if topic_key(key).is_none() {
            return Err(AdminError::InvalidArgument(format!(
                "unknown config key `{key}`"
            )));
        }
        configs.remove(key);
    }
    topic_config::validate_all(&set)?;
    configs.extend(set);
    Ok(configs)
}

/// AlterTopic: grows the partition count and/or changes configs. The two are separate
/// metadata commands: both are checked before the first is written.
pub(super) async fn alter(
    broker: &Broker,
    request: pb::AlterTopicRequest,
) -> Result<pb::AlterTopicResponse> {
    let name = request.name.as_str();
    let image = broker.replicas.image();
    let topic = image
        .topics
        .get(name)
        .ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
    let current = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if let Some(p) = request.partitions.filter(|p| *p <= current) {
        return Err(AdminError::InvalidArgument(format!(
            "topic `{name}` has {current} partitions; the new count {p} must be larger"
        )));
    }
    let new_lists: Vec<Vec<i32>> = if !request.new_partitions_assignment.is_empty() {
        let lists = replica_lists(&request.new_partitions_assignment, current)
            .map_err(|e| AdminError::InvalidReplicas(e.to_string()))?;
        let count = current + lists.len() as i32;
        if let Some(p) = request.partitions.filter(|p| *p != count) {
            return Err(AdminError::InvalidArgument(format!(
                "partitions is {p} but the assignment leads to {count} partitions"
            )));
        }
        let rf = usize::try_from(topic.replication_factor()).unwrap_or(0);
        check_shape(&lists, current, Some(rf))?;
        check_available(&image, &lists, current)?;
        lists
    } else if let Some(count) = request.partitions {
        let whole =
            placement::add_partitions(&placeable(&image), &assignment_of(&image), name, count)
                .map_err(AdminError::Placement)?;
        whole.partitions[current as usize..].to_vec()
    } else {
        Vec::new()
    };
    let set: BTreeMap<String, String> = request.set_configs.into_iter().collect();
    let configs = altered_configs(&topic.configs, set, &request.delete_configs)?;
    let configs_changed = configs != topic.configs;
    if request.validate_only {
        let mut description = topic_description(&image, topic);
        description
            .partitions
            .extend(projected_partitions(&image, &new_lists, current));
        description.configs = configs.into_iter().collect();
        return Ok(pb::AlterTopicResponse {
            topic: Some(description),
        });
    }
    let id = topic.id;
    if !new_lists.is_empty() {
        let count = current as usize + new_lists.len();
        write(
            broker,
            MetadataCommand::CreatePartitions {
                name: name.to_string(),
                assignment: new_lists,
            },
        )
        .await?;
        wait_for_image(broker, |i| {
            i.topics
                .get(name)
                .is_none_or(|t| t.id != id || t.partitions.len() >= count)
        })
        .await?;
        tracing::info!(topic = name, from = current, to = count, "added partitions");
    }
    if configs_changed {
        broker
            .replicas
            .alter_topic_configs(name, configs, false)
            .await?;
    }
    describe(broker, name).map(|d| pb::AlterTopicResponse { topic: d.topic })
}

/// DeleteTopic. Internal topics cannot be deleted.
pub(super) async fn delete(
    broker: &Broker,
    request: pb::DeleteTopicRequest,
) -> Result<pb::DeleteTopicResponse> {
    let name = request.name.as_str();
    if !broker.replicas.image().topics.contains_key(name) {
        return Err(AdminError::UnknownTopic(name.to_string()));
    }
    if is_internal(name) {
        return Err(AdminError::InvalidArgument(format!(
            "`{name}` is an internal topic and cannot be deleted"
        )));
    }
    broker.replicas.delete_topic(name).await?;
    Ok(pb::DeleteTopicResponse {})
}

/// DescribeTopic.
pub(super) fn describe(broker: &Broker, name: &str) -> Result<pb::DescribeTopicResponse> {
    let image = broker.replicas.image();
    let topic = image
        .topics
        .get(name)
        .ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
    Ok(pb::DescribeTopicResponse {
        topic: Some(topic_description(&image, topic)),
    })
}

/// ListTopics, in name order.
pub(super) fn list(broker: &Broker, include_internal: bool) -> pb::ListTopicsResponse {
    let image = broker.replicas.image();
    pb::ListTopicsResponse {
        topics: image
            .topics
            .values()
            .filter(|t| include_internal || !is_internal(&t.name))
            .map(|t| topic_description(&image, t))
            .collect(),
    }
}
