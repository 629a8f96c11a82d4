#!/usr/bin/env bash
# Native CPU benchmark: our CPU backend against ONNX Runtime's CPU provider,
# ResNet-18 and ResNet-50 at 224×224, one thread each, in one run.
#   bash tools/bench_cpu.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cargo build --release
mkdir -p target/bench
.venv/bin/python tools/bench_fixtures.py target/bench
.venv/bin/python tools/bench_cpu.py target/bench "${1:-10}"
