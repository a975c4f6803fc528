//! The on-disk log of a partition, Kafka's storage layer with Kafka's names.
//!
//! A partition lives in `<data-dir>/<topic>-<partition>/` as a [`Log`]: an ordered list of
//! [`LogSegment`]s, each a `<base offset>.log` file of record batch v2 bytes plus a sparse
//! [`OffsetIndex`] (`.index`) and [`TimeIndex`] (`.timeindex`), together with checkpoints
//! (recovery point, log start offset, high watermark), the leader epoch history
//! ([`LeaderEpochFileCache`], `leader-epoch-checkpoint`), producer state snapshots
//! ([`ProducerStateManager`], `<offset>.snapshot`) and a clean-shutdown marker.
//!
//! How the pieces fit:
//! - [`batch`] parses and validates batch headers without decoding records, and rewrites the
//!   header fields the leader owns (base offset, leader epoch, LogAppendTime).
//! - [`Log::append_as_leader`] validates, checks producer sequences, assigns offsets, rolls
//!   segments (size, time, full index) and appends; [`Log::append_as_follower`] appends what a
//!   follower fetched from its leader (offsets and epochs kept) through the same path;
//!   [`Log::read`] serves whole batches as [`bytes::Bytes`] straight from the files.
//! - `replication.rs` holds what replication asks of a log: the high watermark, leader
//!   epochs (OffsetForLeaderEpoch answers) and where a follower must truncate.
//! - On [`Log::open`], segments past the recovery point are scanned and a torn or corrupt tail
//!   is cut; retention deletes whole segments by time and size.
//! - [`cleaner`] compacts `cleanup.policy=compact` logs in the background: the latest record
//!   per key below the active segment survives, offsets never change, and cleaned segments are
//!   swapped in crash-safely (its module doc says how).
//! - A roll queues the flush of the rolled segment ([`PendingFlush`]) instead of fsyncing it
//!   under the lock; the log's owner runs it afterwards, and it moves the [`RecoveryPoint`]
//!   (`flush.rs`).
//!
//! Thread safety: a [`Log`] has no interior locking. Reads take `&self` and mutations `&mut
//! self`, so the caller wraps it in a `parking_lot::RwLock`: fetches share the read lock and
//! run in parallel (positional reads on shared file handles), appends take the write lock.

mod append;
pub mod batch;
mod checkpoint;
pub mod cleaner;
pub mod config;
pub mod control;
mod error;
mod flush;
mod index_file;
mod leader_epoch;
mod meta_properties;
mod offset_index;
mod producer_state;
mod read_buffer;
mod recovery;
mod replication;
mod retention;
mod scanner;
mod segment;
mod time_index;
mod transaction_index;
mod unified_log;

#[cfg(test)]
pub mod test_util;

pub use self::checkpoint::{read_offset_checkpoint, write_atomically, write_offset_checkpoint};
pub use self::config::{CleanupPolicy, LogConfig, TimestampType};
pub use self::control::{ControlRecordType, TxnMarker};
pub use self::error::LogError;
pub use self::flush::{PendingFlush, RecoveryPoint};
pub use self::index_file::{Index, IndexEntry};
pub use self::leader_epoch::{
    EpochEntry, LeaderEpochFileCache, LEADER_EPOCH_CHECKPOINT_FILE, UNDEFINED_EPOCH,
    UNDEFINED_EPOCH_OFFSET,
};
pub use self::meta_properties::{MetaProperties, MetaPropertiesError};
pub use self::offset_index::{OffsetEntry, OffsetIndex, OffsetPosition};
pub use self::producer_state::{
    BatchMetadata, ProducerCheck, ProducerStateEntry, ProducerStateManager,
};
pub use self::replication::OffsetTruncationState;
pub use self::scanner::ScannedBatch;
pub use self::segment::{FileRecords, LogSegment, RangeRead, SegmentRead};
pub use self::time_index::{TimeEntry, TimeIndex, TimestampOffset};
pub use self::transaction_index::{AbortedTxn, TransactionIndex};
pub use self::unified_log::{Appended, FetchDataInfo, Log, LogAppendInfo};

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod transaction_tests;
