#!/usr/bin/env python3
"""Weights and ONNX models for the browser benchmark (tools/bench_browser.sh):
seeded torchvision-named ResNet-18 and ResNet-50, the same network as an ONNX
graph with only the logits as output, and one input tensor as raw float32."""

import sys
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reference"))
from make_fixture import make_fixture  # noqa: E402


def main(out_root, size=224):
    for arch, seed in (("resnet18", 18), ("resnet50", 50)):
        out = Path(out_root) / arch
        if (out / "model.onnx").exists() and (out / "input.f32").exists():
            continue
        make_fixture(arch, "torchvision", 1000, seed, size, size, out, keep_onnx=True)
        m = onnx.load(out / "model.onnx")
        keep = [o for o in m.graph.output if o.name == "logits"]
        del m.graph.output[:]
        m.graph.output.extend(keep)
        onnx.save(m, out / "model.onnx")
        np.load(out / "input.npy").astype("<f4").tofile(out / "input.f32")
        print(f"bench: {arch} -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/bench")
