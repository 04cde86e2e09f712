"""Which images go where, and the one place the jobs' loaders are built.

The splits: the search's weight and architecture halves (:func:`split_halves` by position, as the reference code
splits CIFAR; :func:`sample_per_class` for per-class fractions such as ImageNet's 10% and 2.5%), and
:func:`spread` for N images of a class-sorted folder. The builders (:func:`search_loaders`,
:func:`search_folder_loaders`, :func:`train_loaders`, :func:`train_folder_loaders`) turn a job's config fields
and its data (arrays in memory, or a folder index) into the loaders it steps through, for one rank of a world.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from drnas.data.device_loader import DeviceLoader
from drnas.data.folders import IMAGENET_INFO, ImageFolderIndex, ImageFolderLoader
from drnas.data.formats import dataset_entry
from drnas.data.info import DataError, DatasetInfo, ImageArrays, augmented
from drnas.errors import ConfigError

if TYPE_CHECKING:
    from drnas.config.search import SearchConfig
    from drnas.config.train import TrainConfig

#: the share of the training images held out for testing when a dataset has no test split
HOLDOUT_FRACTION = 0.1

#: a loader of either kind: both yield (normalised float NCHW images, int64 labels) on the device per ``epoch(e)``
Loader = DeviceLoader | ImageFolderLoader


def split_halves(n: int, portion: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Positional split of ``n`` train indices: first ``floor(n*portion)`` for weights, rest for arch.

    Positional (not shuffled) like the DARTS/DrNAS code on CIFAR's original order, so the
    same images land in the same half as in the reference runs.
    """
    if not 0.0 < portion < 1.0:
        raise DataError(f"train portion {portion} must be strictly between 0 and 1; e.g. 0.5")
    k = int(np.floor(portion * n))
    if k < 1 or k >= n:
        raise DataError(f"{n} train images cannot be split at portion {portion}: a half would be empty; use more data")
    return np.arange(k, dtype=np.int64), np.arange(k, n, dtype=np.int64)


def _part_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Images of a class of ``n`` per part: round half up, at least 1 each when n allows, total <= n."""
    parts = len(fractions)
    if n < parts:  # too few for one each: the first parts get one
        return [1] * n + [0] * (parts - n)
    sizes = [max(1, int(math.floor(f * n + 0.5))) for f in fractions]
    while sum(sizes) > n:  # rounding up (or the minimum of 1) overshot: trim the largest, last first
        big = max(range(parts), key=lambda i: (sizes[i], i))
        sizes[big] -= 1
    return sizes


def sample_per_class(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Disjoint per-class random parts of a labelled set, e.g. ``(0.1, 0.025)`` for the ImageNet search halves.

    Each class (ascending label order) gets a permutation of its images from
    ``np.random.default_rng(seed)``; the first ``round(f1*n_c)`` go to part 1, the next
    ``round(f2*n_c)`` to part 2, and so on (rounding half up; at least one image per class
    and part when the class has enough). Returns one sorted int64 index array per part.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and y.dtype.kind not in "iu"):
        raise DataError(f"labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    fr = [float(f) for f in fractions]
    if not fr or any(not (0.0 < f <= 1.0) for f in fr) or sum(fr) > 1.0 + 1e-9:
        raise DataError(f"fractions {tuple(fr)} must each be in (0, 1] and sum to at most 1; e.g. (0.1, 0.025)")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        perm = members[rng.permutation(len(members))]
        lo = 0
        for p, size in enumerate(_part_sizes(len(members), fr)):
            parts[p].append(perm[lo:lo + size])
            lo += size
    return [np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for p in parts]



def spread(index: ImageFolderIndex, n: int | None) -> ImageFolderIndex:
    """``n`` images spread evenly over a folder index (which is sorted by class, so its first N would be a
    few classes only); the whole index when ``n`` is None or not smaller."""
    if n is None or n >= len(index):
        return index
    return index.subset(np.linspace(0, len(index) - 1, n).round().astype(np.int64))


class SearchLoaders(NamedTuple):
    """A search's loaders: ``weight`` and ``arch`` (augmented) on the two halves, ``valid`` (plain, in order) on
    the architecture half; ``info`` is the dataset's, as the network is built for it."""

    weight: Loader
    arch: Loader
    valid: Loader
    info: DatasetInfo


class TrainLoaders(NamedTuple):
    """A retraining's loaders: ``train`` (augmented) and ``test`` (plain, in order), and the dataset's ``info``."""

    train: Loader
    test: Loader
    info: DatasetInfo


def run_info(info: DatasetInfo, config: SearchConfig | TrainConfig) -> DatasetInfo:
    """The dataset's ``info`` with the run's augmentation settings (``hflip``, ``crop_padding``; None: the
    dataset's own), as both jobs' loaders augment."""
    return augmented(info, getattr(config, "hflip", None), getattr(config, "crop_padding", None))


def folder_info(config: SearchConfig | TrainConfig) -> DatasetInfo:
    """The facts a folder dataset's loader starts from: the registered dataset's (ImageNet's for a dataset that
    registered none), with the run's augmentation settings."""
    return run_info(dataset_entry(config.dataset).info or IMAGENET_INFO, config)


def search_loaders(arrays: ImageArrays, config: SearchConfig, device: torch.device | str, *, rank: int = 0,
                   world_size: int = 1) -> SearchLoaders:
    """In-memory data: the halves (per class with ``subset_fractions``, else by position at ``train_portion``)
    as uint8 tensors on the device, augmented there (the dataset's flips and crop padding unless the config sets
    them); the architecture half is seeded ``seed + 1``, and validation reads its tensors already on the device
    (no second copy)."""
    x, y = arrays.x_train, arrays.y_train
    if config.subset_fractions is not None:
        weight_idx, arch_idx = sample_per_class(y, config.subset_fractions, config.seed)
    else:
        weight_idx, arch_idx = split_halves(len(x), config.train_portion)
    if len(weight_idx) == 0 or len(arch_idx) == 0:
        raise ConfigError(f"{len(x)} training images cannot be split into a weight and an arch half")
    common = dict(info=run_info(arrays.info, config), batch_size=config.batch_size, device=device, rank=rank,
                  world_size=world_size)
    weight = DeviceLoader(x[weight_idx], y[weight_idx], augment=True, cutout=config.cutout, seed=config.seed,
                          **common)
    arch = DeviceLoader(x[arch_idx], y[arch_idx], augment=True, cutout=config.cutout, seed=config.seed + 1,
                        redraw=config.arch_batches == "fresh", **common)
    valid = DeviceLoader(arch.x, arch.y, augment=False, shuffle=False, drop_last=False, **common)
    return SearchLoaders(weight, arch, valid, arrays.info)


def search_folder_loaders(index: ImageFolderIndex, config: SearchConfig, device: torch.device | str, *,
                          rank: int = 0, world_size: int = 1) -> SearchLoaders:
    """A training folder (``imagenet``, ``folder``): a per-class sample for each half (``subset_fractions``, else
    ``train_portion`` and the rest), images decoded by ``workers`` processes at ``image_size`` (None: the dataset's
    own size)."""
    if config.arch_batches != "epoch":
        raise ConfigError("arch_batches=fresh draws arch batches from images held in memory; an image folder is "
                          "read in epochs: drop arch_batches")
    fractions = config.subset_fractions or [config.train_portion, 1.0 - config.train_portion]
    weight_idx, arch_idx = sample_per_class(index.labels, fractions, config.seed)
    common = dict(batch_size=config.batch_size, device=device, image_size=config.image_size,
                  workers=config.workers, rank=rank, world_size=world_size, info=folder_info(config))
    weight = ImageFolderLoader(index.subset(weight_idx), train=True, seed=config.seed, **common)
    arch = ImageFolderLoader(index.subset(arch_idx), train=True, seed=config.seed + 1, **common)
    valid = ImageFolderLoader(index.subset(arch_idx), train=False, shuffle=False, drop_last=False, **common)
    return SearchLoaders(weight, arch, valid, weight.info)


def train_loaders(arrays: ImageArrays, config: TrainConfig, device: torch.device | str, *, rank: int = 0,
                  world_size: int = 1, log: Callable[[str], None] | None = None) -> TrainLoaders:
    """In-memory data: the training images, and the test split (its first ``test_images``); a dataset without
    one holds out its last :data:`HOLDOUT_FRACTION` of the training images, which ``log`` is told."""
    x, y, info = arrays.x_train, arrays.y_train, arrays.info
    if arrays.x_test is not None and arrays.y_test is not None:
        x_test, y_test = arrays.x_test, arrays.y_test
    else:
        cut = len(x) - max(1, int(len(x) * HOLDOUT_FRACTION))
        x, y, x_test, y_test = x[:cut], y[:cut], x[cut:], y[cut:]
        if log is not None:
            log(f"{info.name} has no test split: holding out the last {len(x_test)} training images")
    if config.test_images is not None:
        x_test, y_test = x_test[:config.test_images], y_test[:config.test_images]
    shard = dict(rank=rank, world_size=world_size)
    train = DeviceLoader(x, y, run_info(info, config), batch_size=config.batch_size, device=device, augment=True,
                         cutout=config.cutout, seed=config.seed, **shard)
    test = DeviceLoader(x_test, y_test, info, batch_size=max(config.batch_size, 256), device=device, augment=False,
                        shuffle=False, drop_last=False, **shard)
    return TrainLoaders(train, test, info)


def train_folder_loaders(train_index: ImageFolderIndex, val_index: ImageFolderIndex, config: TrainConfig,
                         device: torch.device | str, *, rank: int = 0, world_size: int = 1) -> TrainLoaders:
    """``train/`` and ``val/`` image folders (``train_images`` and ``test_images`` of them, spread over the
    classes), which must hold the same class folders."""
    train, val = spread(train_index, config.train_images), spread(val_index, config.test_images)
    if train.classes != val.classes:
        raise ConfigError(f"{config.data}: train/ and val/ hold different class folders")
    common = dict(batch_size=config.batch_size, device=device, image_size=config.image_size,
                  workers=config.workers, rank=rank, world_size=world_size, info=folder_info(config))
    train_loader = ImageFolderLoader(train, train=True, seed=config.seed, **common)
    return TrainLoaders(train_loader, ImageFolderLoader(val, train=False, **common), train_loader.info)
