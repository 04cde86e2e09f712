"""What every module of ``drnas.data`` shares: a dataset's facts, a dataset in memory, and the one error type.

They sit below the readers (``formats.py``, ``archive.py``) and the loaders (``device_loader.py``,
``folders.py``, ``splits.py``), so that each of those can name them without importing another.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drnas.errors import DrnasError


class DataError(DrnasError, ValueError):
    """Bad or missing data input; the message is one line naming the problem and the fix."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the model and the augmentation need to know about a dataset."""

    name: str
    num_classes: int
    channels: int
    image_size: int  # square images
    mean: tuple[float, ...]  # per channel, 0..1 scale
    std: tuple[float, ...]
    hflip: bool  # random horizontal flip is a valid augmentation
    crop_padding: int  # pad-and-random-crop padding


@dataclass
class ImageArrays:
    """A dataset in memory: uint8 NHWC images and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    info: DatasetInfo
