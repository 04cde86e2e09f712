"""Dataset files on disk: downloads with an md5 check, safe extraction of archives, and the restricted unpickler
that reads the python-version batch files (CIFAR, ImageNet16) without letting a data file run code."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from drnas.data.info import DataError


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


def load_pickle(path: Path) -> dict[str, Any]:
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


def batch_arrays(path: Path, label_key: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3*S*S) channel-planar rows and their labels -> uint8 NHWC images, int64 labels."""
    d = load_pickle(path)
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


def safe_extract(archive: Path, dest: Path, folder: str) -> None:
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


def fetch(url: str, dest: Path, md5: str) -> None:
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
                f"downloaded {url} has md5 {digest.hexdigest()}, expected {md5}; retry or fetch it by hand into "
                f"{dest.parent}"
            )
        os.replace(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
