//! Share sessions (KIP-932's take on KIP-227 fetch sessions): the partitions a share consumer
//! fetches from on this broker, so that each ShareFetch names only what changed. Kafka's
//! `ShareSessionCache`.
//!
//! A session is keyed by (group id, member id) and carries the epoch its next request must
//! send:
//!
//! ```text
//!   epoch 0 (ShareFetch only) --> a new session, replacing the member's old one; next is 1
//!   epoch n == expected       --> partitions added / forgotten; next is n+1 (wrapping to 1)
//!   epoch n != expected       --> INVALID_SHARE_SESSION_EPOCH
//!   no session for epoch > 0  --> SHARE_SESSION_NOT_FOUND
//!   epoch -1                  --> the session closes after this request
//! ```
//!
//! Pure: no I/O; the owner holds it behind a mutex. Unlike Kafka, the number of sessions is
//! bounded only by the members (no `max.share.session.cache.slots` eviction yet).

use std::collections::{BTreeSet, HashMap};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

/// The epoch that opens a session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch that closes a session.
pub const FINAL_EPOCH: i32 = -1;

/// A partition of a session: topic id and partition index.
pub type SharePartitionId = (Uuid, i32);

/// A refused session epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShareSessionError {
    /// No session for the member and an epoch other than 0.
    #[error("no share session for this member")]
    NotFound,
    /// The epoch is not the one the session expects.
    #[error("share session epoch {received} is not the expected {expected}")]
    InvalidEpoch {
        /// What the request sent.
        received: i32,
        /// What the session expects.
        expected: i32,
    },
}

impl ShareSessionError {
    /// Kafka's error code.
    pub fn code(self) -> i16 {
        match self {
            ShareSessionError::NotFound => ResponseError::ShareSessionNotFound.code(),
            ShareSessionError::InvalidEpoch { .. } => {
                ResponseError::InvalidShareSessionEpoch.code()
            }
        }
    }
}

/// One member's session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareSession {
    /// The epoch the next request must carry.
    pub next_epoch: i32,
    /// The partitions fetched from.
    pub partitions: BTreeSet<SharePartitionId>,
}

/// What a request's epoch did to its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUpdate {
    /// Every partition of the session after the request (before a close).
    pub partitions: BTreeSet<SharePartitionId>,
    /// Whether the request opened the session (epoch 0).
    pub full: bool,
    /// Whether the request closed it (epoch -1): nothing to fetch.
    pub closed: bool,
}

/// The share sessions of this broker, by (group id, member id).
#[derive(Debug, Default)]
pub struct ShareSessionCache {
    sessions: HashMap<(String, String), ShareSession>,
}

impl ShareSessionCache {
    /// Applies one request's epoch, added and forgotten partitions.
    pub fn update(
        &mut self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        added: impl IntoIterator<Item = SharePartitionId>,
        forgotten: impl IntoIterator<Item = SharePartitionId>,
    ) -> Result<SessionUpdate, ShareSessionError> {
        let key = (group_id.to_string(), member_id.to_string());
        if epoch == INITIAL_EPOCH {
            let session = ShareSession {
                next_epoch: 1,
                partitions: added.into_iter().collect(),
            };
            let partitions = session.partitions.clone();
            self.sessions.insert(key, session);
            return Ok(SessionUpdate {
                partitions,
                full: true,
                closed: false,
            });
        }
        let Some(session) = self.sessions.get_mut(&key) else {
            return Err(ShareSessionError::NotFound);
        };
        if epoch == FINAL_EPOCH {
            let session = self.sessions.remove(&key).unwrap_or_default();
            return Ok(SessionUpdate {
                partitions: session.partitions,
                full: false,
                closed: true,
            });
        }
        if epoch != session.next_epoch {
            return Err(ShareSessionError::InvalidEpoch {
                received: epoch,
                expected: session.next_epoch,
            });
        }
        session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        session.partitions.extend(added);
        for p in forgotten {
            session.partitions.remove(&p);
        }
        Ok(SessionUpdate {
            partitions: session.partitions.clone(),
            full: false,
            closed: false,
        })
    }

    /// Checks a ShareAcknowledge's epoch (it never opens a session, and does not change its
    /// partitions). Returns the session's partitions when the request closes it.
    pub fn acknowledge(
        &mut self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<Option<BTreeSet<SharePartitionId>>, ShareSessionError> {
        if epoch == INITIAL_EPOCH {
            return Err(ShareSessionError::InvalidEpoch {
                received: epoch,
                expected: self
                    .sessions
                    .get(&(group_id.to_string(), member_id.to_string()))
                    .map_or(1, |s| s.next_epoch),
            });
        }
        self.update(group_id, member_id, epoch, [], [])
            .map(|update| update.closed.then_some(update.partitions))
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> SharePartitionId {
        (Uuid::from_u128(1), p)
    }

    #[test]
    fn epochs_open_continue_and_close_a_session() {
        let mut cache = ShareSessionCache::default();
        let opened = cache.update("g", "m", 0, [tp(0)], []).unwrap();
        assert!(opened.full && !opened.closed);
        let next = cache.update("g", "m", 1, [tp(1)], [tp(0)]).unwrap();
        assert_eq!(next.partitions, BTreeSet::from([tp(1)]));
        let stale = cache.update("g", "m", 1, [], []).unwrap_err();
        assert_eq!(stale.code(), ResponseError::InvalidShareSessionEpoch.code());
        assert_eq!(cache.acknowledge("g", "m", 2), Ok(None));
        let closed = cache.acknowledge("g", "m", FINAL_EPOCH).unwrap();
        assert_eq!(closed, Some(BTreeSet::from([tp(1)])));
        assert!(cache.is_empty());
        let gone = cache.update("g", "m", 3, [], []).unwrap_err();
        assert_eq!(gone.code(), ResponseError::ShareSessionNotFound.code());
    }

    #[test]
    fn acknowledge_never_opens_a_session_and_epoch_zero_replaces_one() {
        let mut cache = ShareSessionCache::default();
        let code = cache.acknowledge("g", "m", 0).unwrap_err().code();
        assert_eq!(code, ResponseError::InvalidShareSessionEpoch.code());
        cache.update("g", "m", 0, [tp(0)], []).unwrap();
        cache.update("g", "m", 1, [], []).unwrap();
        let reopened = cache.update("g", "m", 0, [tp(2)], []).unwrap();
        assert_eq!(reopened.partitions, BTreeSet::from([tp(2)]));
        assert_eq!(cache.len(), 1);
        cache.update("g", "m", 1, [], []).unwrap();
    }
}
