"""Writes data/digits.bin, the residual experiment's dataset, from the copy
of the UCI "Optical Recognition of Handwritten Digits" test set that ships
inside scikit-learn (`sklearn.datasets.load_digits`: 1797 digits, 8×8,
pixels 0..16, by E. Alpaydin and C. Kaynak, CC BY 4.0; see
data/digits.LICENSE).

Run once by hand (scikit-learn is not a dependency of the project):
    python3 -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn
    /tmp/skl/bin/python tools/make_digits.py

The format (read by src/dataset.rs), little-endian:
    b"RESNETDS", u32 version 1, u32 examples, u32 height, u32 width,
    u32 channels, u32 classes, u32 training examples (the first ones; the
    rest are the test split), u32 largest pixel value,
    then one u8 label per example, then the pixels (u8, C×H×W per example).
The split is fixed: scikit-learn's order, the first 1297 to train, the last 500 to test.
"""
import struct
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

d = load_digits()
x = d.images.astype(np.uint8)
y = d.target.astype(np.uint8)
n, h, w = x.shape
train = n - 500
head = b"RESNETDS" + struct.pack("<8I", 1, n, h, w, 1, 10, train, 16)
out = Path(__file__).resolve().parent.parent / "data" / "digits.bin"
out.write_bytes(head + y.tobytes() + x.tobytes())
print(out, out.stat().st_size, "bytes;", train, "train,", n - train, "test; classes in test:", np.bincount(y[train:]))
