//! DrainBroker and UnregisterBroker.
//!
//! Draining marks the broker (no new replicas go to it: placement and reassignment targets skip
//! it) and starts the reassignments of `placement::drain_plan`, which moves every replica off it
//! with the fewest moves that leave the other brokers balanced. The call returns once the moves
//! have started; ListReassignments and DescribeTopic show them finish.
//!
//! Unregistering removes a stopped broker that holds nothing from the metadata, and takes it
//! out of the Raft membership as a learner. Raft membership can only change on the active
//! controller, so the call is forwarded there (once).

use std::collections::BTreeSet;

use openraft::ChangeMembers;
use weir_api::admin::drain_response;
use weir_api::placement::{self, BrokerInfo, Plan};
use weir_api::proto::admin as pb;
use weir_api::proto::admin::admin_client::AdminClient;

use super::reassign::{check_target, set_throttle, start};
use super::{wait_for_image, write, AdminError, Peers, FORWARDED};
use crate::broker::Broker;
use crate::controller::command::MetadataCommand;
use crate::controller::image::MetadataImage;
use crate::replica_manager::assignment_of;

type Result<T> = std::result::Result<T, AdminError>;

/// Whether any partition names `id` among its replicas (reassignments in progress included).
fn holds_replicas(image: &MetadataImage, id: i32) -> bool {
    image
        .topics
        .values()
        .any(|t| t.partitions.iter().any(|p| p.replicas.contains(&id)))
}

/// The plan that empties `id`, checked against what the cluster can do now.
fn drain_plan(image: &MetadataImage, id: i32) -> Result<Plan> {
    if !holds_replicas(image, id) {
        return Ok(Plan::default());
    }
    let brokers: Vec<BrokerInfo> = image
        .brokers
        .values()
        .map(|b| BrokerInfo::new(b.id, b.rack.as_deref()))
        .collect();
    // Brokers already being drained take nothing either.
    let draining: Vec<i32> = image
        .brokers
        .values()
        .filter(|b| b.draining || b.id == id)
        .map(|b| b.id)
        .collect();
    let plan = placement::drain_plan(&brokers, &assignment_of(image), &draining)
        .map_err(AdminError::Placement)?;
    for r in &plan.reassignments {
        check_target(image, &r.topic, r.partition, &r.target, false).map_err(|e| match e {
            // The plan never targets draining brokers; an inactive one is down right now.
            AdminError::InvalidReplicaAssignment(m) => {
                AdminError::Precondition(format!("{m}; retry when it is back"))
            }
            other => other,
        })?;
    }
    Ok(plan)
}

/// DrainBroker.
pub(super) async fn drain(
    broker: &Broker,
    request: pb::DrainBrokerRequest,
) -> Result<pb::DrainBrokerResponse> {
    let id = request.broker_id;
    let image = broker.replicas.image();
    let registration = image
        .brokers
        .get(&id)
        .ok_or(AdminError::UnknownBroker(id))?;
    let plan = drain_plan(&image, id)?;
    if request.dry_run {
        return Ok(drain_response(&plan));
    }
    if !registration.draining {
        write(broker, MetadataCommand::SetDraining { id, draining: true }).await?;
        wait_for_image(broker, |i| i.brokers.get(&id).is_none_or(|b| b.draining)).await?;
        tracing::info!(broker = id, "draining a broker");
    }
    set_throttle(broker, request.throttle_bytes_per_second).await?;
    for r in &plan.reassignments {
        start(broker, &r.topic, r.partition, r.target.clone()).await?;
    }
    Ok(drain_response(&plan))
}

/// UnregisterBroker: refused while the broker is active or holds replicas, and for voters of
/// the metadata quorum (removing a voter is a quorum change, not an unregistration).
pub(super) async fn unregister(
    broker: &Broker,
    peers: &Peers,
    id: i32,
    forwarded: bool,
) -> Result<pb::UnregisterBrokerResponse> {
    let image = broker.replicas.image();
    let registration = image
        .brokers
        .get(&id)
        .ok_or(AdminError::UnknownBroker(id))?;
    if registration.is_active() {
        return Err(AdminError::Precondition(format!(
            "broker {id} is active: stop it first"
        )));
    }
    if holds_replicas(&image, id) {
        return Err(AdminError::Precondition(format!(
            "broker {id} still holds replicas: drain it first"
        )));
    }
    let controller = broker.replicas.controller().ok_or_else(|| {
        AdminError::Unavailable("this broker has not joined the metadata quorum".into())
    })?;
    let membership = controller
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .clone();
    let node = id as u64;
    if membership.membership().voter_ids().any(|v| v == node) {
        return Err(AdminError::Precondition(format!(
            "broker {id} is a voter of the metadata quorum and cannot be unregistered"
        )));
    }
    if !controller.is_active() {
        if forwarded {
            return Err(AdminError::Unavailable(
                "the active controller moved; retry".into(),
            ));
        }
        let (_, addr) = controller
            .leader()
            .ok_or_else(|| AdminError::Unavailable("no active controller".into()))?;
        let mut request = tonic::Request::new(pb::UnregisterBrokerRequest { broker_id: id });
        request
            .metadata_mut()
            .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
        let mut client = AdminClient::new(peers.channel(&addr)?);
        client
            .unregister_broker(request)
            .await
            .map_err(|s| match s.code() {
                tonic::Code::NotFound => AdminError::UnknownBroker(id),
                tonic::Code::FailedPrecondition => {
                    AdminError::Precondition(s.message().to_string())
                }
                _ => AdminError::Unavailable(s.message().to_string()),
            })?;
        wait_for_image(broker, |i| !i.brokers.contains_key(&id)).await?;
        return Ok(pb::UnregisterBrokerResponse {});
    }
    write(broker, MetadataCommand::UnregisterBroker { id }).await?;
    wait_for_image(broker, |i| !i.brokers.contains_key(&id)).await?;
    if membership.membership().learner_ids().any(|l| l == node) {
        let remove = ChangeMembers::RemoveNodes(BTreeSet::from([node]));
        if let Err(e) = controller.raft().change_membership(remove, false).await {
            // The broker is gone from the metadata; the leader only keeps trying to reach it.
            tracing::warn!(broker = id, error = %e, "removing an unregistered learner from the quorum");
        }
    }
    tracing::info!(broker = id, "unregistered a broker");
    Ok(pb::UnregisterBrokerResponse {})
}
