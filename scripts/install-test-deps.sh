#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian 12 machine with Rust (rustup) on it.
# Idempotent: installs only what is missing, so running it again costs seconds.
#
# - C toolchain, make and pkg-config: rdkafka-sys builds the bundled librdkafka with its
#   ./configure + make; zstd-sys and libz-sys compile bundled C; libfuzzer-sys compiles
#   libFuzzer (C++).
# - zlib1g-dev: libz-sys links the system zlib when it finds it.
# - kcat: the command-line Kafka client of the kcat smoke test.
# - iproute2, iptables: the nemesis's network namespaces, veths and one-way cuts.
# - rustfmt and clippy: lint steps of scripts/test.sh.
# - cargo-fuzz: the bounded fuzz run (scripts/fuzz.sh).
# - the Apache Kafka Java client jars (Maven): the Java client compatibility test.
# - Apache Kafka's tools jars (Maven; 4.3's too, for kafka-share-groups): kafka-consumer-groups, kafka-configs,
#   kafka-delete-records, kafka-reassign-partitions and friends against the broker.
# - Kafka Connect (Maven): a distributed worker with the file connectors against the broker.
# - Kafka Streams (Maven): Kafka's WordCountDemo application against the broker.
# - the Kubernetes binaries (kube-apiserver, kube-controller-manager, etcd for the stand-in
#   tier; kubelet, kube-scheduler, kube-proxy, kubectl for the real-node tier), built with Go
#   from the module proxy by scripts/kube-control-plane.sh into ~/.cache/weir, and the rest of
#   the real test node (scripts/kube-node.sh install: containerd, runc, CNI plugins, a registry,
#   skopeo, umoci, iptables from Debian; CoreDNS and the node's Go tools): see
#   docs/testing.md for the cold cost; a no-op once cached.
# - helm, kubeconform, prometheus, promtool and the Prometheus Operator CRDs for the chart's
#   checks, built with Go by scripts/chart-tools.sh into ~/.cache/weir (a no-op once cached).
set -euo pipefail

APT_PACKAGES=(build-essential pkg-config zlib1g-dev libssl-dev kcat iproute2 iptables)

log() { printf '[install-test-deps] %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root (or sudo) to run: $*"
        return 1
    fi
}

# Retries a command a few times: package mirrors have bad moments.
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

missing=()
for package in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    retry as_root apt-get update -qq
    retry as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    log "apt: ${APT_PACKAGES[*]} already installed"
fi

if ! command -v cargo >/dev/null 2>&1; then
    log "cargo is not on PATH: install Rust with rustup first"
    exit 1
fi

for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
        log "rustup: adding $component"
        retry rustup component add "$component"
    fi
done

if cargo fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz already installed ($(cargo fuzz --version))"
else
    log "cargo install cargo-fuzz --locked"
    retry cargo install cargo-fuzz --locked
fi

# The Apache Kafka Java client for tests/tests/java_client.rs (Java and Maven come with the
# machine; Debian's default-jdk-headless and maven otherwise).
if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    log "apt: installing default-jdk-headless maven"
    retry as_root apt-get update -qq
    retry as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends default-jdk-headless maven
fi
java_deps="$(cd "$(dirname "$0")/.." && pwd)/target/java-client-deps"
if [ -f "$java_deps/kafka-clients-4.1.1.jar" ]; then
    log "Kafka Java client already in $java_deps"
else
    log "mvn: copying the Kafka Java client into $java_deps"
    retry mvn -q -B -f "$(dirname "$0")/../tests/java/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$java_deps"
fi

# The Apache Kafka 4.3 Java client, whose KafkaShareConsumer tests/tests/share_groups.rs runs
# (share groups need a newer client than the 4.1 one above).
share_deps="$(cd "$(dirname "$0")/.." && pwd)/target/java-share-client-deps"
if [ -f "$share_deps/kafka-clients-4.3.2.jar" ]; then
    log "Kafka 4.3 Java client already in $share_deps"
else
    log "mvn: copying the Kafka 4.3 Java client into $share_deps"
    retry mvn -q -B -f "$(dirname "$0")/../tests/java/share-pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$share_deps"
fi

# Apache Kafka's command-line tools (kafka-consumer-groups and friends) for
# tests/tests/kafka_tools.rs.
tools_deps="$(cd "$(dirname "$0")/.." && pwd)/target/kafka-tools-deps"
if [ -f "$tools_deps/kafka-tools-4.1.1.jar" ] && [ -f "$tools_deps/kafka_2.13-4.1.1.jar" ]; then
    log "Kafka tools already in $tools_deps"
else
    log "mvn: copying the Kafka tools into $tools_deps"
    retry mvn -q -B -f "$(dirname "$0")/../tests/java/tools-pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$tools_deps"
fi

# Apache Kafka 4.3's tools for tests/tests/share_admin_tools.rs: kafka-share-groups (4.1's
# does not implement --reset-offsets).
share_tools_deps="$(cd "$(dirname "$0")/.." && pwd)/target/kafka-share-tools-deps"
if [ -f "$share_tools_deps/kafka-tools-4.3.2.jar" ]; then
    log "Kafka 4.3 tools already in $share_tools_deps"
else
    log "mvn: copying the Kafka 4.3 tools into $share_tools_deps"
    retry mvn -q -B -f "$(dirname "$0")/../tests/java/share-tools-pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$share_tools_deps"
fi

# Kafka Connect's distributed worker and file connectors for tests/tests/kafka_connect.rs.
connect_deps="$(cd "$(dirname "$0")/.." && pwd)/target/kafka-connect-deps"
if [ -f "$connect_deps/connect-file-4.1.1.jar" ]; then
    log "Kafka Connect already in $connect_deps"
else
    log "mvn: copying Kafka Connect into $connect_deps"
    retry mvn -q -B -f "$(dirname "$0")/../tests/java/connect-pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$connect_deps"
fi

# A Kafka Streams application (Kafka's WordCountDemo) for tests/tests/kafka_streams.rs.
streams_deps="$(cd "$(dirname "$0")/.." && pwd)/target/kafka-streams-deps"
if [ -f "$streams_deps/kafka-streams-examples-4.0.0.jar" ]; then
    log "Kafka Streams example already in $streams_deps"
else
    log "mvn: copying the Kafka Streams example into $streams_deps"
    retry mvn -q -B -f "$(dirname "$0")/../tests/java/streams-pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$streams_deps"
fi

# franz-go's own integration tests (pkg/kgo), compiled once into a test binary that
# tests/tests/franz_go.rs runs against Weir; rebuilt when tests/go/franz/go.mod changes.
franz_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/go/franz"
franz_bin="$(cd "$(dirname "$0")/.." && pwd)/target/franz-go/kgo.test"
if command -v go >/dev/null 2>&1; then
    if [ -x "$franz_bin" ] && [ "$franz_bin" -nt "$franz_dir/go.mod" ]; then
        log "franz-go test binary already in $franz_bin"
    else
        log "go: building franz-go's pkg/kgo tests into $franz_bin"
        mkdir -p "$(dirname "$franz_bin")"
        (cd "$franz_dir" && retry go mod download && go test -c -o "$franz_bin" github.com/twmb/franz-go/pkg/kgo)
    fi
fi

# The Kubernetes control plane of tests/tests/kube_*.rs and the real node of
# tests/tests/kube_node.rs (Go comes with the machine).
if ! command -v go >/dev/null 2>&1; then
    log "go is not on PATH: the Kubernetes binaries and CoreDNS are built with Go"
    exit 1
fi
# Not retried as a whole (a failed compile fails again, minutes later): the scripts retry
# their downloads themselves. kube-node.sh install runs kube-control-plane.sh build.
bash "$(dirname "$0")/kube-node.sh" install
# helm, kubeconform, Prometheus and promtool, the Prometheus Operator CRDs (tests/tests/chart.rs
# and the real-node monitoring test).
bash "$(dirname "$0")/chart-tools.sh" build

# --- container images -------------------------------------------------------------------
# umoci and skopeo (Debian) for scripts/build-images.sh and tests/tests/images.rs: the image is
# assembled without a Docker daemon. The script installs only what is missing.
bash "$(dirname "$0")/build-images.sh" install-tools
# --- end of container images -------------------------------------------------------------

log "done"
