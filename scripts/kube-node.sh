#!/usr/bin/env bash
# A real one-node Kubernetes on this machine for the real-node test tier: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (iptables mode),
# containerd + runc + the CNI bridge plugin, CoreDNS as a host process, a local image registry
# on loopback and pre-created local PersistentVolumes. Nothing reaches off the machine: images
# come only from the local registry, and the node, pod and Service addresses live on
# interfaces this script creates.
#
#   scripts/kube-node.sh install            Debian packages, the Kubernetes binaries
#                                           (scripts/kube-control-plane.sh), CoreDNS and the
#                                           node's Go tools; each cached behind a stamp
#   scripts/kube-node.sh installed          exit 0 when everything `up` needs is installed
#   scripts/kube-node.sh up DIR             bring the node up; state, logs and DIR/env in DIR
#   scripts/kube-node.sh down DIR           stop it and remove what `up` created on the host
#   scripts/kube-node.sh push-binary DIR NAME:TAG BINARY...
#                                           a scratch image of static binaries (the first is
#                                           the entrypoint) pushed to the node's registry
#   scripts/kube-node.sh push-oci DIR LAYOUT:TAG NAME:TAG
#                                           an image from an OCI layout (what
#                                           scripts/build-images.sh writes) pushed there
#   scripts/kube-node.sh tools-dir          print the directory of the node's Go tools
#   scripts/kube-node.sh versions           print the pinned versions
#
# DIR/env (shell syntax, one KEY=value a line) names: KUBECONFIG (admin, certificates
# embedded), WEIR_NODE_REGISTRY (127.0.0.1:PORT; pods name images as REGISTRY/NAME:TAG),
# WEIR_NODE_IP, WEIR_NODE_NAME, WEIR_NODE_KUBECTL, WEIR_NODE_STORAGE_CLASS and the CIDRs.
#
# The node: `weir-node-0`, labelled topology.kubernetes.io/zone=zone-a, at 10.200.0.1 on the
# host side of a veth pair whose peer sits in the network namespace `weir-node` (kubelet
# refuses a loopback node IP). The apiserver listens on that address (port 6443) and is the
# `kubernetes` Service 10.96.0.1 for pods; Services get 10.96.0.0/16, pods 10.244.0.0/24 on the
# bridge `weir-cni0` (routable from the host, so Prometheus on the host can scrape pod IPs).
# CoreDNS answers for cluster.local on 10.200.0.1:53 (no upstream). Storage: a default
# StorageClass `local` (WaitForFirstConsumer, no provisioner) and WEIR_NODE_PVS (12) local
# PersistentVolumes of 1Gi in DIR/pv (world-writable: the volume of a non-root pod).
#
# One node per machine at a time (fixed addresses and ports); `up` takes down a node that a
# crashed run left behind (its DIR is recorded in /run/weir-kube-node.dir), so callers that may
# run at the same time hold an exclusive flock on /run/weir-kube-node.lock from before `up`
# until after `down` (weir_tests::node::RealNode does). Needs root.
#
#   WEIR_CACHE_DIR           default ~/.cache/weir (CoreDNS and the tools go to kube-node/ there)
#   WEIR_NODE_REGISTRY_PORT  default 5000
#   WEIR_NODE_PVS            default 12
#   WEIR_NODE_UP_TIMEOUT     seconds each start-up condition may take, default 180
set -euo pipefail

SCRIPTS="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$SCRIPTS")"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
CACHE="${WEIR_CACHE_DIR:-$HOME/.cache/weir}"
NODE_CACHE="$CACHE/kube-node"
COREDNS_DIR="$NODE_CACHE/coredns-$COREDNS_VERSION"
TOOLS_SRC="$REPO/tests/kube-node-tools"
TOOLS_DIR="$NODE_CACHE/tools"

APT_PACKAGES=(containerd runc containernetworking-plugins docker-registry skopeo umoci
    iptables conntrack iproute2 procps openssl curl util-linux mount)

NODE_NAME=weir-node-0
ZONE=zone-a
NODE_IP=10.200.0.1
PEER_IP=10.200.0.2
NETNS=weir-node
HOST_IF=weir-node0
PEER_IF=weir-node0p
BRIDGE=weir-cni0
CNI_NETWORK=weir-node
CLUSTER_CIDR=10.244.0.0/16
POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
CLUSTER_DOMAIN=cluster.local
APISERVER_PORT=6443
ETCD_CLIENT_PORT=23790
ETCD_PEER_PORT=23800
COREDNS_READY_PORT=8181
REGISTRY_PORT="${WEIR_NODE_REGISTRY_PORT:-5000}"
REGISTRY="127.0.0.1:$REGISTRY_PORT"
PAUSE_IMAGE="$REGISTRY/weir-node/pause:1"
PV_COUNT="${WEIR_NODE_PVS:-12}"
UP_TIMEOUT="${WEIR_NODE_UP_TIMEOUT:-180}"
ACTIVE_FILE=/run/weir-kube-node.dir
# Kernel settings kubelet, kube-proxy or this script change; `up` saves them, `down` restores.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
    net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
    net.ipv4.conf.all.route_localnet)
# The daemons `up` starts (`down` stops the kubelet first, etcd last, the rest at once).
DAEMONS=(registry etcd kube-apiserver kube-controller-manager kube-scheduler containerd
    coredns kube-proxy kubelet)

log() { printf '[kube-node] %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}
usage() {
    sed -n '2,/^set -euo pipefail$/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
    exit 2
}

retry() {
    local attempt
    for attempt in 1 2 3; do
        if "$@"; then
            return 0
        fi
        log "attempt $attempt of '$*' failed"
        sleep $((attempt * 5))
    done
    return 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

kube_bin_dir() { bash "$SCRIPTS/kube-control-plane.sh" bin-dir; }

# ---------------------------------------------------------------------------------------------
# install

missing_packages() {
    local package
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
            echo "$package"
    done
}

install_packages() {
    local missing
    missing="$(missing_packages)"
    if [ -z "$missing" ]; then
        log "apt: ${APT_PACKAGES[*]} already installed"
        return 0
    fi
    local started=$SECONDS
    log "apt: installing" $missing
    retry as_root apt-get update -qq
    # shellcheck disable=SC2086 # one package a word
    retry as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends $missing
    log "apt: installed in $((SECONDS - started))s"
}

coredns_recipe() { echo "coredns=$COREDNS_VERSION plugins=bind,errors,health,kubernetes,log,ready flags=-trimpath,-s,-w,cgo=0"; }

coredns_built() {
    [ -x "$COREDNS_DIR/coredns" ] && [ "$(cat "$COREDNS_DIR/.built" 2>/dev/null)" = "$(coredns_recipe)" ]
}

# CoreDNS with only the plugins the node's Corefile uses (a custom main in a throwaway module,
# as CoreDNS documents for external builds): a fraction of the full build's compile time.
build_coredns() {
    command -v go >/dev/null 2>&1 || die "go is not on PATH"
    mkdir -p "$NODE_CACHE"
    exec 8>"$NODE_CACHE/.coredns.lock"
    flock 8
    if coredns_built; then
        log "CoreDNS $COREDNS_VERSION already built in $COREDNS_DIR"
        return 0
    fi
    local started=$SECONDS src="$COREDNS_DIR/src"
    rm -rf "$COREDNS_DIR"
    mkdir -p "$src"
    (
        export GOCACHE="$COREDNS_DIR/go/build-cache" GOMODCACHE="$COREDNS_DIR/go/mod-cache"
        export GOFLAGS=-modcacherw GOTOOLCHAIN=local CGO_ENABLED=0
        cd "$src"
        cat >go.mod <<EOF
// Generated by scripts/kube-node.sh: CoreDNS $COREDNS_VERSION with the test node's plugins.
module weir.dev/kube-node-coredns

go 1.26.0

require github.com/coredns/coredns $COREDNS_VERSION
EOF
        cat >main.go <<'EOF'
// Generated by scripts/kube-node.sh: CoreDNS with the plugins the test node's Corefile uses.
package main

import (
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
EOF
        if ! retry go mod tidy 2>"$COREDNS_DIR/go-mod.log"; then
            tail -n 30 "$COREDNS_DIR/go-mod.log" >&2
            die "resolving CoreDNS's modules failed (log: $COREDNS_DIR/go-mod.log)"
        fi
        log "go build CoreDNS $COREDNS_VERSION"
        go build -p "${KUBE_BUILD_JOBS:-2}" -trimpath \
            -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
            -o "$COREDNS_DIR/coredns" .
    )
    coredns_recipe >"$COREDNS_DIR/.built"
    rm -rf "$COREDNS_DIR/go"
    log "built CoreDNS in $((SECONDS - started))s ($(du -h "$COREDNS_DIR/coredns" | cut -f1))"
}

tools_recipe() {
    (cd "$TOOLS_SRC" && find . -type f \( -name '*.go' -o -name go.mod \) -print0 | sort -z |
        xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
    go env GOVERSION
}

tools_built() {
    [ -x "$TOOLS_DIR/pause" ] && [ -x "$TOOLS_DIR/weir-node-tool" ] &&
        [ "$(cat "$TOOLS_DIR/.built" 2>/dev/null)" = "$(tools_recipe)" ]
}

# The pause program of the pod sandbox and the smoke test's probe: static (CGO off), so each
# runs alone in a scratch image.
build_tools() {
    command -v go >/dev/null 2>&1 || die "go is not on PATH"
    mkdir -p "$NODE_CACHE"
    exec 7>"$NODE_CACHE/.tools.lock"
    flock 7
    if tools_built; then
        log "node tools already built in $TOOLS_DIR"
        return 0
    fi
    local started=$SECONDS
    rm -rf "$TOOLS_DIR"
    mkdir -p "$TOOLS_DIR"
    (
        cd "$TOOLS_SRC"
        export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=
        go build -trimpath -ldflags "-s -w" -o "$TOOLS_DIR/pause" ./pause
        go build -trimpath -ldflags "-s -w" -o "$TOOLS_DIR/weir-node-tool" ./node-tool
    )
    tools_recipe >"$TOOLS_DIR/.built"
    log "built the node tools in $((SECONDS - started))s"
}

install_all() {
    local started=$SECONDS
    install_packages
    # Not retried as a whole: the build retries its downloads itself.
    bash "$SCRIPTS/kube-control-plane.sh" build
    build_coredns
    build_tools
    log "install done in $((SECONDS - started))s"
}

# Prints what is missing, one item a line; prints nothing when `up` can run.
missing() {
    local package binary bin
    for package in $(missing_packages); do
        echo "Debian package $package"
    done
    bin="$(kube_bin_dir)"
    for binary in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
        [ -x "$bin/$binary" ] || echo "$bin/$binary (scripts/kube-control-plane.sh build)"
    done
    coredns_built || echo "CoreDNS $COREDNS_VERSION in $COREDNS_DIR"
    command -v go >/dev/null 2>&1 && tools_built || echo "the node tools in $TOOLS_DIR"
    [ "$(id -u)" -eq 0 ] || echo "root"
}

installed() {
    local what
    what="$(missing)"
    if [ -n "$what" ]; then
        printf 'missing for the test node (scripts/kube-node.sh install): %s\n' "$what" | paste -sd' ' >&2
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# up: certificates and kubeconfigs

# new_key FILE: an ECDSA P-256 key, PKCS#8.
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# issue NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]: pki/NAME.key and pki/NAME.crt,
# signed by the node's CA. Client certificates carry the user as CN and the group as O, as
# kube-apiserver's x509 authenticator reads them.
issue() {
    local name="$1" subject="$2" usage="$3" sans="${4:-}"
    new_key "$PKI/$name.key"
    local extensions=(-addext "basicConstraints=critical,CA:FALSE"
        -addext "keyUsage=critical,digitalSignature,keyEncipherment"
        -addext "extendedKeyUsage=$usage")
    [ -z "$sans" ] || extensions+=(-addext "subjectAltName=$sans")
    openssl req -x509 -new -key "$PKI/$name.key" -subj "$subject" -days 30 \
        -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" "${extensions[@]}" -out "$PKI/$name.crt" 2>/dev/null
}

make_pki() {
    mkdir -p "$PKI"
    new_key "$PKI/ca.key"
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=weir-node-ca" -days 30 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$PKI/ca.crt" 2>/dev/null
    issue apiserver "/CN=kube-apiserver" serverAuth \
        "IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
    issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
    issue admin "/O=system:masters/CN=weir-admin" clientAuth
    issue kube-scheduler "/CN=system:kube-scheduler" clientAuth
    issue kube-proxy "/CN=system:kube-proxy" clientAuth
    issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
    # Service-account tokens: signed with the private key, verified with the public one.
    new_key "$PKI/service-account.key"
    openssl pkey -in "$PKI/service-account.key" -pubout -out "$PKI/service-account.pub"
}

# kubeconfig NAME USER: DIR/NAME.kubeconfig for pki/NAME.crt, certificates embedded.
kubeconfig() {
    local name="$1" user="$2"
    cat >"$DIR/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: weir-node
  cluster:
    server: https://$NODE_IP:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$name.crt")
    client-key-data: $(base64 -w0 "$PKI/$name.key")
contexts:
- name: weir-node
  context:
    cluster: weir-node
    user: $user
current-context: weir-node
EOF
}

# ---------------------------------------------------------------------------------------------
# up: processes and waiting

# start NAME COMMAND...: a daemon in its own session, output in logs/NAME.log, pid in
# pids/NAME.pid (what `down` stops).
start() {
    local name="$1"
    shift
    setsid "$@" </dev/null >>"$DIR/logs/$name.log" 2>&1 &
    echo $! >"$DIR/pids/$name.pid"
    log "started $name (pid $!)"
}

alive() { [ -f "$DIR/pids/$1.pid" ] && kill -0 "$(cat "$DIR/pids/$1.pid")" 2>/dev/null; }

# wait_for WHAT DAEMON COMMAND...: runs COMMAND until it succeeds, up to UP_TIMEOUT seconds;
# fails early, with DAEMON's log tail, when DAEMON has exited.
wait_for() {
    local what="$1" daemon="$2" deadline=$((SECONDS + UP_TIMEOUT)) started=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ! alive "$daemon"; then
            tail -n 40 "$DIR/logs/$daemon.log" >&2 || true
            die "$daemon exited while waiting for $what (log: $DIR/logs/$daemon.log)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 40 "$DIR/logs/$daemon.log" >&2 || true
            die "timed out after ${UP_TIMEOUT}s waiting for $what (log: $DIR/logs/$daemon.log)"
        fi
        sleep 0.5
    done
    log "$what ($((SECONDS - started))s)"
}

admin_curl() {
    curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"
}

kubectl() { "$BIN/kubectl" --kubeconfig "$DIR/admin.kubeconfig" "$@"; }

save_sysctls() {
    [ -f "$DIR/sysctl.saved" ] && return 0
    local key
    for key in "${SYSCTLS[@]}"; do
        if value="$(sysctl -n "$key" 2>/dev/null)"; then
            echo "$key=$value"
        fi
    done >"$DIR/sysctl.saved"
}

setup_network() {
    ip netns add "$NETNS"
    ip link add "$HOST_IF" type veth peer name "$PEER_IF" netns "$NETNS"
    ip addr add "$NODE_IP/24" dev "$HOST_IF"
    ip link set "$HOST_IF" up
    ip -n "$NETNS" addr add "$PEER_IP/24" dev "$PEER_IF"
    ip -n "$NETNS" link set "$PEER_IF" up
    ip -n "$NETNS" link set lo up
    # The host's own connections to ClusterIPs go through kube-proxy's OUTPUT rules; this route
    # keeps them (and any address of the range kube-proxy has not programmed) off eth0.
    ip route add "$SERVICE_CIDR" dev "$HOST_IF" src "$NODE_IP"
    # Pod traffic is routed by the host; bridged pod-to-pod traffic passes iptables so that
    # a Service's DNAT is undone on the reply (br_netfilter is built into this kernel).
    sysctl -qw net.ipv4.ip_forward=1
    sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null ||
        log "no net.bridge.bridge-nf-call-iptables: pod-to-Service-to-pod on the bridge may fail"
}

# kubelet refuses a cgroupRoot that does not exist: /weir-node in every v1 hierarchy (cpuset
# needs its CPUs and memory nodes copied from the parent before a task may join).
make_cgroups() {
    local hierarchy
    for hierarchy in /sys/fs/cgroup/*/; do
        mkdir -p "$hierarchy/weir-node"
    done
    if [ -f /sys/fs/cgroup/cpuset/cpuset.cpus ]; then
        cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset/weir-node/cpuset.cpus
        cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset/weir-node/cpuset.mems
    fi
}

write_configs() {
    mkdir -p "$DIR/containerd/certs.d" "$DIR/cni/net.d" "$DIR/kubelet" "$DIR/registry" "$DIR/coredns"
    cat >"$DIR/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DIR/registry/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF

    # Images come from the local registry only, over plain HTTP. Every other registry (the
    # `_default` entry) resolves to a closed loopback port, so an image named elsewhere fails
    # at once instead of waiting on DNS.
    mkdir -p "$DIR/containerd/certs.d/$REGISTRY" "$DIR/containerd/certs.d/_default"
    printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
        "$REGISTRY" "$REGISTRY" >"$DIR/containerd/certs.d/$REGISTRY/hosts.toml"
    local other
    for other in _default docker.io registry.k8s.io quay.io ghcr.io; do
        mkdir -p "$DIR/containerd/certs.d/$other"
        printf 'server = "http://127.0.0.1:9"\n' >"$DIR/containerd/certs.d/$other/hosts.toml"
    done
    cat >"$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
# Plugins that need hardware or directories this node does not have.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$DIR/containerd/containerd.sock"

[ttrpc]
  address = "$DIR/containerd/containerd.sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: containers may only raise their OOM score adjustment.
  restrict_oom_score_adj = true
  enable_selinux = false
  # The pods' network namespaces are mounted under DIR, not /var/run/netns: \`down\` removes
  # them with every other mount under DIR.
  netns_mounts_under_state_dir = true

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$DIR/cni/net.d"

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$DIR/containerd/certs.d"
EOF

    cat >"$DIR/cni/net.d/10-weir-node.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

    # No nameserver and no search domain of the host: pods see only the cluster's DNS.
    : >"$DIR/kubelet/resolv.conf"
    cat >"$DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: $NODE_IP
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$DIR/containerd/containerd.sock
cgroupDriver: cgroupfs
# Every pod cgroup under one root, so that \`down\` removes them all.
cgroupRoot: /weir-node
# This machine has cgroup v1 only.
failCgroupV1: false
failSwapOn: false
clusterDNS: [$NODE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $DIR/kubelet/resolv.conf
serializeImagePulls: false
# Mounted Secrets (certificates, CA bundles) refreshed within seconds, not a minute: the
# operator's CA renewal waits that long per phase (certificateSettleSeconds in the test).
syncFrequency: 10s
# A test machine's disk is shared with builds: evict only when it is really full.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
protectKernelDefaults: false
# Lowering one's own OOM score needs CAP_SYS_RESOURCE, which this machine does not grant.
oomScoreAdj: 0
EOF

    cat >"$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $DIR/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: $NODE_IP:10256
metricsBindAddress: $NODE_IP:10249
nodePortAddresses: [$NODE_IP/32]
# Lowering one's own OOM score needs CAP_SYS_RESOURCE, which this machine does not grant.
oomScoreAdj: 0
# Leave the host's conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF

    cat >"$DIR/coredns/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    ready $NODE_IP:$COREDNS_READY_PORT
    kubernetes $CLUSTER_DOMAIN in-addr.arpa {
        kubeconfig $DIR/admin.kubeconfig weir-node
        pods insecure
    }
}
EOF
}

# The StorageClass and the local PersistentVolumes (see the header).
storage_objects() {
    cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
    local i
    for i in $(seq -w 0 $((PV_COUNT - 1))); do
        mkdir -p "$DIR/pv/pv-$i"
        chmod 0777 "$DIR/pv/pv-$i"
        cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: weir-node-pv-$i
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  local: {path: $DIR/pv/pv-$i}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}
EOF
    done
}

# push_image NAME:TAG BINARY...: a scratch image holding the binaries at /, the first as the
# entrypoint, running as user 65534, pushed to the registry.
push_image() {
    local ref="$1" work
    shift
    work="$(mktemp -d "$DIR/image.XXXXXX")"
    umoci init --layout "$work/layout" >/dev/null
    umoci new --image "$work/layout:image" >/dev/null
    umoci unpack --image "$work/layout:image" "$work/bundle" >/dev/null
    local binary
    for binary in "$@"; do
        install -m 0755 "$binary" "$work/bundle/rootfs/$(basename "$binary")"
    done
    umoci repack --image "$work/layout:image" "$work/bundle" >/dev/null
    umoci config --image "$work/layout:image" --config.user 65534:65534 \
        --config.entrypoint "/$(basename "$1")" >/dev/null
    skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:image" "docker://$REGISTRY/$ref"
    rm -rf "$work"
    log "pushed $REGISTRY/$ref"
}

up() {
    [ "$(id -u)" -eq 0 ] || die "up needs root (network namespaces, iptables, containers)"
    installed || exit 1
    if [ -f "$ACTIVE_FILE" ]; then
        local previous
        previous="$(cat "$ACTIVE_FILE")"
        log "a node from $previous is still up: taking it down first"
        (down "$previous")
    fi
    if ip link show "$HOST_IF" >/dev/null 2>&1 || ip netns list | grep -qw "$NETNS"; then
        die "$HOST_IF or the namespace $NETNS exists but no node is recorded in $ACTIVE_FILE: remove them by hand"
    fi
    local started=$SECONDS
    mkdir -p "$DIR/logs" "$DIR/pids"
    echo "$DIR" >"$ACTIVE_FILE"
    save_sysctls
    setup_network
    make_cgroups
    make_pki
    kubeconfig admin weir-admin
    kubeconfig kube-scheduler system:kube-scheduler
    kubeconfig kube-proxy system:kube-proxy
    kubeconfig kubelet "system:node:$NODE_NAME"
    write_configs

    start registry docker-registry serve "$DIR/registry/config.yml"
    local etcd_url="http://127.0.0.1:$ETCD_CLIENT_PORT" etcd_peer_url="http://127.0.0.1:$ETCD_PEER_PORT"
    start etcd "$BIN/etcd" --name=weir-node --data-dir="$DIR/etcd" \
        --listen-client-urls="$etcd_url" --advertise-client-urls="$etcd_url" \
        --listen-peer-urls="$etcd_peer_url" --initial-advertise-peer-urls="$etcd_peer_url" \
        --initial-cluster="weir-node=$etcd_peer_url" --unsafe-no-fsync --log-level=warn
    start kube-apiserver "$BIN/kube-apiserver" --etcd-servers="$etcd_url" \
        --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$APISERVER_PORT" \
        --cert-dir="$DIR/apiserver-certs" \
        --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
        --client-ca-file="$PKI/ca.crt" --authorization-mode=Node,RBAC \
        --enable-admission-plugins=NodeRestriction \
        --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types=InternalIP \
        --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
        --service-account-key-file="$PKI/service-account.pub" \
        --service-account-signing-key-file="$PKI/service-account.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true --profiling=false
    wait_for "the registry answers" registry curl -fsS --max-time 2 "http://$REGISTRY/v2/"
    push_image weir-node/pause:1 "$TOOLS_DIR/pause"
    wait_for "the apiserver is ready" kube-apiserver admin_curl "https://$NODE_IP:$APISERVER_PORT/readyz"

    # The admin identity (system:masters): the controllers then need no per-controller
    # service-account credentials.
    start kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig="$DIR/admin.kubeconfig" --leader-elect=false --controllers='*' \
        --bind-address="$NODE_IP" \
        --service-account-private-key-file="$PKI/service-account.key" \
        --root-ca-file="$PKI/ca.crt" --service-cluster-ip-range="$SERVICE_CIDR" \
        --allocate-node-cidrs=true --cluster-cidr="$CLUSTER_CIDR" --node-cidr-mask-size=24 \
        --profiling=false
    start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$DIR/kube-scheduler.kubeconfig" \
        --authentication-kubeconfig="$DIR/kube-scheduler.kubeconfig" \
        --authorization-kubeconfig="$DIR/kube-scheduler.kubeconfig" \
        --leader-elect=false --bind-address="$NODE_IP" --profiling=false
    start containerd containerd --config "$DIR/containerd/config.toml"
    start coredns "$COREDNS_DIR/coredns" -conf "$DIR/coredns/Corefile"
    start kube-proxy "$BIN/kube-proxy" --config="$DIR/kube-proxy.yaml"
    wait_for "containerd answers" containerd ctr --address "$DIR/containerd/containerd.sock" version
    start kubelet "$BIN/kubelet" --config="$DIR/kubelet/config.yaml" \
        --kubeconfig="$DIR/kubelet.kubeconfig" --hostname-override="$NODE_NAME" \
        --node-ip="$NODE_IP" --root-dir="$DIR/kubelet/root" --cert-dir="$DIR/kubelet/pki" \
        --node-labels="topology.kubernetes.io/zone=$ZONE"

    storage_objects >"$DIR/storage.yaml"
    kubectl apply -f "$DIR/storage.yaml" >/dev/null
    write_env
    wait_for "node $NODE_NAME is Ready" kubelet node_ready
    wait_for "the default service account exists" kube-controller-manager \
        kubectl get serviceaccount default -n default
    wait_for "the kubernetes Service reaches the apiserver through kube-proxy" kube-proxy \
        admin_curl "https://$KUBERNETES_SERVICE_IP/readyz"
    wait_for "CoreDNS is ready" coredns curl -fsS --max-time 2 "http://$NODE_IP:$COREDNS_READY_PORT/ready"
    wait_for "CoreDNS resolves kubernetes.default.svc.$CLUSTER_DOMAIN" coredns dns_answers
    log "node $NODE_NAME up in $((SECONDS - started))s; environment in $DIR/env"
}

node_ready() {
    [ "$(kubectl get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

dns_answers() {
    "$TOOLS_DIR/weir-node-tool" resolve "kubernetes.default.svc.$CLUSTER_DOMAIN" "$NODE_IP:53" |
        grep -qx "address $KUBERNETES_SERVICE_IP"
}

write_env() {
    cat >"$DIR/env" <<EOF
KUBECONFIG=$DIR/admin.kubeconfig
WEIR_NODE_DIR=$DIR
WEIR_NODE_NAME=$NODE_NAME
WEIR_NODE_ZONE=$ZONE
WEIR_NODE_IP=$NODE_IP
WEIR_NODE_REGISTRY=$REGISTRY
WEIR_NODE_KUBECTL=$BIN/kubectl
WEIR_NODE_STORAGE_CLASS=local
WEIR_NODE_POD_CIDR=$POD_CIDR
WEIR_NODE_SERVICE_CIDR=$SERVICE_CIDR
WEIR_NODE_CLUSTER_DOMAIN=$CLUSTER_DOMAIN
EOF
}

# ---------------------------------------------------------------------------------------------
# down: every step tolerates what is already gone, so `down` can follow a failed `up`.

# stop NAME...: SIGTERM to all of them at once, up to 15 s for them to exit, then SIGKILL.
stop() {
    local name pid deadline
    declare -A pids=()
    for name in "$@"; do
        if [ -f "$DIR/pids/$name.pid" ]; then
            pid="$(cat "$DIR/pids/$name.pid")"
            kill -TERM "$pid" 2>/dev/null && pids[$name]="$pid"
        fi
    done
    deadline=$((SECONDS + 15))
    for name in "${!pids[@]}"; do
        pid="${pids[$name]}"
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) ignored SIGTERM for 15s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for name in "$@"; do
        rm -f "$DIR/pids/$name.pid"
    done
}

# The containers' processes: every task of our containerd killed and deleted (which unmounts
# its root file system), then any shim of ours still running.
remove_containers() {
    local socket="$DIR/containerd/containerd.sock" task
    if [ -S "$socket" ] && alive containerd; then
        local ctr=(ctr --address "$socket" --namespace k8s.io --timeout 10s)
        for task in $("${ctr[@]}" tasks list -q 2>/dev/null); do
            "${ctr[@]}" tasks kill --all --signal SIGKILL "$task" >/dev/null 2>&1 || true
        done
        for task in $("${ctr[@]}" tasks list -q 2>/dev/null); do
            "${ctr[@]}" tasks delete --force "$task" >/dev/null 2>&1 || true
        done
    fi
    local cmdline pid
    for cmdline in $(grep -lsaF -- "$socket" /proc/[0-9]*/cmdline); do
        pid="${cmdline#/proc/}"
        pid="${pid%/cmdline}"
        case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
            containerd-shim*) kill -KILL "$pid" 2>/dev/null || true ;;
        esac
    done
}


# Rules and chains of kube-proxy (KUBE-*), kubelet (KUBE-*) and the CNI plugins (CNI-*) in
# every table. The machine runs one Kubernetes node at a time, so all of them are ours.
remove_iptables_rules() {
    local family saved
    for family in iptables ip6tables; do
        command -v "$family-save" >/dev/null 2>&1 || continue
        saved="$("$family-save" 2>/dev/null)" || continue
        grep -qE 'KUBE-|CNI-' <<<"$saved" || continue
        grep -vE '(^:(KUBE|CNI)-)|(-j (KUBE|CNI)-)|(^-A (KUBE|CNI)-)' <<<"$saved" | "$family-restore" ||
            log "$family-restore failed: KUBE-/CNI- rules may remain"
    done
}

# Anything still mounted under DIR (pod volumes, container root file systems), deepest first.
unmount_all() {
    local mount_point
    for mount_point in $(awk -v dir="$DIR/" 'index($5, dir) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
        umount "$mount_point" 2>/dev/null || umount -l "$mount_point" 2>/dev/null || true
    done
}

remove_cgroups() {
    local root
    for root in /sys/fs/cgroup/*/weir-node; do
        [ -d "$root" ] && find "$root" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
}

restore_sysctls() {
    [ -f "$DIR/sysctl.saved" ] || return 0
    local line
    while IFS= read -r line; do
        sysctl -qw "$line" 2>/dev/null || log "could not restore $line"
    done <"$DIR/sysctl.saved"
}

down() {
    DIR="$1"
    local started=$SECONDS
    # The kubelet first, so that it does not restart the containers being removed.
    stop kubelet
    remove_containers
    # The rest at once but etcd, which goes last: the apiserver's graceful shutdown hangs
    # without it.
    local daemon rest=()
    for daemon in "${DAEMONS[@]}"; do
        [ "$daemon" = etcd ] || rest+=("$daemon")
    done
    stop "${rest[@]}"
    stop etcd
    remove_iptables_rules
    # Unmounting the pods' network namespaces (under DIR) frees them and their veths.
    unmount_all
    ip link delete "$BRIDGE" 2>/dev/null || true
    remove_cgroups
    ip netns delete "$NETNS" 2>/dev/null || true
    ip link delete "$HOST_IF" 2>/dev/null || true
    restore_sysctls
    rm -f "$ACTIVE_FILE"
    local left
    left="$(awk -v dir="$DIR/" 'index($5, dir) == 1 {print $5}' /proc/self/mountinfo)"
    [ -z "$left" ] || die "still mounted under $DIR: $left"
    log "node in $DIR down in $((SECONDS - started))s"
}

# ---------------------------------------------------------------------------------------------

need_dir() {
    [ -n "${1:-}" ] || usage
    mkdir -p "$1"
    DIR="$(cd "$1" && pwd)"
    PKI="$DIR/pki"
    BIN="$(kube_bin_dir)"
}

case "${1:-}" in
    install) install_all ;;
    installed) installed ;;
    up)
        need_dir "${2:-}"
        up
        ;;
    down)
        need_dir "${2:-}"
        down "$DIR"
        ;;
    push-binary)
        [ $# -ge 4 ] || usage
        need_dir "$2"
        push_image "$3" "${@:4}"
        echo "$REGISTRY/$3"
        ;;
    push-oci)
        [ $# -eq 4 ] || usage
        need_dir "$2"
        skopeo copy --quiet --dest-tls-verify=false "oci:$3" "docker://$REGISTRY/$4"
        log "pushed $REGISTRY/$4"
        echo "$REGISTRY/$4"
        ;;
    tools-dir) echo "$TOOLS_DIR" ;;
    versions) echo "$(bash "$SCRIPTS/kube-control-plane.sh" versions) coredns $COREDNS_VERSION" ;;
    *) usage ;;
esac
