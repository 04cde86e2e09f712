"""Retraining configuration: one dataclass and the named protocols (the papers' training recipes).

``drnas presets`` lists the protocols; ``PROTOCOLS.get(name)`` returns the :class:`TrainConfig` of one.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from drnas.config.limits import check_limits
from drnas.config.presets import PresetRegistry
from drnas.config.search import check_device_settings
from drnas.config.settings import RunSettings
from drnas.errors import ConfigError, shown


@dataclass
class TrainConfig(RunSettings):
    """Everything that defines a retraining run; protocols (presets) fill in the paper's settings."""

    arch: str = ""
    dataset: str = "cifar10"
    data: str | None = None
    download: bool = False
    epochs: int = 600
    batch_size: int = 96
    lr: float = 0.025
    lr_min: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: int = 0
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 3e-4
    grad_clip: float | None = 5.0
    cutout: int = 16
    drop_path: float = 0.3
    auxiliary_weight: float = 0.4
    label_smoothing: float = 0.0
    channels: int = 36
    cells: int = 20
    cells_per_stage: int = 5
    # augmentation of the training images (None: the dataset's own, `drnas datasets`); image folders are decoded
    # at image_size (None: the dataset's, 224 for ImageNet)
    hflip: bool | None = None
    crop_padding: int | None = None
    image_size: int | None = None
    workers: int = 4
    train_images: int | None = None
    test_images: int | None = None  # evaluate on the first N test images only (quicker, noisier)
    seed: int = 0
    # the run settings shared with the search (device, threads, layout, amp, CUDA graphs, writers): RunSettings
    preset: str | None = None  # the protocol this config came from

    def validate(self) -> "TrainConfig":
        if not self.arch:
            raise ConfigError("no architecture: pass --arch NAME|FILE|RUN_DIR|TEXT")
        check_device_settings(self)
        if self.schedule not in ("cosine", "linear"):
            raise ConfigError(f"schedule must be cosine or linear, got {shown(self.schedule)}")
        for name in ("epochs", "batch_size", "channels", "cells", "cells_per_stage"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {shown(getattr(self, name))}")
        for name in ("train_images", "test_images"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (or unset for all images), got {shown(getattr(self, name))}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ConfigError(f"drop_path must be in [0, 1), got {shown(self.drop_path)}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs), got {shown(self.warmup_epochs)}")
        check_limits(self)  # after the checks above, whose messages say more for a value below 1
        return self

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PROTOCOLS = PresetRegistry("training protocol", TrainConfig)


@PROTOCOLS.register("darts-cifar", "DARTS-space network on CIFAR (paper §4.1): 20 cells, 36 channels, 600 epochs, "
                                   "batch 96, SGD 0.025 cosine, cutout 16, drop-path 0.3, auxiliary 0.4")
def _darts_cifar() -> dict[str, Any]:
    return {"epochs": 600, "batch_size": 96, "lr": 0.025, "lr_min": 0.0, "schedule": "cosine", "momentum": 0.9,
            "weight_decay": 3e-4, "grad_clip": 5.0, "cutout": 16, "drop_path": 0.3, "auxiliary_weight": 0.4,
            "channels": 36, "cells": 20}


@PROTOCOLS.register("darts-imagenet", "DARTS-space network on ImageNet (paper §4.2): 14 cells, 48 channels, 250 "
                                      "epochs, SGD 0.5 linear decay, 5 warm-up epochs, wd 3e-5, label smoothing 0.1, "
                                      "auxiliary 0.4")
def _darts_imagenet() -> dict[str, Any]:
    # batch 1024 as in PC-DARTS/P-DARTS, which the paper follows for lr 0.5 (on 8 GPUs)
    return {"epochs": 250, "batch_size": 1024, "lr": 0.5, "lr_min": 0.0, "schedule": "linear", "warmup_epochs": 5,
            "momentum": 0.9, "weight_decay": 3e-5, "grad_clip": 5.0, "cutout": 0, "drop_path": 0.0,
            "auxiliary_weight": 0.4, "label_smoothing": 0.1, "channels": 48, "cells": 14, "dataset": "imagenet"}


@PROTOCOLS.register("nb201", "NAS-Bench-201's recipe for an NB201 cell: C=16, N=5, 200 epochs, batch 256, "
                             "SGD 0.1 Nesterov cosine, wd 5e-4, crop+flip only")
def _nb201() -> dict[str, Any]:
    return {"epochs": 200, "batch_size": 256, "lr": 0.1, "lr_min": 0.0, "schedule": "cosine", "momentum": 0.9,
            "nesterov": True, "weight_decay": 5e-4, "grad_clip": None, "cutout": 0, "drop_path": 0.0,
            "auxiliary_weight": 0.0, "channels": 16, "cells_per_stage": 5}
