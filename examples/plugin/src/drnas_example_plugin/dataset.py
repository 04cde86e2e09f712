"""A dataset: ``noise16``, seeded random 16x16 RGB images of 3 classes, generated in memory (no ``--data``).

Every image is Gaussian noise around grey; class ``c`` brightens channel ``c``, so a network can learn the classes
(accuracy well above the 33% of chance) although no pixel alone tells them apart. The same seed always gives the
same images.

To add a dataset, copy this file: describe it with a :class:`~drnas.data.info.DatasetInfo` (classes, channels,
size, normalisation, augmentation) and register a loader ``(path, download) -> ImageArrays`` (uint8 NHWC images,
int64 labels). A dataset read from files sets ``needs`` to what ``--data`` must hold and reads ``path``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from drnas.data.formats import register_dataset
from drnas.data.info import DatasetInfo, ImageArrays

#: the per-channel mean and std of the generated images on the 0..1 scale (measured), for normalisation
INFO = DatasetInfo("noise16", num_classes=3, channels=3, image_size=16, mean=(0.522,) * 3, std=(0.242,) * 3,
                   hflip=True, crop_padding=2)


def _images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images and labels: Gaussian noise around grey (std 64 of 255), channel c 16 brighter in class c."""
    labels = rng.integers(0, INFO.num_classes, n)
    pixels = rng.normal(128.0, 64.0, (n, INFO.image_size, INFO.image_size, INFO.channels))
    pixels[np.arange(n), :, :, labels] += 16.0  # the signal: class c brightens channel c
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8), labels.astype(np.int64)


def load_noise16(path: Path | None, download: bool) -> ImageArrays:
    """The whole dataset (2,048 training and 512 test images), the same on every call."""
    rng = np.random.default_rng(16)
    x_train, y_train = _images(rng, 2048)
    x_test, y_test = _images(rng, 512)
    return ImageArrays(x_train, y_train, x_test, y_test, INFO)


register_dataset("noise16", INFO, load_noise16,
                 doc="seeded random 16x16 RGB images, 3 classes told apart by one channel's brightness (example)")
