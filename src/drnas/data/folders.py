"""Image folders: an index of the image paths (:class:`ImageFolderIndex`) and a loader that decodes and augments
them in worker processes (:class:`ImageFolderLoader`), for datasets too large to hold as arrays or kept as files.

Two datasets read them: ``imagenet`` (ImageNet's JPEG folders at 224 px with ImageNet's random-resized crops) and
``folder``, any ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*`` images (JPEG or PNG), one class per sub-folder,
resized to ``image_size`` (32 px unless set) and augmented like CIFAR (padded random crop, flip).

Per-image randomness is a pure function of (seed, epoch, image index) and the order comes from the per-epoch
generator of ``device_loader.py``, so an epoch does not depend on the number of workers and resumes bit-exactly.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from drnas.data.device_loader import batch_bounds, check_shard, epoch_generator, local_slice
from drnas.data.info import DataError, DatasetInfo

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: the facts of ImageNet as a folder dataset; a loader's info has its index's classes and its image size
IMAGENET_INFO = DatasetInfo("imagenet", 1000, 3, 224, IMAGENET_MEAN, IMAGENET_STD, hflip=True, crop_padding=0,
                            resized_crop=True)
#: the facts of a generic image folder (``--dataset folder``): classes from its sub-folders (0: the data decides),
#: images resized to 32 px (``image_size`` sets another size), ImageNet's normalisation, CIFAR's crop and flip
FOLDER_INFO = DatasetInfo("folder", 0, 3, 32, IMAGENET_MEAN, IMAGENET_STD, hflip=True, crop_padding=4)

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_SPLIT_NAMES = ("train", "val", "validation", "test")


def _pil_image() -> Any:
    """The PIL.Image module, imported on first use so Pillow stays an optional dependency."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading image folders needs Pillow: pip install 'drnas[imagenet]'") from None
    return Image


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(_IMAGE_EXTENSIONS)


def _class_files(folder: Path) -> list[str]:
    """Image files under one class folder (recursively, hidden entries skipped), as sorted '/'-joined paths."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(folder).as_posix()
        prefix = "" if rel == "." else rel + "/"
        found.extend(prefix + f for f in filenames if _is_image(f))
    return sorted(found)


@dataclass
class ImageFolderIndex:
    """The images of an ImageNet-style folder: ``root/<class>/**/*.{jpg,jpeg,png}``.

    ``classes`` are the sorted class folder names (label ``i`` is ``classes[i]``);
    ``files`` are paths relative to ``root``, class by class, sorted within a class.
    Only the paths are held: images are decoded when an :class:`ImageFolderLoader` reads them.
    """

    root: Path
    classes: list[str]
    files: list[str]
    labels: np.ndarray  # int64, one per file

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != len(self.files):
            raise DataError(f"{len(self.files)} files but {len(self.labels)} labels; they must match one to one")

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def scan(cls, root: str | os.PathLike[str], split: str | None = "train") -> ImageFolderIndex:
        """Index ``root/split`` if that folder exists, else ``root`` itself as the split folder.

        Class folders are the non-hidden subfolders; every one must hold at least one
        .jpg/.jpeg/.png image (any case), or a one-line :class:`DataError` is raised.
        """
        base = Path(os.fspath(root)).expanduser()
        where = f"{base}/{split}" if split else str(base)
        layout = f"expected {where}/<class>/*.JPEG" + (f" (or {base}/<class>/*.JPEG)" if split else "")
        if not base.exists():
            raise DataError(f"image folder {base} does not exist: {layout}")
        if not base.is_dir():
            raise DataError(f"{base} is not a directory: {layout}")
        folder = base / split if split and (base / split).is_dir() else base
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
            subdirs = [e.name for e in entries if not e.name.startswith(".") and e.is_dir()]
            loose = [e.name for e in entries if e.is_file() and _is_image(e.name)]
        except OSError as exc:
            raise DataError(f"cannot list {folder} ({exc.strerror or exc}): {layout}") from None
        if folder == base and split:
            others = [d for d in subdirs if d in _SPLIT_NAMES]
            if others:
                raise DataError(f"no '{split}' folder in {base} (it has {', '.join(others)}): {layout}")
        if not subdirs:
            if loose:
                raise DataError(
                    f"{folder} holds {len(loose)} images but no class subfolders: {layout}; "
                    "sort the images into one folder per class (e.g. ImageNet val into <wnid> folders)"
                )
            raise DataError(f"{folder} has no class subfolders: {layout}")
        files: list[str] = []
        counts: list[int] = []
        for name in subdirs:
            try:
                found = _class_files(folder / name)
            except OSError as exc:
                raise DataError(f"cannot list class folder {folder / name} ({exc}): {layout}") from None
            if not found:
                raise DataError(
                    f"class folder {folder / name} has no .jpg/.jpeg/.png images; every class needs one: {layout}"
                )
            files.extend(f"{name}/{f}" for f in found)
            counts.append(len(found))
        labels = np.repeat(np.arange(len(subdirs), dtype=np.int64), counts)
        return cls(folder, subdirs, files, labels)

    def subset(self, indices: np.ndarray | Sequence[int]) -> ImageFolderIndex:
        """The images at ``indices`` (in that order), with the same root and classes."""
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise DataError(f"subset indices must be a 1-D integer array, got {idx.dtype} {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.files)):
            raise DataError(f"subset indices outside 0..{len(self.files) - 1}; pass positions into this index")
        return ImageFolderIndex(self.root, list(self.classes), [self.files[i] for i in idx.tolist()], self.labels[idx])


def _random_resized_box(
    rng: np.random.Generator, width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[int, int, int, int]:
    """(left, top, w, h) of a random crop covering ``scale`` of the area with aspect in ``ratio``.

    Up to ten tries at a random area and log-uniform aspect; if none fits, the largest
    centred crop whose aspect is clamped into ``ratio``.
    """
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


class _ImageFolderDataset(Dataset):
    """One epoch's decoding and per-image augmentation; runs in DataLoader workers.

    Paths are kept as one fixed-width bytes array, not a list of str, so forked workers
    do not copy the list page by page through reference counting. Randomness for image
    ``i`` comes from ``default_rng([seed, epoch, i])`` only, so a sample does not depend
    on which worker reads it or in which order.
    """

    def __init__(self, index: ImageFolderIndex, *, train: bool, image_size: int, seed: int, epoch: int,
                 info: DatasetInfo = IMAGENET_INFO) -> None:
        self.resized_crop, self.hflip, self.padding = info.resized_crop, info.hflip, info.crop_padding
        self.root = os.fsencode(index.root)
        self.files = np.array([os.fsencode(f) for f in index.files], dtype=np.bytes_)
        self.labels = index.labels
        self.train = train
        self.size = image_size
        self.resize = int(round(image_size * 256 / 224))
        self.seed = int(seed) % (1 << 64)
        self.epoch = int(epoch) % (1 << 64)

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, path: bytes) -> Any:
        Image = _pil_image()
        try:
            with open(path, "rb") as fh:
                img = Image.open(fh)
                img = img.convert("RGB")  # loads the pixels; grey, CMYK, palette and RGBA become RGB
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot decode image {os.fsdecode(path)} ({exc}); replace or delete the file") from None
        return img

    def image(self, i: int) -> np.ndarray:
        """The transformed uint8 HWC (size, size, 3) image ``i``."""
        Image = _pil_image()
        bilinear = getattr(Image, "Resampling", Image).BILINEAR
        img = self._read(os.path.join(self.root, self.files[i]))
        s = self.size
        if not self.resized_crop:  # the whole image at s x s; in training a padded random crop and a flip (CIFAR's)
            arr = np.asarray(img.resize((s, s), bilinear), dtype=np.uint8)
            if self.train:
                rng = np.random.default_rng([self.seed, self.epoch, int(i)])
                p = self.padding
                if p > 0:
                    top, left = (int(v) for v in rng.integers(0, 2 * p + 1, 2))
                    arr = np.pad(arr, ((p, p), (p, p), (0, 0)))[top:top + s, left:left + s]
                if self.hflip and rng.random() < 0.5:
                    arr = arr[:, ::-1]
            return np.ascontiguousarray(arr)
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, int(i)])
            left, top, w, h = _random_resized_box(rng, img.width, img.height, (0.08, 1.0), (3 / 4, 4 / 3))
            img = img.resize((s, s), bilinear, box=(left, top, left + w, top + h))
            arr = np.asarray(img, dtype=np.uint8)
            if self.hflip and rng.random() < 0.5:
                arr = arr[:, ::-1]
            return np.ascontiguousarray(arr)
        # Evaluation: shorter side to size*256/224, then the centred size x size crop.
        w, h = img.width, img.height
        if w <= h:
            nw, nh = self.resize, max(1, int(self.resize * h / w))
        else:
            nw, nh = max(1, int(self.resize * w / h)), self.resize
        img = img.resize((nw, nh), bilinear)
        top, left = int(round((nh - s) / 2.0)), int(round((nw - s) / 2.0))
        return np.ascontiguousarray(np.asarray(img.crop((left, top, left + s, top + s)), dtype=np.uint8))

    def __getitem__(self, i: int) -> tuple[np.ndarray | str, int]:
        # A DataError is returned, not raised: DataLoader would wrap it in a multi-line traceback.
        try:
            return self.image(i), int(self.labels[i])
        except DataError as exc:
            return str(exc), -1


def _collate_uint8(samples: list[tuple[np.ndarray | str, int]]) -> tuple[torch.Tensor, torch.Tensor] | str:
    """Stack a batch into a uint8 NHWC tensor (shared memory across processes, pinnable), or pass on an error."""
    for x, _ in samples:
        if isinstance(x, str):
            return x
    xs = torch.from_numpy(np.stack([x for x, _ in samples]))  # type: ignore[misc]
    return xs, torch.tensor([y for _, y in samples], dtype=torch.int64)


class ImageFolderLoader:
    """Decodes images in worker processes (torch DataLoader) and yields normalised NCHW float batches on device.

    ``info`` is the dataset's (ImageNet's by default; its classes become the index's, its size ``image_size``
    when given), and so is the augmentation. ImageNet (``info.resized_crop``): ``train=True``, a random-resized
    crop (scale 0.08-1, aspect 3/4-4/3) to ``image_size`` and a random horizontal flip; ``train=False``, the
    shorter side to ``image_size*256/224`` (bilinear) and a centred crop. Otherwise (``--dataset folder``): the
    whole image resized to ``image_size`` square, in training cropped at random from it padded by
    ``info.crop_padding`` pixels and flipped at random when ``info.hflip``. Per-image randomness is a pure function of
    (seed, epoch, image index) and the order comes from a CPU generator seeded by
    (seed, epoch), so ``epoch(e)`` does not depend on ``workers`` and the global RNG is
    never used. ``shuffle`` and ``drop_last`` default to ``train``; with ``drop_last`` and
    fewer images than ``batch_size``, one batch of all images is yielded.
    """

    def __init__(
        self,
        index: ImageFolderIndex,
        *,
        batch_size: int,
        device: torch.device | str,
        train: bool,
        image_size: int | None = None,
        workers: int = 4,
        seed: int = 0,
        shuffle: bool | None = None,
        drop_last: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        info: DatasetInfo = IMAGENET_INFO,
    ) -> None:
        _pil_image()  # fail now, not inside a worker
        image_size = info.image_size if image_size is None else image_size
        if batch_size < 1:
            raise DataError(f"batch size {batch_size} must be at least 1")
        check_shard(rank, world_size)
        self.rank, self.world_size = rank, world_size
        if image_size < 1:
            raise DataError(f"image size {image_size} must be at least 1; e.g. 224")
        if workers < 0:
            raise DataError(f"workers {workers} must be >= 0 (0 decodes in the main process)")
        if len(index) == 0:
            raise DataError(f"no images to batch in {index.root}; check the folder and the subset")
        self.index = index
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.train = bool(train)
        self.image_size = int(image_size)
        self.workers = int(workers)
        self.seed = int(seed)
        self.shuffle = self.train if shuffle is None else bool(shuffle)
        self.drop_last = self.train if drop_last is None else bool(drop_last)
        self.info = dataclasses.replace(info, num_classes=index.num_classes, image_size=self.image_size)
        self._mean = torch.tensor(info.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(info.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(batch_bounds(len(self.index), self.batch_size, self.drop_last))

    def epoch(self, epoch: int, *, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (float32 normalised NCHW images, int64 labels) on the device for one epoch.

        ``start`` skips the first batches without decoding them (for resuming mid-epoch);
        the remaining batches equal those of an uninterrupted epoch.
        """
        gen = epoch_generator(self.seed, epoch)
        n = len(self.index)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        batches = [order[lo:hi][local_slice(hi - lo, self.rank, self.world_size)].tolist()
                   for lo, hi in batch_bounds(n, self.batch_size, self.drop_last)[start:]]
        batches = [batch for batch in batches if batch]
        if not batches:
            return
        dataset = _ImageFolderDataset(
            self.index, train=self.train, image_size=self.image_size, seed=self.seed, epoch=epoch, info=self.info
        )
        cuda = self.device.type == "cuda"
        loader = DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=self.workers,
            collate_fn=_collate_uint8,
            pin_memory=cuda,
            persistent_workers=False,
            prefetch_factor=2 if self.workers > 0 else None,
            generator=gen,  # DataLoader draws its worker base seed from here, not from the global RNG
        )
        it = iter(loader)
        try:
            for batch in it:
                if isinstance(batch, str):
                    raise DataError(batch)
                xb, yb = batch
                x = xb.to(self.device, non_blocking=cuda).permute(0, 3, 1, 2).contiguous()
                out = x.float().div_(255.0).sub_(self._mean).div_(self._std)
                yield out, yb.to(self.device, non_blocking=cuda)
        finally:
            del it  # shuts the workers down when the consumer stops early or an error is raised
