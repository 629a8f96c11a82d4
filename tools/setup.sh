#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine that has
# Rust (rustup) and Python 3: Mesa's software Vulkan driver for the native
# GPU tests, the wasm32 target, and a Python virtual environment with the
# reference (ONNX Runtime) packages. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
dpkg -s libvulkan1 >/dev/null 2>&1 || need_apt+=(libvulkan1)
if ((${#need_apt[@]})); then
  echo "setup: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# rust-toolchain.toml lists the wasm32 target; make sure it is there.
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import numpy, onnx, onnxruntime, safetensors, pytest, h5py" 2>/dev/null; then
  echo "setup: pip install -r tools/requirements.txt"
  .venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
fi
echo "setup: done"
