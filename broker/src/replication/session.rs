//! The follower's side of a fetch session (KIP-227), as Kafka's `FetchSessionHandler`: the
//! first fetch to a leader is full (epoch 0) and may open a session; later fetches send only
//! the partitions whose fetch state changed since the last request and list the ones no longer
//! followed as forgotten.
//!
//! Any failure (a session error from the leader, a lost connection, a timeout) makes the next
//! fetch full again: it names the old session (the leader closes it) and asks for a new one.
//!
//! A fetcher builds a request every round, with thousands of partitions, so building one is a
//! single merge of two sorted lists (what was sent, what is wanted): no lookup per partition,
//! and no allocation per partition — keys share the partition's topic `Arc<str>`, and a topic
//! name for the request is made once per topic it lists.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// A partition by topic name and index (followers fetch with v12, by name); ordered by topic,
/// then index, as requests list them.
pub type SessionKey = (Arc<str>, i32);

/// One fetcher's session with one leader. Invariants: `sent` is sorted by key, each key once;
/// it is what the leader's session holds if the last request succeeded, and is only trusted
/// while `next_epoch > 0`.
#[derive(Debug, Default)]
pub struct FetchSessionHandler {
    session_id: i32,
    /// 0: the next fetch is full.
    next_epoch: i32,
    sent: Vec<(SessionKey, FetchPartition)>,
}

impl FetchSessionHandler {
    /// Fills `request`'s session fields, topics and forgotten topics for fetching `wanted`:
    /// every partition to fetch, sorted by key with each key once (as a `BTreeMap` yields
    /// them). A full request lists them all; an incremental one those whose `FetchPartition`
    /// differs from the last request's, and forgets those the last request had and `wanted`
    /// lacks.
    pub fn build(&mut self, request: &mut FetchRequest, wanted: Vec<(SessionKey, FetchPartition)>) {
        debug_assert!(
            wanted.is_sorted_by(|a, b| a.0 < b.0),
            "wanted partitions out of order or twice"
        );
        request.session_id = self.session_id;
        request.session_epoch = self.next_epoch;
        let mut topics: Vec<FetchTopic> = Vec::new();
        let mut forgotten: Vec<ForgottenTopic> = Vec::new();
        if self.next_epoch == 0 {
            for ((topic, _), fetch) in &wanted {
                add_fetch(&mut topics, topic, fetch);
            }
        } else {
            let mut sent = self.sent.iter().peekable();
            for (key, fetch) in &wanted {
                while let Some(((topic, partition), _)) = sent.next_if(|(old, _)| old < key) {
                    add_forgotten(&mut forgotten, topic, *partition);
                }
                let unchanged = sent
                    .next_if(|(old, _)| old == key)
                    .is_some_and(|(_, last)| last == fetch);
                if !unchanged {
                    add_fetch(&mut topics, &key.0, fetch);
                }
            }
            for ((topic, partition), _) in sent {
                add_forgotten(&mut forgotten, topic, *partition);
            }
        }
        request.topics = topics;
        request.forgotten_topics_data = forgotten;
        self.sent = wanted;
    }

    /// Takes the leader's answer to the last request; `false` when it refused the session
    /// (the response holds no partitions; the next fetch is full).
    pub fn handle_response(&mut self, response: &FetchResponse) -> bool {
        if response.error_code == ResponseError::FetchSessionIdNotFound.code() {
            self.session_id = 0;
            self.next_epoch = 0;
            return false;
        }
        if response.error_code != 0 {
            self.reset();
            return false;
        }
        if self.next_epoch == 0 {
            self.session_id = response.session_id;
            self.next_epoch = if response.session_id == 0 { 0 } else { 1 };
        } else {
            self.next_epoch = crate::fetch_session::next_epoch(self.next_epoch);
        }
        true
    }

    /// After a failed request: the next fetch is full and closes the current session.
    pub fn reset(&mut self) {
        self.next_epoch = 0;
    }
}

/// Adds `fetch` to the request's topics, under `topic`'s entry if it is the last one (the
/// partitions come sorted, so a topic's partitions are adjacent).
fn add_fetch(topics: &mut Vec<FetchTopic>, topic: &str, fetch: &FetchPartition) {
    match topics.last_mut() {
        Some(last) if last.topic.0.as_str() == topic => last.partitions.push(fetch.clone()),
        _ => topics.push(
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![fetch.clone()]),
        ),
    }
}

/// Adds `partition` to the forgotten topics, as [`add_fetch`] does.
fn add_forgotten(forgotten: &mut Vec<ForgottenTopic>, topic: &str, partition: i32) {
    match forgotten.last_mut() {
        Some(last) if last.topic.0.as_str() == topic => last.partitions.push(partition),
        _ => forgotten.push(
            ForgottenTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![partition]),
        ),
    }
}

/// The one allocation per topic a request lists: `StrBytes` cannot borrow the `Arc<str>`.
fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Topics of a request as `(topic, partitions)`, in request order.
    type Listed = Vec<(String, Vec<i32>)>;

    fn fetch(partition: i32, offset: i64) -> FetchPartition {
        FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(offset)
    }

    /// `(topic, partition, fetch offset)`s, sorted as the fetcher passes them.
    fn wanted(partitions: &[(&str, i32, i64)]) -> Vec<(SessionKey, FetchPartition)> {
        let mut wanted: Vec<_> = partitions
            .iter()
            .map(|&(t, p, offset)| ((Arc::from(t), p), fetch(p, offset)))
            .collect();
        wanted.sort_by(|a, b| a.0.cmp(&b.0));
        wanted
    }

    fn in_t(partitions: &[(i32, i64)]) -> Vec<(SessionKey, FetchPartition)> {
        let partitions: Vec<_> = partitions.iter().map(|&(p, o)| ("t", p, o)).collect();
        wanted(&partitions)
    }

    /// The request's topics as `(topic, partitions)`, in request order.
    fn sent(request: &FetchRequest) -> Listed {
        request
            .topics
            .iter()
            .map(|t| {
                let partitions = t.partitions.iter().map(|p| p.partition).collect();
                (t.topic.0.to_string(), partitions)
            })
            .collect()
    }

    fn forgotten(request: &FetchRequest) -> Listed {
        request
            .forgotten_topics_data
            .iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect()
    }

    fn t(partitions: &[i32]) -> Listed {
        vec![("t".to_string(), partitions.to_vec())]
    }

    #[test]
    fn full_then_incremental_then_full_after_an_error() {
        let mut handler = FetchSessionHandler::default();
        let mut request = FetchRequest::default();
        handler.build(&mut request, in_t(&[(0, 0), (1, 0), (2, 0)]));
        assert_eq!((request.session_id, request.session_epoch), (0, 0));
        assert_eq!(sent(&request), t(&[0, 1, 2]));
        assert!(handler.handle_response(&FetchResponse::default().with_session_id(7)));
        // Partition 1 moved, 2 is no longer followed.
        handler.build(&mut request, in_t(&[(0, 0), (1, 5)]));
        assert_eq!((request.session_id, request.session_epoch), (7, 1));
        assert_eq!(sent(&request), t(&[1]));
        assert_eq!(forgotten(&request), t(&[2]));
        assert!(handler.handle_response(&FetchResponse::default().with_session_id(7)));
        handler.build(&mut request, in_t(&[(0, 0), (1, 5)]));
        assert_eq!(request.session_epoch, 2);
        assert!(sent(&request).is_empty());
        assert!(forgotten(&request).is_empty());
        let refused = FetchResponse::default()
            .with_error_code(ResponseError::InvalidFetchSessionEpoch.code());
        assert!(!handler.handle_response(&refused));
        handler.build(&mut request, in_t(&[(0, 0), (1, 5)]));
        assert_eq!((request.session_id, request.session_epoch), (7, 0));
        assert_eq!(sent(&request), t(&[0, 1]));
        assert!(forgotten(&request).is_empty());
        // A leader without a slot: full fetches from then on.
        assert!(handler.handle_response(&FetchResponse::default().with_session_id(0)));
        handler.build(&mut request, in_t(&[(0, 0)]));
        assert_eq!((request.session_id, request.session_epoch), (0, 0));
        assert_eq!(sent(&request), t(&[0]));
    }

    #[test]
    fn partitions_are_grouped_by_topic_in_order_and_forgotten_ones_too() {
        let mut handler = FetchSessionHandler::default();
        let mut request = FetchRequest::default();
        let first = [
            ("a", 0, 0),
            ("a", 1, 0),
            ("b", 0, 0),
            ("b", 1, 0),
            ("c", 0, 0),
        ];
        handler.build(&mut request, wanted(&first));
        let named = |topics: &[(&str, &[i32])]| -> Listed {
            topics
                .iter()
                .map(|(t, p)| (t.to_string(), p.to_vec()))
                .collect()
        };
        assert_eq!(
            sent(&request),
            named(&[("a", &[0, 1]), ("b", &[0, 1]), ("c", &[0])])
        );
        assert!(handler.handle_response(&FetchResponse::default().with_session_id(3)));
        // `a`-1 and `c`-0 dropped, `b`-1 moved, `a`-2 and `d`-0 added.
        let second = [
            ("a", 0, 0),
            ("a", 2, 0),
            ("b", 0, 0),
            ("b", 1, 9),
            ("d", 0, 0),
        ];
        handler.build(&mut request, wanted(&second));
        assert_eq!(request.session_epoch, 1);
        assert_eq!(
            sent(&request),
            named(&[("a", &[2]), ("b", &[1]), ("d", &[0])])
        );
        assert_eq!(forgotten(&request), named(&[("a", &[1]), ("c", &[0])]));
        assert!(handler.handle_response(&FetchResponse::default().with_session_id(3)));
        // A forgotten partition followed again is sent again; the rest are forgotten.
        handler.build(&mut request, wanted(&[("a", 1, 0)]));
        assert_eq!(sent(&request), named(&[("a", &[1])]));
        assert_eq!(
            forgotten(&request),
            named(&[("a", &[0, 2]), ("b", &[0, 1]), ("d", &[0])])
        );
    }

    /// The request as KIP-227 defines it, by lookups: full, every wanted partition;
    /// incremental, the wanted ones that differ from the last sent, and the last sent ones
    /// no longer wanted as forgotten.
    fn expected(
        last: &BTreeMap<SessionKey, FetchPartition>,
        wanted: &BTreeMap<SessionKey, FetchPartition>,
        full: bool,
    ) -> (Listed, Listed) {
        fn group<'a>(keys: impl Iterator<Item = &'a SessionKey>) -> Listed {
            let mut grouped: Listed = Vec::new();
            for (topic, partition) in keys {
                match grouped.last_mut() {
                    Some((t, partitions)) if **t == **topic => partitions.push(*partition),
                    _ => grouped.push((topic.to_string(), vec![*partition])),
                }
            }
            grouped
        }
        let to_send = wanted
            .iter()
            .filter(|(key, fetch)| full || last.get(*key) != Some(*fetch))
            .map(|(key, _)| key);
        let to_forget = last
            .keys()
            .filter(|key| !full && !wanted.contains_key(*key));
        (group(to_send), group(to_forget))
    }

    proptest! {
        #[test]
        fn requests_match_the_lookup_definition(
            rounds in prop::collection::vec(
                (
                    prop::collection::btree_map((0..3usize, 0..4i32), 0..3i64, 0..10),
                    0..4u8,
                ),
                1..12,
            ),
        ) {
            let topics: [Arc<str>; 3] = [Arc::from("a"), Arc::from("b"), Arc::from("c")];
            let mut handler = FetchSessionHandler::default();
            let mut last = BTreeMap::new();
            for (partitions, answer) in rounds {
                let wanted: BTreeMap<SessionKey, FetchPartition> = partitions
                    .into_iter()
                    .map(|((t, p), offset)| ((topics[t].clone(), p), fetch(p, offset)))
                    .collect();
                let mut request = FetchRequest::default();
                handler.build(&mut request, wanted.clone().into_iter().collect());
                let full = request.session_epoch == 0;
                let (to_send, to_forget) = expected(&last, &wanted, full);
                prop_assert_eq!(sent(&request), to_send);
                prop_assert_eq!(forgotten(&request), to_forget);
                last = wanted;
                match answer {
                    0 => handler.reset(),
                    1 => {
                        let refused = FetchResponse::default()
                            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
                        prop_assert!(!handler.handle_response(&refused));
                    }
                    _ => {
                        let ok = FetchResponse::default().with_session_id(7);
                        prop_assert!(handler.handle_response(&ok));
                    }
                }
            }
        }
    }
}
