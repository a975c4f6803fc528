//! The follower's side of a fetch session (KIP-227), as Kafka's `FetchSessionHandler`: the
//! first fetch to a leader is full (epoch 0) and may open a session; later fetches send only
//! the partitions whose fetch state changed since the last request and list the ones no longer
//! followed as forgotten.
//!
//! Any failure (a session error from the leader, a lost connection, a timeout) makes the next
//! fetch full again: it names the old session (the leader closes it) and asks for a new one.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// A partition by topic name and index (followers fetch with v12, by name).
pub type SessionKey = (String, i32);

/// One fetcher's session with one leader. Invariant: `sent` is what the leader's session
/// holds if the last request succeeded; it is only trusted while `next_epoch > 0`.
#[derive(Debug, Default)]
pub struct FetchSessionHandler {
    session_id: i32,
    /// 0: the next fetch is full.
    next_epoch: i32,
    sent: BTreeMap<SessionKey, FetchPartition>,
}

impl FetchSessionHandler {
    /// Fills `request`'s session fields, topics and forgotten topics for fetching `wanted`.
    pub fn build(
        &mut self,
        request: &mut FetchRequest,
        wanted: BTreeMap<SessionKey, FetchPartition>,
    ) {
        request.session_id = self.session_id;
        request.session_epoch = self.next_epoch;
        let full = self.next_epoch == 0;
        let mut topics: Vec<FetchTopic> = Vec::new();
        for ((topic, _), fetch) in &wanted {
            if !full && self.sent.get(&(topic.clone(), fetch.partition)) == Some(fetch) {
                continue;
            }
            let name = TopicName(StrBytes::from_string(topic.clone()));
            if topics.last().is_none_or(|t| t.topic != name) {
                topics.push(FetchTopic::default().with_topic(name));
            }
            if let Some(t) = topics.last_mut() {
                t.partitions.push(fetch.clone());
            }
        }
        let mut forgotten: Vec<ForgottenTopic> = Vec::new();
        if !full {
            for (topic, partition) in self.sent.keys() {
                if wanted.contains_key(&(topic.clone(), *partition)) {
                    continue;
                }
                let name = TopicName(StrBytes::from_string(topic.clone()));
                if forgotten.last().is_none_or(|t| t.topic != name) {
                    forgotten.push(ForgottenTopic::default().with_topic(name));
                }
                if let Some(t) = forgotten.last_mut() {
                    t.partitions.push(*partition);
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(partitions: &[(i32, i64)]) -> BTreeMap<SessionKey, FetchPartition> {
        partitions
            .iter()
            .map(|&(p, offset)| {
                (
                    ("t".to_string(), p),
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(offset),
                )
            })
            .collect()
    }

    fn sent(request: &FetchRequest) -> Vec<i32> {
        request
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.partition))
            .collect()
    }

    #[test]
    fn full_then_incremental_then_full_after_an_error() {
        let mut handler = FetchSessionHandler::default();
        let mut request = FetchRequest::default();
        handler.build(&mut request, wanted(&[(0, 0), (1, 0), (2, 0)]));
        assert_eq!((request.session_id, request.session_epoch), (0, 0));
        assert_eq!(sent(&request), vec![0, 1, 2]);
        assert!(handler.handle_response(&FetchResponse::default().with_session_id(7)));
        // Partition 1 moved, 2 is no longer followed.
        handler.build(&mut request, wanted(&[(0, 0), (1, 5)]));
        assert_eq!((request.session_id, request.session_epoch), (7, 1));
        assert_eq!(sent(&request), vec![1]);
        assert_eq!(request.forgotten_topics_data[0].partitions, vec![2]);
        assert!(handler.handle_response(&FetchResponse::default().with_session_id(7)));
        handler.build(&mut request, wanted(&[(0, 0), (1, 5)]));
        assert_eq!(request.session_epoch, 2);
        assert!(sent(&request).is_empty());
        let refused = FetchResponse::default()
            .with_error_code(ResponseError::InvalidFetchSessionEpoch.code());
        assert!(!handler.handle_response(&refused));
        handler.build(&mut request, wanted(&[(0, 0), (1, 5)]));
        assert_eq!((request.session_id, request.session_epoch), (7, 0));
        assert_eq!(sent(&request), vec![0, 1]);
        // A leader without a slot: full fetches from then on.
        assert!(handler.handle_response(&FetchResponse::default().with_session_id(0)));
        handler.build(&mut request, wanted(&[(0, 0)]));
        assert_eq!((request.session_id, request.session_epoch), (0, 0));
    }
}
