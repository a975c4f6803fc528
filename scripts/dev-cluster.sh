#!/usr/bin/env bash
# A local Weir cluster on loopback for trying replication:
#
#   scripts/dev-cluster.sh start [N]   # N brokers (default 3), all voters; prints bootstrap servers
#   scripts/dev-cluster.sh stop        # SIGTERM: controlled shutdown of every broker, then exit
#   scripts/dev-cluster.sh status      # which brokers run
#
# Broker i listens on 127.0.0.1:19${i}92 (Kafka), 19${i}93 (internal: Raft, controller, admin
# gRPC) and 19${i}44 (metrics). Data and logs live in ${WEIR_DEV_DIR:-./weir-dev-cluster}/broker-$i.
# Extra broker settings: WEIR_DEV_SET='key=value;key=value'.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${WEIR_DEV_DIR:-$PWD/weir-dev-cluster}"
cmd="${1:-}"
count="${2:-3}"

port() { echo "19${1}${2}"; }

case "$cmd" in
  start)
    if ! [[ "$count" =~ ^[1-9]$ ]]; then
      echo "dev-cluster: the broker count must be 1-9, got '$count'" >&2
      exit 2
    fi
    (cd "$root" && cargo build --release -q -p weir-broker)
    bin="$root/target/release/weir-broker"
    mkdir -p "$dir"
    voters=""
    for ((i = 0; i < count; i++)); do
      voters+="${voters:+,}$i@127.0.0.1:$(port "$i" 93)"
    done
    for ((i = 0; i < count; i++)); do
      if [[ -f "$dir/broker-$i.pid" ]] && kill -0 "$(cat "$dir/broker-$i.pid")" 2>/dev/null; then
        echo "dev-cluster: broker $i already runs (pid $(cat "$dir/broker-$i.pid"))" >&2
        exit 1
      fi
      mkdir -p "$dir/broker-$i"
      WEIR_SET="${WEIR_DEV_SET:-}" "$bin" --node-id "$i" --data-dir "$dir/broker-$i/data" \
        --listen "127.0.0.1:$(port "$i" 92)" --rpc-listen "127.0.0.1:$(port "$i" 93)" \
        --metrics-listen "127.0.0.1:$(port "$i" 44)" --voters "$voters" \
        >"$dir/broker-$i/stdout.log" 2>"$dir/broker-$i/stderr.log" &
      echo $! >"$dir/broker-$i.pid"
    done
    # Ready once every broker printed its ready line (a quorum must form first).
    for ((i = 0; i < count; i++)); do
      for _ in $(seq 1 600); do
        grep -q "weir-broker ready" "$dir/broker-$i/stdout.log" 2>/dev/null && break
        if ! kill -0 "$(cat "$dir/broker-$i.pid")" 2>/dev/null; then
          echo "dev-cluster: broker $i exited; see $dir/broker-$i/stderr.log" >&2
          exit 1
        fi
        sleep 0.1
      done
      grep -q "weir-broker ready" "$dir/broker-$i/stdout.log" || {
        echo "dev-cluster: broker $i not ready after 60 s; see $dir/broker-$i/stderr.log" >&2
        exit 1
      }
    done
    servers=""
    for ((i = 0; i < count; i++)); do servers+="${servers:+,}127.0.0.1:$(port "$i" 92)"; done
    echo "dev-cluster: $count brokers ready; bootstrap servers: $servers"
    ;;
  stop)
    shopt -s nullglob
    pids=()
    for f in "$dir"/broker-*.pid; do
      pid="$(cat "$f")"
      if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" && pids+=("$pid")
      fi
    done
    for pid in "${pids[@]}"; do
      for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    rm -f "$dir"/broker-*.pid
    echo "dev-cluster: stopped ${#pids[@]} broker(s)"
    ;;
  status)
    shopt -s nullglob
    for f in "$dir"/broker-*.pid; do
      pid="$(cat "$f")"
      state=stopped
      kill -0 "$pid" 2>/dev/null && state="running (pid $pid)"
      echo "$(basename "$f" .pid): $state"
    done
    ;;
  *)
    echo "usage: scripts/dev-cluster.sh start [N] | stop | status" >&2
    exit 2
    ;;
esac
