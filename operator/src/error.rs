//! The reconcilers' error: what failed, with a kind for the error metric, and whether trying
//! again can help ([`Error::is_permanent`]), which `error_policy` turns into waiting for a
//! change or retrying with backoff.

use weir_api::admin::AssignmentError;
use weir_api::placement::PlacementError;

/// A reconcile that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("admin API: {0}")]
    Admin(#[from] tonic::Status),
    #[error("{0}")]
    Unreachable(String),
    /// The brokers listed an assignment the placement cannot read.
    #[error("placement: {0}")]
    Assignment(#[from] AssignmentError),
    /// Placement has no plan for the brokers and topics as they are.
    #[error("placement: {0}")]
    Placement(#[from] PlacementError),
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// A CA or certificate could not be read or made.
    #[error("certificates: {0}")]
    Certificate(String),
}

impl Error {
    /// The `kind` label of `weir_operator_reconcile_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Admin(_) => "admin_api",
            Error::Unreachable(_) => "unreachable",
            Error::Assignment(_) | Error::Placement(_) => "placement",
            Error::Finalizer(_) => "finalizer",
            Error::Certificate(_) => "certificates",
        }
    }

    /// Whether the object itself is at fault, so that only a change to it can help: the API
    /// server refused what was built from it as invalid (400, 422), or the brokers refused
    /// its request as malformed (`INVALID_ARGUMENT`). Anything else (an unreachable broker or
    /// API server, a conflict, a placement with no answer yet) may pass and is retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(status)) => matches!(status.code, 400 | 422),
            Error::Admin(status) => status.code() == tonic::Code::InvalidArgument,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_requests_are_permanent_and_outages_are_not() {
        assert!(Error::Admin(tonic::Status::invalid_argument("bad config")).is_permanent());
        assert!(!Error::Admin(tonic::Status::unavailable("no controller")).is_permanent());
        assert!(!Error::Unreachable("broker 0".into()).is_permanent());
        assert!(!Error::Placement(PlacementError::NoBrokers).is_permanent());
    }
}
