//! Topic admin through the metadata quorum: validate here, place replicas with
//! `weir_api::placement`, write the command through the controller, then wait until this
//! broker's image shows the change, so a client that asks again right after sees it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;
use weir_api::placement::{self, Assignment, BrokerInfo, TopicAssignment};

use super::{AdminError, ReplicaManager, TopicMetadata, TopicState};
use crate::config::topic as topic_config;
use crate::controller::command::{CommandResult, MetadataCommand};
use crate::controller::image::MetadataImage;
use crate::controller::{Controller, ControllerError};

/// How long an admin call waits for its change to reach this broker's image.
const APPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// A topic to create (Kafka's CreateTopics entry, decoded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateTopic {
    /// The topic's name.
    pub name: String,
    /// Partition count; `None`: the broker's `num.partitions`.
    pub partitions: Option<i32>,
    /// Replication factor; `None`: the broker's `default.replication.factor`.
    pub replication_factor: Option<i16>,
    /// Topic config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
    /// Replica lists by partition, instead of placing replicas (the partition count and
    /// replication factor are then those of the lists).
    pub assignment: Option<Vec<Vec<i32>>>,
    /// Check the request and create nothing.
    pub validate_only: bool,
}

impl CreateTopic {
    /// `name` with the broker's defaults.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// The brokers that may take new replicas.
pub fn placeable(image: &MetadataImage) -> Vec<BrokerInfo> {
    image
        .placeable_brokers()
        .into_iter()
        .map(|b| BrokerInfo::new(b.id, b.rack.as_deref()))
        .collect()
}

/// The cluster's assignment (target replicas) in placement's terms.
pub fn assignment_of(image: &MetadataImage) -> Assignment {
    let mut assignment = Assignment::new();
    for t in image.topics.values() {
        assignment = assignment.with_topic(
            t.name.clone(),
            TopicAssignment::new(t.partitions.iter().map(|p| p.target_replicas()).collect()),
        );
    }
    assignment
}

impl ReplicaManager {
    /// Connects the replica manager to the metadata quorum: from now on every new image is
    /// applied (on a blocking thread, one at a time).
    pub fn attach_controller(self: &Arc<Self>, controller: Arc<Controller>) {
        if self.controller.set(controller.clone()).is_err() {
            return;
        }
        let mut images = controller.subscribe();
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let image = images.borrow_and_update().clone();
                let Some(rm) = me.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || rm.apply_image(image)).await;
                if images.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    fn controller_or_err(&self) -> Result<&Arc<Controller>, AdminError> {
        self.controller
            .get()
            .ok_or(AdminError::Controller(ControllerError::NotController))
    }

    /// Waits until this broker's applied image satisfies `done`.
    pub(crate) async fn wait_for_image(
        &self,
        done: impl Fn(&MetadataImage) -> bool,
    ) -> Result<(), AdminError> {
        let mut changes = self.subscribe_image_applied();
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        loop {
            changes.borrow_and_update();
            if done(&self.image()) {
                return Ok(());
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(AdminError::Controller(ControllerError::Unavailable(
                        "the change did not reach this broker in time".into(),
                    )))
                }
            }
        }
    }

    pub(super) async fn write(
        &self,
        command: MetadataCommand,
    ) -> Result<CommandResult, AdminError> {
        let controller = self.controller_or_err()?;
        match controller.write_ok(command).await {
            Ok(r) => Ok(r),
            Err(ControllerError::Refused {
                error: ResponseError::TopicAlreadyExists,
                message,
            }) => Err(AdminError::TopicAlreadyExists(message)),
            Err(ControllerError::Refused {
                error: ResponseError::UnknownTopicOrPartition,
                message,
            }) => Err(AdminError::UnknownTopic(message)),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a topic (or only checks that it could be, with `validate_only`).
    pub async fn create_topic(&self, request: CreateTopic) -> Result<TopicMetadata, AdminError> {
        let CreateTopic {
            name,
            partitions,
            replication_factor,
            configs,
            assignment,
            validate_only,
        } = request;
        let name = name.as_str();
        validate_topic_name(name).map_err(AdminError::InvalidTopic)?;
        topic_config::validate_all(&configs)?;
        let image = self.image();
        if image.topics.contains_key(name) {
            return Err(AdminError::TopicAlreadyExists(name.to_string()));
        }
        let assignment = match assignment {
            Some(lists) => {
                validate_assignment(&image, &lists)?;
                lists
            }
            None => {
                let partitions = partitions.unwrap_or_else(|| self.config.num_partitions());
                if partitions < 1 {
                    return Err(AdminError::InvalidPartitions(format!(
                        "number of partitions must be at least 1, got {partitions}"
                    )));
                }
                let rf =
                    replication_factor.unwrap_or_else(|| self.config.default_replication_factor());
                let brokers = placeable(&image);
                if rf < 1 || rf as usize > brokers.len() {
                    return Err(AdminError::InvalidReplicationFactor(format!(
                        "replication factor {rf} is not between 1 and the {} available broker(s)",
                        brokers.len()
                    )));
                }
                placement::assign_new_topic(&brokers, &assignment_of(&image), partitions, rf)?
                    .partitions
            }
        };
        let meta = TopicMetadata {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions: assignment.len() as i32,
            replication_factor: assignment.first().map_or(0, |r| r.len() as i16),
            configs: configs.clone(),
        };
        if validate_only {
            return Ok(meta);
        }
        self.write(MetadataCommand::CreateTopic {
            name: name.to_string(),
            id: meta.id,
            configs,
            assignment,
        })
        .await?;
        let id = meta.id;
        self.wait_for_image(|i| i.topics.get(name).is_some_and(|t| t.id == id))
            .await?;
        tracing::info!(topic = name, partitions = meta.partitions, id = %meta.id, "created topic");
        Ok(meta)
    }

    /// Returns the topic, creating it with the broker defaults when `auto.create.topics.enable`
    /// allows (Metadata requests do this).
    pub async fn get_or_auto_create(&self, name: &str) -> Result<Arc<TopicState>, AdminError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if !self.config.auto_create_topics() {
            return Err(AdminError::UnknownTopic(name.to_string()));
        }
        match self.create_topic(CreateTopic::new(name)).await {
            Ok(_) | Err(AdminError::TopicAlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        self.wait_for_image(|i| i.topics.contains_key(name)).await?;
        self.topic(name)
            .ok_or_else(|| AdminError::UnknownTopic(name.to_string()))
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let image = self.image();
        let topic = image
            .topics
            .get(name)
            .ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
        let have = topic.partitions.len() as i32;
        if count <= have {
            return Err(AdminError::InvalidPartitions(format!(
                "topic `{name}` has {have} partitions; the new count {count} must be larger"
            )));
        }
        let whole =
            placement::add_partitions(&placeable(&image), &assignment_of(&image), name, count)?;
        if validate_only {
            return Ok(());
        }
        let assignment = whole.partitions[have as usize..].to_vec();
        self.write(MetadataCommand::CreatePartitions {
            name: name.to_string(),
            assignment,
        })
        .await?;
        self.wait_for_image(|i| {
            i.topics
                .get(name)
                .is_some_and(|t| t.partitions.len() as i32 >= count)
        })
        .await?;
        tracing::info!(topic = name, from = have, to = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        topic_config::validate_all(&configs)?;
        if self.topic(name).is_none() {
            return Err(AdminError::UnknownTopic(name.to_string()));
        }
        if validate_only {
            return Ok(());
        }
        self.write(MetadataCommand::AlterTopicConfigs {
            name: name.to_string(),
            configs: configs.clone(),
        })
        .await?;
        self.wait_for_image(|i| i.topics.get(name).is_some_and(|t| t.configs == configs))
            .await
    }

    /// Deletes a topic; every broker then deletes its replicas.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicMetadata, AdminError> {
        let meta = self
            .topic(name)
            .ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?
            .meta
            .clone();
        self.write(MetadataCommand::DeleteTopic {
            name: name.to_string(),
        })
        .await?;
        self.wait_for_image(|i| i.topics.get(name).is_none_or(|t| t.id != meta.id))
            .await?;
        tracing::info!(topic = name, "deleted topic");
        Ok(meta)
    }
}

/// Checks an explicit assignment: same length everywhere, distinct registered brokers.
fn validate_assignment(image: &MetadataImage, lists: &[Vec<i32>]) -> Result<(), AdminError> {
    let invalid = |m: String| AdminError::InvalidReplicaAssignment(m);
    let Some(first) = lists.first() else {
        return Err(AdminError::InvalidPartitions(
            "no partitions in the assignment".into(),
        ));
    };
    for (p, replicas) in lists.iter().enumerate() {
        if replicas.is_empty() || replicas.len() != first.len() {
            return Err(invalid(format!(
                "partition {p} has {} replicas; every partition needs the same number (at least 1)",
                replicas.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in replicas {
            if !seen.insert(*r) {
                return Err(invalid(format!("partition {p} lists broker {r} twice")));
            }
            if !image.brokers.contains_key(r) {
                return Err(invalid(format!(
                    "partition {p}: broker {r} is not registered"
                )));
            }
        }
    }
    Ok(())
}

/// Kafka's topic name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".to_string());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be `{name}`"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters, the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name `{name}` contains `{c}`; only ASCII letters, digits, `.`, `_` and `-` are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        for bad in ["", ".", "..", "a b", "a/b", "ü"] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
