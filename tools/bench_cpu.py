#!/usr/bin/env python3
"""Native CPU benchmark (run through tools/bench_cpu.sh): our CPU backend
(`resnet bench --backend cpu`) against ONNX Runtime's CPU execution provider
on the same seeded ResNet-18 and ResNet-50 (tools/bench_fixtures.py), batch 1,
224×224, one thread each, in one run. Prints a Markdown table for
BENCHMARKS.md. A benchmark, not a test."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent


def ort_ms(model, x, runs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    feeds = {"input": x}
    for _ in range(2):
        s.run(["logits"], feeds)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        logits = s.run(["logits"], feeds)[0]
        t.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(t)), logits.reshape(-1)


def ours_ms(weights, x, runs, out):
    np.save(out / "input.npy", x)
    subprocess.run([str(ROOT / "target/release/resnet"), "bench", "--backend", "cpu", "--weights", str(weights),
                    "--size", "224", "--iters", str(runs), "--layers", "0", "--json", str(out / "ours.json")],
                   check=True, stdout=subprocess.DEVNULL)
    r = json.loads((out / "ours.json").read_text())
    c = subprocess.run([str(ROOT / "target/release/resnet"), "classify", "--backend", "cpu", "--json", "--weights",
                        str(weights), "--tensor", str(out / "input.npy")], check=True, capture_output=True, text=True)
    return r["wall_median_ms"], np.array(json.loads(c.stdout.splitlines()[0])["logits"], np.float32)


def main(root="target/bench", runs=10):
    root = Path(root)
    print(f"| network | ONNX Runtime {ort.__version__} CPU, 1 thread | ours, CPU backend, 1 thread | ours ÷ ORT | max |Δlogit| / max|logit| |")
    print("|---|---|---|---|---|")
    for net in ("resnet18", "resnet50"):
        d = root / net
        x = np.fromfile(d / "input.f32", dtype="<f4").reshape(1, 3, 224, 224)
        o, lo = ort_ms(d / "model.onnx", x, runs)
        m, lm = ours_ms(d / "weights.safetensors", x, runs, d)
        err = float(np.abs(lo - lm).max() / np.abs(lo).max())
        print(f"| {net} | {o:.1f} ms | {m:.1f} ms | {m / o:.2f} | {err:.1e} |")


if __name__ == "__main__":
    main(*sys.argv[1:2], *(int(a) for a in sys.argv[2:3]))
