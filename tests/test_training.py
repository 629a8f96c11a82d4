"""Training against JAX: `resnet grad` (the loss, logits and every trainable
tensor's gradient) and `resnet train` (SGD and AdamW steps, head training,
saving) on the CPU backend and on the GPU's kernels (lavapipe here), checked against an independent JAX reference in
float64 (tests/reference/jax_grad.py), plus the bad inputs of both commands.

Tolerance per tensor: |Δ| ≤ 2e-3·max|ref| + 1e-5·(largest gradient of any
tensor). It is asserted where float32 arithmetic can meet it: each case's
conditioning is measured first (how far float64 gradients move when every
parameter and the input move by 1e-6 of themselves, `jax_grad.sensitivity`). Seeded bottleneck networks trained
whole have ReLUs whose inputs sit within float32's resolution of zero (a
relative 1e-7 on some map of 2×2 or 3×3 pixels), so their gradients are not
determined to the tolerance by float32 arithmetic (JAX's own float32 is up to
~50× the tolerance off its float64 there): those cases are held to the
measured float32 noise instead, and listed as such in the output.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "reference"))
import make_fixture as mf  # noqa: E402
import jax_grad as jg  # noqa: E402

CLASSES = 7


def _bin() -> Path:
    env = os.environ.get("RESNET_BIN")
    p = Path(env) if env else REPO / "target" / "release" / "resnet"
    if not p.exists():
        pytest.fail(f"resnet binary not found at {p}: cargo build --release first", pytrace=False)
    return p


def run(args, ok=True, timeout=600):
    p = subprocess.run([str(_bin())] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if ok and p.returncode != 0:
        pytest.fail(f"exit {p.returncode}: {' '.join(map(str, args))}\n{p.stderr[-3000:]}", pytrace=False)
    return p


_WEIGHTS: dict = {}


def weights(arch, scheme, tmp_path_factory):
    """Seeded weights with calibrated batchnorm statistics (as the inference
    fixtures make them), written once per session: (spec, params, path)."""
    key = (arch, scheme)
    if key not in _WEIGHTS:
        spec = mf.build_spec(arch, scheme, CLASSES)
        params = mf._Calibrator(spec, np.random.default_rng(0)).run(mf.smooth_input(np.random.default_rng([0, 2]), 2, 128, 128))
        path = tmp_path_factory.mktemp("w") / f"{arch}-{scheme}.safetensors"
        mf.write_safetensors(path, params, "f32")
        _WEIGHTS[key] = (spec, mf.read_safetensors(path), path)
    return _WEIGHTS[key]


def examples(n, h, w, seed=0):
    x = mf.smooth_input(np.random.default_rng([seed, 7]), n, h, w)
    y = (np.arange(n) * 3 + seed) % CLASSES
    return x, y


def write_examples(d: Path, x, y, dtype=np.int64):
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "x.npy", x.astype(np.float32))
    np.save(d / "y.npy", y.astype(dtype))
    return d / "x.npy", d / "y.npy"


def shares(ours: dict, ref: dict) -> dict:
    """Per tensor: max|Δ| as a share of the tolerance."""
    tol = jg.tolerance(ref)
    return {k: float(np.abs(np.asarray(ours[k], np.float64) - ref[k]).max()) / tol[k] for k in ref}


# (arch, scheme, bn, train, height, width, N, input seed): odd sizes, N ≥ 2,
# both naming schemes (Keras: HWIO kernels, conv biases, dense (in,
# classes)). The seeds give well-conditioned inputs (measured: other seeds
# of the first, fourth and sixth case put a ReLU within float32's resolution
# of zero, sensitivity 9–102; so does the third case at 39×57 with N = 2,
# where ours was off by 9.2× the tolerance, exactly as far as float64 moves).
GRAD_CASES = [
    ("resnet18", "torchvision", "frozen", "all", 45, 37, 3, 3),
    ("resnet18", "torchvision", "batch", "all", 45, 37, 3, 0),
    ("resnet18", "torchvision", "batch", "last-stage", 65, 57, 3, 1),
    ("resnet50", "torchvision", "frozen", "last-stage", 45, 37, 2, 3),
    ("resnet50", "torchvision", "batch", "head", 33, 41, 2, 0),
    ("resnet50", "keras", "frozen", "last-stage", 51, 35, 3, 1),
    ("resnet50", "keras", "batch", "head", 37, 45, 2, 0),
    # Ill-conditioned in float32 whatever the seed (five tried; see the
    # module's docstring): held to the measured float32 noise.
    ("resnet50", "torchvision", "frozen", "all", 45, 37, 2, 0),
    ("resnet50", "keras", "batch", "all", 67, 45, 2, 0),
]
# Cases whose conditioning is robust (sensitivity about 0.01–0.03 whichever
# perturbations are drawn): held to the tolerance without fail. The Keras
# last stage is borderline (0.02 or 150 by the draw: a ReLU at 1e-6 of its
# tensor's largest value), so it is held to the tolerance only when the
# probe finds it well-conditioned.
WELL_CONDITIONED = [c for c in GRAD_CASES[:7] if c[:2] != ("resnet50", "keras") or c[3] == "head"]


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: "-".join(map(str, c)))
def test_grad_against_jax(case, tmp_path, tmp_path_factory):
    """Both backends: the CPU backend and the WGSL kernels (lavapipe here)."""
    arch, scheme, bn, train, h, w, n, seed = case
    spec, params, path = weights(arch, scheme, tmp_path_factory)
    x, y = examples(n, h, w, seed)
    xp, yp = write_examples(tmp_path, x, y)
    loss64, logits64, g64 = jg.gradients(spec, params, x, y, bn, train)
    _, _, g32 = jg.gradients(spec, params, x, y, bn, train, dtype=np.float32)
    jax32_s = shares(g32, g64)
    sens = jg.sensitivity(spec, params, x, y, bn, train, draws=2)
    conditioned = sens < 0.25
    if case in WELL_CONDITIONED:
        assert conditioned, f"expected a well-conditioned case, sensitivity {sens:.3g}"
    for backend in ("cpu", "gpu"):
        out = tmp_path / backend
        run(["grad", "--weights", path, "--input", xp, "--labels", yp, "--out", out, "--bn", bn, "--train", train, "--backend", backend])
        ours = mf.read_safetensors(out / "grads.safetensors")
        # Exactly the trainable tensors, under the file's names and in its layouts.
        assert set(ours) == set(g64), sorted(set(ours) ^ set(g64))
        for k in g64:
            assert ours[k].shape == g64[k].shape == params[k].shape, k
        loss = float(np.load(out / "loss.npy"))
        logits = np.load(out / "logits.npy")
        assert abs(loss - loss64) <= 1e-5 * max(1.0, abs(loss64)), (backend, loss, loss64)
        assert np.abs(logits - logits64).max() <= 1e-4 * np.abs(logits64).max() + 1e-5, backend
        ours_s = shares(ours, g64)
        worst = max(ours_s, key=ours_s.get)
        print(f"\n[grad] {'-'.join(map(str, case))} {backend}: loss {loss:.6f} (JAX {loss64:.6f}); worst share of the tolerance: "
              f"ours {ours_s[worst]:.3g} ({worst}), JAX float32 {max(jax32_s.values()):.3g}; float32 sensitivity {sens:.3g}"
              f" -> {'well-conditioned' if conditioned else 'ILL-CONDITIONED in float32'}")
        if conditioned:
            assert ours_s[worst] <= 1.0, f"{backend} {worst}: {ours_s[worst]:.3g}× the tolerance"
        else:
            # Held to the float32 noise: what moving the input by 1e-6 does to
            # float64's own gradients, with room for one unlucky ReLU more.
            assert ours_s[worst] <= 4 * sens + 1, f"{backend} {worst}: {ours_s[worst]:.3g}× the tolerance, float32 noise {sens:.3g}"


def _updates(before, after, ref_after, names, masks=None):
    """Per tensor: the update's error as a share of 2e-3·max|ref update| + 1e-6·max|w|."""
    out = {}
    for k in names:
        d_ref = ref_after[k] - before[k]
        d = after[k].astype(np.float64) - before[k]
        tol = 2e-3 * np.abs(d_ref).max() + 1e-6 * np.abs(before[k]).max() + 1e-9
        err = np.abs(d - d_ref)[masks[k]] if masks else np.abs(d - d_ref)
        out[k] = float(err.max() / tol) if err.size else 0.0
    return out


@pytest.mark.parametrize("optimizer,steps,backend", [("sgd", 3, "cpu"), ("adamw", 1, "cpu"), ("adamw", 3, "cpu"), ("sgd", 3, "gpu"), ("adamw", 1, "gpu")])
def test_optimizer_steps_against_jax(optimizer, steps, backend, tmp_path, tmp_path_factory):
    """Full-batch steps (--batch N, --augment off: one step an epoch), the
    weights after them against PyTorch's update rules in float64.

    AdamW beyond its first step is compared by its losses: Adam steps each
    weight by about lr whatever its gradient's size, so a weight whose
    gradient is float32 noise (a near-dead channel's 1e-9) takes a step of
    noise, and the weights after a second step differ as the network does."""
    spec, params, path = weights("resnet18", "torchvision", tmp_path_factory)
    x, y = examples(4, 41, 35, seed=3)
    xp, yp = write_examples(tmp_path, x, y)
    out = tmp_path / "trained.safetensors"
    lr, wd = (0.05, 1e-3) if optimizer == "sgd" else (2e-3, 0.01)
    p = run(["train", "--weights", path, "--input", xp, "--labels", yp, "--out", out, "--train", "last-stage", "--bn", "frozen",
             "--optimizer", optimizer, "--lr", lr, "--weight-decay", wd, "--momentum", 0.9, "--epochs", steps, "--batch", 4,
             "--augment", "off", "--backend", backend])
    after = mf.read_safetensors(out)
    names = jg.trainable_names(spec, params, "last-stage")
    masks = None
    if optimizer == "sgd":
        ref = jg.sgd_steps(spec, params, x, y, steps, lr, 0.9, wd, "frozen", "last-stage")
    else:
        ref, g, losses = jg.adamw_steps(spec, params, x, y, steps, lr, wd, "frozen", "last-stage")
        ours = [float(line.split("loss ")[1].split(",")[0]) for line in p.stdout.splitlines() if line.startswith("epoch")]
        print(f"\n[adamw] losses {ours} (JAX {[round(v, 5) for v in losses]})")
        np.testing.assert_allclose(ours, losses, rtol=5e-4, atol=1e-4)
        # The first step is sign(g)·lr: compared where g is not float32 noise.
        masks = {k: np.abs(g[k]) >= 1e-4 * np.abs(g[k]).max() for k in names}
        print(f"[adamw] {sum(int((~m).sum()) for m in masks.values())} of {sum(m.size for m in masks.values())} weights with |g| < 1e-4·max|g| left out")
    if steps == 1 or optimizer == "sgd":
        s = _updates({k: params[k].astype(np.float64) for k in params}, after, ref, names, masks)
        worst = max(s, key=s.get)
        print(f"\n[{optimizer}] {backend} {steps} steps: worst update error {s[worst]:.3g} of the tolerance ({worst})")
        assert s[worst] <= 1.0, (worst, s[worst])
    # What does not train is written back unchanged, running statistics included.
    for k in params:
        if k not in names and k in after:
            assert np.array_equal(after[k], params[k].astype(np.float32)), k


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_batch_statistics_update_the_running_ones(backend, tmp_path, tmp_path_factory):
    """Batch mode, learning rate 0: one step leaves the weights and moves the
    running statistics 0.1 of the way to the batch's (unbiased variance)."""
    spec, params, path = weights("resnet18", "torchvision", tmp_path_factory)
    x, y = examples(3, 40, 44, seed=4)
    xp, yp = write_examples(tmp_path, x, y)
    out = tmp_path / "t.safetensors"
    run(["train", "--weights", path, "--input", xp, "--labels", yp, "--out", out, "--train", "last-stage", "--bn", "batch",
         "--lr", 0, "--epochs", 1, "--batch", 3, "--backend", backend])
    after = mf.read_safetensors(out)
    # The last block's first conv sees the previous block's output: float64 forward.
    feats = {}
    h = x.astype(np.float64)
    cb = spec["stem"]["cb"]
    wgt, b = mf.conv_params(params, "torchvision", cb["conv"])
    h = mf.np_maxpool3s2(mf.relu(mf.np_bn(mf.np_conv(h, wgt, b, 2, 3), *mf.bn_params(params, "torchvision", cb["bn"]), 1e-5)), 1)
    for blk in spec["blocks"]:
        if blk["name"] == "layer4.0":
            feats = h
            break
        m = h
        for c in blk["main"]:
            wgt, b = mf.conv_params(params, "torchvision", c["conv"])
            m = mf.np_bn(mf.np_conv(m, wgt, b, c["stride"], c["pad"]), *mf.bn_params(params, "torchvision", c["bn"]), 1e-5)
            m = mf.relu(m) if c["relu"] else m
        s = h
        if blk["shortcut"]:
            c = blk["shortcut"]
            wgt, b = mf.conv_params(params, "torchvision", c["conv"])
            s = mf.np_bn(mf.np_conv(h, wgt, b, c["stride"], c["pad"]), *mf.bn_params(params, "torchvision", c["bn"]), 1e-5)
        h = mf.relu(m + s)
    c = spec["blocks"][-2]["main"][0]  # layer4.0.conv1
    assert c["conv"] == "layer4.0.conv1"
    wgt, _ = mf.conv_params(params, "torchvision", c["conv"])
    z = mf.np_conv(feats, wgt, None, c["stride"], c["pad"])
    mean, var = z.mean(axis=(0, 2, 3)), z.var(axis=(0, 2, 3), ddof=1)
    want_mean = 0.9 * params["layer4.0.bn1.running_mean"] + 0.1 * mean
    want_var = 0.9 * params["layer4.0.bn1.running_var"] + 0.1 * var
    np.testing.assert_allclose(after["layer4.0.bn1.running_mean"], want_mean, rtol=1e-4, atol=1e-5 * np.abs(want_mean).max())
    np.testing.assert_allclose(after["layer4.0.bn1.running_var"], want_var, rtol=1e-4)
    assert np.array_equal(after["layer4.0.conv1.weight"], params["layer4.0.conv1.weight"])
    # A frozen stage's statistics stay as they were.
    assert np.array_equal(after["layer3.0.bn1.running_mean"], params["layer3.0.bn1.running_mean"])


def _separable(n_per, classes, h, w, seed=0):
    """Seeded images whose class shows in their colour balance."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        for _ in range(n_per):
            x = mf.smooth_input(rng, 1, h, w)[0]
            x[c % 3] += 1.5
            xs.append(x)
            ys.append(c)
    return np.stack(xs), np.array(ys)


def test_head_training_separates_and_round_trips(tmp_path, tmp_path_factory):
    spec, params, path = weights("resnet18", "torchvision", tmp_path_factory)
    x, y = _separable(4, 3, 48, 40)
    xp, yp = write_examples(tmp_path, x, y, np.int32)
    out = tmp_path / "head.safetensors"
    p = run(["train", "--weights", path, "--input", xp, "--labels", yp, "--out", out, "--train", "head", "--optimizer", "adamw",
             "--lr", 0.05, "--epochs", 40, "--batch", 6, "--seed", 1, "--backend", "cpu"])
    last = p.stdout.strip().splitlines()[-1]
    assert "train accuracy 100.0%" in last, p.stdout[-2000:]
    # Save → load → the same logits: the training forward pass of the saved
    # file (grad) against classify's fast mode on the CPU.
    g = run(["grad", "--weights", out, "--input", xp, "--labels", yp, "--out", tmp_path / "g", "--train", "head", "--backend", "cpu"])
    logits = np.load(tmp_path / "g" / "logits.npy")
    assert (logits.argmax(1) == y).all()
    np.save(tmp_path / "x0.npy", x[:1].astype(np.float32))
    c = run(["classify", "--weights", out, "--tensor", tmp_path / "x0.npy", "--json", "--backend", "cpu"])
    got = np.array(json.loads(c.stdout.splitlines()[0])["logits"])
    assert np.abs(got - logits[0]).max() <= 1e-4 * np.abs(logits[0]).max() + 1e-5
    # Every tensor written back, in the same names and shapes.
    saved = mf.read_safetensors(out)
    want = {k: v.shape for k, v in params.items() if not k.endswith("num_batches_tracked")}
    assert {k: v.shape for k, v in saved.items()} == want


def test_image_folders_train_new_classes(tmp_path, tmp_path_factory):
    from PIL import Image
    spec, params, path = weights("resnet50", "keras", tmp_path_factory)
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    colours = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
    for name, rgb in colours.items():
        (data / name).mkdir(parents=True)
        for i in range(3):
            a = np.clip(np.array(rgb)[None, None] + rng.normal(0, 30, (50 + 7 * i, 61, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(data / name / f"{i}.png")
    out = tmp_path / "colours.safetensors"
    p = run(["train", "--weights", path, "--data", data, "--out", out, "--size", 40, "--epochs", 30, "--batch", 9,
             "--optimizer", "adamw", "--lr", 0.05, "--backend", "cpu"])
    assert "new, seeded dense layer" in p.stderr
    assert "train accuracy 100.0%" in p.stdout.strip().splitlines()[-1], p.stdout[-1500:]
    saved = mf.read_safetensors(out)
    # Keras names and layouts kept; the classifier named after its classes.
    assert saved["fc3.kernel"].shape == (2048, 3) and "fc7.kernel" not in saved
    assert saved["res2a_branch2a.kernel"].shape == params["res2a_branch2a.kernel"].shape
    # The class names travel in the file and classify shows them.
    c = run(["classify", "--weights", out, "--size", 40, "--json", "--backend", "cpu", data / "green" / "1.png"])
    top = json.loads(c.stdout.splitlines()[0])["top5"]
    assert top[0]["label"] == "green", top


def _err(args):
    p = run(args, ok=False)
    assert p.returncode != 0, p.stdout
    assert "panicked" not in p.stderr, p.stderr
    return p.stderr


def test_bad_inputs(tmp_path, tmp_path_factory):
    spec, params, path = weights("resnet18", "torchvision", tmp_path_factory)
    x, y = examples(2, 40, 40)
    xp, yp = write_examples(tmp_path, x, y)
    g = ["grad", "--weights", path, "--input", xp, "--out", tmp_path / "o", "--backend", "cpu"]
    # Labels out of range, negative, of the wrong count or type.
    np.save(tmp_path / "big.npy", np.array([0, CLASSES], np.int64))
    assert "out of range" in _err(g + ["--labels", tmp_path / "big.npy"])
    np.save(tmp_path / "neg.npy", np.array([0, -1], np.int32))
    assert "negative" in _err(g + ["--labels", tmp_path / "neg.npy"])
    np.save(tmp_path / "three.npy", np.array([0, 1, 2], np.int64))
    assert "one label per example" in _err(g + ["--labels", tmp_path / "three.npy"])
    np.save(tmp_path / "float.npy", np.array([0.0, 1.0], np.float32))
    assert "integer class indices" in _err(g + ["--labels", tmp_path / "float.npy"])
    # Batch statistics of one value per channel: one 32×32 example's last stage is 1×1.
    x1, y1 = examples(1, 32, 32)
    x1p, y1p = write_examples(tmp_path / "one", x1, y1)
    for backend in ("cpu", "gpu"):
        e = _err(["grad", "--weights", path, "--input", x1p, "--labels", y1p, "--out", tmp_path / "o", "--bn", "batch", "--backend", backend])
        assert "more than one value per channel" in e, e
    # Image folders: an empty class, an image that does not decode.
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "b").mkdir()
    from PIL import Image
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(data / "a" / "0.png")
    t = ["train", "--weights", path, "--data", data, "--out", tmp_path / "t.safetensors", "--size", 32, "--backend", "cpu"]
    assert "holds no images" in _err(t)
    (data / "b" / "0.png").write_bytes(b"not a png")
    assert "cannot decode" in _err(t)
    # Labels out of range on the GPU too.
    assert "out of range" in _err(g[:-2] + ["--labels", tmp_path / "big.npy", "--backend", "gpu"])


def test_augmentation_is_seeded_and_trains(tmp_path, tmp_path_factory):
    """--augment on: random resized crops, flips and jitter drawn from the
    seed: the same seed gives the same weights bit for bit, another seed
    others; colours still separate (the crops keep them), and the held-out
    share is measured on the eval transform."""
    from PIL import Image
    spec, params, path = weights("resnet18", "torchvision", tmp_path_factory)
    data = tmp_path / "data"
    rng = np.random.default_rng(1)
    for name, rgb in {"warm": (210, 90, 40), "cool": (40, 90, 210)}.items():
        (data / name).mkdir(parents=True)
        for i in range(5):
            a = np.clip(np.array(rgb)[None, None] + rng.normal(0, 25, (44 + 5 * i, 57, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(data / name / f"{i}.png")
    def train(seed, out):
        return run(["train", "--weights", path, "--data", data, "--out", out, "--size", 36, "--epochs", 15, "--batch", 4,
                    "--optimizer", "adamw", "--lr", 0.05, "--augment", "on", "--val", 0.2, "--seed", seed, "--backend", "cpu"])
    p = train(3, tmp_path / "a.safetensors")
    train(3, tmp_path / "b.safetensors")
    train(4, tmp_path / "c.safetensors")
    a, b, c = ((tmp_path / f"{n}.safetensors").read_bytes() for n in "abc")
    assert a == b, "the same seed gives the same weights"
    assert a != c, "another seed gives other weights"
    assert "augmented" in p.stderr
    last = p.stdout.strip().splitlines()[-1]
    assert "validation accuracy 100.0%" in last, p.stdout[-1500:]
