//! Turning a chosen replica set and leader into Kafka's ordered replica list.
//!
//! A replica list is a row of slots. A kept broker stays in its slot, a new broker takes the
//! slot of one that left (so a move reads as "slot 2: broker 4 -> broker 7"), and the chosen
//! preferred leader is brought to the front with the followers keeping their relative order.

use super::types::BrokerId;

/// The target list for a partition whose replicas were `current` (possibly with duplicates or
/// brokers that are gone) and now are the set `chosen`, led by `leader` (a member of `chosen`).
pub(crate) fn order_replicas(
    current: &[BrokerId],
    chosen: &[BrokerId],
    leader: BrokerId,
) -> Vec<BrokerId> {
    let mut added: Vec<BrokerId> = chosen
        .iter()
        .copied()
        .filter(|b| !current.contains(b))
        .collect();
    added.sort_unstable();
    let mut added = added.into_iter();
    let mut list: Vec<BrokerId> = Vec::with_capacity(chosen.len());
    for &broker in current {
        if chosen.contains(&broker) && !list.contains(&broker) {
            list.push(broker);
        } else if let Some(replacement) = added.next() {
            list.push(replacement);
        }
    }
    list.extend(added);
    if let Some(position) = list.iter().position(|&b| b == leader) {
        let leader = list.remove(position);
        list.insert(0, leader);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::order_replicas;

    #[test]
    fn new_broker_takes_the_slot_of_the_one_that_left() {
        assert_eq!(order_replicas(&[1, 2, 3], &[1, 3, 7], 1), vec![1, 7, 3]);
    }

    #[test]
    fn leader_comes_first_and_followers_keep_their_order() {
        assert_eq!(order_replicas(&[1, 2, 3], &[1, 2, 3], 3), vec![3, 1, 2]);
        assert_eq!(order_replicas(&[1, 2, 3], &[2, 3, 5], 5), vec![5, 2, 3]);
    }

    #[test]
    fn new_partitions_list_brokers_in_id_order_behind_the_leader() {
        assert_eq!(order_replicas(&[], &[4, 2, 9], 9), vec![9, 2, 4]);
    }

    #[test]
    fn duplicate_slots_are_refilled() {
        assert_eq!(order_replicas(&[1, 1, 2], &[1, 2, 5], 1), vec![1, 5, 2]);
    }
}
