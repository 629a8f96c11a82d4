#!/usr/bin/env bash
# Builds the browser package: the crate for wasm32, JS glue with
# wasm-bindgen (pinned to the crate's version), then wasm-opt (npm binaryen).
# Output: pkg/resnet_wgpu.js, pkg/resnet_wgpu_bg.wasm (+ .d.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock)
if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$want" ]; then
  echo "build_wasm: cargo install wasm-bindgen-cli --version $want"
  cargo install -q wasm-bindgen-cli --version "$want"
fi
[ -x node_modules/.bin/wasm-opt ] || npm install --no-audit --no-fund --silent
cargo build --release --target wasm32-unknown-unknown --lib --no-default-features
rm -rf pkg && mkdir -p pkg
wasm-bindgen --target web --out-dir pkg --out-name resnet_wgpu target/wasm32-unknown-unknown/release/resnet.wasm
node_modules/.bin/wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-reference-types --enable-multivalue --enable-mutable-globals \
  pkg/resnet_wgpu_bg.wasm -o pkg/resnet_wgpu_bg.wasm
raw=$(stat -c %s pkg/resnet_wgpu_bg.wasm); gz=$(gzip -9c pkg/resnet_wgpu_bg.wasm | wc -c)
echo "build_wasm: pkg/resnet_wgpu_bg.wasm $raw bytes ($gz gzipped)"
