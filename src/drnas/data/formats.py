"""The datasets drnas knows by name, and their readers.

:data:`DATASETS` holds one :class:`DatasetEntry` per dataset: its facts (classes, channels, image size,
normalisation, augmentation; none for ``npz``, whose file decides them) and how it loads. ``digits`` is embedded;
``cifar10``/``cifar100`` read the python batches, the official tar.gz or an npz (downloading on request);
``imagenet16-120`` reads NAS-Bench-201's ImageNet16 pickles; ``npz`` reads any uint8 NHWC npz; ``imagenet`` (JPEG
folders) and ``folder`` (any folders of images, one per class) are streamed by ``folders.py`` rather than loaded.
A new dataset is one :func:`register_dataset` (a plugin's too); ``drnas datasets`` lists them all.
"""

from __future__ import annotations

import functools
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from drnas.config.limits import LIMITS
from drnas.data.archive import batch_arrays, fetch, safe_extract
from drnas.data.folders import FOLDER_INFO, IMAGENET_INFO
from drnas.data.info import DataError, DatasetInfo, ImageArrays
from drnas.errors import ConfigError
from drnas.registry import Registry

__all__ = ["DATASETS", "DATASET_NAMES", "MAX_CLASSES", "DatasetEntry", "Reader", "dataset_entry", "dataset_names",
           "dataset_shape", "load_dataset", "register_dataset", "shaped_datasets", "streams_folders"]

#: the most classes a dataset may have (ImageNet-21k has 21,841): a larger label is refused before a network is built
MAX_CLASSES = 100_000

#: how a dataset loads: (the path ``--data`` gave, None for an embedded dataset; ``--download``) -> its arrays
Reader = Callable[[Path | None, bool], ImageArrays]


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset drnas knows by name.

    ``info`` holds its facts: classes, channels, image size, mean/std, and its augmentation (random flips, the
    crop padding); None where the file decides them (``npz``). ``load`` reads it into memory; None for a folder
    dataset, which the jobs stream with :class:`~drnas.data.folders.ImageFolderLoader`. ``needs`` says what
    ``--data`` must hold (empty for an embedded dataset, which reads no path).
    """

    name: str
    info: DatasetInfo | None
    load: Reader | None
    needs: str

    @property
    def shape(self) -> tuple[int, int, int] | None:
        """(classes, channels, image size), None where the data decides them (``npz``; ``folder``'s classes)."""
        if self.info is None or self.info.num_classes < 1:
            return None
        return self.info.num_classes, self.info.channels, self.info.image_size

    @property
    def folders(self) -> bool:
        """Streamed from a folder of images rather than loaded as arrays."""
        return self.load is None


DATASETS: Registry[DatasetEntry] = Registry("dataset", DataError)


def register_dataset(name: str, info: DatasetInfo | None, load: Reader | None, *, needs: str = "",
                     doc: str = "") -> DatasetEntry:
    """Make dataset ``name`` known to :func:`load_dataset` (and so to ``--dataset``); see :class:`DatasetEntry`."""
    return DATASETS.register(name, DatasetEntry(name, info, load, needs), doc=doc)  # type: ignore[return-value]


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


def _check_images(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype != np.uint8:
        raise DataError(f"{path}: '{key}' is {dtype}, expected uint8 0..255 images; convert with np.uint8")
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] not in (1, 3) or shape[0] == 0:
        raise DataError(
            f"{path}: '{key}' has shape {shape}, expected non-empty NHWC (N, S, S, 1 or 3) square images"
        )
    size = LIMITS["image_size"]
    if shape[1] > size.high:
        raise DataError(f"{path}: '{key}' holds {shape[1]}x{shape[1]} images; drnas takes at most {size.high} pixels "
                        f"({size.why}): resize them")


def _check_labels(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype, n: int) -> None:
    if dtype.kind not in "iu" or len(shape) != 1:
        raise DataError(f"{path}: '{key}' is {dtype} {shape}, expected a 1-D integer label array")
    if shape[0] != n:
        raise DataError(f"{path}: {n} images but {shape[0]} labels in '{key}'; they must match one to one")


def _labels(path: Path, key: str, y: np.ndarray) -> np.ndarray:
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: '{key}' has negative labels; labels must be 0..num_classes-1")
    return y.astype(np.int64)


def _headers(path: Path, z: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The shape and dtype of every array of an open npz, from the arrays' headers (nothing decompressed), and
    their total size bounded by ``LIMITS["array_bytes"]`` before any is read."""
    found: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    total = 0
    for info in z.zip.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        with z.zip.open(info) as member:
            version = np.lib.format.read_magic(member)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(member)
        size = math.prod(shape) * dtype.itemsize
        if size > info.file_size:  # the header claims more than the member holds: do not allocate it
            raise DataError(f"{path}: '{name}' claims shape {shape} ({size:,} bytes) but holds {info.file_size:,} "
                            "bytes; the file is damaged: save it again with np.savez")
        total += size
        found[name] = (shape, dtype)
    limit = LIMITS["array_bytes"]
    if total > limit.high:
        raise DataError(f"{path} holds {total:,} bytes of arrays, over the {limit.high:,} drnas loads ({limit.why}): "
                        "pass fewer or smaller images")
    return found


def _load_npz(path: Path, standard: DatasetInfo | None) -> ImageArrays:
    """Read and validate an npz of uint8 NHWC images; ``standard`` fixes the info for a known dataset. The
    arrays' headers are checked before anything is decompressed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if "x_train" not in keys or "y_train" not in keys:
                raise DataError(
                    f"{path} lacks 'x_train'/'y_train' (has {sorted(keys)}); save uint8 NHWC x_train and int y_train"
                )
            if ("x_test" in keys) != ("y_test" in keys):
                raise DataError(f"{path} has only one of 'x_test'/'y_test'; store both or neither")
            headers = _headers(path, z)
            for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
                if x_key in headers:
                    _check_images(path, x_key, *headers[x_key])
                    _check_labels(path, y_key, *headers[y_key], headers[x_key][0][0])
            x_train, y_train = z["x_train"], z["y_train"]
            x_test = z["x_test"] if "x_test" in keys else None
            y_test = z["y_test"] if "y_test" in keys else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # a damaged or truncated file
        raise DataError(f"cannot read {path} as an npz without pickle ({type(exc).__name__}: {str(exc)[:100]}); "
                        "save it with np.savez") from None

    y_train = _labels(path, "y_train", y_train)
    if x_test is not None and y_test is not None:
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DataError(
                f"{path}: x_test images are {x_test.shape[1:]} but x_train images are {x_train.shape[1:]}; use one size"
            )
        y_test = _labels(path, "y_test", y_test)

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


def _load_any_npz(path: Path | None, download: bool) -> ImageArrays:
    """Any npz of uint8 NHWC images; its classes, size and normalisation come from the file."""
    assert path is not None
    how = "pass --data FILE.npz holding uint8 NHWC x_train and y_train"
    if not path.exists():
        raise DataError(f"dataset path {path} does not exist: {how}")
    if not path.is_file():
        raise DataError(f"{path} is not a file: {how}")
    return _load_npz(path, None)


# --------------------------------------------------------------------------- CIFAR


@dataclass(frozen=True)
class _CifarSpec:
    """Where a CIFAR's files are: the extracted folder, the official archive and its md5, the batch files and the
    key of their labels."""

    info: DatasetInfo
    folder: str
    archive: str
    md5: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str


_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"


def _find_dir(root: Path, folder: str, files: tuple[str, ...]) -> Path | None:
    """``root`` or ``root/folder``, whichever holds all of ``files``."""
    for d in (root, root / folder):
        if all((d / f).is_file() for f in files):
            return d
    return None


def _load_cifar(spec: _CifarSpec, root: Path, download: bool) -> ImageArrays:
    """A CIFAR from ``root``: its batch folder (or ``root`` itself), its archive (extracted beside it), an npz, or,
    with ``download``, the official archive fetched into ``root``."""
    files = spec.train_files + spec.test_files
    expected = f"{spec.folder}/ with {', '.join(files)}, {spec.archive}, or {spec.info.name}.npz"
    if root.is_file():
        if root.name.endswith(".npz"):
            return _load_npz(root, spec.info)
        if root.name.endswith((".tar.gz", ".tgz")):
            safe_extract(root, root.parent, spec.folder)
            root = root.parent
        else:
            raise DataError(f"{root} is not a directory, .tar.gz or .npz; pass --data DIR holding {expected}")
    elif not root.exists():
        if not download:
            raise DataError(f"dataset path {root} does not exist: pass --data DIR holding {expected}")
        root.mkdir(parents=True, exist_ok=True)

    found = _find_dir(root, spec.folder, files)
    if found is None and (root / spec.archive).is_file():
        safe_extract(root / spec.archive, root, spec.folder)
        found = _find_dir(root, spec.folder, files)
    if found is None and download:
        fetch(_CIFAR_URL + spec.archive, root / spec.archive, spec.md5)
        safe_extract(root / spec.archive, root, spec.folder)
        found = _find_dir(root, spec.folder, files)
    if found is None and (root / f"{spec.info.name}.npz").is_file():
        return _load_npz(root / f"{spec.info.name}.npz", spec.info)
    if found is None:
        others = sorted(p.name for p in root.glob("*.npz"))
        hint = f"; to use {others[0]}, pass that file as --data" if others else "; pass --download to fetch it"
        raise DataError(f"no {spec.info.name} files in {root}: expected {expected}{hint}")

    def read(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = [batch_arrays(found / n, spec.label_key, 32) for n in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    x_train, y_train = read(spec.train_files)
    x_test, y_test = read(spec.test_files)
    for y, which in ((y_train, "train"), (y_test, "test")):
        if len(y) and (y.min() < 0 or y.max() >= spec.info.num_classes):
            raise DataError(f"{found}: {which} labels outside 0..{spec.info.num_classes - 1}; files are not "
                            f"{spec.info.name}")
    return ImageArrays(x_train, y_train, x_test, y_test, spec.info)


# --------------------------------------------------------------------------- ImageNet16-120

_IMAGENET16_TRAIN = tuple(f"train_data_batch_{i}" for i in range(1, 11))
_IMAGENET16_VAL = "val_data"
# NAS-Bench-201's normalisation for its ImageNet16-120 subset.
_IMAGENET16_INFO = DatasetInfo(
    "imagenet16-120", 120, 3, 16, (0.4811, 0.4575, 0.4078), (0.2605, 0.2533, 0.2683), True, 2
)


def _load_imagenet16(root: Path | None, download: bool) -> ImageArrays:
    """NAS-Bench-201's ImageNet16 pickles (or an npz of them), labels 1..120 of the 1000 kept as 0..119."""
    assert root is not None
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
            x, y = batch_arrays(found / n, "labels", 16)
            keep = (y >= 1) & (y <= _IMAGENET16_INFO.num_classes)
            xs.append(x[keep])
            ys.append(y[keep] - 1)
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = read(_IMAGENET16_TRAIN)
    x_test, y_test = read((_IMAGENET16_VAL,))
    return ImageArrays(x_train, y_train, x_test, y_test, _IMAGENET16_INFO)


# --------------------------------------------------------------------------- digits

#: the embedded digits' exact per-channel statistics (what :func:`_channel_stats` gives for them)
_DIGITS_INFO = DatasetInfo("digits", 10, 1, 8, (0.30530871850687963,), (0.3758859119653463,), hflip=False,
                           crop_padding=1)


def _load_digits(path: Path | None, download: bool) -> ImageArrays:
    """scikit-learn's 8x8 digits, shipped inside the package: train split only."""
    ref = resources.files("drnas") / "_data" / "digits.npz"
    with ref.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
        x = z["x_train"]
        y = z["y_train"].astype(np.int64)
    return ImageArrays(x, y, None, None, _DIGITS_INFO)


# --------------------------------------------------------------------------- the registry


def _register_cifar(spec: _CifarSpec) -> None:
    register_dataset(spec.info.name, spec.info, functools.partial(_load_cifar, spec),
                     needs=f"the {spec.info.name} files (or a folder to download into with --download)",
                     doc=f"CIFAR-{spec.info.num_classes} (the python batches, the official tar.gz or an npz; "
                         "--download fetches it)")


_register_cifar(_CifarSpec(
    DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True, 4),
    "cifar-10-batches-py", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
    tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels"))
_register_cifar(_CifarSpec(
    DatasetInfo("cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True, 4),
    "cifar-100-python", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
    ("train",), ("test",), "fine_labels"))
register_dataset("imagenet16-120", _IMAGENET16_INFO, _load_imagenet16, needs="the ImageNet16 folder",
                 doc="NAS-Bench-201's 16x16 ImageNet subset of 120 classes (its ImageNet16 pickles)")
register_dataset("digits", _DIGITS_INFO, _load_digits, doc="8x8 handwritten digits, embedded (no --data)")
register_dataset("npz", None, _load_any_npz, needs="an .npz file with x_train/y_train",
                 doc="any npz of uint8 NHWC x_train/y_train (and x_test/y_test); the file sets the shape")
register_dataset("imagenet", IMAGENET_INFO, None, needs="ROOT/train/<wnid>/*.JPEG (and ROOT/val/<wnid>/ to retrain)",
                 doc="ImageNet as JPEG folders (ROOT/train, ROOT/val), streamed from disk; 224px by default")
register_dataset("folder", FOLDER_INFO, None, needs="ROOT/train/<class>/* (and ROOT/val/<class>/* to retrain)",
                 doc="any images (JPEG, PNG) in one sub-folder per class, streamed from disk and resized to "
                     "image_size (32px by default)")

#: the built-in datasets, in registration order (:data:`DATASETS` has those registered later too)
DATASET_NAMES: tuple[str, ...] = DATASETS.names()


def dataset_names() -> tuple[str, ...]:
    """Every registered dataset, those a plugin registered included (read now, never a snapshot)."""
    return DATASETS.names()


def dataset_entry(name: str) -> DatasetEntry:
    """The registered dataset ``name`` (any case); an unknown one is one :class:`DataError` line listing them."""
    key = name.lower() if isinstance(name, str) else name
    if not isinstance(key, str) or key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)} (`drnas datasets` says what "
                        "each needs); a plugin's dataset needs --plugin MODULE")
    return DATASETS.get(key)


def shaped_datasets() -> list[str]:
    """The registered datasets of fixed shape, whose networks can be built without loading their data."""
    return [name for name in DATASETS if DATASETS.get(name).shape is not None]


def dataset_shape(name: str) -> DatasetInfo:
    """What a network needs to know of dataset ``name`` (classes, channels, image size), without its data: for
    counting parameters and MACs (``drnas arch``, ``drnas derive``). A dataset whose file decides its shape
    (``npz``) or whose folders decide its classes (``folder``) has none."""
    if name not in shaped_datasets():
        what = (f"dataset {name!r} has no fixed shape to count for (its data decides it)" if name in DATASETS
                else f"unknown dataset {name!r} for counting")
        raise ConfigError(f"{what}; choose one of {', '.join(shaped_datasets())}")
    return DATASETS.get(name).info  # type: ignore[return-value]


def streams_folders(name: str) -> bool:
    """Whether the dataset ``name`` is streamed from folders of images (``imagenet``, ``folder``) rather than
    loaded as arrays."""
    return name.lower() in DATASETS and DATASETS.get(name.lower()).folders


def load_dataset(name: str, data: str | os.PathLike[str] | None = None, *, download: bool = False) -> ImageArrays:
    """Load a dataset of :data:`DATASETS` by name as uint8 NHWC arrays, with the info the pipeline needs.

    ``data`` is the path its entry needs (ignored by an embedded dataset); ``download`` lets a dataset that can
    fetch its files do so. Every failure is a one-line :class:`DataError`.
    """
    entry = dataset_entry(name)
    key = entry.name
    if entry.load is None:
        raise DataError(
            f"{key} does not fit in memory as arrays: read it with the folder loader "
            f"(drnas.data.ImageFolderIndex.scan(ROOT) and ImageFolderLoader) from {entry.needs}"
        )
    if not entry.needs:
        return entry.load(None, download)
    if data is None:
        raise DataError(f"dataset {key} needs a path: pass --data with {entry.needs}")
    return entry.load(Path(os.fspath(data)).expanduser(), download)
