"""The dataset registry (every entry loads as it declares, a new dataset is one registration) and the loader
builders of ``drnas.data.splits``, which must give the batches the jobs' own loaders give, bit for bit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from drnas.config import PROTOCOLS, Stage, apply_overrides, preset
from drnas.data import (DATASETS, DataError, DatasetInfo, ImageArrays, ImageFolderIndex,
                        ImageFolderLoader, dataset_shape, load_dataset, register_dataset, search_folder_loaders,
                        search_loaders, shaped_datasets, streams_folders, train_folder_loaders,
                        train_loaders)
from drnas.data import formats
from drnas.errors import ConfigError
from drnas.registry import Registry, RegistryError

from conftest import CIFAR_NPZ, SHARED

QUIET = dict(progress=False, log=lambda m: None)
#: where the tests find each dataset's files (a dataset missing here, or whose files are absent, is skipped)
FILES = {"cifar10": CIFAR_NPZ, "cifar100": SHARED / "cifar100", "imagenet16-120": SHARED / "ImageNet16"}


def _npz(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    path = folder / "mine.npz"
    np.savez(path, x_train=rng.integers(0, 256, (12, 6, 6, 3), dtype=np.uint8), y_train=np.arange(12) % 3)
    return path


# --------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", [n for n in DATASETS if not DATASETS.get(n).folders])
def test_each_array_dataset_loads_as_it_declares(name, tmp_path):
    entry = DATASETS.get(name)
    path = _npz(tmp_path) if name == "npz" else FILES.get(name)
    if entry.needs and (path is None or not Path(path).exists()):
        pytest.skip(f"{name} files not found at {path} (set DRNAS_TEST_DATA to a directory holding them)")
    arrays = load_dataset(name, path)
    info = arrays.info
    assert arrays.x_train.dtype == np.uint8 and arrays.y_train.dtype == np.int64
    assert arrays.x_train.shape[1:] == (info.image_size, info.image_size, info.channels)
    assert 0 <= arrays.y_train.min() and arrays.y_train.max() < info.num_classes
    if entry.info is not None:
        assert info == entry.info == dataset_shape(name)
        assert name in shaped_datasets() and entry.shape == (info.num_classes, info.channels, info.image_size)


def test_digits_match_their_declared_facts_exactly():
    entry = DATASETS.get("digits")
    arrays = load_dataset("digits")
    assert arrays.info is entry.info and entry.shape == (10, 1, 8) and not entry.needs
    assert arrays.x_train.shape == (1797, 8, 8, 1)
    assert formats._channel_stats(arrays.x_train) == (entry.info.mean, entry.info.std)  # the declared statistics


def test_folder_datasets_load_as_folders_not_arrays(imagenet_tree):
    for name in (n for n in DATASETS if DATASETS.get(n).folders):
        entry = DATASETS.get(name)
        with pytest.raises(DataError, match="folder loader") as err:
            load_dataset(name, imagenet_tree)
        assert "\n" not in str(err.value)
        index = ImageFolderIndex.scan(imagenet_tree)
        loader = ImageFolderLoader(index, batch_size=4, device="cpu", train=False, workers=0, info=entry.info)
        assert loader.info == dataclasses.replace(entry.info, num_classes=3)
    imagenet = DATASETS.get("imagenet").info
    assert (imagenet.num_classes, imagenet.channels, imagenet.image_size) == (1000, 3, 224)
    assert streams_folders("imagenet") and streams_folders("ImageNet")  # what the jobs ask to pick their loaders
    assert not any(streams_folders(n) for n in ("cifar10", "digits", "npz", "mnist"))


def test_names_and_shapes_come_from_the_registry():
    assert formats.DATASET_NAMES == DATASETS.names()
    assert set(shaped_datasets()) == {n for n in DATASETS if DATASETS.get(n).shape is not None}
    assert "npz" not in shaped_datasets() and "imagenet" in shaped_datasets()
    assert "folder" not in shaped_datasets()  # its classes are its sub-folders
    assert dataset_shape("cifar100").num_classes == 100 and dataset_shape("imagenet16-120").image_size == 16
    for name, what in (("npz", "dataset 'npz' has no fixed shape to count for"),
                       ("folder", "dataset 'folder' has no fixed shape to count for"),
                       ("mnist", "unknown dataset 'mnist' for counting")):
        with pytest.raises(ConfigError, match=f"{what}.*; choose one of cifar10"):
            dataset_shape(name)
    with pytest.raises(DataError, match="unknown dataset 'mnist'; known: cifar10"):
        DATASETS.get("mnist")


@pytest.fixture
def registry(monkeypatch) -> Registry:
    """A copy of the dataset registry for one test to add to."""
    copy = Registry("dataset", DataError)
    for name in DATASETS:
        copy.register(name, DATASETS.get(name), doc=DATASETS.docs()[name])
    monkeypatch.setattr(formats, "DATASETS", copy)
    return copy


def test_a_new_dataset_is_one_registration(registry, tmp_path):
    info = DatasetInfo("tiny", 2, 1, 4, (0.5,), (0.25,), hflip=False, crop_padding=1)
    x, y = np.zeros((6, 4, 4, 1), np.uint8), np.arange(6) % 2
    register_dataset("tiny", info, lambda path, download: ImageArrays(x, y, None, None, info), doc="in memory")
    arrays = load_dataset("TINY")
    assert arrays.info is info and arrays.x_train is x
    assert formats.dataset_shape("tiny") is info and registry.docs()["tiny"] == "in memory"
    assert "tiny" in formats.shaped_datasets()  # a registered dataset can be counted (drnas arch, derive)

    seen = []
    register_dataset("tiny-files", info, lambda path, download: seen.append((path, download)) or arrays,
                     needs="a folder of tiny files")
    with pytest.raises(DataError, match="dataset tiny-files needs a path: pass --data with a folder of tiny files"):
        load_dataset("tiny-files")
    assert load_dataset("tiny-files", tmp_path, download=True) is arrays and seen == [(tmp_path, True)]
    with pytest.raises(DataError, match="choose one of .*tiny-files"):
        load_dataset("mnist")
    with pytest.raises(RegistryError, match="already registered"):
        register_dataset("tiny", info, None)


# --------------------------------------------------------------------------- the builders against the jobs


def _batches(loader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader.epoch(epoch))


def _same_batches(mine, theirs, epochs=(0, 1)) -> None:
    assert len(mine) == len(theirs)
    for epoch in epochs:
        a, b = _batches(mine, epoch), _batches(theirs, epoch)
        assert len(a) == len(b) > 0
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("changes", [{}, {"subset_fractions": [0.4, 0.3], "cutout": 4, "seed": 3}],
                         ids=["demo", "per-class-halves-cutout"])
def test_search_loaders_give_the_search_batches(changes):
    from drnas.search import Search

    config = apply_overrides(preset("demo"), {"device": "cpu", **changes})
    search = Search(config, **QUIET)
    loaders = search_loaders(load_dataset("digits"), search.config, "cpu")
    assert loaders.info == search.info
    for mine, theirs in zip(loaders[:3], (search.weight_loader, search.arch_loader, search.valid_loader)):
        _same_batches(mine, theirs)


def test_search_loaders_share_each_batch_between_ranks():
    config = apply_overrides(preset("demo"), {"device": "cpu"})
    arrays = load_dataset("digits")
    whole = search_loaders(arrays, config, "cpu")
    parts = [search_loaders(arrays, config, "cpu", rank=r, world_size=2) for r in (0, 1)]
    for which in range(3):
        joined = zip(*(_batches(p[which], 1) for p in parts))
        for (x, y), ((x0, y0), (x1, y1)) in zip(_batches(whole[which], 1), joined):
            assert torch.equal(x, torch.cat([x0, x1])) and torch.equal(y, torch.cat([y0, y1]))


@pytest.mark.parametrize("test_images", [None, 50])
def test_train_loaders_give_the_trainer_batches(test_images):
    from drnas.train import Trainer

    config = apply_overrides(PROTOCOLS.get("nb201"), {"arch": "DrNAS_nb201", "dataset": "digits", "epochs": 2,
                                                      "channels": 8, "cells_per_stage": 1, "batch_size": 64,
                                                      "device": "cpu", "cutout": 4, "test_images": test_images})
    told: list[str] = []
    trainer = Trainer(config, progress=False, log=told.append)
    said: list[str] = []
    loaders = train_loaders(load_dataset("digits"), trainer.config, "cpu", log=said.append)
    assert loaders.info == trainer.info and said and said[0] in told  # the held-out test images are announced
    _same_batches(loaders.train, trainer.train_loader)
    _same_batches(loaders.test, trainer.test_loader)


def test_folder_loaders_give_the_jobs_batches(imagenet_tree):
    from drnas.search import Search
    from drnas.train import Trainer
    from helpers import tiny_config

    search_cfg = tiny_config(space="darts", dataset="imagenet", data=str(imagenet_tree), cells=3, channels=4,
                             batch_size=4, image_size=32, workers=0, stages=[Stage(1, 2, None, 0)])
    search = Search(search_cfg, **QUIET)
    loaders = search_folder_loaders(ImageFolderIndex.scan(imagenet_tree, "train"), search.config, "cpu")
    assert loaders.info == search.info
    for mine, theirs in zip(loaders[:3], (search.weight_loader, search.arch_loader, search.valid_loader)):
        assert mine.index.files == theirs.index.files
        _same_batches(mine, theirs, epochs=(1,))

    config = apply_overrides(PROTOCOLS.get("darts-imagenet"), {
        "arch": "DrNAS_imagenet", "data": str(imagenet_tree), "epochs": 1, "batch_size": 4, "channels": 4, "cells": 3,
        "image_size": 32, "workers": 0, "warmup_epochs": 0, "auxiliary_weight": 0.0, "device": "cpu", "train_images": 9,
        "test_images": 5})
    trainer = Trainer(config, **QUIET)
    train = train_folder_loaders(ImageFolderIndex.scan(imagenet_tree, "train"),
                                 ImageFolderIndex.scan(imagenet_tree, "val"), trainer.config, "cpu")
    assert train.info == trainer.info
    for mine, theirs in ((train.train, trainer.train_loader), (train.test, trainer.test_loader)):
        assert mine.index.files == theirs.index.files
        _same_batches(mine, theirs, epochs=(1,))
    val = ImageFolderIndex.scan(imagenet_tree, "val")
    two_classes = ImageFolderIndex(val.root, val.classes[:2], val.files[:2], val.labels[:2])
    with pytest.raises(ConfigError, match="different class folders"):
        train_folder_loaders(ImageFolderIndex.scan(imagenet_tree, "train"), two_classes, trainer.config, "cpu")
