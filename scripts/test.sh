#!/usr/bin/env bash
# The one test command (README): installs what the tests need, builds the broker, checks
# formatting and lints, runs every unit and end-to-end test, a seconds-long benchmark smoke run
# against Weir, then a bounded fuzz run.
# Exits non-zero if any step fails; prints a summary of steps and test counts at the end.
#
#   FUZZ_SECONDS   fuzzing time (default 30; 0 skips the fuzz step)
set -uo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The kcat end-to-end test must not skip itself here: the install step provides kcat.
export WEIR_REQUIRE_KCAT=1
export WEIR_REQUIRE_JAVA=1
# The image tests (tests/tests/images.rs) must not skip either: the install step provides umoci
# and skopeo, and CI runs as root.
export WEIR_REQUIRE_IMAGES=1
# The chart's static checks (tests/tests/chart.rs) must not skip: the install step builds helm,
# kubeconform and promtool.
export WEIR_REQUIRE_CHART_TOOLS=1
# The real-node tier (tests/tests/kube_node.rs) must not skip either: the install step runs
# scripts/kube-node.sh install.
export WEIR_REQUIRE_KUBE_NODE=1
# The nemesis (tests/tests/nemesis.rs) must run its network-partition and full-disk faults: CI
# runs as root and the install step provides iproute2 and iptables.
export WEIR_REQUIRE_NEMESIS=1
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
# A CI run starts from a fresh clone and builds once: incremental compilation data would only
# fill the disk (4 GB of target/debug/incremental).
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

# Free space where the build and the tests write, for the summary: a full disk fails steps
# (a build, a node's pods) in ways that do not say so.
free_space() { df -h --output=avail . 2>/dev/null | tail -n 1 | tr -d ' '; }
free_at_start="$(free_space)"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
step_results=()
failed=0

# run_step NAME COMMAND...: runs one step, records pass/fail and its duration.
run_step() {
    local name="$1"
    shift
    printf '\n===== %s: %s =====\n' "$name" "$*"
    local started=$SECONDS
    if "$@"; then
        step_results+=("pass   $name ($((SECONDS - started))s)")
    else
        step_results+=("FAIL   $name ($((SECONDS - started))s)")
        failed=1
    fi
}

skip_step() {
    step_results+=("skip   $1 ($2)")
}

run_tests() {
    # Keep cargo's output for the per-test counts in the summary.
    cargo test --workspace --no-fail-fast 2>&1 | tee "$logs/cargo-test.log"
    return "${PIPESTATUS[0]}"
}

run_step "install test dependencies" bash scripts/install-test-deps.sh
if [ "$failed" -ne 0 ]; then
    echo "installing dependencies failed: nothing else can run" >&2
    exit 1
fi
run_step "build weir-broker and weir-operator" cargo build -p weir-broker -p weir-operator --bins
build_ok=$((1 - failed))
check_formatting() {
    cargo fmt --all --check && cargo fmt --manifest-path fuzz/Cargo.toml --check
}

run_step "cargo fmt --check" check_formatting
run_step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
# The code's own documentation: a link that no longer resolves (an item renamed or moved) or
# that points from a public item's docs to a private one fails like a clippy warning.
check_docs() {
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
}
run_step "cargo doc" check_docs
if [ "$build_ok" -eq 1 ]; then
    run_step "cargo test (unit + end-to-end)" run_tests
else
    skip_step "cargo test (unit + end-to-end)" "the broker did not build"
fi
# The benchmark harness against Weir only, a few seconds (the full comparison with Apache Kafka
# is scripts/bench.sh, kept out of CI): fails if any scenario errors or measures nothing.
bench_smoke() {
    cargo build -p weir-bench &&
        target/debug/weir-bench smoke --weir-broker target/debug/weir-broker --work-dir target/bench-smoke
}
if [ "$build_ok" -eq 1 ]; then
    run_step "weir-bench smoke" bench_smoke
else
    skip_step "weir-bench smoke" "the broker did not build"
fi
# fuzz TARGET: one bounded fuzz run, its output kept for the summary's reasons.
fuzz() {
    FUZZ_TARGET="$1" bash scripts/fuzz.sh 2>&1 | tee "$logs/fuzz-$1.log"
    return "${PIPESTATUS[0]}"
}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
    run_step "fuzz decode_request (${FUZZ_SECONDS}s)" fuzz decode_request
    run_step "fuzz sasl_messages (${FUZZ_SECONDS}s)" fuzz sasl_messages
else
    skip_step "fuzz decode_request" "FUZZ_SECONDS=0"
    skip_step "fuzz sasl_messages" "FUZZ_SECONDS=0"
fi

passed_tests=0
failed_tests=0
ignored_tests=0
if [ -f "$logs/cargo-test.log" ]; then
    while read -r passed failed_count ignored; do
        passed_tests=$((passed_tests + passed))
        failed_tests=$((failed_tests + failed_count))
        ignored_tests=$((ignored_tests + ignored))
    done < <(sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p' "$logs/cargo-test.log")
fi

printf '\n===== summary =====\n'
printf '%s\n' "${step_results[@]}"
printf 'disk: %s free at the start, %s at the end\n' "$free_at_start" "$(free_space)"
if [ -f "$logs/cargo-test.log" ]; then
    grep -E '^test .* FAILED$' "$logs/cargo-test.log" | sed 's/^/  failed: /' || true
    # Why each failed: the first lines of every panic message, so a CI summary that shows
    # only the end of the output still says what broke.
    awk '/panicked at/ { n = 12; print "  why: " $0; next }
         n > 0 && (/^note: run with/ || /^stack backtrace:/) { n = 0; next }
         n > 0 { print "    " $0; n-- }' "$logs/cargo-test.log" | head -n 60 || true
fi
# Why a fuzz run failed, when its build did (the compiler's or cargo's first errors) or it
# found something (libFuzzer's summary line).
for f in "$logs"/fuzz-*.log; do
    [ -f "$f" ] || continue
    grep -m 4 -E '^(error(\[|:)|SUMMARY: |==[0-9]+== ERROR)' "$f" | sed "s|^|  $(basename "$f" .log): |" || true
done
if [ "$failed" -ne 0 ]; then
    echo "RESULT: FAILED"
else
    echo "RESULT: all steps passed"
fi
# Last line: the test count, in the form CI tooling reads.
printf 'tests: %d passed, %d failed, %d skipped\n' "$passed_tests" "$failed_tests" "$ignored_tests"
exit "$failed"
