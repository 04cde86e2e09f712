"""Datasets and device-side batching.

Images stay uint8 in memory (NHWC on the host, NCHW on the training device);
augmentation and normalisation run batched on the device, with every random
choice drawn from a CPU generator seeded by (seed, epoch), so that a run can be
resumed bit-exactly and the global RNG (used by the search for Dirichlet
sampling) is never touched.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from drnas.errors import DrnasError

__all__ = [
    "DATASET_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DataError",
    "DatasetInfo",
    "DeviceLoader",
    "ImageArrays",
    "ImageFolderIndex",
    "ImageFolderLoader",
    "load_dataset",
    "sample_per_class",
    "split_halves",
]


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


DATASET_NAMES: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16-120", "digits", "npz")

_CIFAR10_INFO = DatasetInfo(
    "cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True, 4
)
_CIFAR100_INFO = DatasetInfo(
    "cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True, 4
)
# NAS-Bench-201's normalisation for its ImageNet16-120 subset.
_IMAGENET16_INFO = DatasetInfo(
    "imagenet16-120", 120, 3, 16, (0.4811, 0.4575, 0.4078), (0.2605, 0.2533, 0.2683), True, 2
)


@dataclass(frozen=True)
class _CifarSpec:
    info: DatasetInfo
    folder: str
    archive: str
    md5: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str


_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
#: the most classes a dataset may have (ImageNet-21k has 21,841): a larger label is refused before a network is built
MAX_CLASSES = 100_000
_CIFAR_SPECS: dict[str, _CifarSpec] = {
    "cifar10": _CifarSpec(
        _CIFAR10_INFO,
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "labels",
    ),
    "cifar100": _CifarSpec(
        _CIFAR100_INFO,
        "cifar-100-python",
        "cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        ("train",),
        ("test",),
        "fine_labels",
    ),
}

_IMAGENET16_TRAIN = tuple(f"train_data_batch_{i}" for i in range(1, 11))
_IMAGENET16_VAL = "val_data"
_IMAGENET16_CLASSES = 120


# --------------------------------------------------------------------------- pickles


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a pickled numpy array needs, under old and new module names."""
    try:  # numpy >= 2
        from numpy._core import multiarray as _ma
        from numpy._core import numeric as _num
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as _ma  # type: ignore[no-redef]
        from numpy.core import numeric as _num  # type: ignore[no-redef]
    import _codecs

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,
    }
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = _ma._reconstruct
        allowed[(f"{mod}.multiarray", "scalar")] = _ma.scalar
        if hasattr(_num, "_frombuffer"):  # protocol-5 pickles of arrays
            allowed[(f"{mod}.numeric", "_frombuffer")] = _num._frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays, so a data file cannot run code."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if _RestrictedUnpickler._allowed is None:
            _RestrictedUnpickler._allowed = _numpy_globals()
        obj = _RestrictedUnpickler._allowed.get((module, name))
        if obj is None:
            raise DataError(
                f"refusing to unpickle {module}.{name}: data pickles may only hold numpy arrays, "
                "lists and dicts; use the original dataset files"
            )
        return obj


def _load_pickle(path: Path) -> dict[str, Any]:
    """Read one batch file with the restricted unpickler; keys are returned as str."""
    try:
        with open(path, "rb") as fh:
            obj = _RestrictedUnpickler(fh, encoding="bytes").load()
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(
            f"cannot read {path} as a dataset pickle ({exc}); re-download or re-extract the dataset"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, not a dict; expected a dataset batch file")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _batch_arrays(path: Path, label_key: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3*S*S) channel-planar rows and their labels -> uint8 NHWC images, int64 labels."""
    d = _load_pickle(path)
    if "data" not in d or label_key not in d:
        raise DataError(
            f"{path} lacks the 'data' or '{label_key}' entry; it is not a standard batch file"
        )
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key]).astype(np.int64).reshape(-1)
    per_image = 3 * image_size * image_size
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != per_image:
        raise DataError(
            f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, {per_image}); "
            "use the standard python-version files"
        )
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels; the file is corrupt")
    x = data.reshape(-1, 3, image_size, image_size).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), labels


# --------------------------------------------------------------------------- npz


def _channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean/std on the 0..1 scale via 256-bin histograms (no float copy)."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[-1]):
        hist = np.bincount(x[..., c].reshape(-1), minlength=256).astype(np.float64)
        total = hist.sum()
        m = float((hist * levels).sum() / total)
        var = float((hist * (levels - m) ** 2).sum() / total)
        means.append(m)
        stds.append(math.sqrt(var) if var > 0 else 1.0)
    return tuple(means), tuple(stds)


def _check_images(path: Path, key: str, x: np.ndarray) -> None:
    if x.dtype != np.uint8:
        raise DataError(f"{path}: '{key}' is {x.dtype}, expected uint8 0..255 images; convert with np.uint8")
    if x.ndim != 4 or x.shape[1] != x.shape[2] or x.shape[3] not in (1, 3) or x.shape[0] == 0:
        raise DataError(
            f"{path}: '{key}' has shape {x.shape}, expected non-empty NHWC (N, S, S, 1 or 3) square images"
        )


def _check_labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise DataError(f"{path}: '{key}' is {y.dtype} {y.shape}, expected a 1-D integer label array")
    if len(y) != n:
        raise DataError(f"{path}: {n} images but {len(y)} labels in '{key}'; they must match one to one")
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: '{key}' has negative labels; labels must be 0..num_classes-1")
    return y.astype(np.int64)


def _load_npz(path: Path, standard: DatasetInfo | None) -> ImageArrays:
    """Read and validate an npz of uint8 NHWC images; ``standard`` fixes the info for a known dataset."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if "x_train" not in keys or "y_train" not in keys:
                raise DataError(
                    f"{path} lacks 'x_train'/'y_train' (has {sorted(keys)}); save uint8 NHWC x_train and int y_train"
                )
            if ("x_test" in keys) != ("y_test" in keys):
                raise DataError(f"{path} has only one of 'x_test'/'y_test'; store both or neither")
            x_train, y_train = z["x_train"], z["y_train"]
            x_test = z["x_test"] if "x_test" in keys else None
            y_test = z["y_test"] if "y_test" in keys else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # a damaged or truncated file
        raise DataError(f"cannot read {path} as an npz without pickle ({type(exc).__name__}: {str(exc)[:100]}); "
                        "save it with np.savez") from None

    _check_images(path, "x_train", x_train)
    y_train = _check_labels(path, "y_train", y_train, len(x_train))
    if x_test is not None and y_test is not None:
        _check_images(path, "x_test", x_test)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DataError(
                f"{path}: x_test images are {x_test.shape[1:]} but x_train images are {x_train.shape[1:]}; use one size"
            )
        y_test = _check_labels(path, "y_test", y_test, len(x_test))

    size, channels = int(x_train.shape[1]), int(x_train.shape[3])
    max_label = max(int(y_train.max()), int(y_test.max()) if y_test is not None and len(y_test) else -1)
    if max_label >= MAX_CLASSES:  # before a classifier of that width is allocated
        raise DataError(f"{path}: label {max_label} would need a {max_label + 1}-way classifier; labels must be "
                        f"0..num_classes-1 with at most {MAX_CLASSES} classes")
    if standard is not None:
        if (size, channels) != (standard.image_size, standard.channels):
            raise DataError(
                f"{path}: images are {size}x{size}x{channels}, but {standard.name} needs "
                f"{standard.image_size}x{standard.image_size}x{standard.channels}; pass the right file"
            )
        if max_label >= standard.num_classes:
            raise DataError(
                f"{path}: label {max_label} out of range for {standard.name} "
                f"({standard.num_classes} classes); pass the right file"
            )
        info = standard
    else:
        mean, std = _channel_stats(x_train)
        info = DatasetInfo(
            name=path.stem,
            num_classes=max_label + 1,
            channels=channels,
            image_size=size,
            mean=mean,
            std=std,
            hflip=True,
            crop_padding=size // 8,
        )
    return ImageArrays(x_train, y_train, x_test, y_test, info)


# --------------------------------------------------------------------------- CIFAR


def _find_dir(root: Path, folder: str, files: tuple[str, ...]) -> Path | None:
    for d in (root, root / folder):
        if all((d / f).is_file() for f in files):
            return d
    return None


def _safe_extract(archive: Path, dest: Path, folder: str) -> None:
    """Extract ``folder`` from a tar.gz into ``dest``, refusing links and paths that escape it."""
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = []
                for m in tar.getmembers():
                    parts = Path(m.name).parts
                    if m.name.startswith(("/", "\\")) or ".." in parts or not (m.isfile() or m.isdir()):
                        raise DataError(f"{archive} holds an unsafe entry {m.name!r}; use the official archive")
                    if parts and parts[0] == folder:
                        members.append(m)
                if not members:
                    raise DataError(f"{archive} has no '{folder}/' folder; use the official archive")
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, members=members, filter="data")
                else:  # pragma: no cover - old Python without extraction filters
                    tar.extractall(tmp, members=members)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"cannot extract {archive} ({exc}); delete it and download again") from None
        target = dest / folder
        if not target.exists():
            os.replace(tmp / folder, target)
        else:  # another process got there first, or a partial folder: merge missing files
            for src in (tmp / folder).iterdir():
                if not (target / src.name).exists():
                    os.replace(src, target / src.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download(url: str, dest: Path, md5: str) -> None:
    """Fetch ``url`` to ``dest`` via a temp file, check its md5, then rename atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    digest = hashlib.md5()
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(
                f"could not download {url} ({exc}); pass --data DIR holding {dest.name} or its extracted files"
            ) from None
        if digest.hexdigest() != md5:
            raise DataError(
                f"downloaded {url} has md5 {digest.hexdigest()}, expected {md5}; retry or fetch it by hand into {dest.parent}"
            )
        os.replace(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _load_cifar(spec: _CifarSpec, root: Path, download: bool) -> ImageArrays:
    files = spec.train_files + spec.test_files
    expected = f"{spec.folder}/ with {', '.join(files)}, {spec.archive}, or {spec.info.name}.npz"
    if root.is_file():
        if root.name.endswith(".npz"):
            return _load_npz(root, spec.info)
        if root.name.endswith((".tar.gz", ".tgz")):
            _safe_extract(root, root.parent, spec.folder)
            root = root.parent
        else:
            raise DataError(f"{root} is not a directory, .tar.gz or .npz; pass --data DIR holding {expected}")
    elif not root.exists():
        if not download:
            raise DataError(f"dataset path {root} does not exist: pass --data DIR holding {expected}")
        root.mkdir(parents=True, exist_ok=True)

    found = _find_dir(root, spec.folder, files)
    if found is None and (root / spec.archive).is_file():
        _safe_extract(root / spec.archive, root, spec.folder)
        found = _find_dir(root, spec.folder, files)
    if found is None and download:
        _download(_CIFAR_URL + spec.archive, root / spec.archive, spec.md5)
        _safe_extract(root / spec.archive, root, spec.folder)
        found = _find_dir(root, spec.folder, files)
    if found is None and (root / f"{spec.info.name}.npz").is_file():
        return _load_npz(root / f"{spec.info.name}.npz", spec.info)
    if found is None:
        others = sorted(p.name for p in root.glob("*.npz"))
        hint = f"; to use {others[0]}, pass that file as --data" if others else "; pass --download to fetch it"
        raise DataError(f"no {spec.info.name} files in {root}: expected {expected}{hint}")

    def read(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_batch_arrays(found / n, spec.label_key, 32) for n in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    x_train, y_train = read(spec.train_files)
    x_test, y_test = read(spec.test_files)
    for y, which in ((y_train, "train"), (y_test, "test")):
        if len(y) and (y.min() < 0 or y.max() >= spec.info.num_classes):
            raise DataError(f"{found}: {which} labels outside 0..{spec.info.num_classes - 1}; files are not {spec.info.name}")
    return ImageArrays(x_train, y_train, x_test, y_test, spec.info)


# --------------------------------------------------------------------------- ImageNet16-120


def _load_imagenet16(root: Path) -> ImageArrays:
    how = (
        "pass --data DIR holding train_data_batch_1..10 and val_data of ImageNet16 "
        "(see the NAS-Bench-201 README for how to get it)"
    )
    if root.is_file() and root.name.endswith(".npz"):
        return _load_npz(root, _IMAGENET16_INFO)
    if not root.exists():
        raise DataError(f"dataset path {root} does not exist: {how}")
    found = _find_dir(root, "ImageNet16", _IMAGENET16_TRAIN + (_IMAGENET16_VAL,))
    if found is None:
        raise DataError(f"no ImageNet16 files in {root}: {how}")

    def read(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for n in names:  # filter each file before concatenating: the full set is ~1 GB
            x, y = _batch_arrays(found / n, "labels", 16)
            keep = (y >= 1) & (y <= _IMAGENET16_CLASSES)
            xs.append(x[keep])
            ys.append(y[keep] - 1)
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = read(_IMAGENET16_TRAIN)
    x_test, y_test = read((_IMAGENET16_VAL,))
    return ImageArrays(x_train, y_train, x_test, y_test, _IMAGENET16_INFO)


# --------------------------------------------------------------------------- entry point


def _load_digits() -> ImageArrays:
    ref = resources.files("drnas") / "_data" / "digits.npz"
    with ref.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
        x = z["x_train"]
        y = z["y_train"].astype(np.int64)
    mean, std = _channel_stats(x)
    info = DatasetInfo("digits", 10, 1, 8, mean, std, hflip=False, crop_padding=1)
    return ImageArrays(x, y, None, None, info)


def load_dataset(name: str, data: str | os.PathLike[str] | None = None, *, download: bool = False) -> ImageArrays:
    """Load a dataset by name as uint8 NHWC arrays, with the info the pipeline needs.

    ``digits`` is embedded (``data`` ignored); ``cifar10``/``cifar100`` read the python
    batches, the official tar.gz or an npz, downloading only if ``download``;
    ``imagenet16-120`` reads NAS-Bench-201's ImageNet16 pickles; ``npz`` reads any
    uint8 NHWC npz. Every failure is a one-line :class:`DataError`.
    """
    key = name.lower()
    if key == "imagenet":
        raise DataError(
            "ImageNet does not fit in memory as arrays: read it with the folder loader "
            "(drnas.data.formats.ImageFolderIndex.scan(ROOT) and ImageFolderLoader) from ROOT/train/<wnid>/*.JPEG"
        )
    if key not in DATASET_NAMES:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)}")
    if key == "digits":
        return _load_digits()
    if data is None:
        need = {
            "npz": "an .npz file with x_train/y_train",
            "imagenet16-120": "the ImageNet16 folder",
        }.get(key, f"the {key} files (or a folder to download into with --download)")
        raise DataError(f"dataset {key} needs a path: pass --data with {need}")
    path = Path(os.fspath(data)).expanduser()
    if key == "npz":
        if not path.exists():
            raise DataError(f"dataset path {path} does not exist: pass --data FILE.npz holding uint8 NHWC x_train and y_train")
        if not path.is_file():
            raise DataError(f"{path} is not a file: pass --data FILE.npz holding uint8 NHWC x_train and y_train")
        return _load_npz(path, None)
    if key == "imagenet16-120":
        return _load_imagenet16(path)
    return _load_cifar(_CIFAR_SPECS[key], path, download)


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


# --------------------------------------------------------------------------- batching


def _batch_bounds(n: int, batch_size: int, drop_last: bool) -> list[tuple[int, int]]:
    """[lo, hi) of each batch; with ``drop_last`` and ``n < batch_size`` one batch of all ``n``, never none."""
    if drop_last and n < batch_size:
        return [(0, n)]
    count = n // batch_size if drop_last else -(-n // batch_size)
    return [(i * batch_size, min(n, (i + 1) * batch_size)) for i in range(count)]


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of one epoch's shuffle and batch-level draws, seeded by (seed, epoch)."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed((int(seed) * 1_000_003 + int(epoch)) % (1 << 63))
    return gen


def _check_shard(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise DataError(f"rank {rank} is not in a world of {world_size} processes")


def _local_slice(batch: int, rank: int, world_size: int) -> slice:
    """The contiguous share of a global batch of ``batch`` items that belongs to ``rank``."""
    return slice(batch * rank // world_size, batch * (rank + 1) // world_size)


class DeviceLoader:
    """Batches from uint8 images kept as one tensor on the training device; augmentation runs there, batched.

    Moving the whole uint8 set to the device once avoids per-step host transfers and
    DataLoader workers; the small per-batch random parameters (permutation, crop
    offsets, flips, cutout centres) come from a CPU generator seeded by (seed, epoch),
    so ``epoch(e)`` is a pure function of (seed, e) and the global RNG is untouched.

    ``x`` is uint8 NHWC (an NCHW tensor is also accepted when its shape is unambiguous).
    With ``drop_last`` and fewer images than ``batch_size``, one batch of all images is
    still yielded, never zero batches.
    """

    def __init__(
        self,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor | list[int],
        info: DatasetInfo,
        *,
        batch_size: int,
        device: torch.device | str,
        augment: bool,
        cutout: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch size {batch_size} must be at least 1")
        _check_shard(rank, world_size)
        if cutout < 0:
            raise DataError(f"cutout {cutout} must be >= 0 (0 disables it)")
        if isinstance(x, np.ndarray) and not x.flags.writeable:
            x = x.copy()  # torch cannot wrap a read-only array without a warning
        xt = torch.as_tensor(x)
        if xt.dtype != torch.uint8 or xt.dim() != 4:
            raise DataError(f"images must be a uint8 4-D NHWC array, got {xt.dtype} {tuple(xt.shape)}")
        s, c = info.image_size, info.channels
        if tuple(xt.shape[1:]) == (s, s, c):
            xt = xt.permute(0, 3, 1, 2)
        elif tuple(xt.shape[1:]) != (c, s, s):
            raise DataError(
                f"images have shape {tuple(xt.shape)} but {info.name} is {s}x{s}x{c}; pass NHWC images of that size"
            )
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).reshape(-1)
        if len(yt) != len(xt):
            raise DataError(f"{len(xt)} images but {len(yt)} labels; they must match one to one")
        if len(xt) == 0:
            raise DataError("no images to batch; check the dataset and the train/arch split")
        self.device = torch.device(device)
        self.x = xt.contiguous().to(self.device)
        self.y = yt.to(dtype=torch.int64, device=self.device)
        self.info = info
        self.batch_size = int(batch_size)
        self.augment = bool(augment)
        self.cutout = int(cutout)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.rank, self.world_size = rank, world_size
        self._mean = torch.tensor(info.mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._std = torch.tensor(info.std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self._bounds())

    def _bounds(self) -> list[tuple[int, int]]:
        return _batch_bounds(len(self.x), self.batch_size, self.drop_last)

    def epoch(self, epoch: int, *, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (float32 normalised NCHW images, int64 labels) for one epoch.

        With ``world_size`` > 1 every rank gets its contiguous share of each global batch (augmented exactly
        as a single process would augment it), so the ranks see disjoint images that together make the epoch.

        ``start`` skips the first batches (for resuming mid-epoch) while drawing their
        random parameters, so the remaining batches match an uninterrupted epoch.
        """
        gen = _epoch_generator(self.seed, epoch)
        n = len(self.x)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        s, p, aug = self.info.image_size, self.info.crop_padding, self.augment
        for i, (lo, hi) in enumerate(self._bounds()):
            idx = order[lo:hi]
            b = len(idx)
            # Draw every random parameter for this batch before deciding to skip it.
            if aug:
                dy = torch.randint(0, 2 * p + 1, (b,), generator=gen)
                dx = torch.randint(0, 2 * p + 1, (b,), generator=gen)
                flip = torch.randint(0, 2, (b,), generator=gen).bool() if self.info.hflip else None
                if self.cutout > 0:
                    cy = torch.randint(0, s, (b,), generator=gen)
                    cx = torch.randint(0, s, (b,), generator=gen)
            if i < start:
                continue
            if self.world_size > 1:  # this rank's share of the global batch, with the same augmentation
                part = _local_slice(b, self.rank, self.world_size)
                if part.start == part.stop:
                    continue
                idx, dy, dx = idx[part], (dy[part] if aug else None), (dx[part] if aug else None)
                if aug and flip is not None:
                    flip = flip[part]
                if aug and self.cutout > 0:
                    cy, cx = cy[part], cx[part]
            idx_d = idx.to(self.device)
            xb = self.x[idx_d]
            yb = self.y[idx_d]
            if aug:
                xb = self._crop_flip(xb, dy, dx, flip)
            out = xb.float().div_(255.0).sub_(self._mean).div_(self._std)
            if aug and self.cutout > 0:
                out = self._cutout(out, cy, cx)
            yield out, yb

    def _crop_flip(
        self, xb: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor | None
    ) -> torch.Tensor:
        """Zero-pad, random-crop and optionally mirror a uint8 NCHW batch in one gather."""
        b, c, s, _ = xb.shape
        p = self.info.crop_padding
        padded = F.pad(xb, (p, p, p, p)) if p > 0 else xb
        ar = torch.arange(s)
        rows = dy[:, None] + ar[None, :]  # (b, s) row in the padded image
        cols = ar[None, :].expand(b, s)
        if flip is not None:  # mirror of the crop: column j reads crop column s-1-j
            cols = torch.where(flip[:, None], (s - 1) - cols, cols)
        cols = dx[:, None] + cols
        dev = xb.device
        bi = torch.arange(b, device=dev)[:, None, None, None]
        ci = torch.arange(c, device=dev)[None, :, None, None]
        return padded[bi, ci, rows.to(dev)[:, None, :, None], cols.to(dev)[:, None, None, :]]

    def _cutout(self, out: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
        """Zero a cutout square per image after normalisation, as DeVries & Taylor's code does."""
        s, half = self.info.image_size, self.cutout // 2
        ar = torch.arange(s)
        in_y = (ar[None, :] >= (cy - half).clamp(0, s)[:, None]) & (ar[None, :] < (cy + half).clamp(0, s)[:, None])
        in_x = (ar[None, :] >= (cx - half).clamp(0, s)[:, None]) & (ar[None, :] < (cx + half).clamp(0, s)[:, None])
        mask = (in_y[:, :, None] & in_x[:, None, :]).to(out.device)
        return out.masked_fill_(mask[:, None], 0.0)


# --------------------------------------------------------------------------- ImageNet folders

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

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

    def __init__(self, index: ImageFolderIndex, *, train: bool, image_size: int, seed: int, epoch: int) -> None:
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
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, int(i)])
            left, top, w, h = _random_resized_box(rng, img.width, img.height, (0.08, 1.0), (3 / 4, 4 / 3))
            img = img.resize((s, s), bilinear, box=(left, top, left + w, top + h))
            arr = np.asarray(img, dtype=np.uint8)
            if rng.random() < 0.5:
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
    """Decodes JPEGs in worker processes (torch DataLoader) and yields normalised NCHW float batches on device.

    ``train=True``: random-resized crop (scale 0.08-1, aspect 3/4-4/3) to ``image_size``
    and a random horizontal flip; ``train=False``: shorter side to ``image_size*256/224``
    (bilinear) and a centred crop. Per-image randomness is a pure function of
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
        image_size: int = 224,
        workers: int = 4,
        seed: int = 0,
        shuffle: bool | None = None,
        drop_last: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        _pil_image()  # fail now, not inside a worker
        if batch_size < 1:
            raise DataError(f"batch size {batch_size} must be at least 1")
        _check_shard(rank, world_size)
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
        self.info = DatasetInfo(
            "imagenet", index.num_classes, 3, self.image_size, IMAGENET_MEAN, IMAGENET_STD, hflip=True, crop_padding=0
        )
        self._mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(_batch_bounds(len(self.index), self.batch_size, self.drop_last))

    def epoch(self, epoch: int, *, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (float32 normalised NCHW images, int64 labels) on the device for one epoch.

        ``start`` skips the first batches without decoding them (for resuming mid-epoch);
        the remaining batches equal those of an uninterrupted epoch.
        """
        gen = _epoch_generator(self.seed, epoch)
        n = len(self.index)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        batches = [order[lo:hi][_local_slice(hi - lo, self.rank, self.world_size)].tolist()
                   for lo, hi in _batch_bounds(n, self.batch_size, self.drop_last)[start:]]
        batches = [batch for batch in batches if batch]
        if not batches:
            return
        dataset = _ImageFolderDataset(
            self.index, train=self.train, image_size=self.image_size, seed=self.seed, epoch=epoch
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
