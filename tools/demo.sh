#!/usr/bin/env bash
# The main job: set up, build, and classify the sample photos.
#   bash tools/demo.sh [WEIGHTS.safetensors]
# Without weights it makes seeded, untrained demo weights (ResNet-50 shapes,
# torchvision names): the pipeline runs end to end but the classes mean nothing.
# Real ImageNet weights: https://huggingface.co/timm/resnet50.tv_in1k (model.safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/fetch_samples.sh
cargo build --release --bin resnet
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
weights="${1:-}"
if [ -z "$weights" ]; then
  weights=target/demo/resnet50-demo.safetensors
  if [ ! -f "$weights" ]; then
    mkdir -p target/demo
    .venv/bin/python - <<'PY'
import sys, shutil, tempfile
sys.path.insert(0, "tests/reference")
from make_fixture import make_fixture
d = tempfile.mkdtemp()
make_fixture("resnet50", "torchvision", 1000, 2026, 224, 224, d, keep_onnx=False)
shutil.copy(f"{d}/weights.safetensors", "target/demo/resnet50-demo.safetensors")
PY
  fi
  echo "note: seeded, UNTRAINED demo weights ($weights); pass real weights for real classes"
fi
target/release/resnet classify --weights "$weights" --labels data/imagenet_classes.txt www/samples/*
