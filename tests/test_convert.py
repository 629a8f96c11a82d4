"""tools/convert_weights.py: Keras 2 .h5 files (also a ResNet nested in
another model, and a layer-named Keras 3 layout) → the .safetensors the
engine reads, tensor for tensor; Keras 3's class-named layout is refused
with the way out."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from safetensors.numpy import load_file, save_file

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "tools" / "convert_weights.py"


def _keras_like():
    rng = np.random.default_rng(3)
    return {
        "conv1.kernel": rng.standard_normal((7, 7, 3, 8)).astype(np.float32),
        "conv1.bias": rng.standard_normal(8).astype(np.float32),
        "bn_conv1.gamma": rng.standard_normal(8).astype(np.float32),
        "bn_conv1.beta": rng.standard_normal(8).astype(np.float32),
        "bn_conv1.moving_mean": rng.standard_normal(8).astype(np.float32),
        "bn_conv1.moving_variance": rng.random(8).astype(np.float32),
        "fc6.kernel": rng.standard_normal((8, 6)).astype(np.float32),
        "fc6.bias": rng.standard_normal(6).astype(np.float32),
    }


def _keras2(path, t, group):
    """A Keras 2 .h5 of `t`, each variable at model_weights/<group(layer)>/<var>:0."""
    with h5py.File(path, "w") as f:
        for k, v in t.items():
            layer, var = k.split(".")
            f.create_dataset(f"model_weights/{group(layer)}/{var}:0", data=v)


def _convert(src, dst, *extra):
    subprocess.run([sys.executable, TOOL, src, dst, *extra], check=True, capture_output=True)
    return load_file(str(dst))


def test_keras2_h5(tmp_path):
    t = _keras_like()
    _keras2(tmp_path / "m.h5", t, lambda layer: f"{layer}/{layer}")
    out = _convert(tmp_path / "m.h5", tmp_path / "m.safetensors")
    assert set(out) == set(t)
    for k in t:
        np.testing.assert_array_equal(out[k], t[k])


def test_keras3_weights_h5_and_f16(tmp_path):
    t = _keras_like()
    layers = {}
    for k, v in t.items():
        layers.setdefault(k.split(".")[0], []).append(v)
    with h5py.File(tmp_path / "m.weights.h5", "w") as f:
        for layer, vs in layers.items():
            for i, v in enumerate(vs):
                f.create_dataset(f"layers/{layer}/vars/{i}", data=v)
    out = _convert(tmp_path / "m.weights.h5", tmp_path / "m.safetensors", "--dtype", "f16")
    assert set(out) == set(t)
    for k in t:
        assert out[k].dtype == np.float16
        np.testing.assert_allclose(out[k], t[k], rtol=1e-3, atol=1e-3)


def test_keras2_nested_model(tmp_path):
    # A ResNet inside another model: model_weights/<model>/<layer>/<var>:0.
    t = _keras_like()
    _keras2(tmp_path / "m.h5", t, lambda layer: f"resnet50/{layer}")
    out = _convert(tmp_path / "m.h5", tmp_path / "m.safetensors")
    assert set(out) == set(t)
    # A layer's variables scoped apart from it (a model built twice in one
    # TF1 session: conv1/conv1_1/kernel:0) still take the layer's name.
    _keras2(tmp_path / "s.h5", t, lambda layer: f"{layer}/{layer}_1")
    assert set(_convert(tmp_path / "s.h5", tmp_path / "s.safetensors")) == set(t)
    # Two variables that land on one name (two nested models with the same
    # layer names) are refused, not overwritten.
    with h5py.File(tmp_path / "d.h5", "w") as f:
        for m in ("a", "b"):
            f.create_dataset(f"model_weights/{m}/conv1/kernel:0", data=t["conv1.kernel"])
            f.create_dataset(f"model_weights/{m}/bn_conv1/gamma:0", data=t["bn_conv1.gamma"])
    p = subprocess.run([sys.executable, TOOL, tmp_path / "d.h5", tmp_path / "d.safetensors"], capture_output=True, text=True)
    assert p.returncode != 0 and "two variables map to `bn_conv1.gamma`" in p.stderr, p.stderr


def test_keras3_class_named_layers_are_refused(tmp_path):
    # What Keras 3 writes: groups named after the layer's class, numbered.
    t = _keras_like()
    with h5py.File(tmp_path / "m.weights.h5", "w") as f:
        f.create_dataset("layers/conv2d/vars/0", data=t["conv1.kernel"])
        f.create_dataset("layers/conv2d/vars/1", data=t["conv1.bias"])
        for i, var in enumerate(["gamma", "beta", "moving_mean", "moving_variance"]):
            f.create_dataset(f"layers/batch_normalization/vars/{i}", data=t[f"bn_conv1.{var}"])
    p = subprocess.run([sys.executable, TOOL, tmp_path / "m.weights.h5", tmp_path / "m.safetensors"], capture_output=True, text=True)
    assert p.returncode != 0 and "names layers by class (`batch_normalization`)" in p.stderr and "w.path" in p.stderr, p.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_unknown_extension_is_refused(tmp_path):
    save_file({"a": np.zeros(2, np.float32)}, str(tmp_path / "a.safetensors"))
    p = subprocess.run([sys.executable, TOOL, tmp_path / "a.safetensors", tmp_path / "b.safetensors"],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "expected a .h5" in p.stderr
