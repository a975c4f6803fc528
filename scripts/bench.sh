#!/usr/bin/env bash
# The full comparison behind docs/BENCHMARKS.md: Weir against Apache Kafka on this machine,
# through the same client, alternating brokers (A B A B), medians of ROUNDS runs per row.
# Builds release binaries, fetches Kafka (scripts/kafka.sh), runs `weir-bench compare`, and
# rewrites the marked results section of docs/BENCHMARKS.md. Takes about 20 minutes on two
# cores for single nodes; not part of CI (CI runs `weir-bench smoke`, see scripts/test.sh).
#
#   ROUNDS           broker starts per broker and phase (default 5)
#   CLUSTER          e.g. 3: three brokers of each system per run, topics with RF 3 and
#                    min.insync.replicas=2, acks=all; the cluster section of the document and
#                    target/bench/results-cluster-3.json (default: single nodes)
#   KAFKA_VERSION    see scripts/kafka.sh (default 4.3.1)
#   KAFKA_HEAP_OPTS  default "-Xmx1g -Xms1g" (each node of a cluster)
#   extra arguments go to `weir-bench compare` (e.g. --records-1k 100000 --latency-rate 40000)
#
#   scripts/bench.sh failover [ARGS...]
#                    availability under faults instead (issue 13): three brokers of each
#                    system, a steady idempotent acks=all producer and a committing group
#                    member, SIGKILL/SIGSTOP of leaders, of the quorum leader, of the group
#                    coordinator and of two brokers at once; rewrites the failover section of
#                    docs/BENCHMARKS.md and target/bench/failover.json. About 15 minutes per
#                    system at 5 repetitions. ARGS go to `weir-bench failover` (e.g.
#                    --repetitions 3 --faults leader-kill --systems weir).
#   scripts/bench.sh transactions [ARGS...]
#                    transactions instead (issue 15): a transactional producer committing every
#                    100 and every 1,000 records (1 KiB) and a read_committed consumer's
#                    end-to-end latency, three brokers of each system (CLUSTER, default 3),
#                    ROUNDS default 3; rewrites the Transactions section of docs/BENCHMARKS.md
#                    and target/bench/results-transactions-cluster-3.json. About 15 minutes.
#                    ARGS go to `weir-bench compare` (e.g. --transactions-per-case 100).
#   PROFILE          failover only: the weir-broker build, release (default) or debug (the gaps
#                    are dominated by timeouts, and a debug build is minutes instead of tens)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = failover ]; then
    shift
    profile="${PROFILE:-release}"
    if [ "$profile" = release ]; then
        cargo build --release -p weir-broker -p weir-bench
    else
        cargo build -p weir-broker -p weir-bench
    fi
    bash scripts/kafka.sh fetch
    weir_version="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if ! git diff --quiet HEAD -- broker 2>/dev/null; then
        weir_version="$weir_version+local-changes"
    fi
    case "$profile" in
    release | debug) bin="target/$profile" ;;
    *) echo "PROFILE must be release or debug, not $profile" >&2 && exit 2 ;;
    esac
    exec "$bin/weir-bench" failover \
        --weir-broker "$bin/weir-broker" \
        --weir-build "$profile" \
        --kafka-script scripts/kafka.sh \
        --work-dir target/bench \
        --doc docs/BENCHMARKS.md \
        --weir-version "$weir_version" \
        --kafka-version "$(bash scripts/kafka.sh version)" \
        "$@"
fi

export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1g -Xms1g}"
topology=(--results target/bench/results.json)
if [ "${1:-}" = transactions ]; then
    shift
    ROUNDS="${ROUNDS:-3}"
    CLUSTER="${CLUSTER:-3}"
    topology=(--transactions --cluster "$CLUSTER"
        --results "target/bench/results-transactions-cluster-$CLUSTER.json")
elif [ -n "${CLUSTER:-}" ]; then
    topology=(--cluster "$CLUSTER" --results "target/bench/results-cluster-$CLUSTER.json")
fi
ROUNDS="${ROUNDS:-5}"

cargo build --release -p weir-broker -p weir-bench
bash scripts/kafka.sh fetch
weir_version="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- broker 2>/dev/null; then
    weir_version="$weir_version+local-changes"
fi

target/release/weir-bench compare \
    --rounds "$ROUNDS" \
    "${topology[@]}" \
    --weir-broker target/release/weir-broker \
    --kafka-script scripts/kafka.sh \
    --work-dir target/bench \
    --doc docs/BENCHMARKS.md \
    --weir-version "$weir_version" \
    --kafka-version "$(bash scripts/kafka.sh version)" \
    --kafka-heap="$KAFKA_HEAP_OPTS" \
    "$@"
