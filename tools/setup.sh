#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine that has
# Rust (rustup) and Python 3: Mesa's software Vulkan driver for the native
# GPU tests, Chromium for the browser tests, the wasm32 target, a Python
# virtual environment with the reference (ONNX Runtime) packages, and the npm
# dev tools. `tools/build_wasm.sh` adds wasm-bindgen-cli at the crate's
# version. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
# `--page` (tools/start.sh): only what serving the page needs; the software
# Vulkan driver and Chromium are for the tests (so no sudo for them there).
if [ "${1:-}" != --page ]; then
  dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
  dpkg -s libvulkan1 >/dev/null 2>&1 || need_apt+=(libvulkan1)
  # Browser tests: Debian's Chromium driven by npm playwright-core (never `playwright install`).
  dpkg -s chromium >/dev/null 2>&1 || need_apt+=(chromium)
fi
# Debian's own python3 makes virtual environments only with python3-venv.
if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then need_apt+=(python3-venv); fi
if ((${#need_apt[@]})); then
  echo "setup: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# rust-toolchain.toml lists the wasm32 target; make sure it is there.
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# Node 20.19+: Vite 8 needs it, and the e2e runner's glob form works from Node 20 on.
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null \
  || { echo "setup: Node.js 20.19 or newer is needed (found $(node --version 2>/dev/null || echo none))" >&2; exit 1; }

# A half-made environment (a venv that failed without python3-venv) is made again.
if [ ! -x .venv/bin/pip ]; then
  rm -rf .venv
  python3 -m venv .venv
fi
# Installed again whenever tools/requirements.txt changes.
req_hash=$(sha256sum tools/requirements.txt | cut -d' ' -f1)
if [ "$(cat .venv/.requirements 2>/dev/null)" != "$req_hash" ] || ! .venv/bin/python -c "import numpy, onnx, onnxruntime, safetensors, pytest, h5py, PIL, jax" 2>/dev/null || [ ! -x .venv/bin/spirv-val ]; then
  echo "setup: pip install -r tools/requirements.txt"
  .venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
  echo "$req_hash" > .venv/.requirements
fi
# npm: playwright-core, vite (e2e tests), binaryen (wasm-opt).
if [ ! -d node_modules/playwright-core ] || [ ! -x node_modules/.bin/wasm-opt ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --silent
fi
echo "setup: done"
