//! Dynamic broker settings (`crate::config::dynamic`): written to the metadata log by
//! IncrementalAlterConfigs / AlterConfigs on BROKER resources, and the config in force on this
//! broker, recomputed whenever an image changes them.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{AdminError, ReplicaManager};
use crate::config::dynamic::validate_dynamic;
use crate::config::group::validate_group_configs;
use crate::config::BrokerConfig;
use crate::controller::command::MetadataCommand;
use crate::controller::image::MetadataImage;

impl ReplicaManager {
    /// The broker config in force: the file and `--set` with the metadata log's dynamic
    /// settings laid over them.
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        self.effective.read().clone()
    }

    /// Replaces the dynamic settings of `broker` (`None`: the cluster-wide defaults) with
    /// `configs`, after checking each is a known dynamic setting with a valid value; returns
    /// once this broker's image shows them.
    pub async fn alter_broker_configs(
        &self,
        broker: Option<i32>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        validate_dynamic(&configs)?;
        if let Some(id) = broker {
            if !self.image().brokers.contains_key(&id) {
                return Err(AdminError::UnknownBroker(id));
            }
        }
        if validate_only {
            return Ok(());
        }
        self.write(MetadataCommand::AlterBrokerConfigs {
            broker,
            configs: configs.clone(),
        })
        .await?;
        self.wait_for_image(|i| match broker {
            None => i.broker_configs.default == configs,
            Some(id) => i.broker_configs.of(id) == &configs,
        })
        .await
    }

    /// Replaces the configs of group `group` (Kafka's GROUP config resource,
    /// [`crate::config::group`]) with `configs`, after checking each; returns once this
    /// broker's image shows them. The group need not exist, as in Kafka.
    pub async fn alter_group_configs(
        &self,
        group: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        if group.is_empty() {
            return Err(AdminError::InvalidArgument(
                "the group id must not be empty".to_string(),
            ));
        }
        validate_group_configs(&configs)?;
        if validate_only {
            return Ok(());
        }
        self.write(MetadataCommand::AlterGroupConfigs {
            group: group.to_string(),
            configs: configs.clone(),
        })
        .await?;
        self.wait_for_image(|i| i.group_configs.get(group).cloned().unwrap_or_default() == configs)
            .await
    }

    /// The configs of group `group` in the image (empty: none of its own).
    pub fn group_configs(&self, group: &str) -> BTreeMap<String, String> {
        self.image()
            .group_configs
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// The dynamic settings of `broker` (`None`: the cluster-wide ones) in the image.
    pub fn dynamic_broker_configs(&self, broker: Option<i32>) -> BTreeMap<String, String> {
        let image = self.image();
        match broker {
            None => image.broker_configs.default.clone(),
            Some(id) => image.broker_configs.of(id).clone(),
        }
    }

    /// Recomputes the config in force if `image` changed the dynamic settings since
    /// `previous`; returns it.
    pub(super) fn refresh_effective_config(
        &self,
        previous: &MetadataImage,
        image: &MetadataImage,
    ) -> Arc<BrokerConfig> {
        let local = self.local_id();
        let changed = previous.broker_configs.default != image.broker_configs.default
            || previous.broker_configs.of(local) != image.broker_configs.of(local);
        if changed {
            let config = Arc::new(self.config.with_dynamic(
                &image.broker_configs.default,
                image.broker_configs.of(local),
            ));
            tracing::info!(
                default = ?image.broker_configs.default,
                broker = ?image.broker_configs.of(local),
                "dynamic broker settings changed"
            );
            *self.effective.write() = config;
        }
        self.effective_config()
    }
}
