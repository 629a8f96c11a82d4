"""The residual experiment's networks against JAX: CIFAR-style ResNets and
their plain twins built from a description (`resnet experiment --save-init`
writes the seeded initial weights; the file's metadata carries the
description, so `resnet grad` and `resnet train` load them as themselves),
checked against an independent JAX float64 implementation written from the
description alone (tests/reference/jax_cifar.py): the loss and every
gradient of the first step, and the first SGD steps (the experiment's own
optimizer: momentum 0.9, weight decay 1e-4), on the CPU backend and on the
GPU's kernels (lavapipe here). Plus the bad descriptions and the dataset.
"""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "reference"))
sys.path.insert(0, str(REPO / "tests"))
import jax_cifar as jc  # noqa: E402
import jax_grad as jg  # noqa: E402
import make_fixture as mf  # noqa: E402
from test_training import run, shares, write_examples  # noqa: E402


def digits(first: int, n: int):
    """Digits `first..first+n` of data/digits.bin as 3×8×8 inputs (pixels
    scaled to ±1, repeated over RGB) and their labels, read independently."""
    b = (REPO / "data" / "digits.bin").read_bytes()
    assert b[:8] == b"RESNETDS"
    _, count, h, w, c, classes, train, top = struct.unpack("<8I", b[8:40])
    assert (count, h, w, c, classes, train, top) == (1797, 8, 8, 1, 10, 1297, 16)
    labels = np.frombuffer(b, np.uint8, count, 40)
    px = np.frombuffer(b, np.uint8, count * 64, 40 + count).reshape(count, 1, 8, 8)
    x = px[first:first + n].astype(np.float32) / 8 - 1
    return np.repeat(x, 3, axis=1), labels[first:first + n].astype(np.int64)


def init(tmp_path, depth, *flags):
    d = tmp_path / "init"
    run(["experiment", "--depth", depth, "--save-init", d, *flags])
    return d


# (depth, residual, flags, N): He and Glorot, batchnorm on and off, zero-γ.
CASES = [
    (8, True, [], 6),
    (8, False, ["--no-bn", "--init", "glorot"], 6),
    (14, True, ["--zero-gamma", "--init", "glorot"], 5),
    (20, False, [], 4),
    (8, True, ["--no-bn"], 6),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'res' if c[1] else 'plain'}{''.join(c[2])}")
def test_described_networks_against_jax(case, tmp_path):
    depth, residual, flags, n = case
    path = init(tmp_path, depth, *flags) / ("resnet.safetensors" if residual else "plain.safetensors")
    params = mf.read_safetensors(path)
    desc = json.loads(json.loads(path.read_bytes()[8:8 + struct.unpack("<Q", path.read_bytes()[:8])[0]])["__metadata__"]["network"])
    assert (desc["depth"], desc["residual"], desc["batchnorm"]) == (depth, residual, "--no-bn" not in flags)
    if "--zero-gamma" in flags:
        assert all(np.all(params[f"layer{s}.{b}.bn2.weight"] == 0) for s in (1, 2, 3) for b in range((depth - 2) // 6))
    # The reference builds the network from the description: its tensors are exactly the file's.
    assert set(jc.trainable_names(desc)) == {k for k in params if not k.endswith(("running_mean", "running_var"))}
    x, y = digits(3 * depth, n)
    xp, yp = write_examples(tmp_path, x, y)
    loss64, logits64, g64 = jc.gradients(desc, params, x, y)
    bn = "batch" if desc["batchnorm"] else "frozen"
    for backend in ("cpu", "gpu"):
        out = tmp_path / backend
        run(["grad", "--weights", path, "--input", xp, "--labels", yp, "--out", out, "--bn", bn, "--train", "all", "--backend", backend])
        ours = mf.read_safetensors(out / "grads.safetensors")
        assert set(ours) == set(g64), sorted(set(ours) ^ set(g64))
        loss = float(np.load(out / "loss.npy"))
        assert abs(loss - loss64) <= 1e-5 * max(1.0, abs(loss64)), (backend, loss, loss64)
        assert np.abs(np.load(out / "logits.npy") - logits64).max() <= 1e-4 * np.abs(logits64).max() + 1e-5, backend
        s = shares(ours, g64)
        worst = max(s, key=s.get)
        print(f"\n[experiment grad] depth {depth} {'residual' if residual else 'plain'} {' '.join(flags)} {backend}: loss {loss:.6f} "
              f"(JAX {loss64:.6f}); worst share of the tolerance {s[worst]:.3g} ({worst})")
        assert s[worst] <= 1.0, f"{backend} {worst}: {s[worst]:.3g}× the tolerance"


@pytest.mark.parametrize("case", [CASES[0], CASES[1]], ids=["8-res", "8-plain-nobn-glorot"])
@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_first_sgd_steps_against_jax(case, backend, tmp_path):
    """Three full-batch steps of the experiment's optimizer: the weights after them, and the losses."""
    depth, residual, flags, n = case
    path = init(tmp_path, depth, *flags) / ("resnet.safetensors" if residual else "plain.safetensors")
    params = mf.read_safetensors(path)
    desc = {"depth": depth, "residual": residual, "batchnorm": "--no-bn" not in flags}
    x, y = digits(100, n)
    xp, yp = write_examples(tmp_path, x, y)
    lr, wd, steps = 0.05, 1e-4, 3
    out = tmp_path / "after.safetensors"
    run(["train", "--weights", path, "--input", xp, "--labels", yp, "--out", out, "--train", "all", "--bn", "batch" if desc["batchnorm"] else "frozen",
         "--optimizer", "sgd", "--lr", lr, "--weight-decay", wd, "--momentum", 0.9, "--epochs", steps, "--batch", n, "--augment", "off", "--backend", backend])
    after = mf.read_safetensors(out)
    ref, _ = jc.sgd_steps(desc, {k: params[k] for k in jc.trainable_names(desc)}, x, y, steps, lr, 0.9, wd)
    worst = 0.0
    for k in ref:
        d_ref = ref[k] - params[k]
        tol = 2e-3 * np.abs(d_ref).max() + 1e-6 * np.abs(params[k]).max() + 1e-9
        worst = max(worst, float(np.abs(after[k].astype(np.float64) - params[k] - d_ref).max() / tol))
    print(f"\n[experiment sgd] depth {depth} {' '.join(flags)} {backend}: worst update error {worst:.3g} of the tolerance")
    assert worst <= 1.0


def _err(args):
    p = run(args, ok=False)
    assert p.returncode != 0 and "panicked" not in p.stderr, p.stderr
    return p.stderr


def test_bad_descriptions_and_datasets(tmp_path):
    assert "6n+2" in _err(["experiment", "--depth", 21, "--steps", 1])
    assert "6n+2" in _err(["experiment", "--depth", 2, "--steps", 1])
    assert "width 0" in _err(["experiment", "--widths", "16,0,64", "--steps", 1])
    assert "learning rate" in _err(["experiment", "--lr=-1", "--steps", 1])
    assert "at least 1" in _err(["experiment", "--steps", 0])
    assert "parameters" in _err(["experiment", "--depth", 200, "--widths", "512,512,512", "--steps", 1])
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"RESNETDS" + struct.pack("<8I", 1, 10**9, 8, 8, 1, 10, 5, 16))
    assert "describes" in _err(["experiment", "--data", bad, "--steps", 1])
    bad.write_bytes(b"PK\x03\x04")
    assert "not a dataset" in _err(["experiment", "--data", bad, "--steps", 1])
    # A file whose description metadata was tampered with is refused, not misread.
    d = init(tmp_path, 8)
    raw = (d / "resnet.safetensors").read_bytes().replace(b'\\"depth\\":8', b'\\"depth\\":9')
    (tmp_path / "t.safetensors").write_bytes(raw)
    assert "6n+2" in _err(["grad", "--weights", tmp_path / "t.safetensors", "--input", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--out", tmp_path / "o"])


def test_experiment_runs_and_reports(tmp_path):
    """A short run on the CPU backend: both networks' records, every block's
    gradient norm, ‖F(x)‖/‖x‖ for the residual one only, and zero-γ's 0 at the start."""
    out = tmp_path / "r.json"
    p = run(["experiment", "--depth", 8, "--steps", 4, "--eval-every", 2, "--zero-gamma", "--backend", "cpu", "--out", out])
    assert "ResNet-8" in p.stdout and "plain-8" in p.stdout
    r = json.loads(out.read_text())
    assert r["blocks"] == ["layer1.0", "layer2.0", "layer3.0"]
    res, plain = r["arms"]
    assert (res["name"], plain["name"]) == ("ResNet-8", "plain-8")
    assert [s["step"] for s in res["records"]] == [1, 2, 3, 4]
    first = res["records"][0]
    assert first["ratios"] == [0.0, 0.0, 0.0], first["ratios"]
    assert all(g is not None and g > 0 for g in first["gradNorms"][1:])
    assert all(v is None for v in plain["records"][0]["ratios"])
    assert [s["testAccuracy"] is not None for s in res["records"]] == [False, True, False, True]
    assert 0 <= res["finalTestAccuracy"] <= 1
