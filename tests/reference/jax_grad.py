"""Independent gradient reference: a ResNet forward pass written in JAX from
the weights file's own tensors (torchvision OIHW or Keras HWIO layouts), and
`jax.value_and_grad` of the mean softmax cross-entropy.

It shares nothing with the engine but the file: the architecture comes from
make_fixture.build_spec, the tensors are read by make_fixture's own reader,
and gradients come out under the file's names and in its layouts.

Conventions it pins down (the engine's, see src/train/mod.rs):
* `bn="frozen"`: every batchnorm on its running statistics; γ, β train.
* `bn="batch"`: the trainable part's batchnorms on the batch's mean and
  biased variance over N×H×W.
* `train`: "all", "last-stage" (the last stage's blocks and the dense layer)
  or "head" (the dense layer); what does not train runs as in inference.

Used by tests/test_training.py only (no JAX at run time).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

jax.config.update("jax_enable_x64", True)


def _is_last_stage(name: str, scheme: str) -> bool:
    return name.startswith("layer4.") if scheme == "torchvision" else name.startswith("res5")


def trainable_names(spec, params, train: str) -> list[str]:
    """The file's tensor names that `train` selects."""
    scheme = spec["scheme"]
    kernel = "weight" if scheme == "torchvision" else "kernel"
    gb = ("weight", "bias") if scheme == "torchvision" else ("gamma", "beta")
    units = []
    if train == "all":
        units.append(spec["stem"]["cb"])
    for blk in spec["blocks"]:
        if train == "all" or (train == "last-stage" and _is_last_stage(blk["name"], scheme)):
            units += blk["main"] + ([blk["shortcut"]] if blk["shortcut"] else [])
    names = []
    for cb in units:
        names.append(f"{cb['conv']}.{kernel}")
        if f"{cb['conv']}.bias" in params:
            names.append(f"{cb['conv']}.bias")
        names += [f"{cb['bn']}.{gb[0]}", f"{cb['bn']}.{gb[1]}"]
    names += [f"{spec['fc']}.{kernel}", f"{spec['fc']}.bias"]
    return names


def make_loss(spec, params, bn: str, train: str, dtype, record=None):
    """loss(trainable, x, y) -> (loss, logits) with the other tensors fixed.

    `record` (a list, un-jitted calls only): gets, per ReLU of the trainable
    part, the smallest |input| relative to the tensor's largest: how close
    the network is to a ReLU whose mask float32 cannot resolve."""
    scheme, eps = spec["scheme"], spec["eps"]
    kernel = "weight" if scheme == "torchvision" else "kernel"
    bnk = ("weight", "bias", "running_mean", "running_var") if scheme == "torchvision" else ("gamma", "beta", "moving_mean", "moving_variance")
    fixed = {k: jnp.asarray(v, dtype) for k, v in params.items() if np.asarray(v).dtype.kind == "f"}

    def conv_bn(p, x, cb, trains):
        w = p[f"{cb['conv']}.{kernel}"]
        if scheme == "keras":
            w = jnp.transpose(w, (3, 2, 0, 1))  # HWIO -> OIHW
        s, pad = cb["stride"], cb["pad"]
        y = lax.conv_general_dilated(x, w, (s, s), [(pad, pad), (pad, pad)], dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                     precision=lax.Precision.HIGHEST)
        if f"{cb['conv']}.bias" in p:
            y = y + p[f"{cb['conv']}.bias"][None, :, None, None]
        g, b, m, v = (p[f"{cb['bn']}.{k}"] for k in bnk)
        if bn == "batch" and trains:
            m = jnp.mean(y, axis=(0, 2, 3))
            v = jnp.mean((y - m[None, :, None, None]) ** 2, axis=(0, 2, 3))
        y = (y - m[None, :, None, None]) / jnp.sqrt(v + eps)[None, :, None, None] * g[None, :, None, None] + b[None, :, None, None]
        if cb["relu"] and trains and record is not None:
            record.append(float(jnp.min(jnp.abs(y)) / jnp.max(jnp.abs(y))))
        return jnp.maximum(y, 0) if cb["relu"] else y

    def loss(trainable, x, labels):
        p = dict(fixed)
        p.update(trainable)
        all_train = train == "all"
        h = conv_bn(p, x, spec["stem"]["cb"], all_train)
        pad = spec["stem"]["pool_pad"]
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 3, 3), (1, 1, 2, 2), [(0, 0), (0, 0), (pad, pad), (pad, pad)])
        for blk in spec["blocks"]:
            trains = all_train or (train == "last-stage" and _is_last_stage(blk["name"], scheme))
            m = h
            for cb in blk["main"]:
                m = conv_bn(p, m, cb, trains)
            s = conv_bn(p, h, blk["shortcut"], trains) if blk["shortcut"] else h
            if trains and record is not None:
                record.append(float(jnp.min(jnp.abs(m + s)) / jnp.max(jnp.abs(m + s))))
            h = jnp.maximum(m + s, 0)
        feat = jnp.mean(h, axis=(2, 3))
        W = p[f"{spec['fc']}.{kernel}"]
        logits = feat @ (W.T if scheme == "torchvision" else W) + p[f"{spec['fc']}.bias"]
        logp = jax.nn.log_softmax(logits, axis=1)
        return -jnp.mean(logp[jnp.arange(x.shape[0]), labels]), logits

    return loss


def gradients(spec, params, x, labels, bn="frozen", train="all", dtype=jnp.float64):
    """(loss, logits, {name: gradient}) in `dtype`, returned as float64 numpy."""
    names = trainable_names(spec, params, train)
    loss = make_loss(spec, params, bn, train, dtype)
    trainable = {k: jnp.asarray(params[k], dtype) for k in names}
    (l, logits), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(trainable, jnp.asarray(x, dtype), jnp.asarray(labels))
    return float(l), np.asarray(logits, np.float64), {k: np.asarray(v, np.float64) for k, v in g.items()}


def relu_margin(spec, params, x, labels, bn="frozen", train="all"):
    """The smallest relative |input| of any ReLU the backward pass goes
    through, in float64. Below about 1e-5 the mask of that ReLU is not
    determined by float32 arithmetic (whose forward pass is off by ~1e-6 of
    a tensor's largest value), and neither is the gradient to the tolerance:
    such a case is ill-conditioned, for JAX's float32 as for ours."""
    record = []
    names = trainable_names(spec, params, train)
    loss = make_loss(spec, params, bn, train, jnp.float64, record)
    loss({k: jnp.asarray(params[k], jnp.float64) for k in names}, jnp.asarray(x, jnp.float64), jnp.asarray(labels))
    return min(record) if record else 1.0


def tolerance(g64: dict) -> dict:
    """Per tensor: 2e-3·max|ref| + 1e-5·(largest gradient of any tensor)."""
    big = max(float(np.abs(v).max()) for v in g64.values())
    return {k: 2e-3 * float(np.abs(v).max()) + 1e-5 * big for k, v in g64.items()}


def sensitivity(spec, params, x, labels, bn="frozen", train="all", draws=3, rel=1e-6, seed=0):
    """How far float64 gradients move, in shares of the tolerance, when
    every parameter and the input move by `rel` of themselves (about what
    float32 rounding does to every layer's output; moving the input alone
    is not enough: batch statistics normalise it away): the worst tensor
    over `draws` perturbations. Far below 1, the gradient is determined by
    float32 arithmetic to the tolerance; near or above 1, a ReLU sits so
    close to zero that float32 cannot resolve its mask (few values per
    channel make that likely), and no float32 computation, JAX's included,
    can be held to float64 there."""
    _, _, g = gradients(spec, params, x, labels, bn, train)
    tol = tolerance(g)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(draws):
        jiggle = lambda a: np.asarray(a, np.float64) * (1 + rel * rng.standard_normal(np.shape(a)))
        pp = {k: (jiggle(v) if np.asarray(v).dtype.kind == "f" else v) for k, v in params.items()}
        _, _, gp = gradients(spec, pp, jiggle(x), labels, bn, train)
        worst = max(worst, max(float(np.abs(gp[k] - g[k]).max()) / tol[k] for k in g))
    return worst


def sgd_steps(spec, params, x, labels, steps, lr, momentum, weight_decay, bn="frozen", train="all"):
    """PyTorch's SGD (first step buf = g) on full-batch steps, in float64."""
    names = trainable_names(spec, params, train)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    buf = {}
    for _ in range(steps):
        _, _, g = gradients(spec, p, x, labels, bn, train)
        for k in names:
            d = g[k] + weight_decay * p[k]
            buf[k] = d if k not in buf else momentum * buf[k] + d
            p[k] = p[k] - lr * buf[k]
    return p


def adamw_steps(spec, params, x, labels, steps, lr, weight_decay, bn="frozen", train="all", betas=(0.9, 0.999), eps=1e-8):
    """PyTorch's AdamW on full-batch steps, in float64: (parameters, the
    first step's gradients, the loss before each step)."""
    names = trainable_names(spec, params, train)
    first, losses = None, []
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(p[k]) for k in names}
    v = {k: np.zeros_like(p[k]) for k in names}
    for t in range(1, steps + 1):
        loss, _, g = gradients(spec, p, x, labels, bn, train)
        first = first or g
        losses.append(loss)
        for k in names:
            p[k] = p[k] * (1 - lr * weight_decay)
            m[k] = betas[0] * m[k] + (1 - betas[0]) * g[k]
            v[k] = betas[1] * v[k] + (1 - betas[1]) * g[k] ** 2
            mhat = m[k] / (1 - betas[0] ** t)
            vhat = v[k] / (1 - betas[1] ** t)
            p[k] = p[k] - lr * mhat / (np.sqrt(vhat) + eps)
    return p, first, losses
