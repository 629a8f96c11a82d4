"""Independent reference for networks built from a description: the
CIFAR-style ResNets of the ResNet paper (§4.2) and their plain twins, written
in JAX from the description alone (depth 6n+2, widths, residual or plain,
batchnorm on or off), with the weights read from the file by name.

Conventions (the engine's, src/network.rs): a 3×3 stride-1 stem conv → BN →
ReLU, no pool; three stages of n basic blocks (3×3 conv → BN → ReLU → 3×3
conv → BN, then + shortcut, ReLU; a plain block ReLUs the second BN's output
with nothing added); a stage's first block (after the first stage) has stride
2 on its first conv and, in the residual network, a 1×1 stride-2 conv + BN
shortcut (`downsample.0/1`); global average pool; dense layer `fc`.
Batchnorm on: batch statistics (mean and biased variance over N×H×W), ε 1e-5.
Batchnorm off: `γ·x + β` with γ and β trained (no statistics).

Used by tests/test_experiment.py only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

jax.config.update("jax_enable_x64", True)


def layers(desc: dict):
    """(stem, blocks): each conv unit is (conv name, bn name, stride, pad);
    a block is (main units, shortcut unit or None)."""
    n = (desc["depth"] - 2) // 6
    widths = desc.get("widths", [16, 32, 64])
    residual = desc.get("residual", True)
    stem = ("conv1", "bn1", 1, 1)
    blocks = []
    c = widths[0]
    for s, w in enumerate(widths):
        for b in range(n):
            p = f"layer{s + 1}.{b}"
            stride = 2 if (b == 0 and s > 0) else 1
            main = [(f"{p}.conv1", f"{p}.bn1", stride, 1), (f"{p}.conv2", f"{p}.bn2", 1, 1)]
            short = (f"{p}.downsample.0", f"{p}.downsample.1", stride, 0) if residual and (stride != 1 or c != w) else None
            blocks.append((main, short))
            c = w
    return stem, blocks


def trainable_names(desc: dict) -> list[str]:
    stem, blocks = layers(desc)
    units = [stem] + [u for main, short in blocks for u in main + ([short] if short else [])]
    names = []
    for conv, bn, _, _ in units:
        names += [f"{conv}.weight", f"{bn}.weight", f"{bn}.bias"]
    return names + ["fc.weight", "fc.bias"]


def relu(y):
    """ReLU with a zero gradient at 0, as PyTorch's (and the engine's):
    `jnp.maximum(y, 0)` splits a tie's gradient in halves, and zero-γ
    blocks add exact zeros to a ReLU's zeros."""
    return jnp.where(y > 0, y, 0.0)


def make_loss(desc: dict):
    stem, blocks = layers(desc)
    bn_on = desc.get("batchnorm", True)
    residual = desc.get("residual", True)

    def unit(p, x, u, relu_on):
        conv, bn, s, pad = u
        y = lax.conv_general_dilated(x, p[f"{conv}.weight"], (s, s), [(pad, pad), (pad, pad)],
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=lax.Precision.HIGHEST)
        g, b = p[f"{bn}.weight"][None, :, None, None], p[f"{bn}.bias"][None, :, None, None]
        if bn_on:
            m = jnp.mean(y, axis=(0, 2, 3), keepdims=True)
            v = jnp.mean((y - m) ** 2, axis=(0, 2, 3), keepdims=True)
            y = (y - m) / jnp.sqrt(v + 1e-5) * g + b
        else:
            y = y * g + b
        return relu(y) if relu_on else y

    def loss(p, x, labels):
        h = unit(p, x, stem, True)
        for main, short in blocks:
            m = unit(p, h, main[0], True)
            m = unit(p, m, main[1], False)
            if residual:
                h = relu(m + (unit(p, h, short, False) if short else h))
            else:
                h = relu(m)
        logits = jnp.mean(h, axis=(2, 3)) @ p["fc.weight"].T + p["fc.bias"]
        logp = jax.nn.log_softmax(logits, axis=1)
        return -jnp.mean(logp[jnp.arange(x.shape[0]), labels]), logits

    return loss


def gradients(desc, params, x, labels):
    """(loss, logits, {name: gradient}) in float64."""
    names = trainable_names(desc)
    p = {k: jnp.asarray(params[k], jnp.float64) for k in names}
    (l, logits), g = jax.jit(jax.value_and_grad(make_loss(desc), has_aux=True))(p, jnp.asarray(x, jnp.float64), jnp.asarray(labels))
    return float(l), np.asarray(logits), {k: np.asarray(v) for k, v in g.items()}


def sgd_steps(desc, params, x, labels, steps, lr, momentum, weight_decay):
    """PyTorch's SGD (first step buf = g) on full-batch steps, in float64: (parameters, losses)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    buf, losses = {}, []
    for _ in range(steps):
        loss, _, g = gradients(desc, p, x, labels)
        losses.append(loss)
        for k in g:
            d = g[k] + weight_decay * p[k]
            buf[k] = d if k not in buf else momentum * buf[k] + d
            p[k] = p[k] - lr * buf[k]
    return p, losses
