#!/usr/bin/env bash
# The nemesis at length: the same harness as tests/tests/nemesis.rs (tests/src/nemesis/),
# with more faults. Three weir-broker processes, an idempotent acks=all producer, a
# consumer group committing synchronously and a transactional consume-process-produce loop;
# SIGKILL/SIGSTOP faults, network partitions between network namespaces and a full disk
# (those two need root; run as root or with sudo), then the checker and the report table.
# See docs/testing.md, "The nemesis".
#
#   WEIR_NEMESIS_FAULTS          faults to inject (default 200)
#   WEIR_NEMESIS_SEED            seed of the fault schedule (default: from the clock; printed)
#   WEIR_NEMESIS_DURATION_S      stop injecting after this many seconds (default: no limit)
#   WEIR_NEMESIS_PARTITIONS      partitions of the workload topic (default 6)
#   WEIR_NEMESIS_MEMBERS         consumer group members (default 3)
#   WEIR_NEMESIS_PROCESSORS      transactional processors (default 2)
#   WEIR_NEMESIS_ASSIGN_BOUND_S  a member must hold partitions again within this (default 60)
#   WEIR_NEMESIS_MEMORY_LIMIT_MB peak RSS allowed per broker (default 1024)
#   WEIR_NEMESIS_DISK_MB         size of each broker's tmpfs data directory (default 512; the
#                                whole run's log must fit: raise it for runs of hours)
#   WEIR_NEMESIS_KINDS           only these faults, named as the report names them, separated
#                                by commas (e.g. "isolate group coordinator,kill group coordinator")
#   WEIR_NEMESIS_PRODUCER_DEBUG  librdkafka debug contexts of the idempotent producer, printed
#                                (e.g. eos,msg; WEIR_NEMESIS_TXN_DEBUG: the same for the processors)
#   WEIR_NEMESIS_BROKER_LOG      the brokers' WEIR_LOG filter (e.g. info,weir_broker::group=debug)
#   WEIR_NEMESIS_KEEP_LOGS=1     keep the brokers' logs of a passing run too (a failed run always keeps them)
#   WEIR_REQUIRE_NEMESIS=1       fail instead of skipping network and disk faults
#   WEIR_BROKER_BIN              the broker binary to run (default target/debug/weir-broker;
#                                point it at a copy if you rebuild during a long run)
#   PROFILE                      cargo profile of the broker and the test (default dev)
#
# The report goes to stdout and to target/nemesis/report-<seed or time>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

export WEIR_NEMESIS_FAULTS="${WEIR_NEMESIS_FAULTS:-200}"
profile=(--profile "${PROFILE:-dev}")

cargo build "${profile[@]}" -p weir-broker
mkdir -p target/nemesis
log="target/nemesis/report-${WEIR_NEMESIS_SEED:-$(date -u +%Y%m%dT%H%M%SZ)}.txt"
set +e
cargo test "${profile[@]}" -p weir-tests --test nemesis -- --nocapture 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
set -e
echo "nemesis: full output in $log" >&2
exit "$status"
