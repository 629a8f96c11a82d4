#!/usr/bin/env python3
"""The PyTorch side of the GPU benchmark (tools/bench_gpu.sh), run on the GPU
machine itself:

  weights DIR   seeded torchvision resnet18/resnet50 (BN statistics calibrated
                on random batches, so activations stay in a sane range) saved
                as DIR/<arch>.safetensors with torchvision names, one input
                DIR/input.npy and its float64 reference logits DIR/<arch>.ref.npy
  time OUT.json torchvision resnet18/resnet50, batch 1, fp32, 224×224:
                eager and CUDA-graph replay, each with cuDNN's default (TF32
                convolutions allowed) and with strict fp32 (TF32 off, what our
                kernels compute)
  report DIR    one table from DIR's JSON files (ours and PyTorch's)

Needs torch, torchvision, safetensors and numpy (all on the GPU image).
"""

import copy
import json
import statistics
import sys
from pathlib import Path

ARCHS = (("resnet18", 18), ("resnet50", 50))


def set_tf32(torch, on):
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


def make_model(torch, torchvision, arch, seed):
    torch.manual_seed(seed)
    m = getattr(torchvision.models, arch)(weights=None)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(mod.weight, 0.5, 1.5)
            torch.nn.init.uniform_(mod.bias, -0.2, 0.2)
            mod.momentum = None  # cumulative average over the calibration batches
            mod.reset_running_stats()
    m = m.cuda().train()
    with torch.no_grad():
        for _ in range(4):
            m(torch.randn(8, 3, 224, 224, device="cuda"))
    return m.eval()


def weights(out):
    import numpy as np
    import torch
    import torchvision
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 3, 224, 224, generator=g)
    np.save(out / "input.npy", x.numpy().astype("<f4"))
    for arch, seed in ARCHS:
        m = make_model(torch, torchvision, arch, seed)
        sd = {k: v.detach().contiguous().cpu() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
        save_file(sd, str(out / f"{arch}.safetensors"))
        with torch.no_grad():
            ref = m.cpu().double()(x.double()).numpy()[0]
        np.save(out / f"{arch}.ref.npy", ref)
        print(f"weights: {arch} -> {out}/{arch}.safetensors", file=sys.stderr)


def median_ms(torch, fn, iters, warmup=30):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times), min(times), max(times)


def capture(torch, fn):
    """A CUDA graph of `fn`: one replay launches the whole network."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(5):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def time_all(out_json, iters=200):
    import torch
    import torchvision

    res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(), "runs": []}
    for arch, seed in ARCHS:
        m = make_model(torch, torchvision, arch, seed)
        x = torch.randn(1, 3, 224, 224, device="cuda")
        for tf32 in (True, False):
            set_tf32(torch, tf32)
            with torch.inference_mode():
                eager = median_ms(torch, lambda: m(x), iters)
                graphed = median_ms(torch, capture(torch, lambda: m(x)).replay, iters)
            for kind, t in (("eager", eager), ("cuda graph", graphed)):
                res["runs"].append({"arch": arch, "tf32": tf32, "kind": kind, "median_ms": t[0], "min_ms": t[1], "max_ms": t[2]})
                print(f"torch {arch} {kind:<10} tf32={'on ' if tf32 else 'off'} median {t[0]:.3f} ms (min {t[1]:.3f}, max {t[2]:.3f})", file=sys.stderr)
        # The peer for our f16 kernels: half precision, channels-last (NHWC),
        # where cuDNN uses tensor cores.
        m16 = copy.deepcopy(m).half().to(memory_format=torch.channels_last)
        x16 = x.half().to(memory_format=torch.channels_last)
        with torch.inference_mode():
            eager = median_ms(torch, lambda: m16(x16), iters)
            graphed = median_ms(torch, capture(torch, lambda: m16(x16)).replay, iters)
        for kind, t in (("eager", eager), ("cuda graph", graphed)):
            res["runs"].append({"arch": arch, "tf32": None, "fp16": True, "kind": kind, "median_ms": t[0], "min_ms": t[1], "max_ms": t[2]})
            print(f"torch {arch} {kind:<10} fp16 NHWC median {t[0]:.3f} ms (min {t[1]:.3f}, max {t[2]:.3f})", file=sys.stderr)
    set_tf32(torch, True)
    Path(out_json).write_text(json.dumps(res, indent=1))


def report(d):
    import numpy as np

    d = Path(d)
    torch_res = json.loads((d / "torch.json").read_text())
    ours = [json.loads(p.read_text()) for p in sorted(d.glob("ours_*.json")) if not p.name.endswith("_logits.json")]
    print(f"\n## {torch_res['device']} · PyTorch {torch_res['torch']} · ours on {ours[0]['adapter'] if ours else '?'}\n")
    for arch, _ in ARCHS:
        name = "ResNet-18" if arch == "resnet18" else "ResNet-50"
        rows = [r for r in ours if r["model"].startswith(name + " ")]
        print(f"### {name}, 224×224, batch 1\n")
        print("| runtime | median ms | speed against PyTorch eager, TF32 off |")
        print("|---|---|---|")
        ref = next(r["median_ms"] for r in torch_res["runs"] if r["arch"] == arch and r["kind"] == "eager" and r["tf32"] is False)
        for r in torch_res["runs"]:
            if r["arch"] == arch:
                if r.get("fp16"):
                    label = f"PyTorch {r['kind']}, fp16 channels-last"
                else:
                    label = f"PyTorch {r['kind']}, TF32 {'on (default)' if r['tf32'] else 'off'}"
                print(f"| {label} | {r['median_ms']:.3f} | {ref / r['median_ms']:.2f}× |")
        for r in rows:
            gpu = statistics.median(r["gpu_frame_ms"]) if r["gpu_frame_ms"] else float("nan")
            stats = " + the page's statistics" if r.get("stats") else ""
            submit = ", one command buffer per frame" if r.get("submit") == "frame" else ""
            r["conv"] = f"{r['conv']} {r.get('precision', 'f32')}{stats}{submit}, {r.get('dispatches_per_frame', '?')} dispatches"
            print(f"| ours {r['mode']} {r['conv']}: latency | {r['wall_median_ms']:.3f} | {ref / r['wall_median_ms']:.2f}× |")
            print(f"| ours {r['mode']} {r['conv']}: back-to-back frames | {r['throughput_ms_per_frame']:.3f} | {ref / r['throughput_ms_per_frame']:.2f}× |")
            print(f"| ours {r['mode']} {r['conv']}: GPU time (timestamps) | {gpu:.3f} | {ref / gpu:.2f}× |")
        best = min((r for r in rows if not r.get("stats")), key=lambda r: r["wall_median_ms"], default=None)
        if best and best["layers"]:
            total = sum(l["ms"] for l in best["layers"])
            print(f"\nslowest layers ({best['mode']} {best['conv']}; each op in its own timed pass, {total:.3f} ms in all):\n")
            for l in sorted(best["layers"], key=lambda l: -l["ms"])[:8]:
                print(f"- {l['ms']:.3f} ms ({100 * l['ms'] / total:.1f}%) {l['name']}")
        per_layer_table(rows)
        refp = d / f"{arch}.ref.npy"
        for precision in ("f32", "f16"):
            logits = d / f"ours_{arch}_{precision}_logits.json"
            if not (logits.exists() and refp.exists()):
                continue
            got = np.array(json.loads(logits.read_text().splitlines()[0])["logits"], dtype=np.float64)
            want = np.load(refp)
            err = np.abs(got - want).max()
            same = list(np.argsort(-got)[:5]) == list(np.argsort(-want)[:5])
            print(f"\nours ({precision}) logits against a float64 PyTorch forward pass: max|Δ| {err:.3g}, "
                  f"relative to max|ref| {err / np.abs(want).max():.3g}; top-5 {'same' if same else 'DIFFERENT'}")
        print()


def per_layer_table(rows, top=25):
    """Each op's GPU time under every conv choice timed (fast mode, without
    statistics), slowest first by the first choice: the data for choosing a
    kernel per layer. Ops are matched by name (the text before the kernel
    description); a split conv is timed with its reduction, and a folded
    pair's cost lands on its two ops."""
    runs = [r for r in rows if r["mode"] == "fast" and r["layers"] and not r.get("stats")]
    if len(runs) < 2:
        return
    # The GPUs' default first (f32 split-K), the order of the runs after it.
    runs.sort(key=lambda r: not (r["conv"].startswith("splitk:") and r.get("precision", "f32") == "f32"))
    cols = [(r["conv"].rsplit(",", 1)[0], {l["name"].split(" [")[0]: l["ms"] for l in r["layers"]}) for r in runs]
    base = cols[0][1]
    ops = sorted(base, key=lambda n: -base[n])
    print(f"\nper-op GPU time (ms), each op in its own timed pass, by conv choice; the {min(top, len(ops))} slowest under the first:\n")
    print("| op | " + " | ".join(c for c, _ in cols) + " | fastest |")
    print("|---|" + "---|" * (len(cols) + 1))
    for op in ops[:top]:
        times = [c.get(op, float("nan")) for _, c in cols]
        best = min(range(len(cols)), key=lambda i: times[i] if times[i] == times[i] else float("inf"))
        print(f"| {op} | " + " | ".join(f"{t:.4f}" for t in times) + f" | {cols[best][0]} |")
    totals = [sum(c.values()) for _, c in cols]
    best_each = sum(min(c.get(op, float("inf")) for _, c in cols) for op in ops)
    print("| all ops | " + " | ".join(f"{t:.4f}" for t in totals) + f" | {best_each:.4f} taking each op's fastest |")


if __name__ == "__main__":
    cmd, arg = sys.argv[1], sys.argv[2]
    {"weights": weights, "time": time_all, "report": report}[cmd](arg)
