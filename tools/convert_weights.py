#!/usr/bin/env python3
"""Convert ResNet weights to the `.safetensors` files `resnet` reads.

    python tools/convert_weights.py model.h5 out.safetensors        # Keras (h5py)
    python tools/convert_weights.py model.weights.h5 out.safetensors  # Keras 3
    python tools/convert_weights.py resnet50.pth out.safetensors    # PyTorch state dict (needs torch)

Keras layers keep their names and layouts (`res2a_branch2a.kernel` as HWIO,
`bn2a_branch2a.gamma`, `fc1000.kernel` as (in, out)); the engine detects the
scheme from the names. PyTorch state dicts keep torchvision's names
(`layer1.0.conv1.weight`); a `module.` prefix (DataParallel) is stripped.
`--dtype f16` halves the file; the engine widens it back to f32.
"""

import argparse
import sys

import numpy as np
from safetensors.numpy import save_file

# Keras 3 `.weights.h5` stores variables by position, not by name.
KERAS3_ORDER = {
    2: ["kernel", "bias"],
    4: ["gamma", "beta", "moving_mean", "moving_variance"],
}


def from_keras_h5(path):
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        if "layers" in f and "model_weights" not in f:
            # Keras 3: layers/<name>/vars/<i>
            for name, layer in f["layers"].items():
                if "vars" not in layer or len(layer["vars"]) == 0:
                    continue
                vars_ = [np.asarray(layer["vars"][str(i)]) for i in range(len(layer["vars"]))]
                order = KERAS3_ORDER.get(len(vars_))
                if order is None and len(vars_) == 1:
                    order = ["kernel"]
                if order is None:
                    raise SystemExit(f"{path}: layer {name} has {len(vars_)} variables; cannot tell which is which")
                if len(vars_) == 2 and vars_[0].ndim == 1:
                    order = ["gamma", "beta"]
                for var, arr in zip(order, vars_):
                    out[f"{name}.{var}"] = arr
            return out
        # Keras 2: [model_weights/]<layer>/<layer>/<var>:0
        root = f["model_weights"] if "model_weights" in f else f

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                parts = name.split("/")
                layer, var = parts[0], parts[-1].split(":")[0]
                out[f"{layer}.{var}"] = np.asarray(obj)

        root.visititems(visit)
    return out


def from_torch(path):
    try:
        import torch
    except ImportError:
        raise SystemExit("reading .pth files needs PyTorch: pip install torch")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    out = {}
    for k, v in sd.items():
        k = k[len("module."):] if k.startswith("module.") else k
        out[k] = v.detach().cpu().numpy()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="Keras .h5 / .weights.h5, or PyTorch .pth / .pt")
    ap.add_argument("output", help="the .safetensors file to write")
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    args = ap.parse_args(argv)
    if args.input.endswith(".h5"):
        tensors = from_keras_h5(args.input)
    elif args.input.endswith((".pth", ".pt", ".bin")):
        tensors = from_torch(args.input)
    else:
        raise SystemExit(f"{args.input}: expected a .h5 (Keras) or .pth/.pt (PyTorch) file")
    if not tensors:
        raise SystemExit(f"{args.input}: no weights found")
    dtype = np.float16 if args.dtype == "f16" else np.float32
    out = {}
    for k, v in tensors.items():
        v = np.ascontiguousarray(v)
        out[k] = v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v
    save_file(out, args.output)
    print(f"wrote {len(out)} tensors to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
