//! `weir-operator`: the operator (default), or the brokers' `rack` init container.

use std::process::ExitCode;

use clap::Parser;
use weir_operator::run::{Args, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
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
        match args.command {
            Some(Command::Rack { node, label, out }) => {
                weir_operator::rack::write_rack_file(&node, &label, &out).await
            }
            None => weir_operator::run::operator(args.run).await,
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
