//! Network partitions between real brokers: every broker in a network namespace of its own,
//! joined to one bridge in the root namespace by a veth pair, on a private /24 (10.201.X.0/24,
//! X picked free at creation). The test process itself talks to the brokers through the
//! bridge, so it is cut off from an isolated broker as every client is.
//!
//! ```text
//!  root namespace                      namespace wn<PID>n<i>
//!  bridge wnbr<PID> 10.201.X.1/24 ──── veth wn<PID>h<i> ═══ eth0 10.201.X.(11+i)/24
//! ```
//!
//! Faults: [`Network::isolate`] takes the bridge side of one broker's veth down (no traffic
//! in or out); [`Network::drop_from`] adds an iptables DROP of one peer's packets to a
//! broker's INPUT chain in its namespace (a one-way cut). [`Network::heal`] undoes both.
//!
//! Bridged traffic passes the root namespace's FORWARD chain when `br_netfilter` is loaded
//! (container runtimes on the machine may set its policy to DROP), so one ACCEPT rule for the
//! bridge is inserted there and removed again. Dropping a [`Network`] (also while a test
//! panics) removes the rule, the namespaces, the veths and the bridge; creation first removes
//! leftovers of runs whose process is gone (a SIGKILLed test runs no destructor).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

/// Prefix of everything this module creates.
const PREFIX: &str = "wn";

/// Why network faults cannot run here, or `None` when they can: root and the `ip` and
/// `iptables` commands are needed.
pub fn unavailable_reason() -> Option<String> {
    if !super::is_root() {
        return Some("not running as root (network namespaces need CAP_NET_ADMIN)".into());
    }
    for tool in ["ip", "iptables"] {
        let found = Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!(
                "the `{tool}` command is missing (Debian: iproute2, iptables)"
            ));
        }
    }
    None
}

/// Runs a command and panics with its stderr when it fails.
fn run(args: &[&str]) -> String {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        output.status.success(),
        "{args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a cleanup command; failures are printed, never raised (it runs in destructors).
fn run_quietly(args: &[&str]) -> bool {
    match Command::new(args[0]).args(&args[1..]).output() {
        Ok(output) if output.status.success() => true,
        Ok(output) => {
            eprintln!(
                "nemesis cleanup: {args:?}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("nemesis cleanup: {args:?}: {e}");
            false
        }
    }
}

/// One broker's namespace and veth pair.
#[derive(Debug)]
struct Node {
    netns: String,
    host_veth: String,
    address: Ipv4Addr,
    /// Whether the bridge side of the veth is down.
    isolated: bool,
    /// Peers whose packets this node's INPUT chain drops.
    dropping: Vec<Ipv4Addr>,
}

/// The namespaces and links of one cluster. Invariant: everything listed here exists until
/// [`Drop`] removes it; nothing this process created is left out of the lists.
#[derive(Debug)]
pub struct Network {
    bridge: Option<String>,
    forward_rule: bool,
    nodes: Vec<Node>,
}

impl Network {
    /// Creates `n` namespaces joined by a bridge. Panics (after cleaning up) when a step
    /// fails.
    pub fn create(n: usize) -> Network {
        remove_leftovers();
        let pid = std::process::id();
        let subnet = free_subnet(pid);
        let mut network = Network {
            bridge: None,
            forward_rule: false,
            nodes: Vec::new(),
        };
        let bridge = format!("{PREFIX}br{pid}");
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);
        network.bridge = Some(bridge.clone());
        let gateway = format!("10.201.{subnet}.1/24");
        run(&["ip", "addr", "add", &gateway, "dev", &bridge]);
        run(&["ip", "link", "set", &bridge, "up"]);
        run(&[
            "iptables", "-I", "FORWARD", "1", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
        ]);
        network.forward_rule = true;
        for i in 0..n {
            let netns = format!("{PREFIX}{pid}n{i}");
            let host_veth = format!("{PREFIX}{pid}h{i}");
            let address = Ipv4Addr::new(10, 201, subnet, 11 + i as u8);
            run(&["ip", "netns", "add", &netns]);
            network.nodes.push(Node {
                netns: netns.clone(),
                host_veth: host_veth.clone(),
                address,
                isolated: false,
                dropping: Vec::new(),
            });
            run(&[
                "ip", "link", "add", &host_veth, "type", "veth", "peer", "name", "eth0", "netns",
                &netns,
            ]);
            run(&["ip", "link", "set", &host_veth, "master", &bridge, "up"]);
            let in_ns = |args: &[&str]| {
                let mut full = vec!["ip", "netns", "exec", netns.as_str()];
                full.extend_from_slice(args);
                run(&full);
            };
            in_ns(&["ip", "link", "set", "lo", "up"]);
            in_ns(&["ip", "addr", "add", &format!("{address}/24"), "dev", "eth0"]);
            in_ns(&["ip", "link", "set", "eth0", "up"]);
        }
        network
    }

    /// The address node `i` binds.
    pub fn address(&self, i: usize) -> IpAddr {
        IpAddr::V4(self.nodes[i].address)
    }

    /// The namespace node `i` runs in.
    pub fn netns(&self, i: usize) -> &str {
        &self.nodes[i].netns
    }

    /// Cuts node `i` off from everyone (peers and clients).
    pub fn isolate(&mut self, i: usize) {
        run(&["ip", "link", "set", &self.nodes[i].host_veth, "down"]);
        self.nodes[i].isolated = true;
    }

    /// One-way cut: node `i` drops every packet from node `from` (its own packets to `from`
    /// still leave, so `from` sees a peer that sends but never answers).
    pub fn drop_from(&mut self, i: usize, from: usize) {
        let source = self.nodes[from].address;
        let node = &mut self.nodes[i];
        drop_rule(&node.netns, "-I", source);
        node.dropping.push(source);
    }

    /// Restores every link and removes every DROP rule.
    pub fn heal(&mut self) {
        for node in &mut self.nodes {
            if node.isolated {
                run(&["ip", "link", "set", &node.host_veth, "up"]);
                node.isolated = false;
            }
            for source in std::mem::take(&mut node.dropping) {
                drop_rule(&node.netns, "-D", source);
            }
        }
    }
}

/// Inserts (`-I`) or deletes (`-D`) the rule in `netns` that drops every packet from `source`.
fn drop_rule(netns: &str, action: &str, source: Ipv4Addr) {
    run(&[
        "ip",
        "netns",
        "exec",
        netns,
        "iptables",
        action,
        "INPUT",
        "-s",
        &source.to_string(),
        "-j",
        "DROP",
    ]);
}

impl Drop for Network {
    fn drop(&mut self) {
        // Processes still inside a namespace keep it alive: the owner stops its brokers first.
        for node in self.nodes.drain(..) {
            run_quietly(&["ip", "link", "del", &node.host_veth]);
            run_quietly(&["ip", "netns", "del", &node.netns]);
        }
        if let Some(bridge) = self.bridge.take() {
            if self.forward_rule {
                run_quietly(&[
                    "iptables", "-D", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
                ]);
            }
            run_quietly(&["ip", "link", "del", &bridge]);
        }
    }
}

/// A third octet for 10.201.X.0/24 that no interface on the machine uses yet.
fn free_subnet(pid: u32) -> u8 {
    let addresses = run(&["ip", "-4", "-o", "addr", "show"]);
    (0..250u32)
        .map(|k| ((pid + k) % 250) as u8)
        .find(|x| !addresses.contains(&format!("10.201.{x}.")))
        .expect("a free 10.201.X.0/24 subnet")
}

/// Whether `name` (one of ours) belongs to a process that no longer exists.
fn owner_gone(name: &str, infix: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(PREFIX)
        .map(|r| r.trim_start_matches(infix))
    else {
        return false;
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<u32>() {
        Ok(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

/// Removes namespaces, bridges and FORWARD rules of nemesis runs whose process is gone.
fn remove_leftovers() {
    let namespaces = run(&["ip", "netns", "list"]);
    for name in namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        if name.starts_with(PREFIX) && owner_gone(name, "") {
            eprintln!("nemesis: removing leftover namespace {name}");
            run_quietly(&["ip", "netns", "del", name]);
        }
    }
    let links = run(&["ip", "-o", "link", "show", "type", "bridge"]);
    for name in links.lines().filter_map(|l| l.split(": ").nth(1)) {
        let name = name.split('@').next().unwrap_or(name);
        if name.starts_with(&format!("{PREFIX}br")) && owner_gone(name, "br") {
            eprintln!("nemesis: removing leftover bridge {name}");
            run_quietly(&[
                "iptables", "-D", "FORWARD", "-i", name, "-o", name, "-j", "ACCEPT",
            ]);
            run_quietly(&["ip", "link", "del", name]);
        }
    }
}
