//! The server-side assignor of share groups (`group.share.assignors`, Kafka's `simple`): in a
//! share group records, not partitions, are the unit of work, so a partition may be held by
//! several members and every subscribed member gets at least one partition when there are any.
//!
//! Built on the consumer groups' `uniform` assignor ([`crate::group::assignor`]): first every
//! partition goes to exactly one member, balanced and sticky; then each subscribed member left
//! without partitions (more members than partitions) shares the eligible partition with the
//! fewest holders, the lowest partition first. Kafka's `SimpleAssignor` spreads members over
//! partitions the same way (each partition held by `members / partitions` members, give or
//! take one); which member shares which partition may differ. Pure and deterministic.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::group::assignor::{Assignment, Assignor, MemberSubscription};

/// Kafka's name of the share groups' assignor.
pub const SIMPLE_ASSIGNOR: &str = "simple";

/// The next target assignment of a share group: one entry per member (empty when it
/// subscribes to nothing that exists). `partitions` holds the partition count of every topic a
/// member subscribes to.
pub fn assign_shared(
    members: &BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out = Assignor::Uniform.assign(members, partitions);
    let mut holders: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    for assignment in out.values() {
        for (topic, parts) in assignment {
            for p in parts {
                *holders.entry((*topic, *p)).or_default() += 1;
            }
        }
    }
    for (member_id, subscription) in members {
        let empty = out.get(member_id).is_none_or(|a| a.is_empty());
        if !empty {
            continue;
        }
        let shared = holders
            .iter()
            .filter(|((topic, _), _)| subscription.topics.contains(topic))
            .min_by_key(|(tp, count)| (**count, **tp))
            .map(|(tp, _)| *tp);
        if let Some((topic, p)) = shared {
            *holders.entry((topic, p)).or_default() += 1;
            out.entry(member_id.clone())
                .or_default()
                .insert(topic, BTreeSet::from([p]));
        }
    }
    out
}
