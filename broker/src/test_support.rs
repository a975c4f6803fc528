//! Unit-test scaffolding: a replica manager joined to a real single-voter metadata quorum
//! (in-process Raft, on disk in the test's directory), registered and unfenced, exactly as a
//! one-broker cluster runs it, minus the network listeners.

use std::sync::Arc;
use std::time::Duration;

use weir_api::proto::controller::{BrokerHeartbeatRequest, RegisterBrokerRequest};

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::controller::{Controller, ControllerConfig, METADATA_DIR};
use crate::replica_manager::ReplicaManager;

/// Starts this node's single-voter quorum.
pub async fn single_voter(config: &BrokerConfig) -> Arc<Controller> {
    Controller::start(ControllerConfig {
        node_id: config.node_id,
        dir: config.data_dir.join(METADATA_DIR),
        directory_id: uuid::Uuid::new_v4(),
        auto_join: true,
        voters: [(config.node_id, "127.0.0.1:1".to_string())].into(),
        session_timeout: Duration::from_secs(60),
        leader_imbalance_interval: None,
        raft_heartbeat: Duration::from_millis(50),
    })
    .await
    .expect("starting the metadata quorum")
}

/// Registers `replicas`' broker with `controller` and waits until it is caught up and
/// unfenced.
pub async fn join(replicas: &Arc<ReplicaManager>, controller: &Arc<Controller>) {
    replicas.attach_controller(controller.clone());
    let id = replicas.local_id();
    assert!(controller.wait_for_leader(Duration::from_secs(20)).await);
    crate::wait_for_condition(|| controller.is_active()).await;
    let registered = controller
        .register_broker(RegisterBrokerRequest {
            broker_id: id,
            incarnation: uuid::Uuid::new_v4().to_string(),
            rack: String::new(),
            host: "127.0.0.1".into(),
            port: 9092,
            rpc_addr: "127.0.0.1:1".into(),
            cluster_id: "test-cluster".into(),
            directory_id: controller.directory_id().to_string(),
            listeners: Vec::new(),
        })
        .await
        .expect("registering");
    let epoch = registered.broker_epoch;
    replicas.set_registration_epoch(epoch);
    crate::wait_for_condition(|| replicas.image().applied_index >= epoch as u64).await;
    replicas.set_caught_up(epoch);
    loop {
        let r = controller
            .heartbeat(BrokerHeartbeatRequest {
                broker_id: id,
                broker_epoch: epoch,
                applied_index: replicas.image().applied_index,
                want_shutdown: false,
            })
            .await
            .expect("heartbeat");
        if !r.fenced {
            break;
        }
    }
    crate::wait_for_condition(|| replicas.image().brokers.get(&id).is_some_and(|b| !b.fenced))
        .await;
}

/// A replica manager of a one-broker cluster in `config.data_dir`.
pub async fn replica_manager(
    config: Arc<BrokerConfig>,
    clock: Arc<dyn Clock>,
) -> (Arc<ReplicaManager>, Arc<Controller>) {
    let replicas = Arc::new(ReplicaManager::open(config.clone(), clock).expect("opening logs"));
    let controller = single_voter(&config).await;
    join(&replicas, &controller).await;
    (replicas, controller)
}
