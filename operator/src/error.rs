//! The reconcilers' error: what failed, with a kind for the error metric.

/// A reconcile that could not finish; it is retried after a short delay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("admin API: {0}")]
    Admin(#[from] tonic::Status),
    #[error("{0}")]
    Unreachable(String),
    #[error("placement: {0}")]
    Placement(String),
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    /// The `kind` label of `weir_operator_reconcile_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Admin(_) => "admin_api",
            Error::Unreachable(_) => "unreachable",
            Error::Placement(_) => "placement",
            Error::Finalizer(_) => "finalizer",
        }
    }
}
