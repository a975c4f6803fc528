//! `weir-operator`: the operator (default), or the brokers' `rack` init container.

use std::process::ExitCode;

use clap::Parser;
use weir_api::log_filter;
use weir_operator::run::{self, Args, Command};

/// The operator's lines at INFO, its dependencies' (kube, hyper, tower, ...) at WARN;
/// `WEIR_LOG` or `RUST_LOG` changes it (see `weir_api::log_filter`).
const DEFAULT_LOG_FILTER: &str = "warn,weir_operator=info,weir_api=info";

fn main() -> ExitCode {
    let requested = log_filter::requested_from_env();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::builder().parse_lossy(
            log_filter::filter_directives(DEFAULT_LOG_FILTER, requested.as_deref()),
        ))
        .json()
        .init();
    // kube's rustls-tls names no crypto provider; pick ring once for the whole process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weir-operator: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // First, before anything can take long (see `termination`).
        let termination = run::termination()?;
        match args.command {
            Some(Command::Rack { node, label, out }) => tokio::select! {
                written = weir_operator::rack::write_rack_file(&node, &label, &out) => written,
                _ = run::terminated(termination) => Err(anyhow::anyhow!("stopped by a signal before the rack file was written")),
            },
            None => run::operator(args.run, termination).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "weir-operator failed");
            ExitCode::FAILURE
        }
    }
}
