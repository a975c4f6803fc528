//! Why a topic or cluster admin operation failed: one error for the Kafka admin handlers, the
//! replica manager and the admin gRPC API, with its Kafka error ([`AdminError::kafka_error`])
//! and the gRPC status `admin.proto` documents (`From<AdminError> for Status`) in one place.

use kafka_protocol::error::ResponseError;
use tonic::Status;
use weir_api::placement::PlacementError;

use crate::config::ConfigError;
use crate::controller::ControllerError;
use crate::log::LogError;

/// A failed admin operation. The message names the input at fault. Each variant's doc gives
/// its Kafka error, then its gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Malformed whatever the cluster's state: `INVALID_REQUEST`; INVALID_ARGUMENT.
    #[error("{0}")]
    InvalidArgument(String),
    /// A bad topic name: `INVALID_TOPIC_EXCEPTION`; INVALID_ARGUMENT.
    #[error("{0}")]
    InvalidTopic(String),
    /// A bad partition count: `INVALID_PARTITIONS`; INVALID_ARGUMENT.
    #[error("{0}")]
    InvalidPartitions(String),
    /// A replica list that is malformed: empty, a broker twice, partitions of unequal size:
    /// `INVALID_REPLICA_ASSIGNMENT`; INVALID_ARGUMENT.
    #[error("{0}")]
    InvalidReplicas(String),
    /// An unknown or invalid topic config: `INVALID_CONFIG`; INVALID_ARGUMENT.
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    /// `UNKNOWN_TOPIC_OR_PARTITION`; NOT_FOUND.
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// `UNKNOWN_TOPIC_OR_PARTITION`; NOT_FOUND.
    #[error("partition {partition} of topic `{topic}` does not exist")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// `BROKER_NOT_AVAILABLE`; NOT_FOUND.
    #[error("broker {0} is not registered")]
    UnknownBroker(i32),
    /// `TOPIC_ALREADY_EXISTS`; ALREADY_EXISTS.
    #[error("topic `{0}` already exists")]
    TopicAlreadyExists(String),
    /// Valid, but not possible in the cluster's current state: `INVALID_REQUEST`;
    /// FAILED_PRECONDITION.
    #[error("{0}")]
    Precondition(String),
    /// A replication factor the live brokers cannot hold: `INVALID_REPLICATION_FACTOR`;
    /// FAILED_PRECONDITION.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// A replica on a broker that cannot take it now: `INVALID_REPLICA_ASSIGNMENT`;
    /// FAILED_PRECONDITION.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// Another operation on the partition is running: `REASSIGNMENT_IN_PROGRESS`; ABORTED.
    #[error("partition {partition} of topic `{topic}` is already being reassigned")]
    ReassignmentInProgress {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// `NO_REASSIGNMENT_IN_PROGRESS`; FAILED_PRECONDITION.
    #[error("partition {partition} of topic `{topic}` is not being reassigned")]
    NoReassignmentInProgress {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// Placement has no answer for a plan the admin API asked for; Kafka's code by the kind of
    /// failure, the status as `weir_api` maps it. (Placement failures of topic creation and
    /// growth are the variants above: see `From<PlacementError>`.)
    #[error(transparent)]
    Placement(PlacementError),
    /// No controller, or the change did not reach this broker in time: `REQUEST_TIMED_OUT`;
    /// UNAVAILABLE.
    #[error("{0}")]
    Unavailable(String),
    /// The principal may not do this (Kafka's `*_AUTHORIZATION_FAILED` codes, carried);
    /// PERMISSION_DENIED.
    #[error("{message}")]
    Unauthorized {
        /// TOPIC_/GROUP_/CLUSTER_/TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
        error: ResponseError,
        /// What was refused.
        message: String,
    },
    /// A bug, logged where it happens: `UNKNOWN_SERVER_ERROR`; INTERNAL.
    #[error("internal error: {0}")]
    Internal(String),
    /// A partition log could not be opened or removed: `KAFKA_STORAGE_ERROR`; INTERNAL.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The metadata quorum refused or did not answer: the refusal's own Kafka error,
    /// `REQUEST_TIMED_OUT` when unavailable, else `NOT_CONTROLLER`; the status of
    /// [`AdminError::refused`].
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

impl AdminError {
    /// TOPIC_AUTHORIZATION_FAILED for `operation` on `topic`.
    pub fn topic_unauthorized(topic: &str) -> Self {
        AdminError::Unauthorized {
            error: ResponseError::TopicAuthorizationFailed,
            message: format!("Authorization failed for topic `{topic}`"),
        }
    }

    /// The Kafka error a client gets.
    pub fn kafka_error(&self) -> ResponseError {
        use AdminError as E;
        match self {
            E::InvalidArgument(_) | E::Precondition(_) => ResponseError::InvalidRequest,
            E::InvalidTopic(_) => ResponseError::InvalidTopicException,
            E::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            E::InvalidReplicas(_) | E::InvalidReplicaAssignment(_) => {
                ResponseError::InvalidReplicaAssignment
            }
            E::InvalidConfig(_) => ResponseError::InvalidConfig,
            E::UnknownTopic(_) | E::UnknownPartition { .. } => {
                ResponseError::UnknownTopicOrPartition
            }
            E::UnknownBroker(_) => ResponseError::BrokerNotAvailable,
            E::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            E::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            E::ReassignmentInProgress { .. } => ResponseError::ReassignmentInProgress,
            E::NoReassignmentInProgress { .. } => ResponseError::NoReassignmentInProgress,
            // The same codes as the placement failures of topic creation.
            E::Placement(p) => AdminError::from(p.clone()).kafka_error(),
            E::Unavailable(_) => ResponseError::RequestTimedOut,
            E::Unauthorized { error, .. } => *error,
            E::Internal(_) => ResponseError::UnknownServerError,
            E::Log(_) => ResponseError::KafkaStorageError,
            E::Controller(ControllerError::Refused { error, .. }) => *error,
            E::Controller(ControllerError::Unavailable(_)) => ResponseError::RequestTimedOut,
            E::Controller(_) => ResponseError::NotController,
        }
    }

    /// [`AdminError::kafka_error`]'s code, for a response field.
    pub fn kafka_code(&self) -> i16 {
        self.kafka_error().code()
    }

    /// The error of a controller write whose input this broker checked first: a refusal then
    /// means the cluster changed in between (a precondition), not that the input was bad.
    pub fn refused(e: ControllerError) -> Self {
        match e {
            ControllerError::Unavailable(_) | ControllerError::NotController => {
                AdminError::Unavailable(e.to_string())
            }
            ControllerError::Refused {
                error: ResponseError::UnknownTopicOrPartition,
                message,
            } => AdminError::Precondition(format!("{message} (changed concurrently)")),
            ControllerError::Refused {
                error: ResponseError::TopicAlreadyExists,
                message,
            } => AdminError::TopicAlreadyExists(message),
            ControllerError::Refused {
                error: ResponseError::InvalidReplicaAssignment,
                message,
            } => AdminError::InvalidReplicaAssignment(message),
            ControllerError::Refused {
                error: ResponseError::NoReassignmentInProgress,
                message,
            } => AdminError::Precondition(message),
            ControllerError::Refused { .. } => AdminError::Precondition(e.to_string()),
            ControllerError::Invalid(m) => AdminError::InvalidArgument(m),
            ControllerError::Fatal(m) => AdminError::Internal(m),
        }
    }
}

impl From<AdminError> for Status {
    fn from(e: AdminError) -> Self {
        use AdminError as E;
        let message = e.to_string();
        match e {
            E::InvalidArgument(_)
            | E::InvalidTopic(_)
            | E::InvalidPartitions(_)
            | E::InvalidReplicas(_)
            | E::InvalidConfig(_) => Status::invalid_argument(message),
            E::UnknownTopic(_) | E::UnknownPartition { .. } | E::UnknownBroker(_) => {
                Status::not_found(message)
            }
            E::TopicAlreadyExists(_) => Status::already_exists(message),
            E::Precondition(_)
            | E::InvalidReplicationFactor(_)
            | E::InvalidReplicaAssignment(_)
            | E::NoReassignmentInProgress { .. } => Status::failed_precondition(message),
            E::ReassignmentInProgress { .. } => Status::aborted(message),
            E::Placement(p) => p.into(),
            E::Unavailable(_) => Status::unavailable(message),
            E::Unauthorized { .. } => Status::permission_denied(message),
            E::Internal(_) | E::Log(_) => Status::internal(message),
            E::Controller(c) => AdminError::refused(c).into(),
        }
    }
}

/// Placement failures of topic creation and growth, as Kafka reports them.
impl From<PlacementError> for AdminError {
    fn from(e: PlacementError) -> Self {
        match e {
            PlacementError::InvalidPartitionCount(_)
            | PlacementError::PartitionCountNotIncreasing { .. } => {
                AdminError::InvalidPartitions(e.to_string())
            }
            PlacementError::UnknownTopic(t) => AdminError::UnknownTopic(t),
            PlacementError::InvalidReplicationFactor(_)
            | PlacementError::ReplicationFactorTooLarge { .. }
            | PlacementError::NoBrokers => AdminError::InvalidReplicationFactor(e.to_string()),
            other => AdminError::InvalidReplicaAssignment(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_admin_proto_and_kafka() {
        let cases: Vec<(AdminError, tonic::Code, i16)> = vec![
            (
                AdminError::InvalidReplicas("x".into()),
                tonic::Code::InvalidArgument,
                39,
            ),
            (
                AdminError::UnknownPartition {
                    topic: "t".into(),
                    partition: 9,
                },
                tonic::Code::NotFound,
                3,
            ),
            (
                AdminError::TopicAlreadyExists("t".into()),
                tonic::Code::AlreadyExists,
                36,
            ),
            (
                AdminError::InvalidReplicationFactor("rf".into()),
                tonic::Code::FailedPrecondition,
                38,
            ),
            (
                AdminError::ReassignmentInProgress {
                    topic: "t".into(),
                    partition: 0,
                },
                tonic::Code::Aborted,
                60,
            ),
            (
                AdminError::NoReassignmentInProgress {
                    topic: "t".into(),
                    partition: 0,
                },
                tonic::Code::FailedPrecondition,
                85,
            ),
            (
                AdminError::Unavailable("no controller".into()),
                tonic::Code::Unavailable,
                7,
            ),
        ];
        for (error, status, kafka) in cases {
            assert_eq!(error.kafka_code(), kafka, "{error}");
            assert_eq!(Status::from(error).code(), status);
        }
    }
}
