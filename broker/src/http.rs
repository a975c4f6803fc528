//! The metrics listener: `/metrics` (Prometheus text), `/healthz` (the process is up) and
//! `/readyz` (logs are loaded and the Kafka listener is serving).
//!
//! It serves from the moment the process starts, before log recovery, so a liveness probe
//! sees a healthy process during a long recovery while the readiness probe keeps clients away.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

/// What the HTTP endpoints read: the broker, once it has recovered its logs.
#[derive(Debug, Default)]
pub struct HttpState {
    broker: OnceLock<Arc<Broker>>,
}

impl HttpState {
    /// Starts answering `/metrics` and `/readyz` from `broker`.
    pub fn set_broker(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }
}

/// Serves the HTTP endpoints on `listener` until `shutdown` becomes true.
pub async fn run(
    listener: TcpListener,
    state: Arc<HttpState>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    match state.broker.get() {
        Some(broker) => (
            StatusCode::OK,
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            broker.metrics.render(),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "recovering logs\n".to_string(),
        ),
    }
}

async fn readyz(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    match state.broker.get() {
        Some(broker) if broker.is_ready() => (StatusCode::OK, "ready\n"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        None => (StatusCode::SERVICE_UNAVAILABLE, "recovering logs\n"),
    }
}
