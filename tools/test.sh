#!/usr/bin/env bash
# Runs every test: set-up, the Rust tests (kernels against CPU references,
# weight loading and bad input, the engine, the CLI), the whole networks
# against ONNX Runtime, then the browser package and the page end to end in
# Chromium (plus the npm tarball in a fresh Vite app and in a Worker).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh

if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  trap 'rm -rf "$XDG_RUNTIME_DIR"' EXIT
fi
export XDG_RUNTIME_DIR
# The native tests expect Mesa's lavapipe (a CPU adapter without cooperative
# matrices, the tolerances measured on it): on a machine with a real GPU they
# run there too, unless VK_DRIVER_FILES already names a driver.
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for icd in /usr/share/vulkan/icd.d/lvp_icd.*.json; do
    [ -f "$icd" ] && export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd" && break
  done
fi
# Release build: the network tests run ResNet-50 on a software GPU, and
# `cargo test --release` then shares its artifacts with the release binary.
echo "== cargo test --release"
# SPIRV-Tools' validator for the kernels' Vulkan SPIR-V (tests/kernels.rs).
export SPIRV_VAL="$PWD/.venv/bin/spirv-val"
cargo test --release

echo "== fuzzing the weights parser, planner and preprocessing (30 s), and the CPU kernels' index arithmetic, overflow checks on"
FUZZ_SECONDS=30 FUZZ_REQUIRE_OVERFLOW_CHECKS=1 cargo test --profile fuzz --test fuzz --test cpu -- --nocapture

echo "== whole networks against ONNX Runtime"
RESNET_BIN="$PWD/target/release/resnet" .venv/bin/python -m pytest -q tests "$@"

echo "== browser package (wasm32 + wasm-bindgen + wasm-opt)"
bash tools/build_wasm.sh
bash tools/fetch_samples.sh

echo "== end-to-end tests in Chromium (WebGPU on SwiftShader)"
node --test --test-concurrency=1 tests/e2e/*.test.mjs
