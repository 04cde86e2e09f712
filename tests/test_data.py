"""Tests for drnas.data: the readers on real-format files, the dataset registry, the device-side batcher, the
JPEG-folder loader, the splits, and the loader builders against the jobs' own."""

from __future__ import annotations

import os
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from drnas.data import (
    DATASET_NAMES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataError,
    DatasetInfo,
    DeviceLoader,
    ImageFolderIndex,
    ImageFolderLoader,
    load_dataset,
    sample_per_class,
    split_halves,
)
from drnas.errors import DrnasError

from conftest import CIFAR_NPZ as CIFAR10_NPZ  # $DRNAS_TEST_DATA, else ../shared/data

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def real_images() -> np.ndarray:
    """A few real CIFAR-10 images (uint8 NHWC) if the shared copy exists, else random ones."""
    if CIFAR10_NPZ.is_file():
        with np.load(CIFAR10_NPZ, allow_pickle=False) as z:
            return np.ascontiguousarray(z["x_test"][:40])
    return np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)


def _planar(x: np.ndarray) -> np.ndarray:
    """NHWC -> the (N, 3*S*S) channel-planar rows of the python-version pickles."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), -1))


def _dump(path: Path, obj: object, protocol: int) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _identity_info(size: int, channels: int, *, padding: int = 0, hflip: bool = False) -> DatasetInfo:
    """mean 0 / std 1, so output * 255 gives back the uint8 pixel values."""
    return DatasetInfo("t", 10, channels, size, (0.0,) * channels, (1.0,) * channels, hflip, padding)


def _pixels(out: torch.Tensor) -> np.ndarray:
    return torch.round(out * 255).to(torch.int64).numpy()


# --------------------------------------------------------------------------- loaders


def test_digits_embedded() -> None:
    d = load_dataset("digits", "/ignored/path")
    assert d.x_train.shape == (1797, 8, 8, 1) and d.x_train.dtype == np.uint8
    assert d.y_train.shape == (1797,) and d.y_train.dtype == np.int64
    assert set(np.unique(d.y_train)) == set(range(10))
    assert d.x_train.max() == 255 and d.x_train.min() == 0
    assert d.x_test is None and d.y_test is None
    info = d.info
    assert (info.num_classes, info.channels, info.image_size, info.hflip, info.crop_padding) == (10, 1, 8, False, 1)
    expected = d.x_train.astype(np.float64) / 255
    assert info.mean[0] == pytest.approx(expected.mean()) and info.std[0] == pytest.approx(expected.std())


def _write_cifar10(folder: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Five train batches and a test batch in the original format (protocol 2, bytes keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    chunks = np.array_split(np.arange(30), 5)
    for i, idx in enumerate(chunks, start=1):
        batch = {
            b"batch_label": b"training batch %d of 5" % i,
            b"labels": [int(v) for v in y[idx]],
            b"data": _planar(x[idx]),
            b"filenames": [b"img_%d.png" % j for j in idx],
        }
        _dump(folder / f"data_batch_{i}", batch, protocol=2)
    _dump(folder / "test_batch", {b"labels": [int(v) for v in y[30:]], b"data": _planar(x[30:])}, protocol=2)


def test_cifar10_python_dir(tmp_path: Path, real_images: np.ndarray) -> None:
    y = np.arange(40) % 10
    _write_cifar10(tmp_path / "cifar-10-batches-py", real_images, y)
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):
        d = load_dataset("cifar10", root)
        np.testing.assert_array_equal(d.x_train, real_images[:30])
        np.testing.assert_array_equal(d.x_test, real_images[30:])
        np.testing.assert_array_equal(d.y_train, y[:30])
        assert d.y_train.dtype == np.int64 and d.x_train.dtype == np.uint8
        assert d.info.name == "cifar10" and d.info.mean == (0.4914, 0.4822, 0.4465) and d.info.crop_padding == 4


def test_cifar10_tar_gz(tmp_path: Path, real_images: np.ndarray) -> None:
    y = np.arange(40) % 10
    src = tmp_path / "src"
    _write_cifar10(src / "cifar-10-batches-py", real_images, y)
    dest = tmp_path / "data"
    dest.mkdir()
    archive = dest / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    d = load_dataset("cifar10", archive)  # the archive itself
    np.testing.assert_array_equal(d.x_train, real_images[:30])
    assert (dest / "cifar-10-batches-py" / "test_batch").is_file()
    (dest / "cifar-10-batches-py" / "test_batch").unlink()  # force a fresh extraction
    d = load_dataset("cifar10", dest)  # the directory holding the archive
    np.testing.assert_array_equal(d.x_test, real_images[30:])


def test_cifar100_fine_labels_str_keys(tmp_path: Path, real_images: np.ndarray) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine, coarse = np.arange(40) * 2 + 1, np.arange(40) % 20
    for name, sl, proto in (("train", slice(0, 25), 4), ("test", slice(25, 40), 5)):
        batch = {"data": _planar(real_images[sl]), "fine_labels": fine[sl].tolist(), "coarse_labels": coarse[sl].tolist()}
        _dump(folder / name, batch, protocol=proto)
    d = load_dataset("cifar100", tmp_path)
    np.testing.assert_array_equal(d.x_train, real_images[:25])
    np.testing.assert_array_equal(d.x_test, real_images[25:])
    np.testing.assert_array_equal(d.y_train, fine[:25])
    np.testing.assert_array_equal(d.y_test, fine[25:])
    assert d.info.num_classes == 100 and d.info.std == (0.2673, 0.2564, 0.2762)


def test_imagenet16_120_filters_and_shifts(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    all_x, all_y = [], []
    for i in range(1, 12):
        x = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
        y = np.array([1, 120, 121, 1000, 60, 500]) if i % 2 else np.array([2, 3, 999, 119, 121, 7])
        name = f"train_data_batch_{i}" if i <= 10 else "val_data"
        _dump(tmp_path / name, {"data": _planar(x), "labels": y.tolist(), "mean": np.zeros(768)}, protocol=4)
        all_x.append(x)
        all_y.append(y)
    d = load_dataset("imagenet16-120", tmp_path)
    xs, ys = np.concatenate(all_x[:10]), np.concatenate(all_y[:10])
    keep = ys <= 120
    np.testing.assert_array_equal(d.x_train, xs[keep])
    np.testing.assert_array_equal(d.y_train, ys[keep] - 1)
    assert d.y_train.min() == 0 and d.y_train.max() == 119
    np.testing.assert_array_equal(d.x_test, all_x[10][all_y[10] <= 120])
    assert d.info.image_size == 16 and d.info.num_classes == 120 and d.info.crop_padding == 2
    with pytest.raises(DataError, match="NAS-Bench-201"):
        load_dataset("imagenet16-120", tmp_path / "nope")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_rejects_code(tmp_path: Path, real_images: np.ndarray) -> None:
    _write_cifar10(tmp_path, real_images, np.arange(40) % 10)
    marker = tmp_path / "pwned"
    _dump(tmp_path / "data_batch_3", {b"data": _Evil(marker), b"labels": [0]}, protocol=2)
    with pytest.raises(DataError, match="system") as exc:
        load_dataset("cifar10", tmp_path)
    assert "data_batch_3" in str(exc.value) and "\n" not in str(exc.value)
    assert not marker.exists()


def test_bad_npz_and_paths(tmp_path: Path) -> None:
    good_x = np.zeros((4, 8, 8, 3), np.uint8)
    np.savez(tmp_path / "float.npz", x_train=good_x.astype(np.float32), y_train=np.arange(4))
    with pytest.raises(DataError, match="uint8"):
        load_dataset("npz", tmp_path / "float.npz")
    np.savez(tmp_path / "count.npz", x_train=good_x, y_train=np.arange(3))
    with pytest.raises(DataError, match="4 images but 3 labels"):
        load_dataset("npz", tmp_path / "count.npz")
    np.savez(tmp_path / "rect.npz", x_train=np.zeros((4, 8, 6, 3), np.uint8), y_train=np.arange(4))
    with pytest.raises(DataError, match="square"):
        load_dataset("npz", tmp_path / "rect.npz")
    np.savez(tmp_path / "obj.npz", x_train=np.array([None, 1], dtype=object), y_train=np.arange(2))
    with pytest.raises(DataError):
        load_dataset("npz", tmp_path / "obj.npz")
    np.savez(tmp_path / "huge_label.npz", x_train=good_x, y_train=np.array([0, 1, 2, 10**9]))
    with pytest.raises(DataError, match="would need a 1000000001-way classifier"):  # not a 64 GB allocation
        load_dataset("npz", tmp_path / "huge_label.npz")
    np.savez(tmp_path / "whole.npz", x_train=good_x, y_train=np.arange(4))
    data = (tmp_path / "whole.npz").read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(DataError, match="cannot read .* as an npz"):  # truncated: BadZipFile, EOFError, ...
            load_dataset("npz", tmp_path / "cut.npz")
    np.savez(tmp_path / "small.npz", x_train=good_x, y_train=np.arange(4))
    with pytest.raises(DataError, match="32x32x3"):  # a cifar10 npz must have CIFAR-sized images
        load_dataset("cifar10", tmp_path / "small.npz")
    missing = tmp_path / "does" / "not" / "exist"
    for name in ("cifar10", "npz", "imagenet16-120"):
        with pytest.raises(DataError, match="does not exist") as exc:
            load_dataset(name, missing)
        assert str(missing) in str(exc.value)
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", tmp_path)
    assert all(n in str(exc.value) for n in DATASET_NAMES)


def test_npz_generic_info(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    np.savez_compressed(
        tmp_path / "mine.npz", x_train=x, y_train=np.arange(20) % 4,
        x_test=x[:5], y_test=np.array([0, 1, 2, 3, 6], np.int32),
    )
    d = load_dataset("npz", tmp_path / "mine.npz")
    assert d.info.name == "mine" and d.info.num_classes == 7 and d.info.crop_padding == 2 and d.info.hflip
    assert d.y_test.dtype == np.int64
    f = x.astype(np.float64) / 255
    np.testing.assert_allclose(d.info.mean, f.mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(d.info.std, f.std(axis=(0, 1, 2)))


def test_cifar_dir_holding_its_npz(tmp_path: Path) -> None:
    """``--data DIR`` finds ``DIR/cifar10.npz`` (the layout of a saved copy); another npz name gets a hint."""
    x = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "mine.npz", x_train=x, y_train=np.arange(6) % 10)
    with pytest.raises(DataError, match="to use mine.npz, pass that file as --data") as exc:
        load_dataset("cifar10", tmp_path)
    assert "\n" not in str(exc.value)
    (tmp_path / "mine.npz").rename(tmp_path / "cifar10.npz")
    d = load_dataset("cifar10", tmp_path)
    np.testing.assert_array_equal(d.x_train, x)
    assert d.info.name == "cifar10" and d.info.num_classes == 10


def test_download_false_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--download"):
        load_dataset("cifar100", tmp_path)


@pytest.mark.skipif(not CIFAR10_NPZ.is_file(), reason=f"shared CIFAR-10 copy {CIFAR10_NPZ} is absent")
def test_cifar10_shared_npz() -> None:
    d = load_dataset("cifar10", CIFAR10_NPZ)
    assert d.x_train.shape == (50000, 32, 32, 3) and d.x_test.shape == (10000, 32, 32, 3)
    assert d.y_train.shape == (50000,) and d.info.name == "cifar10"


def test_split_halves() -> None:
    w, a = split_halves(10)
    np.testing.assert_array_equal(w, np.arange(5))
    np.testing.assert_array_equal(a, np.arange(5, 10))
    w, a = split_halves(7, 0.3)
    assert len(w) == 2 and len(a) == 5
    with pytest.raises(DataError):
        split_halves(1)


# --------------------------------------------------------------------------- DeviceLoader


def _index_images(n: int, size: int = 4, channels: int = 3) -> np.ndarray:
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, size, size, channels)).copy()


def test_loader_shapes_and_lengths() -> None:
    d = load_dataset("digits")
    loader = DeviceLoader(d.x_train[:100], d.y_train[:100], d.info, batch_size=32, device=CPU, augment=True, cutout=4)
    batches = list(loader.epoch(0))
    assert len(loader) == len(batches) == 3
    xb, yb = batches[0]
    assert xb.shape == (32, 1, 8, 8) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert len(DeviceLoader(d.x_train[:100], d.y_train[:100], d.info, batch_size=32, device=CPU,
                            augment=False, drop_last=False)) == 4
    small = DeviceLoader(d.x_train[:5], d.y_train[:5], d.info, batch_size=32, device=CPU, augment=False)
    assert len(small) == 1 and [b[0].shape[0] for b in small.epoch(0)] == [5]


def test_loader_deterministic_and_rng_untouched() -> None:
    d = load_dataset("digits")
    loader = DeviceLoader(d.x_train[:200], d.y_train[:200], d.info, batch_size=50, device=CPU,
                          augment=True, cutout=3, seed=7)
    torch.manual_seed(123)
    np.random.seed(5)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    a = list(loader.epoch(3))
    b = list(loader.epoch(3))
    c = list(loader.epoch(4))
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))
    resumed = list(loader.epoch(3, start=2))
    assert len(resumed) == len(a) - 2
    assert all(torch.equal(r[0], o[0]) for r, o in zip(resumed, a[2:]))
    other_seed = DeviceLoader(d.x_train[:200], d.y_train[:200], d.info, batch_size=50, device=CPU,
                              augment=True, cutout=3, seed=8)
    assert not torch.equal(next(other_seed.epoch(3))[0], a[0][0])


def test_loader_visits_every_index_once() -> None:
    n = 50
    x, info = _index_images(n), _identity_info(4, 3)
    loader = DeviceLoader(x, np.arange(n), info, batch_size=7, device=CPU, augment=False, drop_last=False, seed=1)
    seen, labels = [], []
    for xb, yb in loader.epoch(0):
        px = _pixels(xb)
        assert (px == px[:, :1, :1, :1]).all()  # no augmentation: every pixel is the index
        seen.extend(px[:, 0, 0, 0].tolist())
        labels.extend(yb.tolist())
    assert sorted(seen) == list(range(n)) and seen == labels
    assert seen != list(range(n))  # shuffled
    seq = DeviceLoader(x, np.arange(n), info, batch_size=7, device=CPU, augment=False, shuffle=False)
    assert [int(v) for xb, _ in seq.epoch(0) for v in _pixels(xb)[:, 0, 0, 0]] == list(range(49))


def test_crop_flip_matches_reference() -> None:
    rng = np.random.default_rng(3)
    n, s, c, p = 64, 8, 3, 2
    x = rng.integers(1, 256, (n, s, s, c), dtype=np.uint8)  # no zeros, so padding is visible
    info = _identity_info(s, c, padding=p, hflip=True)
    loader = DeviceLoader(x, np.zeros(n), info, batch_size=16, device=CPU, augment=True, shuffle=False, seed=5)
    out = np.concatenate([_pixels(xb) for xb, _ in loader.epoch(2)]).transpose(0, 2, 3, 1)
    used = set()
    for i in range(n):
        padded = np.pad(x[i].astype(np.int64), ((p, p), (p, p), (0, 0)))
        matches = [
            (dy, dx, flip)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            for flip in (False, True)
            if np.array_equal(out[i], (lambda crop: crop[:, ::-1] if flip else crop)(padded[dy:dy + s, dx:dx + s]))
        ]
        assert len(matches) == 1, f"image {i} is not a padded crop/flip of its original"
        used.add(matches[0])
    assert len(used) > 10 and {m[2] for m in used} == {False, True}


def test_cutout_zeroes_a_square() -> None:
    n, s, size = 40, 8, 4
    x = np.full((n, s, s, 1), 200, np.uint8)
    info = _identity_info(s, 1)  # no padding, no flip: only cutout changes pixels
    loader = DeviceLoader(x, np.zeros(n), info, batch_size=n, device=CPU, augment=True, cutout=size, seed=2)
    px = _pixels(next(loader.epoch(0))[0])[:, 0]
    areas = []
    for img in px:
        zero = img == 0
        assert set(np.unique(img)) <= {0, 200}
        rows, cols = np.nonzero(zero)
        if len(rows):
            box = zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            assert box.all(), "cutout region is not a filled rectangle"
        areas.append(int(zero.sum()))
    assert max(areas) == size * size and all(a <= size * size for a in areas)
    assert min(areas) < size * size  # some squares are clipped at the border
    # With a real mean/std the cut square is 0 after normalisation, i.e. the mean colour,
    # as in the DrNAS/DARTS transform (Cutout appended after Normalize).
    info2 = DatasetInfo("t", 10, 1, s, (0.3,), (0.2,), False, 0)
    out = next(DeviceLoader(x, np.zeros(n), info2, batch_size=n, device=CPU, augment=True,
                            cutout=size, seed=2).epoch(0))[0]
    assert torch.equal(out == 0, torch.from_numpy(px == 0)[:, None])


# --------------------------------------------------------------------------- ImageNet-style folders

WNIDS = ("n01440764", "n01443537", "n01484850")
# (file name, width, height, Pillow mode, format): JPEGs and PNGs of assorted sizes and modes.
IMAGE_SPECS = (
    ("a.JPEG", 40, 30, "RGB", "JPEG"),
    ("b.JPEG", 64, 80, "RGB", "JPEG"),
    ("c.jpg", 37, 37, "L", "JPEG"),
    ("d.png", 50, 44, "RGBA", "PNG"),
    ("e.jpeg", 90, 41, "CMYK", "JPEG"),
    ("f.PNG", 33, 70, "RGB", "PNG"),
)


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory: pytest.TempPathFactory, real_images: np.ndarray) -> Path:
    """ROOT/train/<wnid>/ with 6 images per class, made from upscaled CIFAR-10 pictures."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imagenet")
    k = 0
    for wnid in WNIDS:
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for name, w, h, mode, fmt in IMAGE_SPECS:
            img = Image.fromarray(real_images[k % len(real_images)]).resize((w, h), Image.BICUBIC)
            k += 1
            if mode == "RGBA":
                img = img.convert("RGBA")
                img.putalpha(128)
            elif mode != "RGB":
                img = img.convert(mode)
            img.save(folder / name, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        (folder / "notes.txt").write_text("not an image")
        (folder / "._a.JPEG").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork: skipped
    return root


def _eval_reference(path: Path, size: int) -> np.ndarray:
    """Shorter side to size*256/224 (bilinear), then the centred size x size crop, straight with Pillow."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    short = round(size * 256 / 224)
    w, h = img.size
    scale = short / min(w, h)
    nw, nh = (short, int(h * scale)) if w <= h else (int(w * scale), short)
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = round((nw - size) / 2), round((nh - size) / 2)
    return np.asarray(img.crop((left, top, left + size, top + size)))


def _to_pixels(out: torch.Tensor) -> np.ndarray:
    """Undo the ImageNet normalisation: NCHW float -> NHWC uint8 values."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return torch.round((out * std + mean) * 255).to(torch.int64).permute(0, 2, 3, 1).numpy()


def test_scan_classes_files_labels(image_tree: Path) -> None:
    idx = ImageFolderIndex.scan(image_tree)
    assert idx.root == image_tree / "train" and idx.classes == list(WNIDS)
    names = sorted(spec[0] for spec in IMAGE_SPECS)
    assert idx.files == [f"{w}/{n}" for w in WNIDS for n in names]
    assert idx.labels.dtype == np.int64 and idx.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    same = ImageFolderIndex.scan(image_tree / "train")  # ROOT is the split folder itself
    assert same.root == idx.root and same.files == idx.files and same.classes == idx.classes
    sub = idx.subset(np.array([17, 0, 6]))
    assert sub.files == [idx.files[17], idx.files[0], idx.files[6]] and sub.labels.tolist() == [2, 0, 1]
    assert sub.classes == idx.classes and len(sub) == 3


def test_scan_errors(tmp_path: Path, image_tree: Path) -> None:
    missing = tmp_path / "no" / "imagenet"
    with pytest.raises(DataError, match="does not exist") as exc:
        ImageFolderIndex.scan(missing)
    msg = str(exc.value)
    assert str(missing) in msg and "<class>" in msg and "\n" not in msg
    assert isinstance(exc.value, DrnasError)
    with pytest.raises(DataError, match="no 'val' folder"):
        ImageFolderIndex.scan(image_tree, "val")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        ImageFolderIndex.scan(tmp_path / "empty")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"x")
    with pytest.raises(DataError, match="1 images but no class subfolders"):
        ImageFolderIndex.scan(flat, "val")
    (tmp_path / "cls" / "n1").mkdir(parents=True)
    (tmp_path / "cls" / "n1" / "x.jpg").write_bytes(b"x")
    (tmp_path / "cls" / "n2").mkdir()
    with pytest.raises(DataError, match="n2 has no"):
        ImageFolderIndex.scan(tmp_path / "cls")


def test_sample_per_class() -> None:
    sizes = (100, 40, 7, 1)
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])
    labels = labels[np.random.default_rng(0).permutation(len(labels))]  # classes interleaved
    a, b = sample_per_class(labels, (0.1, 0.025), seed=3)
    assert a.dtype == np.int64 and np.all(np.diff(a) > 0) and np.all(np.diff(b) > 0)
    assert not set(a.tolist()) & set(b.tolist())
    assert np.bincount(labels[a], minlength=4).tolist() == [10, 4, 1, 1]
    assert np.bincount(labels[b], minlength=4).tolist() == [3, 1, 1, 0]  # 2.5 rounds up; at least 1
    again = sample_per_class(labels, (0.1, 0.025), seed=3)
    assert all(np.array_equal(x, y) for x, y in zip((a, b), again))
    other = sample_per_class(labels, (0.1, 0.025), seed=4)
    assert not np.array_equal(other[0], a)
    half = sample_per_class(np.zeros(3, np.int64), (0.5, 0.5), seed=0)
    assert [len(p) for p in half] == [2, 1] and sorted(np.concatenate(half).tolist()) == [0, 1, 2]
    for bad in ((), (0.6, 0.5), (0.0,), (1.5,)):
        with pytest.raises(DataError, match="fractions"):
            sample_per_class(labels, bad, seed=0)


def test_folder_loader_eval_matches_pillow_reference(image_tree: Path) -> None:
    idx = ImageFolderIndex.scan(image_tree)
    size = 32
    refs = np.stack([_eval_reference(idx.root / f, size) for f in idx.files]).astype(np.int64)
    loader = ImageFolderLoader(idx, batch_size=4, device=CPU, train=False, image_size=size, workers=0)
    assert (loader.shuffle, loader.drop_last, len(loader)) == (False, False, 5)
    batches = list(loader.epoch(0))
    assert [len(y) for _, y in batches] == [4, 4, 4, 4, 2]
    x = torch.cat([b[0] for b in batches])
    assert x.shape == (18, 3, size, size) and x.dtype == torch.float32 and x.is_contiguous()
    assert torch.cat([b[1] for b in batches]).tolist() == idx.labels.tolist()
    assert np.abs(_to_pixels(x) - refs).max() == 0
    assert torch.equal(torch.cat([b[0] for b in loader.epoch(5)]), x)  # no randomness in eval
    # Shuffled, every image still comes with its own label.
    shuffled = ImageFolderLoader(idx, batch_size=5, device=CPU, train=False, image_size=size, workers=0,
                                 shuffle=True, seed=1)
    px = np.concatenate([_to_pixels(xb) for xb, _ in shuffled.epoch(0)])
    ys = np.concatenate([yb.numpy() for _, yb in shuffled.epoch(0)])
    where = [next(j for j in range(18) if np.array_equal(p, refs[j])) for p in px]
    assert sorted(where) == list(range(18)) and where != list(range(18))
    assert ys.tolist() == idx.labels[where].tolist()


def test_folder_loader_train_deterministic_across_workers(image_tree: Path) -> None:
    idx = ImageFolderIndex.scan(image_tree)
    torch.manual_seed(11)
    np.random.seed(12)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()

    def run(workers: int, epoch: int, **kw: object) -> list[tuple[torch.Tensor, torch.Tensor]]:
        loader = ImageFolderLoader(idx, batch_size=5, device=CPU, train=True, image_size=24,
                                   workers=workers, seed=9, **kw)  # type: ignore[arg-type]
        return list(loader.epoch(epoch))

    a, b, c = run(0, 1), run(0, 1), run(2, 1)
    assert len(a) == 3  # 18 // 5, drop_last defaults to train
    for (xa, ya), (xb, yb), (xc, yc) in zip(a, b, c):
        assert xa.shape == (5, 3, 24, 24) and xa.dtype == torch.float32 and ya.dtype == torch.int64
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(xa, xc) and torch.equal(ya, yc)
    px = np.concatenate([_to_pixels(x) for x, _ in a])
    assert px.min() >= 0 and px.max() <= 255
    d = run(0, 2)
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, d))
    resumed = list(ImageFolderLoader(idx, batch_size=5, device=CPU, train=True, image_size=24, workers=0,
                                     seed=9).epoch(1, start=1))
    assert len(resumed) == 2 and all(torch.equal(r[0], o[0]) for r, o in zip(resumed, a[1:]))
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()
    # All labels of the epoch are a permutation-consistent draw of the index's labels.
    assert sorted(torch.cat([y for _, y in run(0, 1, drop_last=False)]).tolist()) == sorted(idx.labels.tolist())


def test_folder_loader_corrupt_file(tmp_path: Path, image_tree: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(image_tree / "train", root)
    bad = root / WNIDS[1] / "b.JPEG"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated JPEG
    idx = ImageFolderIndex.scan(root)
    for workers in (0, 2):
        loader = ImageFolderLoader(idx, batch_size=6, device=CPU, train=True, image_size=16, workers=workers)
        with pytest.raises(DataError, match="cannot decode") as exc:
            list(loader.epoch(0))
        assert str(bad) in str(exc.value) and "\n" not in str(exc.value)


def test_folder_loader_needs_pillow(monkeypatch: pytest.MonkeyPatch, image_tree: Path) -> None:
    idx = ImageFolderIndex.scan(image_tree)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DataError, match=r"pip install 'drnas\[imagenet\]'"):
        ImageFolderLoader(idx, batch_size=4, device=CPU, train=False)


def test_load_dataset_imagenet_points_to_folder_loader() -> None:
    with pytest.raises(DataError, match="ImageFolderIndex.scan") as exc:
        load_dataset("imagenet", "/some/where")
    assert "memory" in str(exc.value)


def test_random_resized_box_bounds() -> None:
    from drnas.data.folders import _random_resized_box

    rng = np.random.default_rng(0)
    boxes = np.array([_random_resized_box(rng, 500, 375, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(2000)])
    left, top, w, h = boxes.T
    assert (left >= 0).all() and (top >= 0).all() and (left + w <= 500).all() and (top + h <= 375).all()
    frac, aspect = w * h / (500 * 375), w / h
    assert frac.min() > 0.075 and frac.max() <= 1.0 and frac.min() < 0.12 and frac.max() > 0.9
    assert aspect.min() > 0.74 and aspect.max() < 1.35
    assert left.max() > 300 and top.max() > 200  # offsets spread over the image
    # A strip no crop fits in: the centred crop with the aspect clamped to 4/3.
    assert _random_resized_box(rng, 1000, 10, (0.08, 1.0), (3 / 4, 4 / 3)) == (493, 0, 13, 10)


def test_sharded_loader_splits_each_global_batch_across_ranks() -> None:
    """Two ranks see disjoint images, together the whole epoch, augmented as one process would."""
    x = _index_images(40, size=6)
    y = np.arange(40)
    info = _identity_info(6, 3, padding=1, hflip=True)
    single = list(DeviceLoader(x, y, info, batch_size=8, device="cpu", augment=True, cutout=2, seed=3).epoch(2))
    shards = [list(DeviceLoader(x, y, info, batch_size=8, device="cpu", augment=True, cutout=2, seed=3, rank=r,
                                world_size=2).epoch(2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(single) == 5
    for (xb, yb), (x0, y0), (x1, y1) in zip(single, *shards):
        assert torch.equal(torch.cat([y0, y1]), yb) and torch.equal(torch.cat([x0, x1]), xb)
    seen = [set(torch.cat([yb for _, yb in shard]).tolist()) for shard in shards]
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(40))
    with pytest.raises(DataError):
        DeviceLoader(x, y, info, batch_size=8, device="cpu", augment=False, rank=2, world_size=2)


def test_sharded_folder_loader(image_tree: Path) -> None:
    index = ImageFolderIndex.scan(image_tree)
    labels = [[yb for _, yb in ImageFolderLoader(index, batch_size=6, device="cpu", train=True, workers=0,
                                                  image_size=16, rank=r, world_size=2).epoch(0)] for r in range(2)]
    whole = [yb for _, yb in ImageFolderLoader(index, batch_size=6, device="cpu", train=True, workers=0,
                                               image_size=16).epoch(0)]
    for full, a, b in zip(whole, *labels):
        assert torch.equal(torch.cat([a, b]), full)
