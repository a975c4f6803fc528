//! The transaction coordinator: Kafka's transactions over `__transaction_state`.
//!
//! - [`state`]: one transactional id's state and the decisions on it, pure (a diagram there).
//! - [`records`]: the records of `__transaction_state`, in Kafka's format.
//! - [`coordinator`]: ownership by leadership, the one write path, loading, the timeout timer.
//! - `markers`: WriteTxnMarkers to every partition of an ending transaction, retried until
//!   written, then the Complete* state.
//! - `verification`: a partition leader asking an id's coordinator whether its transaction
//!   includes a partition before the first transactional batch there (KIP-890).
//!
//! The log side (control batches, the last stable offset, the aborted-transaction index,
//! `read_committed`) is in [`crate::log`]; the group side (TxnOffsetCommit) in
//! [`crate::group`]. docs/transactions.md tells the whole story.

pub mod coordinator;
mod markers;
pub mod records;
pub mod state;
pub mod verification;

pub use self::coordinator::{
    TransactionCoordinator, TransactionListing, TransactionMetrics, TRANSACTION_STATE_TOPIC,
};
pub use self::state::{ClientVersion, TransactionMetadata, TxnState};

/// The `transaction.version` Weir finalizes: 2, KIP-890's (an epoch bump at every end,
/// implicit partition adds, EndTxn v5, TxnOffsetCommit v5). Clients of version 1 keep
/// working: the version is decided per request, from the request's version.
pub const TRANSACTION_VERSION: i16 = 2;

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod coordinator_tests;
