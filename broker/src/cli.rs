//! The `weir-broker` command line. Every flag can also come from a `WEIR_<FLAG>` environment
//! variable, which is how the Kubernetes operator configures pods.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::broker::Endpoint;
use crate::config::properties::parse_assignment;

/// Weir: a Kafka-compatible streaming broker.
///
/// Broker and topic settings use Kafka's names and defaults (log.segment.bytes,
/// log.retention.ms, num.partitions, auto.create.topics.enable, message.max.bytes, ...), read
/// from --config FILE (Java properties) and then --set key=value, which wins.
#[derive(Debug, Parser)]
#[command(name = "weir-broker", version, about)]
pub struct Args {
    /// This broker's node id: a number, or a StatefulSet pod name whose ordinal is the id
    /// (`weir-2` is node 2), which is how the operator's pods pass `$(POD_NAME)`.
    #[arg(long, env = "WEIR_NODE_ID", default_value = "0", value_parser = parse_node_id)]
    pub node_id: i32,

    /// Directory holding the partition logs and metadata; created if missing.
    #[arg(long, env = "WEIR_DATA_DIR", default_value = "./weir-data")]
    pub data_dir: PathBuf,

    /// Address the Kafka listener binds (port 0 picks a free one).
    #[arg(long, env = "WEIR_LISTEN", default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,

    /// HOST:PORT clients are told to connect to; defaults to the bound listen address.
    #[arg(long, env = "WEIR_ADVERTISED_LISTENER", value_parser = parse_endpoint)]
    pub advertised_listener: Option<Endpoint>,

    /// Address of the HTTP listener for /metrics, /healthz and /readyz.
    #[arg(long, env = "WEIR_METRICS_LISTEN", default_value = "127.0.0.1:9644")]
    pub metrics_listen: SocketAddr,

    /// Address the internal listener binds: the metadata quorum (Raft) and the controller's
    /// broker and admin gRPC services (port 0 picks a free one).
    #[arg(long, env = "WEIR_RPC_LISTEN", default_value = "127.0.0.1:9093")]
    pub rpc_listen: SocketAddr,

    /// HOST:PORT other brokers and the operator use to reach the internal listener; defaults
    /// to the bound --rpc-listen address.
    #[arg(long, env = "WEIR_ADVERTISED_RPC", value_parser = parse_endpoint)]
    pub advertised_rpc: Option<Endpoint>,

    /// The metadata quorum's voters as ID@HOST:PORT,... (their internal listeners). Without
    /// it the broker is a cluster of one: its own single voter.
    #[arg(long, env = "WEIR_VOTERS", value_parser = parse_voters)]
    pub voters: Option<Voters>,

    /// A Java properties file of broker settings (Kafka names). Repeatable: later files win
    /// (the operator adds a file holding `broker.rack` next to the cluster's settings). In
    /// WEIR_CONFIG, separate files with ','.
    #[arg(long, env = "WEIR_CONFIG", value_delimiter = ',')]
    pub config: Vec<PathBuf>,

    /// A broker setting as key=value; repeatable; overrides --config. In WEIR_SET, separate
    /// settings with ';'.
    #[arg(long = "set", env = "WEIR_SET", value_delimiter = ';', value_parser = parse_assignment)]
    pub set: Vec<(String, String)>,
}

/// Parses a node id: a non-negative number, or a name ending in `-N` (a StatefulSet pod's
/// ordinal).
pub fn parse_node_id(s: &str) -> Result<i32, String> {
    let digits = match s.rsplit_once('-') {
        Some((_, ordinal)) if !s.starts_with('-') => ordinal,
        _ => s,
    };
    digits
        .parse::<i32>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| {
            format!("`{s}` is not a node id (a number, or a pod name ending in -<ordinal>)")
        })
}

/// The voter set: node id → `host:port` of its internal listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voters(pub std::collections::BTreeMap<i32, String>);

/// Parses `ID@HOST:PORT,ID@HOST:PORT,...`.
pub fn parse_voters(s: &str) -> Result<Voters, String> {
    let mut voters = std::collections::BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('@')
            .ok_or_else(|| format!("expected ID@HOST:PORT, found `{part}`"))?;
        let id: i32 = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("`{id}` in `{part}` is not a node id"))?;
        let endpoint = parse_endpoint(addr)?;
        if voters
            .insert(id, format!("{}:{}", endpoint.host, endpoint.port))
            .is_some()
        {
            return Err(format!("node {id} appears twice in the voters"));
        }
    }
    if voters.is_empty() {
        return Err("the voter list is empty".to_string());
    }
    Ok(Voters(voters))
}

/// Parses `HOST:PORT` (a host name or an IP address; IPv6 in brackets).
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT, found `{s}`"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` in `{s}` is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(format!("`{s}` needs a host and a non-zero port"));
    }
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let a = Args::try_parse_from(["weir-broker"]).unwrap();
        assert_eq!(a.node_id, 0);
        assert_eq!(a.data_dir, PathBuf::from("./weir-data"));
        assert_eq!(a.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(a.metrics_listen.to_string(), "127.0.0.1:9644");
        assert!(a.advertised_listener.is_none());
    }

    #[test]
    fn node_ids_come_from_numbers_or_pod_ordinals() {
        assert_eq!(parse_node_id("7"), Ok(7));
        assert_eq!(parse_node_id("weir-2"), Ok(2));
        assert_eq!(parse_node_id("my-kafka-cluster-12"), Ok(12));
        for bad in ["-1", "weir", "weir-", "weir-x", ""] {
            let e = parse_node_id(bad).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        let a = Args::try_parse_from(["weir-broker", "--config", "a.properties", "--config", "b"])
            .unwrap();
        assert_eq!(
            a.config,
            [PathBuf::from("a.properties"), PathBuf::from("b")]
        );
    }

    #[test]
    fn unknown_flags_and_bad_values_are_named() {
        let e = Args::try_parse_from(["weir-broker", "--nodeid", "1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--nodeid"), "{e}");
        let e = Args::try_parse_from(["weir-broker", "--listen", "nowhere"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("nowhere"), "{e}");
        let e = Args::try_parse_from(["weir-broker", "--set", "novalue"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("novalue"), "{e}");
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            parse_endpoint("broker-0.weir:9092").unwrap(),
            Endpoint {
                host: "broker-0.weir".into(),
                port: 9092
            }
        );
        assert_eq!(parse_endpoint("[::1]:1").unwrap().host, "::1");
        assert!(parse_endpoint("host").is_err());
        assert!(parse_endpoint("host:0").is_err());
    }

    #[test]
    fn sets_repeat_and_split() {
        let a = Args::try_parse_from(["weir-broker", "--set", "a=1", "--set", "b=2;c=3"]).unwrap();
        assert_eq!(a.set.len(), 3);
        assert_eq!(a.set[2], ("c".to_string(), "3".to_string()));
    }
}
