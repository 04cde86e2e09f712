"""Datasets behind the registry: `drnas datasets` lists them all; a dataset registered by a plugin works with
--dataset NAME in search, train, arch, derive, sample and sweeps; the augmentation (flips, crop padding) is a
run's setting, recorded and used by both jobs' loaders; a folder of images (one sub-folder per class) needs no
code (`--dataset folder`)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from drnas.cli import main
from drnas.config.search import ConfigError, SearchConfig
from drnas.config.train import PROTOCOLS, TrainConfig
from drnas.data import (
    DataError,
    DatasetInfo,
    ImageArrays,
    ImageFolderIndex,
    ImageFolderLoader,
    augmented,
    formats,
    register_dataset,
    search_loaders,
    train_loaders,
)
from drnas.data.folders import FOLDER_INFO
from drnas.registry import Registry
from drnas.search import Search
from drnas.train import Trainer

NAME = "test-noise8"
INFO = DatasetInfo(NAME, 3, 3, 8, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), hflip=True, crop_padding=1)
TINY = ["--preset", "demo", "--epochs", "2", "--train-images", "96", "--threads", "1", "--quiet"]


def noise_images(path: Path | None, download: bool) -> ImageArrays:
    """A tiny seeded dataset: 8x8 RGB noise whose class (0..2) brightens one colour channel."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 160)
    x = rng.integers(0, 120, (160, 8, 8, 3)).astype(np.uint8)
    for c in range(3):
        x[y == c, :, :, c] += 120
    return ImageArrays(x[:128], y[:128].astype(np.int64), x[128:], y[128:].astype(np.int64), INFO)


@pytest.fixture
def noise_dataset(monkeypatch) -> Registry:
    """The registry with a dataset registered as a plugin would (``register_dataset``), for this test only."""
    copy = Registry("dataset", DataError)
    for name in formats.DATASETS:
        copy.register(name, formats.DATASETS.get(name), doc=formats.DATASETS.docs()[name])
    monkeypatch.setattr(formats, "DATASETS", copy)
    register_dataset(NAME, INFO, noise_images, doc="seeded 8x8 noise, 3 classes (a test's)")
    return copy


def test_drnas_datasets_lists_every_registered_dataset(noise_dataset, capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in noise_dataset:
        assert f"  {name} " in out
    assert "test-noise8      3 classes, 3 channels, 8x8, augmentation: crop (padding 1) + flip" in out
    assert "seeded 8x8 noise, 3 classes (a test's)" in out and "--data: none (embedded)" in out
    assert "cifar10          10 classes, 3 channels, 32x32, augmentation: crop (padding 4) + flip" in out
    assert "imagenet         1000 classes, 3 channels, 224x224, augmentation: random-resized crop + flip" in out
    assert "folder           a class per folder" in out and "--data: ROOT/train/<class>/*" in out
    assert "hflip=true|false" in out and "crop_padding=N" in out
    with pytest.raises(SystemExit):  # the --dataset help reads the registry when the parser is built
        main(["search", "--help"])
    assert NAME in " ".join(capsys.readouterr().out.split())


def test_a_registered_dataset_runs_through_every_command(noise_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", *TINY, "--dataset", NAME, "--out", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["dataset"] == NAME and saved["hflip"] is None and saved["crop_padding"] is None
    capsys.readouterr()

    assert main(["arch", str(run), "--dataset", NAME, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == NAME and report["params"] > 0
    assert main(["derive", str(run), "--json"]) == 0  # the run's own dataset: it has a shape
    derived = json.loads(capsys.readouterr().out)
    assert derived["dataset"] == NAME

    csv = tmp_path / "nb201.csv"
    csv.write_text("arch,cifar10_test_acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10.0\n")
    assert main(["sample", str(run), "--n", "5", "--benchmark", str(csv)]) == 0
    out = capsys.readouterr()
    assert f"note: NAS-Bench-201 has no results for dataset '{NAME}'" in out.err  # skipped, not cifar10's column
    assert "benchmark lookup skipped" in out.err and "distinct of 5 draws" in out.out

    assert main(["train", "--arch", str(run), "--dataset", NAME, "--epochs", "1", "--set", "channels=4",
                 "--set", "cells_per_stage=1", "--quiet", "--threads", "1", "--out", str(tmp_path / "train")]) == 0
    result = json.loads((tmp_path / "train" / "result.json").read_text())
    assert json.loads((tmp_path / "train" / "config.json").read_text())["dataset"] == NAME
    assert 0 <= result["top1"] <= 100


def test_an_unknown_dataset_is_one_line_before_anything_is_written(tmp_path, capsys):
    for argv in (["search", *TINY, "--dataset", "nope", "--out", str(tmp_path / "run")],
                 ["sweep", *TINY, "--dataset", "nope", "--seeds", "0-1", "--out", str(tmp_path / "sweep")]):
        assert main(argv) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and "unknown dataset 'nope'" in err[0] and "drnas datasets" in err[0], err
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


# --------------------------------------------------------------------------- augmentation as settings


def test_augmentation_settings_override_the_datasets_own():
    assert augmented(INFO) is INFO  # unset: the dataset's own, the very same facts
    assert augmented(INFO, hflip=False, crop_padding=3) == dataclasses.replace(INFO, hflip=False, crop_padding=3)
    imagenet = formats.DATASETS.get("imagenet").info
    assert augmented(imagenet, crop_padding=0) == imagenet
    with pytest.raises(DataError, match="random-resized crops: leave crop_padding unset"):
        augmented(imagenet, crop_padding=4)
    with pytest.raises(ConfigError, match="crop_padding must be in \\[0, 256\\]"):
        SearchConfig(crop_padding=-1).validate()
    assert INFO.augmentation() == "crop (padding 1) + flip"
    assert augmented(INFO, hflip=False, crop_padding=0).augmentation() == "none"


def test_both_jobs_loaders_augment_as_the_settings_say():
    arrays = noise_images(None, False)
    plain = search_loaders(arrays, SearchConfig(batch_size=16), "cpu")
    assert plain.weight.info is INFO and plain.info is INFO
    off = search_loaders(arrays, SearchConfig(batch_size=16, hflip=False, crop_padding=0), "cpu")
    assert (off.weight.info.hflip, off.weight.info.crop_padding) == (False, 0) and off.info is INFO
    # without crop and flip, a training batch holds the plain images; the dataset's own crop and flip move pixels
    x, y = next(off.weight.epoch(0))
    unaugmented = (torch.from_numpy(arrays.x_train).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    assert all(any(torch.allclose(image, other) for other in unaugmented) for image in x)
    assert not torch.equal(x, next(plain.weight.epoch(0))[0])
    wider = train_loaders(arrays, TrainConfig(arch="DrNAS_nb201", batch_size=16, crop_padding=3, hflip=False), "cpu")
    assert (wider.train.info.crop_padding, wider.train.info.hflip) == (3, False) and wider.info is INFO
    assert y.dtype == torch.int64


def test_the_settings_are_recorded_and_reach_a_searchs_loaders(noise_dataset, tmp_path):
    run = tmp_path / "run"
    assert main(["search", *TINY, "--dataset", NAME, "--set", "hflip=false", "--set", "crop_padding=2",
                 "--out", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert (saved["hflip"], saved["crop_padding"]) == (False, 2)
    search = Search.resume(run, progress=False, log=lambda m: None)
    assert (search.weight_loader.info.hflip, search.weight_loader.info.crop_padding) == (False, 2)
    assert (search.arch_loader.info.hflip, search.arch_loader.info.crop_padding) == (False, 2)


# --------------------------------------------------------------------------- a folder of images, no code


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """ROOT/train/<class>/ and ROOT/val/<class>/ with a few small PNG and JPEG images, the class in their colour."""
    Image = pytest.importorskip("PIL.Image")
    root = tmp_path / "pictures"
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 3)):
        for c, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 100, (12, 10, 3), dtype=np.uint8)
                pixels[..., c] += 150
                suffix = ".png" if i % 2 else ".jpg"
                Image.fromarray(pixels).save(folder / f"{i}{suffix}")
    return root


def test_a_folder_of_images_is_a_dataset(image_folder):
    index = ImageFolderIndex.scan(image_folder, "train")
    assert index.classes == ["cat", "dog"] and len(index) == 12
    info = formats.DATASETS.get("folder").info
    assert info == FOLDER_INFO and not info.resized_crop and info.image_size == 32
    loader = ImageFolderLoader(index, batch_size=4, device="cpu", train=True, workers=0, info=info)
    assert loader.info.num_classes == 2 and loader.info.image_size == 32
    x, y = next(loader.epoch(0))
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.int64
    # no crop or flip: a training batch is the evaluation transform of the same images (the whole image, resized)
    still = augmented(info, hflip=False, crop_padding=0)
    train = ImageFolderLoader(index, batch_size=12, device="cpu", train=True, workers=0, info=still, image_size=16,
                              shuffle=False)
    evaluation = ImageFolderLoader(index, batch_size=12, device="cpu", train=False, workers=0, info=still,
                                   image_size=16)
    assert torch.equal(next(train.epoch(0))[0], next(evaluation.epoch(0))[0])
    moved = ImageFolderLoader(index, batch_size=12, device="cpu", train=True, workers=0, info=info, image_size=16,
                              shuffle=False)
    assert not torch.equal(next(moved.epoch(0))[0], next(evaluation.epoch(0))[0])


def test_a_folder_of_images_searches_and_retrains_from_the_command_line(image_folder, tmp_path):
    run = tmp_path / "run"
    assert main(["search", *TINY, "--dataset", "folder", "--data", str(image_folder), "--set", "workers=0",
                 "--set", "image_size=8", "--out", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["dataset"] == "folder" and saved["image_size"] == 8
    assert main(["train", "--arch", str(run), "--dataset", "folder", "--data", str(image_folder), "--epochs", "1",
                 "--set", "workers=0", "--set", "channels=4", "--set", "cells_per_stage=1", "--quiet", "--threads",
                 "1", "--out", str(tmp_path / "train")]) == 0
    trained = json.loads((tmp_path / "train" / "config.json").read_text())
    assert trained["image_size"] is None  # unset: the folder dataset's own 32 px
    config = dataclasses.replace(PROTOCOLS.get("nb201"), arch="DrNAS_nb201", dataset="folder", data=str(image_folder),
                                 workers=0, channels=4, cells_per_stage=1, epochs=1, device="cpu")
    trainer = Trainer(config, progress=False, log=lambda m: None)
    assert (trainer.info.num_classes, trainer.info.image_size) == (2, 32)
    assert trainer.report["macs"] > 0


def test_a_folder_dataset_without_data_is_one_line(tmp_path, capsys):
    assert main(["search", *TINY, "--dataset", "folder", "--out", str(tmp_path / "run")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "dataset folder needs --data ROOT" in err[0]
    assert not (tmp_path / "run").exists()
