#!/usr/bin/env bash
# The tools of the chart's static checks and of the monitoring tests, built with Go from the
# module proxy at pinned versions into the cache:
#
#   scripts/chart-tools.sh build      build whatever is missing (a no-op once built: one stamp
#                                     file per tool records what was built)
#   scripts/chart-tools.sh bin-dir    print the directory holding helm, kubeconform, prometheus
#                                     and promtool
#   scripts/chart-tools.sh crd-dir    print the directory holding the Prometheus Operator CRDs
#                                     (ServiceMonitor, PodMonitor, PrometheusRule, ...)
#   scripts/chart-tools.sh versions   print the pinned versions
#
# - helm v4 and kubeconform: `go install` of their commands.
# - prometheus and promtool: `go install` of Prometheus 3 (module v0.3xx.y = Prometheus 3.xx.y)
#   with the build tags `remove_all_sd,enable_kubernetes_sd`: Kubernetes service discovery is
#   the only discoverer compiled in (the cloud ones roughly double the build), and no embedded
#   web UI assets (the UI is not needed to scrape, evaluate rules or answer the HTTP API).
# - the Prometheus Operator CRDs: the YAML files of example/prometheus-operator-crd/ in the
#   module zip of github.com/prometheus-operator/prometheus-operator (`go mod download`).
#
# The Go build and module caches live under the cache directory only while a build runs and
# are removed after it succeeds; what stays is the binaries and the CRD files.
#
#   HELM_VERSION                default v4.3.2
#   KUBECONFORM_VERSION         default v0.8.0
#   PROMETHEUS_VERSION          default v0.316.0 (Prometheus 3.16.0)
#   PROMETHEUS_OPERATOR_VERSION default v0.85.0
#   WEIR_CACHE_DIR              default ~/.cache/weir; tools go to $WEIR_CACHE_DIR/chart-tools
#   TOOLS_BUILD_JOBS            parallel compile jobs (go build -p), default 2
#
# Needs Go (1.26 or later) and flock (util-linux).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
TOOLS_BUILD_JOBS="${TOOLS_BUILD_JOBS:-2}"
ROOT="${WEIR_CACHE_DIR:-$HOME/.cache/weir}/chart-tools"
BIN="$ROOT/bin"
CRDS="$ROOT/prometheus-operator-crds"
PROMETHEUS_TAGS="remove_all_sd,enable_kubernetes_sd"
FLAGS="-trimpath -ldflags=-s -ldflags=-w cgo=0"

log() { printf '[chart-tools] %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
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

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# is_built NAME RECIPE FILE...: the stamp of NAME records RECIPE and every FILE exists.
is_built() {
    local name="$1" recipe="$2"
    shift 2
    [ -f "$ROOT/.$name.built" ] && [ "$(cat "$ROOT/.$name.built")" = "$recipe" ] || return 1
    local file
    for file in "$@"; do
        [ -e "$file" ] || return 1
    done
}

stamp() { echo "$2" >"$ROOT/.$1.built"; }

# go_install NAME RECIPE TAGS PACKAGE@VERSION...: go install into $BIN, timed.
go_install() {
    local name="$1" recipe="$2" tags="$3"
    shift 3
    local binaries=() package
    for package in "$@"; do
        package="${package%@*}"
        binaries+=("$BIN/${package##*/}")
    done
    if is_built "$name" "$recipe" "${binaries[@]}"; then
        log "$name already built ($recipe)"
        return 0
    fi
    local started=$SECONDS
    log "go install $* (tags: ${tags:-none})"
    # GOBIN: go install writes the binaries straight into $BIN.
    for package in "$@"; do
        CGO_ENABLED=0 GOBIN="$BIN" retry go install -p "$TOOLS_BUILD_JOBS" -trimpath \
            -ldflags "-s -w" -tags "$tags" "$package"
    done
    stamp "$name" "$recipe"
    local sizes=() binary
    for binary in "${binaries[@]}"; do
        sizes+=("$(basename "$binary") $(du -h "$binary" | cut -f1)")
    done
    log "built $name in $((SECONDS - started))s (${sizes[*]})"
}

prometheus_operator_crds() {
    local recipe="prometheus-operator=$PROMETHEUS_OPERATOR_VERSION"
    if is_built prometheus-operator-crds "$recipe" "$CRDS/monitoring.coreos.com_podmonitors.yaml"; then
        log "Prometheus Operator CRDs already in $CRDS ($recipe)"
        return 0
    fi
    local started=$SECONDS module="github.com/prometheus-operator/prometheus-operator"
    local dir
    dir="$(retry go mod download -json "$module@$PROMETHEUS_OPERATOR_VERSION" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')"
    [ -d "$dir/example/prometheus-operator-crd" ] ||
        die "no example/prometheus-operator-crd in $module@$PROMETHEUS_OPERATOR_VERSION"
    rm -rf "$CRDS"
    mkdir -p "$CRDS"
    cp "$dir"/example/prometheus-operator-crd/*.yaml "$CRDS/"
    stamp prometheus-operator-crds "$recipe"
    log "Prometheus Operator CRDs in $CRDS in $((SECONDS - started))s ($(du -sh "$CRDS" | cut -f1))"
}

build() {
    command -v go >/dev/null 2>&1 || die "go is not on PATH"
    command -v flock >/dev/null 2>&1 || die "flock is not on PATH (util-linux)"
    mkdir -p "$ROOT" "$BIN"
    # Concurrent test processes may all ask for the build: one builds, the others wait.
    exec 9>"$ROOT/.lock"
    flock 9
    local started=$SECONDS
    # Private Go caches, removed once everything is built; -modcacherw lets rm delete them.
    export GOCACHE="$ROOT/go/build-cache"
    export GOMODCACHE="$ROOT/go/mod-cache"
    export GOFLAGS="-modcacherw"
    export GOTOOLCHAIN=local

    go_install helm "helm=$HELM_VERSION $FLAGS" "" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
    go_install kubeconform "kubeconform=$KUBECONFORM_VERSION $FLAGS" "" \
        "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
    go_install prometheus "prometheus=$PROMETHEUS_VERSION tags=$PROMETHEUS_TAGS $FLAGS" \
        "$PROMETHEUS_TAGS" \
        "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
        "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
    prometheus_operator_crds

    if [ -d "$ROOT/go" ]; then
        rm -rf "$ROOT/go"
        log "all built in $((SECONDS - started))s ($(du -sh "$BIN" | cut -f1) of binaries)"
    fi
}

case "${1:-}" in
    build) build ;;
    bin-dir) echo "$BIN" ;;
    crd-dir) echo "$CRDS" ;;
    versions)
        echo "helm $HELM_VERSION kubeconform $KUBECONFORM_VERSION prometheus $PROMETHEUS_VERSION" \
            "prometheus-operator $PROMETHEUS_OPERATOR_VERSION"
        ;;
    *) usage ;;
esac
