#!/usr/bin/env bash
# Fuzzes the weights parser, the planner and preprocessing geometry with
# seeded mutations for SECONDS (default 300), in the `fuzz` profile (the
# release build with overflow checks on). Findings (inputs that panic) go to target/fuzz-findings/;
# copy the interesting ones to tests/fuzz_corpus/ so every test run replays them.
#   bash tools/fuzz.sh [SECONDS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS="${1:-300}" FUZZ_SEED="${2:-$RANDOM}" FUZZ_REQUIRE_OVERFLOW_CHECKS=1 cargo test --profile fuzz --test fuzz -- --nocapture mutated
