//! Why an admin operation failed: one enum for the gRPC admin API and the Kafka admin handlers
//! that share its operations, with the gRPC status code `admin.proto` documents and the Kafka
//! error code for each.

use kafka_protocol::error::ResponseError;
use tonic::Status;
use weir_api::placement::PlacementError;

use crate::config::ConfigError;
use crate::controller::ControllerError;
use crate::replica_manager::AdminError;

/// A failed admin operation. The message names the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum AdminServiceError {
    /// Malformed whatever the cluster's state (INVALID_ARGUMENT).
    #[error("{0}")]
    InvalidArgument(String),
    /// A replica list that is malformed: empty, a broker twice, partitions of unequal size
    /// (INVALID_ARGUMENT; Kafka's INVALID_REPLICA_ASSIGNMENT).
    #[error("{0}")]
    InvalidReplicas(String),
    /// An unknown or invalid topic config (INVALID_ARGUMENT; Kafka's INVALID_CONFIG).
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    /// NOT_FOUND (Kafka's UNKNOWN_TOPIC_OR_PARTITION).
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// NOT_FOUND (Kafka's UNKNOWN_TOPIC_OR_PARTITION).
    #[error("partition {partition} of topic `{topic}` does not exist")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// NOT_FOUND (Kafka's BROKER_NOT_AVAILABLE).
    #[error("broker {0} is not registered")]
    UnknownBroker(i32),
    /// ALREADY_EXISTS (Kafka's TOPIC_ALREADY_EXISTS).
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    /// Valid, but not possible in the cluster's current state (FAILED_PRECONDITION).
    #[error("{0}")]
    Precondition(String),
    /// A replication factor the live brokers cannot hold (FAILED_PRECONDITION; Kafka's
    /// INVALID_REPLICATION_FACTOR).
    #[error("{0}")]
    ReplicationFactor(String),
    /// A replica on a broker that cannot take it now (FAILED_PRECONDITION; Kafka's
    /// INVALID_REPLICA_ASSIGNMENT).
    #[error("{0}")]
    UnavailableReplica(String),
    /// ABORTED: another operation on the partition is running.
    #[error("partition {partition} of topic `{topic}` is already being reassigned")]
    ReassignmentInProgress {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// FAILED_PRECONDITION (Kafka's NO_REASSIGNMENT_IN_PROGRESS).
    #[error("partition {partition} of topic `{topic}` is not being reassigned")]
    NoReassignmentInProgress {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// Placement has no answer; mapped as `weir_api` documents.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// No controller, or the change did not reach this broker in time (UNAVAILABLE).
    #[error("{0}")]
    Unavailable(String),
    /// A bug (INTERNAL); logged where it happens.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AdminServiceError {
    /// The Kafka error code for this error.
    pub fn kafka_code(&self) -> i16 {
        use AdminServiceError as E;
        let error = match self {
            E::InvalidArgument(_) => ResponseError::InvalidRequest,
            E::InvalidReplicas(_) | E::UnavailableReplica(_) => {
                ResponseError::InvalidReplicaAssignment
            }
            E::InvalidConfig(_) => ResponseError::InvalidConfig,
            E::UnknownTopic(_) | E::UnknownPartition { .. } => {
                ResponseError::UnknownTopicOrPartition
            }
            E::UnknownBroker(_) => ResponseError::BrokerNotAvailable,
            E::TopicExists(_) => ResponseError::TopicAlreadyExists,
            E::ReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            E::ReassignmentInProgress { .. } => ResponseError::ReassignmentInProgress,
            E::NoReassignmentInProgress { .. } => ResponseError::NoReassignmentInProgress,
            E::Placement(p) => match p {
                PlacementError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
                PlacementError::InvalidPartitionCount(_)
                | PlacementError::PartitionCountNotIncreasing { .. } => {
                    ResponseError::InvalidPartitions
                }
                PlacementError::InvalidReplicationFactor(_)
                | PlacementError::ReplicationFactorTooLarge { .. }
                | PlacementError::NoBrokers => ResponseError::InvalidReplicationFactor,
                _ => ResponseError::InvalidReplicaAssignment,
            },
            E::Precondition(_) => ResponseError::InvalidRequest,
            E::Unavailable(_) => ResponseError::RequestTimedOut,
            E::Internal(_) => ResponseError::UnknownServerError,
        };
        error.code()
    }
}

impl From<AdminServiceError> for Status {
    fn from(e: AdminServiceError) -> Self {
        use AdminServiceError as E;
        let message = e.to_string();
        match e {
            E::InvalidArgument(_) | E::InvalidReplicas(_) | E::InvalidConfig(_) => {
                Status::invalid_argument(message)
            }
            E::UnknownTopic(_) | E::UnknownPartition { .. } | E::UnknownBroker(_) => {
                Status::not_found(message)
            }
            E::TopicExists(_) => Status::already_exists(message),
            E::Precondition(_)
            | E::ReplicationFactor(_)
            | E::UnavailableReplica(_)
            | E::NoReassignmentInProgress { .. } => Status::failed_precondition(message),
            E::ReassignmentInProgress { .. } => Status::aborted(message),
            E::Placement(p) => p.into(),
            E::Unavailable(_) => Status::unavailable(message),
            E::Internal(_) => Status::internal(message),
        }
    }
}

impl From<ControllerError> for AdminServiceError {
    fn from(e: ControllerError) -> Self {
        match e {
            ControllerError::Unavailable(_) | ControllerError::NotController => {
                AdminServiceError::Unavailable(e.to_string())
            }
            // The image refuses what became invalid between our check and the command's turn
            // in the log; the codes are Kafka's.
            ControllerError::Refused { code: 3, message } => {
                AdminServiceError::Precondition(format!("{message} (changed concurrently)"))
            }
            ControllerError::Refused { code: 36, message } => {
                AdminServiceError::TopicExists(message)
            }
            ControllerError::Refused { code: 39, message } => {
                AdminServiceError::UnavailableReplica(message)
            }
            ControllerError::Refused { code: 85, message } => {
                AdminServiceError::Precondition(message)
            }
            ControllerError::Refused { .. } => AdminServiceError::Precondition(e.to_string()),
            ControllerError::Invalid(m) => AdminServiceError::InvalidArgument(m),
            ControllerError::Fatal(m) => AdminServiceError::Internal(m),
        }
    }
}

impl From<AdminError> for AdminServiceError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::TopicAlreadyExists(t) => AdminServiceError::TopicExists(t),
            AdminError::UnknownTopic(t) => AdminServiceError::UnknownTopic(t),
            AdminError::InvalidTopic(m) | AdminError::InvalidPartitions(m) => {
                AdminServiceError::InvalidArgument(m)
            }
            AdminError::InvalidReplicationFactor(m) => AdminServiceError::ReplicationFactor(m),
            AdminError::InvalidReplicaAssignment(m) => AdminServiceError::UnavailableReplica(m),
            AdminError::InvalidConfig(c) => AdminServiceError::InvalidConfig(c),
            AdminError::Controller(c) => c.into(),
            AdminError::Metadata(_) | AdminError::Log(_) => {
                AdminServiceError::Internal(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_admin_proto_and_kafka() {
        let cases: Vec<(AdminServiceError, tonic::Code, i16)> = vec![
            (
                AdminServiceError::InvalidReplicas("x".into()),
                tonic::Code::InvalidArgument,
                39,
            ),
            (
                AdminServiceError::UnknownPartition {
                    topic: "t".into(),
                    partition: 9,
                },
                tonic::Code::NotFound,
                3,
            ),
            (
                AdminServiceError::TopicExists("t".into()),
                tonic::Code::AlreadyExists,
                36,
            ),
            (
                AdminServiceError::ReplicationFactor("rf".into()),
                tonic::Code::FailedPrecondition,
                38,
            ),
            (
                AdminServiceError::ReassignmentInProgress {
                    topic: "t".into(),
                    partition: 0,
                },
                tonic::Code::Aborted,
                60,
            ),
            (
                AdminServiceError::NoReassignmentInProgress {
                    topic: "t".into(),
                    partition: 0,
                },
                tonic::Code::FailedPrecondition,
                85,
            ),
            (
                AdminServiceError::Unavailable("no controller".into()),
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
