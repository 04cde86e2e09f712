"""Build ``src/drnas/_data/digits.npz``, the embedded offline demo dataset.

Provenance: the UCI "Optical Recognition of Handwritten Digits" data set
(optdigits, Alpaydin & Kaynak 1998, https://doi.org/10.24432/C50P49), licensed
CC BY 4.0, as shipped by scikit-learn (``sklearn.datasets.load_digits``):
1797 grey-scale 8x8 images with values 0..16.

Stored as ``x_train`` uint8 NHWC (1797, 8, 8, 1) rescaled to 0..255 with
round(v * 255 / 16), and ``y_train`` int64. scikit-learn is needed only to run
this script, never by the package at run time.

Usage: python tools/make_digits.py [OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def build(out: Path) -> None:
    """Write the npz; kept deterministic so rebuilding gives identical arrays."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), 0..16
    if images.shape != (1797, 8, 8) or images.min() < 0 or images.max() > 16:
        raise SystemExit(f"unexpected load_digits() data: shape {images.shape}")
    x = np.rint(images * 255.0 / 16.0).astype(np.uint8)[..., None]
    y = np.asarray(bunch.target, dtype=np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, x_train=x, y_train=y)
    print(f"wrote {out}: x_train {x.shape} {x.dtype}, y_train {y.shape} {y.dtype}")


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[1] / "src" / "drnas" / "_data" / "digits.npz"
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
