//! The `weir-broker` binary: parse flags and settings, bind the listeners, run until SIGTERM
//! or Ctrl-C, then close the logs cleanly.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use tokio::net::TcpListener;
use tokio::sync::watch;
use weir_broker::cli::Args;
use weir_broker::clock::SystemClock;
use weir_broker::config::{properties, BrokerConfig};
use weir_broker::http::HttpState;

fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    // `--listen` (flag or WEIR_LISTEN) is the PLAINTEXT shorthand; `listeners` replaces it.
    let listen_given = matches
        .value_source("listen")
        .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue)
        || args.advertised_listener.is_some();
    weir_broker::telemetry::init();
    raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weir-broker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, listen_given)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir-broker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, listen_given: bool) -> anyhow::Result<()> {
    // First, before anything can take long: see `termination`.
    let termination = termination().context("installing the SIGTERM and SIGINT handlers")?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        termination.await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    });

    let mut settings = Vec::new();
    for path in &args.config {
        settings.extend(properties::read(path)?);
    }
    settings.extend(args.set.iter().cloned());
    let config = BrokerConfig::new(args.node_id, args.data_dir.clone(), &settings)?;
    for (key, why) in config.no_effect() {
        tracing::warn!(key, "`{key}` has no effect in Weir: {why}");
    }

    if listen_given
        && !config
            .get("listeners")
            .unwrap_or_default()
            .trim()
            .is_empty()
    {
        anyhow::bail!(
            "--listen or --advertised-listener and the `listeners` setting are both given: list the listeners in `listeners` and `advertised.listeners` instead"
        );
    }
    let (kafka, inter_broker) =
        weir_broker::app::bind_listeners(&config, args.listen, args.advertised_listener.clone())
            .await?;
    let metrics = TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("binding --metrics-listen {}", args.metrics_listen))?;
    let rpc = TcpListener::bind(args.rpc_listen)
        .await
        .with_context(|| format!("binding --rpc-listen {}", args.rpc_listen))?;
    let kafka_addr = kafka[0].local_addr()?;
    let listener_addrs = kafka
        .iter()
        .map(|l| Ok(format!(" listener.{}={}", l.security.name, l.local_addr()?)))
        .collect::<std::io::Result<String>>()?;
    let advertised = weir_broker::app::Advertised::of(&kafka, &inter_broker);
    let metrics_addr = metrics.local_addr()?;
    let rpc_addr = rpc.local_addr()?;
    let rpc_advertised = match &args.advertised_rpc {
        Some(e) => format!("{}:{}", e.host, e.port),
        None if rpc_addr.ip().is_unspecified() => anyhow::bail!(
            "--rpc-listen {rpc_addr} is a wildcard address; set --advertised-rpc to the address other brokers should use"
        ),
        None => rpc_addr.to_string(),
    };

    // Health answers from now on, through a possibly long log recovery.
    let http_state = Arc::new(HttpState::default());
    let http = tokio::spawn(weir_broker::http::run(
        metrics,
        http_state.clone(),
        shutdown_rx.clone(),
    ));
    let started = tokio::task::spawn_blocking(move || {
        weir_broker::app::open(config, advertised, Arc::new(SystemClock))
    })
    .await??;
    let cluster = weir_broker::app::ClusterOptions {
        rpc_listener: rpc,
        rpc_advertised,
        voters: args.voters.clone().map(|v| v.0),
    };
    started
        .serve(kafka, cluster, &http_state, shutdown_rx, || {
            tracing::info!(kafka = %kafka_addr, metrics = %metrics_addr, rpc = %rpc_addr, "serving");
            // Machine-readable line for scripts and tests that start the broker on port 0:
            // `kafka=` is the first listener, then every listener by name.
            println!("weir-broker ready kafka={kafka_addr} metrics={metrics_addr} rpc={rpc_addr}{listener_addrs}");
        })
        .await?;
    let _ = http.await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when
/// the future is first polled: as a container's PID 1 the broker gets no default action for
/// either signal, so one that arrives before its handler exists is dropped by the kernel and
/// the container runtime waits out its grace period before it kills the broker.
fn termination() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Raises the soft limit on open files to the hard limit, as Go's runtime does for its
/// servers: every partition holds a few files open (its active segment's log and indexes), and
/// the usual soft limit of 1,024 would stop a broker at a few hundred partitions. The hard
/// limit stays the operator's (`LimitNOFILE=`, `ulimit -Hn`, the container runtime's).
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open files limit"),
            Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise the open files limit"),
        },
        Ok((soft, _)) => tracing::debug!(limit = soft, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read the open files limit"),
    }
}
