#!/usr/bin/env bash
# Browser benchmark: our ResNet-18 and ResNet-50 at 224×224 against
# onnxruntime-web (WebGPU and wasm execution providers) on the same weights,
# in one headless Chromium session. Writes target/bench/results.json and
# prints a Markdown table for BENCHMARKS.md. A benchmark, not a test.
#   bash tools/bench_browser.sh [--runs 10] [--nets resnet18,resnet50]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build_wasm.sh
mkdir -p target/bench
# onnxruntime-web is ~150 MB installed: kept out of the project's dependencies.
[ -d target/bench/node_modules/onnxruntime-web ] || npm install --prefix target/bench --no-audit --no-fund --silent onnxruntime-web@1.30.0
.venv/bin/python tools/bench_fixtures.py target/bench
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
node tools/bench_browser.mjs "$@"
