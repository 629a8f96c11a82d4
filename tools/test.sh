#!/usr/bin/env bash
# Runs every test: set-up, the Rust tests (kernels against CPU references,
# weight loading and bad input, the CLI), a wasm32 build of the library, and
# the whole networks against ONNX Runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# Release build: the network tests run ResNet-50 on a software GPU, and
# `cargo test --release` then shares its artifacts with the release binary.
echo "== cargo test --release"
cargo test --release

echo "== wasm32 build of the library"
cargo build --release --target wasm32-unknown-unknown --lib --no-default-features

echo "== whole networks against ONNX Runtime"
RESNET_BIN="$PWD/target/release/resnet" .venv/bin/python -m pytest -q tests "$@"
