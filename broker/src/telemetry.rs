//! The broker's log output: `tracing` events to stderr, filtered by `WEIR_LOG` (or `RUST_LOG`),
//! minus openraft's per-retry lines about unreachable peers.
//!
//! The default filter, [`DEFAULT_FILTER`], keeps Weir's own lines at INFO and its dependencies
//! (openraft, tonic, hyper, h2, tower, ...) at WARN: openraft logs its votes and state at INFO,
//! which buried the broker's own start-up lines. A filter that sets a level for everything
//! (`WEIR_LOG=debug`, `WEIR_LOG=info,weir_broker::server=debug`) replaces the default; one that
//! only names targets (`WEIR_LOG=openraft=info`, `WEIR_LOG=weir_broker::server=debug`) is added
//! to it ([`weir_api::log_filter`]).
//!
//! While a metadata quorum peer is down, openraft logs, every 500 ms, from its replication task
//! a WARN ("error replication to target"), an ERROR ("RPCError") and a WARN ("backoff mode"),
//! and from the leader's progress tracking a WARN ("update progress error", or "heartbeat
//! error"). Nothing in them is news after the first: the transport logs the peer going away and
//! coming back once each instead ([`crate::controller::peer_health`]). The filter drops exactly
//! those events, recognised by target, level and field names (openraft 0.9); storage errors,
//! which the replication task also logs, are logged at ERROR with other fields and by
//! openraft's core, and stay visible, as does everything else openraft says.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;
use weir_api::log_filter::filter_directives;

/// openraft's replication task, whose retry lines [`is_replication_retry_noise`] recognises.
const OPENRAFT_REPLICATION: &str = "openraft::replication";
/// openraft's leader-side progress tracking; its only WARNs are about a failed RPC.
const OPENRAFT_PROGRESS: &str = "openraft::engine::handler::replication_handler";

/// Weir's crates at INFO, everything else at WARN.
pub const DEFAULT_FILTER: &str = "warn,weir_broker=info,weir_api=info";

/// Installs the global subscriber: stderr, filtered by `WEIR_LOG` (or `RUST_LOG`) over
/// [`DEFAULT_FILTER`] as [`weir_api::log_filter`] says, without openraft's retry noise.
pub fn init() {
    let requested = weir_api::log_filter::requested_from_env();
    let directives = filter_directives(DEFAULT_FILTER, requested.as_deref());
    let env_filter = EnvFilter::builder().parse_lossy(directives);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(env_filter)
        .with_filter(filter_fn(|meta| !is_replication_retry_noise(meta)));
    tracing_subscriber::registry().with(layer).init();
}

/// Whether an event is one of openraft's per-retry replication lines: in the replication task
/// the WARN carrying `error` (a failed replication round; storage errors are repeated at
/// ERROR), the ERROR carrying `err` (the RPC error itself) and the WARN carrying `interval`
/// (backoff started); in the progress tracking, its WARNs (a failed RPC's result).
pub fn is_replication_retry_noise(meta: &Metadata<'_>) -> bool {
    if !meta.is_event() {
        return false;
    }
    let has = |name: &str| meta.fields().field(name).is_some();
    match (meta.target(), *meta.level()) {
        (OPENRAFT_REPLICATION, Level::WARN) => has("error") || has("interval"),
        (OPENRAFT_REPLICATION, Level::ERROR) => has("err"),
        (OPENRAFT_PROGRESS, Level::WARN) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// What the filters let through, as `target level` lines.
    fn enabled_by(directives: &str) -> Vec<&'static str> {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(out.clone())
                .with_ansi(false)
                .without_time()
                .with_filter(EnvFilter::builder().parse_lossy(directives)),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "openraft::core::raft_core", "openraft info");
            tracing::warn!(target: "openraft::core::raft_core", "openraft warn");
            tracing::info!(target: "h2::codec", "h2 info");
            tracing::info!(target: "weir_broker::app", "weir info");
            tracing::debug!(target: "weir_broker::server", "weir server debug");
            tracing::info!(target: "weir_api::placement", "api info");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        [
            "openraft info",
            "openraft warn",
            "h2 info",
            "weir info",
            "weir server debug",
            "api info",
        ]
        .into_iter()
        .filter(|line| text.contains(line))
        .collect()
    }

    #[test]
    fn default_filter_lets_weir_info_and_dependency_warnings_through() {
        assert_eq!(
            enabled_by(&filter_directives(DEFAULT_FILTER, None)),
            ["openraft warn", "weir info", "api info"]
        );
        assert_eq!(
            enabled_by(&filter_directives(DEFAULT_FILTER, Some("openraft=info"))),
            ["openraft info", "openraft warn", "weir info", "api info"]
        );
        assert_eq!(
            enabled_by(&filter_directives(
                DEFAULT_FILTER,
                Some("weir_broker::server=debug")
            )),
            [
                "openraft warn",
                "weir info",
                "weir server debug",
                "api info"
            ]
        );
        assert_eq!(
            enabled_by(&filter_directives(DEFAULT_FILTER, Some("info"))),
            [
                "openraft info",
                "openraft warn",
                "h2 info",
                "weir info",
                "api info"
            ]
        );
    }

    #[test]
    fn openraft_retry_lines_are_dropped_and_its_other_errors_kept() {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(out.clone())
                .with_ansi(false)
                .with_filter(filter_fn(|meta| !is_replication_retry_noise(meta))),
        );
        tracing::subscriber::with_default(subscriber, || {
            // The shapes of openraft 0.9's replication events.
            tracing::warn!(target: "openraft::replication", error = "unreachable", "error replication to target=2");
            tracing::error!(target: "openraft::replication", err = "unreachable", "RPCError");
            tracing::warn!(target: "openraft::replication", interval = 500, "backoff mode");
            tracing::warn!(target: "openraft::engine::handler::replication_handler", result = "unreachable", "update progress error");
            tracing::warn!(target: "openraft::engine::handler::replication_handler", "heartbeat error: unreachable");
            tracing::error!(target: "openraft::engine::handler::replication_handler", error = "z", "update_matching kept");
            tracing::error!(target: "openraft::replication", error = "disk full", "storage error kept");
            tracing::error!(target: "openraft::core::raft_core", error = "x", "core error kept");
            tracing::warn!(target: "weir_broker::controller", error = "y", "our warning kept");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("error replication"), "{text}");
        assert!(!text.contains("RPCError"), "{text}");
        assert!(!text.contains("backoff mode"), "{text}");
        assert!(!text.contains("update progress error"), "{text}");
        assert!(!text.contains("heartbeat error"), "{text}");
        assert!(text.contains("update_matching kept"), "{text}");
        assert!(text.contains("storage error kept"), "{text}");
        assert!(text.contains("core error kept"), "{text}");
        assert!(text.contains("our warning kept"), "{text}");
    }
}
