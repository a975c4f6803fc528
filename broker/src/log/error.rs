//! The one error type of the storage layer.
//!
//! Each variant says what failed and with what input, and knows its Kafka error
//! ([`LogError::kafka_error`]), so no layer above has to map storage errors itself.

use std::path::PathBuf;

use kafka_protocol::error::ResponseError;

/// Everything that can go wrong in `crate::log`.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("open", "read", "fsync", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A record batch is cut short: the buffer ends before the batch does.
    #[error(
        "record batch at byte {position} is truncated: needs {needed} bytes, {available} available"
    )]
    TruncatedBatch {
        /// Byte position of the batch in the buffer or file.
        position: u64,
        /// Bytes the batch claims (or the minimum header size).
        needed: u64,
        /// Bytes actually left from `position`.
        available: u64,
    },

    /// The batchLength field is impossible (smaller than a v2 header).
    #[error("record batch at byte {position} has invalid batchLength {batch_length}")]
    InvalidBatchLength {
        /// Byte position of the batch.
        position: u64,
        /// The batchLength field as read.
        batch_length: i32,
    },

    /// A batch uses a message format older (or newer) than v2.
    #[error("record batch at byte {position} has magic {magic}; only v2 is supported")]
    UnsupportedMagic {
        /// Byte position of the batch.
        position: u64,
        /// The magic byte as read.
        magic: i8,
    },

    /// The batch's CRC-32C does not match its content.
    #[error("corrupt record batch at byte {position}: stored CRC {stored:#010x}, computed {computed:#010x}")]
    CorruptRecord {
        /// Byte position of the batch.
        position: u64,
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },

    /// A structurally sound batch breaks a rule (bad codec, counts, control batch from a client...).
    #[error("invalid record batch at byte {position}: {reason}")]
    InvalidBatch {
        /// Byte position of the batch.
        position: u64,
        /// Which rule was broken.
        reason: &'static str,
    },

    /// A batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes at byte {position} exceeds max.message.bytes {max}")]
    RecordTooLarge {
        /// Byte position of the batch.
        position: u64,
        /// Size of the batch in bytes (with its 12-byte log overhead).
        size: u64,
        /// The configured limit.
        max: i32,
    },

    /// A read asked for an offset outside `[log_start, log_end]`.
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// Log start offset.
        log_start: i64,
        /// Log end offset.
        log_end: i64,
    },

    /// An idempotent producer wrote with an epoch older than the one the log knows.
    #[error(
        "producer {producer_id} epoch {epoch} is older than the current epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        /// The producer id.
        producer_id: i64,
        /// Epoch in the batch.
        epoch: i16,
        /// Epoch the log holds for this producer.
        current_epoch: i16,
    },

    /// A transaction marker from a coordinator older than the one that wrote the producer's
    /// last marker.
    #[error("producer {producer_id}: marker from coordinator epoch {coordinator_epoch}, the log has seen {current}")]
    TransactionCoordinatorFenced {
        /// The producer id.
        producer_id: i64,
        /// Coordinator epoch of the marker.
        coordinator_epoch: i32,
        /// Coordinator epoch of the producer's last marker.
        current: i32,
    },

    /// An idempotent producer's batch does not follow its previous one.
    #[error(
        "producer {producer_id} epoch {epoch}: out of order sequence {first_sequence}, \
         last appended sequence {last_sequence} (-1: none)"
    )]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: i64,
        /// Epoch in the batch.
        epoch: i16,
        /// Base sequence of the batch.
        first_sequence: i32,
        /// Last sequence the log holds for this producer and epoch, -1 if none.
        last_sequence: i32,
    },

    /// Batches fetched from the leader do not continue the log: the first must start at the log
    /// end offset and each next one where the previous one ended (Kafka's
    /// `UnexpectedAppendOffsetException`). Never a client's error: the replica fetcher has lost
    /// track of its position and should truncate or refetch.
    #[error(
        "replicated batch at byte {position} starts at offset {base_offset}, expected {expected}"
    )]
    UnexpectedAppendOffset {
        /// Byte position of the batch in the fetched records.
        position: u64,
        /// Its base offset.
        base_offset: i64,
        /// The offset it had to start at.
        expected: i64,
    },

    /// A leader epoch entry with a negative epoch or start offset, or one starting past the
    /// log end.
    #[error("invalid leader epoch entry: epoch {epoch} at offset {start_offset}")]
    InvalidEpochEntry {
        /// The epoch.
        epoch: i32,
        /// Its start offset.
        start_offset: i64,
    },

    /// A checkpoint or producer snapshot file cannot be parsed or fails its CRC.
    #[error("corrupt file {}: {reason}", path.display())]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A stored batch could not be decoded (cold paths that look inside batches only).
    #[error("cannot decode the record batch at offset {base_offset}: {reason}")]
    DecodeBatch {
        /// Base offset of the batch.
        base_offset: i64,
        /// The decoder's message.
        reason: String,
    },

    /// A record without a key was produced to a compacted topic (Kafka refuses it the same
    /// way: `INVALID_RECORD`).
    #[error("Compacted topic cannot accept message without key (batch at byte {position})")]
    KeylessRecordInCompactedTopic {
        /// Byte position of the batch in the produce request.
        position: u64,
    },

    /// A mutation was attempted on a log after [`crate::log::Log::close`].
    #[error("log {} is closed", dir.display())]
    Closed {
        /// The partition directory.
        dir: PathBuf,
    },
}

impl LogError {
    /// Wraps an I/O error with the operation and path it concerns.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LogError::Io { op, path, source }
    }

    /// The Kafka error a client gets for this failure: `CORRUPT_MESSAGE` for a damaged or cut
    /// batch, `UNSUPPORTED_FOR_MESSAGE_FORMAT` for an old magic, `INVALID_RECORD`,
    /// `MESSAGE_TOO_LARGE`, `OFFSET_OUT_OF_RANGE`, `INVALID_PRODUCER_EPOCH`,
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` for theirs, and `KAFKA_STORAGE_ERROR` for the rest (a
    /// failing disk).
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            LogError::CorruptRecord { .. }
            | LogError::InvalidBatchLength { .. }
            | LogError::TruncatedBatch { .. } => ResponseError::CorruptMessage,
            LogError::UnsupportedMagic { .. } => ResponseError::UnsupportedForMessageFormat,
            LogError::InvalidBatch { .. } | LogError::KeylessRecordInCompactedTopic { .. } => {
                ResponseError::InvalidRecord
            }
            LogError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
            LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            LogError::TransactionCoordinatorFenced { .. } => {
                ResponseError::TransactionCoordinatorFenced
            }
            LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            _ => ResponseError::KafkaStorageError,
        }
    }

    /// [`LogError::kafka_error`]'s code, for a response field.
    pub fn kafka_code(&self) -> i16 {
        self.kafka_error().code()
    }
}
