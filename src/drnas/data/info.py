"""What every module of ``drnas.data`` shares: a dataset's facts, a dataset in memory, and the one error type.

They sit below the readers (``formats.py``, ``archive.py``) and the loaders (``device_loader.py``,
``folders.py``, ``splits.py``), so that each of those can name them without importing another.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from drnas.errors import DrnasError


class DataError(DrnasError, ValueError):
    """Bad or missing data input; the message is one line naming the problem and the fix."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the model and the augmentation need to know about a dataset.

    The augmentation of its training images: a random horizontal flip (``hflip``) and a random crop of the image
    zero-padded by ``crop_padding`` pixels, or, with ``resized_crop`` (ImageNet's folders), a random-resized crop
    instead of the padded one. A run may override ``hflip`` and ``crop_padding`` (config fields of the same name,
    :func:`augmented`). ``num_classes`` 0: as many as the data has (a folder dataset: one per class folder).
    """

    name: str
    num_classes: int
    channels: int
    image_size: int  # square images
    mean: tuple[float, ...]  # per channel, 0..1 scale
    std: tuple[float, ...]
    hflip: bool  # random horizontal flip is a valid augmentation
    crop_padding: int  # pad-and-random-crop padding
    resized_crop: bool = False  # streamed folders: a random-resized crop (scale 0.08-1) instead of pad-and-crop

    def augmentation(self) -> str:
        """The training augmentation in words, e.g. "crop (padding 4) + flip"."""
        crop = ""
        if self.resized_crop:
            crop = "random-resized crop"
        elif self.crop_padding:
            crop = f"crop (padding {self.crop_padding})"
        return " + ".join(part for part in (crop, "flip" if self.hflip else "") if part) or "none"


def augmented(info: DatasetInfo, hflip: bool | None = None, crop_padding: int | None = None) -> DatasetInfo:
    """``info`` with a run's augmentation settings applied (None keeps the dataset's own)."""
    changes = {name: value for name, value in (("hflip", hflip), ("crop_padding", crop_padding)) if value is not None}
    if "crop_padding" in changes and (changes["crop_padding"] < 0 or info.resized_crop and changes["crop_padding"]):
        why = ("its folders train with random-resized crops: leave crop_padding unset" if info.resized_crop
               else "it must be >= 0")
        raise DataError(f"crop_padding={changes['crop_padding']} does not apply to {info.name}: {why}")
    return replace(info, **changes) if changes else info


@dataclass
class ImageArrays:
    """A dataset in memory: uint8 NHWC images and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    info: DatasetInfo
