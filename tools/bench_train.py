"""Training step time: our CPU backend (`resnet train`, one thread) and, with
`--gpu`, our WGSL kernels on the machine's adapter (lavapipe here) against
JAX (jit, CPU, one thread) on the same seeded weights and batch, in one run.

    .venv/bin/python tools/bench_train.py [--configs resnet18:8:224,resnet50:32:112] [--steps 3] [--gpu]

Each configuration: `--train all --bn batch`, SGD with momentum, full
backward; ours reports the median step after the first (which also plans
and allocates), JAX the median of jitted steps after its compile. Peak RSS
of our process is printed too (memory kept for the backward pass). Not a
test: figures go to BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "reference"))
import numpy as np  # noqa: E402
import make_fixture as mf  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax_grad as jg  # noqa: E402


def ours(path, xp, yp, batch, steps, backend="cpu"):
    out = Path(tempfile.mkdtemp()) / "t.safetensors"
    cmd = ["/usr/bin/time", "-f", "maxrss_kb %M", str(REPO / "target/release/resnet"), "train", "--weights", str(path), "--input", str(xp),
           "--labels", str(yp), "--out", str(out), "--train", "all", "--bn", "batch", "--batch", str(batch), "--epochs", str(steps),
           "--backend", backend]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    med = float(re.search(r"then median ([0-9.]+) ms", p.stderr).group(1))
    rss = int(re.search(r"maxrss_kb (\d+)", p.stderr).group(1)) / 1024
    return med, rss


def jax_step(spec, params, x, y, steps):
    names = jg.trainable_names(spec, params, "all")
    loss = jg.make_loss(spec, params, "batch", "all", jnp.float32)

    @jax.jit
    def step(p, buf, x, y):
        (l, _), g = jax.value_and_grad(loss, has_aux=True)(p, x, y)
        buf = {k: 0.9 * buf[k] + g[k] for k in p}
        return {k: p[k] - 0.01 * buf[k] for k in p}, buf, l

    p = {k: jnp.asarray(params[k], jnp.float32) for k in names}
    buf = {k: jnp.zeros_like(v) for k, v in p.items()}
    x, y = jnp.asarray(x), jnp.asarray(y)
    p, buf, l = step(p, buf, x, y)
    l.block_until_ready()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        p, buf, l = step(p, buf, x, y)
        l.block_until_ready()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="resnet18:8:224,resnet18:32:112,resnet50:8:224,resnet50:32:112")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--gpu", action="store_true", help="also our GPU kernels (--backend gpu)")
    ap.add_argument("--write-only", metavar="DIR", help="only write resnet18/50.safetensors there (for bench_train_browser.mjs)")
    a = ap.parse_args()
    if a.write_only:
        Path(a.write_only).mkdir(parents=True, exist_ok=True)
        for arch in ("resnet18", "resnet50"):
            spec = mf.build_spec(arch, "torchvision", 1000)
            params = mf._Calibrator(spec, np.random.default_rng(0)).run(mf.smooth_input(np.random.default_rng([0, 2]), 2, 128, 128))
            mf.write_safetensors(Path(a.write_only) / f"{arch}.safetensors", params, "f32")
        return
    print(f"{'network':10} {'batch':>5} {'size':>5} {'ours ms':>9} {'JAX ms':>9} {'ratio':>6} {'our RSS MB':>11}" + (f" {'GPU ms':>9} {'GPU RSS MB':>11}" if a.gpu else ""))
    for c in a.configs.split(","):
        arch, batch, size = c.split(":")
        batch, size = int(batch), int(size)
        spec = mf.build_spec(arch, "torchvision", 1000)
        params = mf._Calibrator(spec, np.random.default_rng(0)).run(mf.smooth_input(np.random.default_rng([0, 2]), 2, 128, 128))
        d = Path(tempfile.mkdtemp())
        mf.write_safetensors(d / "w.safetensors", params, "f32")
        x = mf.smooth_input(np.random.default_rng(1), batch, size, size)
        y = np.arange(batch) % 1000
        np.save(d / "x.npy", x)
        np.save(d / "y.npy", y.astype(np.int64))
        o, rss = ours(d / "w.safetensors", d / "x.npy", d / "y.npy", batch, a.steps + 1)
        j = jax_step(spec, params, x, y, a.steps)
        gpu = ""
        if a.gpu:
            g, grss = ours(d / "w.safetensors", d / "x.npy", d / "y.npy", batch, a.steps + 1, "gpu")
            gpu = f" {g:9.0f} {grss:11.0f}"
        print(f"{arch:10} {batch:5d} {size:5d} {o:9.0f} {j:9.0f} {o / j:6.2f} {rss:11.0f}{gpu}", flush=True)


if __name__ == "__main__":
    main()
