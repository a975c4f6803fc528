#!/usr/bin/env bash
# Bounded fuzz run of the broker's request decoder (weir_broker::protocol::decode_request).
#
# Only the stable toolchain is available, so cargo-fuzz's nightly flags are unlocked with
# RUSTC_BOOTSTRAP=1, and no sanitizer is used (they need a nightly std): libFuzzer still
# finds panics, aborts, timeouts and out-of-memory.
#
#   FUZZ_SECONDS   total fuzzing time (default 30)
#   FUZZ_TARGET    decode_request (default), or sasl_messages (SASL PLAIN/SCRAM messages and
#                  JAAS text, weir_broker::security)
#
# New inputs go to fuzz/corpus/decode_request (not committed); the committed seeds in
# fuzz/seeds/decode_request (valid requests, from `cargo run --example seed_corpus`) are read
# as a second corpus. A crash leaves its input in fuzz/artifacts/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
TARGET="${FUZZ_TARGET:-decode_request}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: run scripts/install-test-deps.sh" >&2
    exit 1
fi

mkdir -p "fuzz/corpus/$TARGET"
corpora=("fuzz/corpus/$TARGET")
if [ -d "fuzz/seeds/$TARGET" ]; then
    corpora+=("fuzz/seeds/$TARGET")
fi
echo "fuzzing $TARGET for ${FUZZ_SECONDS}s"
RUSTC_BOOTSTRAP=1 cargo fuzz run "$TARGET" --sanitizer none \
    "${corpora[@]}" \
    -- -max_total_time="$FUZZ_SECONDS" -max_len=65536 -rss_limit_mb=2048 -timeout=10
