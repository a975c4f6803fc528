//! The Weir Kubernetes operator.
//!
//! A skeleton: the `Cluster` and `Topic` custom resources, their reconcilers and the `crdgen`
//! binary arrive with the operator issue. The crate exists now so the workspace has its final
//! shape and the operator can never grow a dependency on the broker by accident.

/// The broker port a `Cluster`'s client Service will expose.
pub fn client_port() -> u16 {
    weir_api::DEFAULT_CLIENT_PORT
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_port_matches_broker_default() {
        assert_eq!(super::client_port(), 9092);
    }
}
