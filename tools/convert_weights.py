#!/usr/bin/env python3
"""Convert ResNet weights to the `.safetensors` files `resnet` reads.

    python tools/convert_weights.py model.h5 out.safetensors        # Keras 2 (h5py)
    python tools/convert_weights.py resnet50.pth out.safetensors    # PyTorch state dict (needs torch)

Keras layers keep their names and layouts (`res2a_branch2a.kernel` as HWIO,
`bn2a_branch2a.gamma`, `fc1000.kernel` as (in, out)); the engine detects the
scheme from the names. PyTorch state dicts keep torchvision's names
(`layer1.0.conv1.weight`); a `module.` prefix (DataParallel) is stripped.
`--dtype f16` halves the file; the engine widens it back to f32.

Keras 3's `.weights.h5` files name each layer after its class (`conv2d_7`,
`batch_normalization_7`), not its name, so they cannot be read here; in
Keras 3 itself, write the names the engine wants with
    save_file({w.path.replace("/", "."): w.numpy() for w in model.weights}, "out.safetensors")
(`from safetensors.numpy import save_file`).
"""

import argparse
import re
import sys

import numpy as np
from safetensors.numpy import save_file

# What Keras 3 calls a layer's group in `.weights.h5`: its class, snake-cased,
# numbered from the second on (keras/src/saving/saving_lib.py).
KERAS3_CLASS_GROUP = re.compile(r"^(conv2d|batch_normalization|dense|zero_padding2d|activation|max_pooling2d"
                                r"|average_pooling2d|global_average_pooling2d|add|flatten|input_layer)(_\d+)?$")

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
            # Keras 3: layers/<group>/vars/<i>, the group named after the class.
            named_by_class = sorted(n for n, layer in f["layers"].items() if "vars" in layer and len(layer["vars"]) and KERAS3_CLASS_GROUP.match(n))
            if named_by_class:
                raise SystemExit(
                    f"{path}: a Keras 3 weights file names layers by class (`{named_by_class[0]}`), not by name, so "
                    "which conv is which is lost; in Keras 3, save the named weights directly: "
                    "save_file({w.path.replace('/', '.'): w.numpy() for w in model.weights}, 'out.safetensors')")
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

        # <layer>/<scope>/<var>:0. The layer is the top group, whatever the
        # variable's own scope says (a model built twice in one TF1 session
        # scopes its variables `conv1_1`). A top group holding several
        # layers' variables is a model nested in this one: there each
        # variable's scope names its layer.
        datasets = []
        root.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
        scopes = {}
        for name in datasets:
            parts = name.split("/")
            scopes.setdefault(parts[0], set()).add(parts[-2] if len(parts) >= 2 else parts[0])
        for name in datasets:
            parts = name.split("/")
            layer = parts[-2] if len(scopes[parts[0]]) > 1 else parts[0]
            key = f"{layer}.{parts[-1].split(':')[0]}"
            if key in out:
                raise SystemExit(f"{path}: two variables map to `{key}` (the second at `{name}`)")
            out[key] = np.asarray(root[name])
    return out


def from_torch(path):
    try:
        import torch
    except ImportError:
        raise SystemExit("reading .pth files needs PyTorch: pip install torch")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError, for objects beyond tensors (a training checkpoint's args)
        raise SystemExit(f"{path}: torch would not load it as plain weights ({e}); if you trust the file, load it in "
                         "Python and save only its state dict: torch.save(ckpt['state_dict'], 'weights.pth')")
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    out = {}
    for k, v in sd.items():
        k = k[len("module."):] if k.startswith("module.") else k
        v = v.detach().cpu()
        # numpy has no bfloat16: widen floats (the engine reads f32 anyway).
        out[k] = (v.float() if v.is_floating_point() else v).numpy()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="Keras 2 .h5, or PyTorch .pth / .pt / .pth.tar")
    ap.add_argument("output", help="the .safetensors file to write")
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    args = ap.parse_args(argv)
    if args.input.endswith(".h5"):
        tensors = from_keras_h5(args.input)
    elif args.input.endswith((".pth", ".pt", ".bin", ".pth.tar")):
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
