#!/usr/bin/env python3
"""Generate a seeded random ResNet fixture and its onnxruntime reference outputs.

Usage:
    python make_fixture.py --arch resnet50 --scheme torchvision --classes 1000 \
        --seed 0 --height 224 --width 224 [--dtype f32|f16|bf16] --out DIR

Writes into DIR:
    weights.safetensors   seeded random weights, names/layouts of the chosen scheme
    input.npy             1x3xHxW float32 NCHW input
    model.onnx            ONNX graph built independently from the same weights
    ref/<block>.npy       onnxruntime outputs: stem, every residual block, logits
    blocks.json           ordered block names (stem first, then blocks)
    meta.json             configuration, activation statistics, self-check errors

Weights are random, but the batch-norm statistics are *calibrated*: a numpy
forward pass on a seeded calibration batch measures each BN's input statistics
so activations stay of order 1 through the whole network, and the BN
parameters are far from the trivial mean 0 / var 1.

The reference outputs come from onnxruntime running model.onnx, which is built
by code independent of the numpy forward pass (it reads the weights back by
name from the stored tensors, in the scheme's own layout); the two are
compared against each other (float64 numpy vs float32 ORT) on every fixture.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
from pathlib import Path

import numpy as np

GENERATOR_VERSION = 1

ARCHS = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
}
WIDTHS = [64, 128, 256, 512]
STAGE_STRIDES = [1, 2, 2, 2]
EXPANSION = 4
SCHEMES = ("torchvision", "keras")
DTYPES = ("f32", "f16", "bf16")
BN_EPS = {"torchvision": 1e-5, "keras": 1e-3}


# --------------------------------------------------------------------------
# Architecture description (shared by weight generation and the numpy forward)
# --------------------------------------------------------------------------

def _conv(conv, bn, k, cin, cout, stride, pad, relu, last=False):
    return dict(conv=conv, bn=bn, k=k, cin=cin, cout=cout, stride=stride,
                pad=pad, relu=relu, last=last)


def keras_block_letters(arch: str, n: int) -> list[str]:
    """Block letters as in the Keras / Caffe ResNet releases.

    ResNet-50 uses a, b, c, ...; the Caffe ResNet-101/152 use a, b1, b2, ...
    for every stage with more than three blocks (res3b1.., res4b1..res4b22).
    """
    if arch == "resnet50" or n <= 3:
        if n > 26:
            raise ValueError("too many blocks for letter naming")
        return [chr(ord("a") + i) for i in range(n)]
    return ["a"] + [f"b{i}" for i in range(1, n)]


def block_names(arch: str, scheme: str) -> list[str]:
    kind, counts = ARCHS[arch]
    names = []
    for si, n in enumerate(counts):
        if scheme == "torchvision":
            names += [f"layer{si + 1}.{b}" for b in range(n)]
        else:
            names += [f"res{si + 2}{l}" for l in keras_block_letters(arch, n)]
    return names


def build_spec(arch: str, scheme: str, classes: int) -> dict:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch}")
    kind, counts = ARCHS[arch]
    if scheme == "keras" and kind != "bottleneck":
        raise ValueError("keras scheme supports bottleneck architectures only (resnet50/101/152)")
    blocks = []
    cin = 64
    if scheme == "torchvision":
        stem = dict(cb=_conv("conv1", "bn1", 7, 3, 64, 2, 3, True), pool_pad=1)
        for si, (w, n) in enumerate(zip(WIDTHS, counts)):
            for b in range(n):
                s = STAGE_STRIDES[si] if b == 0 else 1
                p = f"layer{si + 1}.{b}"
                if kind == "basic":
                    cout = w
                    main = [_conv(f"{p}.conv1", f"{p}.bn1", 3, cin, w, s, 1, True),
                            _conv(f"{p}.conv2", f"{p}.bn2", 3, w, w, 1, 1, False, last=True)]
                else:
                    cout = w * EXPANSION
                    main = [_conv(f"{p}.conv1", f"{p}.bn1", 1, cin, w, 1, 0, True),
                            _conv(f"{p}.conv2", f"{p}.bn2", 3, w, w, s, 1, True),
                            _conv(f"{p}.conv3", f"{p}.bn3", 1, w, cout, 1, 0, False, last=True)]
                sc = None
                if s != 1 or cin != cout:
                    sc = _conv(f"{p}.downsample.0", f"{p}.downsample.1", 1, cin, cout, s, 0, False)
                blocks.append(dict(name=p, main=main, shortcut=sc, cout=cout))
                cin = cout
        fc = "fc"
    else:
        stem = dict(cb=_conv("conv1", "bn_conv1", 7, 3, 64, 2, 3, True), pool_pad=0)
        for si, (w, n) in enumerate(zip(WIDTHS, counts)):
            S = si + 2
            for b, L in enumerate(keras_block_letters(arch, n)):
                s = STAGE_STRIDES[si] if b == 0 else 1
                cout = w * EXPANSION
                main = [_conv(f"res{S}{L}_branch2a", f"bn{S}{L}_branch2a", 1, cin, w, s, 0, True),
                        _conv(f"res{S}{L}_branch2b", f"bn{S}{L}_branch2b", 3, w, w, 1, 1, True),
                        _conv(f"res{S}{L}_branch2c", f"bn{S}{L}_branch2c", 1, w, cout, 1, 0, False, last=True)]
                sc = None
                if b == 0:
                    sc = _conv(f"res{S}{L}_branch1", f"bn{S}{L}_branch1", 1, cin, cout, s, 0, False)
                blocks.append(dict(name=f"res{S}{L}", main=main, shortcut=sc, cout=cout))
                cin = cout
        fc = f"fc{classes}"
    return dict(arch=arch, scheme=scheme, classes=classes, stem=stem, blocks=blocks,
                fc=fc, features=cin, eps=BN_EPS[scheme])


# --------------------------------------------------------------------------
# Scheme-specific parameter access
# --------------------------------------------------------------------------

def conv_params(params, scheme, name, dt=np.float64):
    """Returns (weight OIHW, bias or None)."""
    if scheme == "torchvision":
        return params[f"{name}.weight"].astype(dt), None
    k = params[f"{name}.kernel"].astype(dt)  # HWIO
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1)), params[f"{name}.bias"].astype(dt)


def bn_params(params, scheme, name, dt=np.float64):
    if scheme == "torchvision":
        keys = ("weight", "bias", "running_mean", "running_var")
    else:
        keys = ("gamma", "beta", "moving_mean", "moving_variance")
    return tuple(params[f"{name}.{k}"].astype(dt) for k in keys)


def fc_params(params, scheme, fc, dt=np.float64):
    """Returns (W [classes, in], b [classes])."""
    if scheme == "torchvision":
        return params[f"{fc}.weight"].astype(dt), params[f"{fc}.bias"].astype(dt)
    return params[f"{fc}.kernel"].astype(dt).T, params[f"{fc}.bias"].astype(dt)


# --------------------------------------------------------------------------
# numpy forward primitives (NCHW, any batch)
# --------------------------------------------------------------------------

def np_conv(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    o, ci, kh, kw = w.shape
    assert ci == c, (x.shape, w.shape)
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    if kh == 1 and kw == 1:
        xs = x[:, :, ::stride, ::stride]
        ho, wo = xs.shape[2], xs.shape[3]
        cols = xs.transpose(0, 2, 3, 1).reshape(n * ho * wo, c)
    else:
        win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
        win = win[:, :, ::stride, ::stride]  # n c ho wo kh kw
        ho, wo = win.shape[2], win.shape[3]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)
    y = cols @ w.reshape(o, -1).T
    if b is not None:
        y = y + b
    return np.ascontiguousarray(y.reshape(n, ho, wo, o).transpose(0, 3, 1, 2))


def np_bn(x, gamma, beta, mean, var, eps):
    scale = gamma / np.sqrt(var + eps)
    return x * scale[None, :, None, None] + (beta - mean * scale)[None, :, None, None]


def np_maxpool3s2(x, pad):
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    return win.max(axis=(4, 5))


def relu(x):
    return np.maximum(x, 0)


# --------------------------------------------------------------------------
# Weight generation with calibrated batch-norm statistics
# --------------------------------------------------------------------------

class _Calibrator:
    def __init__(self, spec, rng):
        self.spec = spec
        self.scheme = spec["scheme"]
        self.rng = rng
        self.params: dict[str, np.ndarray] = {}

    def make_conv(self, cb):
        rng = self.rng
        k, cin, cout = cb["k"], cb["cin"], cb["cout"]
        std = np.sqrt(2.0 / (cin * k * k))  # He normal
        w = (rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32)
        if self.scheme == "torchvision":
            self.params[f"{cb['conv']}.weight"] = w
        else:
            self.params[f"{cb['conv']}.kernel"] = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
            self.params[f"{cb['conv']}.bias"] = rng.uniform(-0.05, 0.05, cout).astype(np.float32)

    def make_bn(self, cb, y):
        rng = self.rng
        c = y.shape[1]
        m = y.mean(axis=(0, 2, 3)).astype(np.float64)
        v = y.var(axis=(0, 2, 3)).astype(np.float64)
        v = v + 0.02 * np.median(v) + 1e-6  # guard against few-sample underestimates
        mean = m + 0.1 * np.sqrt(v) * rng.standard_normal(c)
        var = v * rng.uniform(0.8, 1.25, c) + 1e-4
        if cb["last"]:
            gamma = rng.uniform(0.2, 0.5, c)
        else:
            gamma = rng.uniform(0.5, 1.5, c)
        beta = rng.uniform(-0.2, 0.2, c)
        vals = [gamma, beta, mean, var]
        if self.scheme == "torchvision":
            keys = ("weight", "bias", "running_mean", "running_var")
        else:
            keys = ("gamma", "beta", "moving_mean", "moving_variance")
        for k, a in zip(keys, vals):
            self.params[f"{cb['bn']}.{k}"] = a.astype(np.float32)
        if self.scheme == "torchvision":
            self.params[f"{cb['bn']}.num_batches_tracked"] = np.array(
                int(rng.integers(1000, 200000)), dtype=np.int64)

    def conv_bn(self, x, cb):
        self.make_conv(cb)
        w, b = conv_params(self.params, self.scheme, cb["conv"], np.float32)
        y = np_conv(x, w, b, cb["stride"], cb["pad"])
        self.make_bn(cb, y)
        y = np_bn(y, *bn_params(self.params, self.scheme, cb["bn"], np.float32), self.spec["eps"])
        y = y.astype(np.float32)
        return relu(y) if cb["relu"] else y

    def run(self, x):
        spec = self.spec
        x = self.conv_bn(x, spec["stem"]["cb"])
        x = np_maxpool3s2(x, spec["stem"]["pool_pad"])
        for blk in spec["blocks"]:
            h = x
            for cb in blk["main"]:
                h = self.conv_bn(h, cb)
            s = self.conv_bn(x, blk["shortcut"]) if blk["shortcut"] else x
            x = relu(h + s)
        feat = x.mean(axis=(2, 3)).astype(np.float64)  # n, features
        # fc: logits with a std of ~3 across classes
        nf = spec["features"]
        std = 3.0 / np.sqrt(np.mean(np.sum(feat ** 2, axis=1)))
        W = self.rng.standard_normal((spec["classes"], nf)) * std
        bias = self.rng.normal(0.0, 0.1, spec["classes"])
        if self.scheme == "torchvision":
            self.params[f"{spec['fc']}.weight"] = W.astype(np.float32)
        else:
            self.params[f"{spec['fc']}.kernel"] = np.ascontiguousarray(W.T).astype(np.float32)
        self.params[f"{spec['fc']}.bias"] = bias.astype(np.float32)
        return self.params


def smooth_input(rng, n, h, w):
    x = rng.standard_normal((n, 3, h, w))
    for _ in range(2):  # two 3x3 box blurs (edge padded)
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
        x = sum(xp[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
    x = (x - x.mean(axis=(2, 3), keepdims=True)) / (x.std(axis=(2, 3), keepdims=True) + 1e-8)
    x = x + rng.uniform(-0.3, 0.3, (n, 3, 1, 1))
    return x.astype(np.float32)


# --------------------------------------------------------------------------
# Rounding / safetensors
# --------------------------------------------------------------------------

def f32_to_bf16_bits(a: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = ((bits >> 16) & 1) + 0x7FFF  # round to nearest, ties to even
    return ((bits + rounding) >> 16).astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << 16).view(np.float32)


def round_to(a: np.ndarray, dtype: str) -> np.ndarray:
    if a.dtype.kind != "f" or dtype == "f32":
        return a
    if dtype == "f16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "bf16":
        return bf16_bits_to_f32(f32_to_bf16_bits(a))
    raise ValueError(dtype)


def write_safetensors(path, params: dict[str, np.ndarray], dtype: str):
    """Writes the file by hand (needed for BF16, used for all dtypes)."""
    st_name = {"f32": "F32", "f16": "F16", "bf16": "BF16"}[dtype]
    header, blobs, off = {}, [], 0
    for name in sorted(params):
        a = params[name]
        if a.dtype.kind == "f":
            if dtype == "f32":
                raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
            elif dtype == "f16":
                raw = np.ascontiguousarray(a, dtype="<f2").tobytes()
            else:
                raw = f32_to_bf16_bits(a).astype("<u2").tobytes()
            dt = st_name
        elif a.dtype == np.int64:
            raw = np.ascontiguousarray(a, dtype="<i8").tobytes()
            dt = "I64"
        else:
            raise TypeError(f"{name}: {a.dtype}")
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt", "generator": "make_fixture.py"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read_safetensors(path) -> dict[str, np.ndarray]:
    """Minimal independent reader (handles F32/F16/BF16/I64); values as float32/int64."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        raw = data[base + a:base + b]
        if h["dtype"] == "F32":
            arr = np.frombuffer(raw, "<f4").astype(np.float32)
        elif h["dtype"] == "F16":
            arr = np.frombuffer(raw, "<f2").astype(np.float32)
        elif h["dtype"] == "BF16":
            arr = bf16_bits_to_f32(np.frombuffer(raw, "<u2"))
        elif h["dtype"] == "I64":
            arr = np.frombuffer(raw, "<i8").astype(np.int64)
        else:
            raise TypeError(h["dtype"])
        out[name] = arr.reshape(h["shape"])
    return out


# --------------------------------------------------------------------------
# numpy reference forward (float64) from named parameters
# --------------------------------------------------------------------------

def numpy_forward(params, spec, x, dt=np.float64) -> dict[str, np.ndarray]:
    scheme, eps = spec["scheme"], spec["eps"]

    def cbr(x, cb):
        w, b = conv_params(params, scheme, cb["conv"], dt)
        y = np_bn(np_conv(x, w, b, cb["stride"], cb["pad"]),
                  *bn_params(params, scheme, cb["bn"], dt), eps)
        return relu(y) if cb["relu"] else y

    outs = {}
    x = x.astype(dt)
    x = np_maxpool3s2(cbr(x, spec["stem"]["cb"]), spec["stem"]["pool_pad"])
    outs["stem"] = x
    for blk in spec["blocks"]:
        h = x
        for cb in blk["main"]:
            h = cbr(h, cb)
        s = cbr(x, blk["shortcut"]) if blk["shortcut"] else x
        x = relu(h + s)
        outs[blk["name"]] = x
    feat = x.mean(axis=(2, 3))
    W, b = fc_params(params, scheme, spec["fc"], dt)
    outs["features"] = feat
    outs["logits"] = feat @ W.T + b
    return outs


# --------------------------------------------------------------------------
# ONNX graph, written independently of the spec above
# --------------------------------------------------------------------------

class _OnnxBuilder:
    def __init__(self, params):
        from onnx import helper, numpy_helper  # noqa: F401
        self.params = params
        self.nodes = []
        self.inits = {}
        self.n = 0

    def _init(self, name, arr):
        from onnx import numpy_helper
        if name not in self.inits:
            self.inits[name] = numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name)
        return name

    def _tmp(self, op):
        self.n += 1
        return f"t{self.n}_{op}"

    def node(self, op, inputs, out=None, **attrs):
        from onnx import helper
        out = out or self._tmp(op)
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"n{len(self.nodes)}_{op}", **attrs))
        return out

    def conv(self, x, wname, w_oihw, stride, pad, bname=None, bias=None):
        inputs = [x, self._init(wname, w_oihw)]
        if bname is not None:
            inputs.append(self._init(bname, bias))
        k = w_oihw.shape[2:]
        return self.node("Conv", inputs, kernel_shape=list(k), strides=[stride, stride],
                         pads=[pad] * 4, dilations=[1, 1], group=1)

    def bn(self, x, names, eps):
        inputs = [x] + [self._init(n, self.params[n]) for n in names]
        return self.node("BatchNormalization", inputs, epsilon=float(eps))

    def relu(self, x, out=None):
        return self.node("Relu", [x], out)

    def model(self, outputs):
        from onnx import helper, TensorProto
        graph = helper.make_graph(
            self.nodes, "resnet_fixture",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, None, None])],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, None] if o == "logits" else [1, None, None, None])
             for o in outputs],
            initializer=list(self.inits.values()))
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="make_fixture.py")
        m.ir_version = 8
        return m


def build_onnx_torchvision(params, arch):
    g = _OnnxBuilder(params)
    P = params

    def conv(x, name, stride, pad):
        return g.conv(x, f"{name}.weight", P[f"{name}.weight"], stride, pad)

    def bn(x, name):
        return g.bn(x, [f"{name}.{k}" for k in ("weight", "bias", "running_mean", "running_var")], 1e-5)

    outputs = []
    x = g.relu(bn(conv("input", "conv1", 2, 3), "bn1"))
    x = g.node("MaxPool", [x], "stem", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    outputs.append("stem")
    kind, counts = ARCHS[arch]
    for L, n in enumerate(counts, start=1):
        for B in range(n):
            p = f"layer{L}.{B}"
            stride = 2 if (L > 1 and B == 0) else 1
            if kind == "basic":
                h = g.relu(bn(conv(x, f"{p}.conv1", stride, 1), f"{p}.bn1"))
                h = bn(conv(h, f"{p}.conv2", 1, 1), f"{p}.bn2")
            else:
                h = g.relu(bn(conv(x, f"{p}.conv1", 1, 0), f"{p}.bn1"))
                h = g.relu(bn(conv(h, f"{p}.conv2", stride, 1), f"{p}.bn2"))
                h = bn(conv(h, f"{p}.conv3", 1, 0), f"{p}.bn3")
            if f"{p}.downsample.0.weight" in P:
                s = bn(conv(x, f"{p}.downsample.0", stride, 0), f"{p}.downsample.1")
            else:
                s = x
            x = g.relu(g.node("Add", [h, s]), out=p)
            outputs.append(p)
    x = g.node("GlobalAveragePool", [x])
    x = g.node("Flatten", [x], axis=1)
    g._init("fc.weight", P["fc.weight"])
    g._init("fc.bias", P["fc.bias"])
    g.node("Gemm", [x, "fc.weight", "fc.bias"], "logits", transB=1)
    return g.model(["logits"] + outputs), outputs


def build_onnx_keras(params, arch, classes):
    g = _OnnxBuilder(params)
    P = params

    def conv(x, name, stride, pad):
        k = P[f"{name}.kernel"]  # HWIO -> OIHW
        return g.conv(x, f"{name}.kernel", k.transpose(3, 2, 0, 1), stride, pad,
                      bname=f"{name}.bias", bias=P[f"{name}.bias"])

    def bn(x, name):
        return g.bn(x, [f"{name}.{k}" for k in ("gamma", "beta", "moving_mean", "moving_variance")], 1e-3)

    outputs = []
    # ZeroPadding2D(3) + Conv2D(7, strides=2, padding='valid')
    x = g.relu(bn(conv("input", "conv1", 2, 3), "bn_conv1"))
    x = g.node("MaxPool", [x], "stem", kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 0, 0])
    outputs.append("stem")
    _, counts = ARCHS[arch]
    for S, n in zip(range(2, 6), counts):
        for i, L in enumerate(keras_block_letters(arch, n)):
            base = f"{S}{L}"
            stride = 2 if (S > 2 and i == 0) else 1
            h = g.relu(bn(conv(x, f"res{base}_branch2a", stride, 0), f"bn{base}_branch2a"))
            h = g.relu(bn(conv(h, f"res{base}_branch2b", 1, 1), f"bn{base}_branch2b"))
            h = bn(conv(h, f"res{base}_branch2c", 1, 0), f"bn{base}_branch2c")
            if i == 0:
                s = bn(conv(x, f"res{base}_branch1", stride, 0), f"bn{base}_branch1")
            else:
                s = x
            x = g.relu(g.node("Add", [h, s]), out=f"res{base}")
            outputs.append(f"res{base}")
    x = g.node("GlobalAveragePool", [x])
    x = g.node("Flatten", [x], axis=1)
    fc = f"fc{classes}"
    g._init(f"{fc}.kernel", P[f"{fc}.kernel"])  # [in, classes]
    g._init(f"{fc}.bias", P[f"{fc}.bias"])
    g.node("Gemm", [x, f"{fc}.kernel", f"{fc}.bias"], "logits", transB=0)
    return g.model(["logits"] + outputs), outputs


# --------------------------------------------------------------------------
# Main entry
# --------------------------------------------------------------------------

def _separate_top(logits, bias, k=5, margin=0.1):
    """Nudges fc bias so that the top-(k+1) logits are separated by >= margin."""
    order = np.argsort(-logits, kind="stable")
    L = logits.copy()
    last = min(k, len(L) - 1)
    for i in range(last - 1, -1, -1):
        need = L[order[i + 1]] + margin - L[order[i]]
        if need > 0:
            L[order[i]] += need
            bias[order[i]] += need
    return bias


def _rel_err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = np.abs(a - b).max()
    return float(d), float(d / max(np.abs(b).max(), 1e-30))


def make_fixture(arch, scheme, classes, seed, height, width, out, dtype="f32", verbose=False,
                 keep_onnx=True):
    t0 = time.time()
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}")
    out = Path(out)
    (out / "ref").mkdir(parents=True, exist_ok=True)
    spec = build_spec(arch, scheme, classes)
    rng = np.random.default_rng(seed)

    # 1. input (seeded first, so it does not depend on the architecture)
    x_in = smooth_input(np.random.default_rng([seed, 1]), 1, height, width)

    # 2. weights with calibrated BN statistics (calibration batch of 2, >= 128 px)
    ch, cw = max(height, 128), max(width, 128)
    x_cal = smooth_input(np.random.default_rng([seed, 2]), 2, ch, cw)
    params = _Calibrator(spec, rng).run(x_cal)
    t_cal = time.time()

    # 3. round to the storage dtype; the reference uses the rounded values
    params = {k: round_to(v, dtype) for k, v in params.items()}

    # 4. keep the top-5 order of the actual input's logits well separated
    ref64 = numpy_forward(params, spec, x_in)
    W, b = fc_params(params, scheme, spec["fc"])
    logits = ref64["logits"][0]
    margin = max(0.25, 0.02 * float(np.abs(logits).max()))
    new_b = _separate_top(logits, b.copy(), k=5, margin=margin)
    params[f"{spec['fc']}.bias"] = round_to(new_b.astype(np.float32), dtype)
    _, b = fc_params(params, scheme, spec["fc"])
    ref64["logits"] = ref64["features"] @ W.T + b
    t_np = time.time()

    # 5. write weights (by hand, then read back with an independent path)
    wpath = out / "weights.safetensors"
    write_safetensors(wpath, params, dtype)
    stored = read_safetensors(wpath)
    assert set(stored) == set(params)
    for k, v in params.items():
        assert stored[k].shape == v.shape, k
        assert np.array_equal(stored[k], v), k
    if dtype != "bf16":  # the official reader as well (no numpy bf16 support there)
        from safetensors.numpy import load_file
        off = load_file(str(wpath))
        for k, v in params.items():
            assert np.array_equal(off[k].astype(v.dtype), v), k
    np.save(out / "input.npy", x_in)

    # 6. ONNX graph from the stored tensors, run with onnxruntime
    import onnx
    import onnxruntime as ort
    if scheme == "torchvision":
        model, outputs = build_onnx_torchvision(stored, arch)
    else:
        model, outputs = build_onnx_keras(stored, arch, classes)
    onnx.checker.check_model(model)
    mbytes = model.SerializeToString()
    if keep_onnx:
        (out / "model.onnx").write_bytes(mbytes)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    sess = ort.InferenceSession(mbytes, so, providers=["CPUExecutionProvider"])
    names = ["logits"] + outputs
    res = dict(zip(names, sess.run(names, {"input": x_in})))
    t_ort = time.time()
    del mbytes, model, sess

    expected_blocks = ["stem"] + block_names(arch, scheme)
    assert outputs == expected_blocks, (outputs, expected_blocks)

    # 7. write refs, compare ORT with the numpy float64 forward
    stats, check = {}, {}
    for name in names:
        r = res[name].astype(np.float32)
        np.save(out / "ref" / f"{name}.npy", r)
        check[name] = _rel_err(r, ref64[name])
        stats[name] = dict(shape=list(r.shape), max_abs=float(np.abs(r).max()),
                           mean=float(r.mean()), std=float(r.std()),
                           frac_zero=float(np.mean(r == 0)))
    (out / "blocks.json").write_text(json.dumps(expected_blocks, indent=1) + "\n")

    lg = res["logits"][0].astype(np.float64)
    top = np.argsort(-lg, kind="stable")[:6]
    gaps = -np.diff(lg[top])
    worst_check = max(check.items(), key=lambda kv: kv[1][1])
    meta = dict(
        generator_version=GENERATOR_VERSION, arch=arch, scheme=scheme, classes=classes,
        seed=seed, height=height, width=width, dtype=dtype, eps=spec["eps"],
        fc_name=spec["fc"], blocks=expected_blocks,
        num_params=int(sum(v.size for v in params.values() if v.dtype.kind == "f")),
        top5=[int(i) for i in top[:5]], top_gaps=[float(g) for g in gaps],
        stats=stats,
        onnx_vs_numpy={k: dict(max_abs=v[0], rel=v[1]) for k, v in check.items()},
        onnx_vs_numpy_worst=dict(name=worst_check[0], max_abs=worst_check[1][0],
                                 rel=worst_check[1][1]),
        timings=dict(calibrate=t_cal - t0, numpy_forward=t_np - t_cal, ort=t_ort - t_np,
                     total=time.time() - t0),
    )
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    if worst_check[1][1] > 1e-3:
        raise AssertionError(f"ONNX and numpy forward disagree: {worst_check}")

    result = dict(
        dir=str(out), weights=str(wpath), input=str(out / "input.npy"),
        onnx=str(out / "model.onnx") if keep_onnx else None, ref_dir=str(out / "ref"),
        blocks_json=str(out / "blocks.json"), meta_json=str(out / "meta.json"),
        blocks=expected_blocks,
        refs={n: str(out / "ref" / f"{n}.npy") for n in names},
        max_abs={n: stats[n]["max_abs"] for n in names},
        meta=meta,
    )
    if verbose:
        print_summary(meta)
    return result


def print_summary(meta):
    print(f"{meta['arch']} {meta['scheme']} {meta['dtype']} {meta['height']}x{meta['width']} "
          f"classes={meta['classes']} params={meta['num_params']:,}")
    print(f"  {'block':<12} {'shape':<22} {'max|x|':>8} {'mean':>7} {'std':>7} {'zero%':>6}  onnx-vs-np rel")
    for name in meta["blocks"] + ["logits"]:
        s = meta["stats"][name]
        c = meta["onnx_vs_numpy"][name]
        print(f"  {name:<12} {'x'.join(map(str, s['shape'])):<22} {s['max_abs']:8.3f} "
              f"{s['mean']:7.3f} {s['std']:7.3f} {100 * s['frac_zero']:6.1f}  {c['rel']:.2e}")
    print(f"  top5 {meta['top5']} gaps {[round(g, 3) for g in meta['top_gaps']]}")
    t = meta["timings"]
    print(f"  time: calibrate {t['calibrate']:.2f}s numpy {t['numpy_forward']:.2f}s "
          f"ort {t['ort']:.2f}s total {t['total']:.2f}s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    ap.add_argument("--scheme", required=True, choices=SCHEMES)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--height", type=int, default=224)
    ap.add_argument("--width", type=int, default=224)
    ap.add_argument("--dtype", default="f32", choices=DTYPES)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-onnx", action="store_true", help="do not keep model.onnx on disk")
    a = ap.parse_args(argv)
    make_fixture(a.arch, a.scheme, a.classes, a.seed, a.height, a.width, a.out, a.dtype,
                 verbose=True, keep_onnx=not a.no_onnx)


if __name__ == "__main__":
    main()
