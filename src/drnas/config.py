"""Search configuration: one dataclass, named presets, and overrides from files and the command line.

Resolution order: dataclass defaults < preset < config file (JSON or TOML) < explicit overrides. The
resolved config is saved in the run directory as ``config.json`` and is all a resume needs.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import DrnasError


class ConfigError(DrnasError, ValueError):
    """An inconsistent or malformed configuration; the message names the field and the fix."""


@dataclass(frozen=True)
class Stage:
    """One stage of progressive learning (paper §2.4); a plain search is one stage.

    ``partial_k``: 1/K of the channels go through the mixed ops. ``ops_kept``: ops per edge after pruning at
    the start of the stage (None keeps all). ``arch_warmup``: epochs at the start of the stage during which
    only the network weights are trained.
    """

    epochs: int
    partial_k: int = 1
    ops_kept: int | None = None
    arch_warmup: int = 0

    def validate(self, index: int) -> None:
        where = f"stage {index}"
        if self.epochs < 1:
            raise ConfigError(f"{where}: epochs must be >= 1, got {self.epochs}")
        if self.partial_k < 1:
            raise ConfigError(f"{where}: partial_k must be >= 1, got {self.partial_k}")
        if self.ops_kept is not None and self.ops_kept < 1:
            raise ConfigError(f"{where}: ops_kept must be >= 1 or null, got {self.ops_kept}")
        if not 0 <= self.arch_warmup <= self.epochs:
            raise ConfigError(f"{where}: arch_warmup must be between 0 and its {self.epochs} epochs")


@dataclass
class SearchConfig:
    """Everything that defines a search. Defaults follow the paper and the authors' NB201 settings."""

    space: str = "nb201"
    dataset: str = "cifar10"
    data: str | None = None
    download: bool = False
    stages: list[Stage] = field(default_factory=lambda: [Stage(epochs=100)])
    # supernet
    channels: int = 16
    cells_per_stage: int = 5
    # weights: SGD with cosine annealing over all epochs (paper §4.1/4.3)
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    # architecture: Adam on eta; the anchor on beta (eq. 4) as L2 on eta (Adam weight decay) or KL
    relaxation: str = "dirichlet"
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    regulariser: str = "l2"
    reg_scale: float = 1e-3
    eta_init_std: float = 1e-3
    # data
    train_portion: float = 0.5
    train_images: int | None = None
    cutout: int = 0
    # run
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    benchmark: str | None = None
    preset: str | None = None

    @property
    def epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    def validate(self) -> "SearchConfig":
        if not self.stages:
            raise ConfigError("stages: give at least one stage")
        for i, stage in enumerate(self.stages):
            stage.validate(i)
        for i in range(1, len(self.stages)):
            if self.stages[i].partial_k > self.stages[i - 1].partial_k:
                raise ConfigError(f"stage {i}: partial_k must not grow between stages (widening only), "
                                  f"got {self.stages[i - 1].partial_k} then {self.stages[i].partial_k}")
        if self.stages[0].ops_kept is not None:
            raise ConfigError("stage 0: ops_kept must be null (all ops); pruning happens between stages")
        positive = {"batch_size": self.batch_size, "channels": self.channels, "cells_per_stage": self.cells_per_stage}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if not 0.0 < self.train_portion < 1.0:
            raise ConfigError(f"train_portion must be in (0, 1), got {self.train_portion}")
        if self.regulariser not in ("l2", "kl"):
            raise ConfigError(f"regulariser must be 'l2' or 'kl', got {self.regulariser!r}")
        if self.device not in ("auto", "cpu") and not self.device.startswith(("cuda", "mps")):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        for stage_index, stage in enumerate(self.stages):
            if self.channels % stage.partial_k:
                raise ConfigError(f"stage {stage_index}: partial_k={stage.partial_k} must divide channels={self.channels}")
        return self

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["arch_betas"] = list(self.arch_betas)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SearchConfig":
        return apply_overrides(cls(), data)


_FIELDS = {f.name: f for f in dataclasses.fields(SearchConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Turn a JSON/TOML/CLI value into the type of field ``name``."""
    if name == "stages":
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, list):
            raise ConfigError("stages must be a list of {epochs, partial_k, ops_kept, arch_warmup} objects")
        stages = []
        for item in value:
            if isinstance(item, Stage):
                stages.append(item)
                continue
            if not isinstance(item, Mapping):
                raise ConfigError(f"stage {item!r} must be an object with epochs, partial_k, ops_kept, arch_warmup")
            unknown = set(item) - {f.name for f in dataclasses.fields(Stage)}
            if unknown:
                raise ConfigError(f"unknown stage field(s) {sorted(unknown)}: use epochs, partial_k, ops_kept, arch_warmup")
            stages.append(Stage(**item))
        return stages
    if name == "arch_betas":
        if isinstance(value, str):
            value = json.loads(value)
        return (float(value[0]), float(value[1]))
    default = getattr(SearchConfig(), name)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        return None
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{name} must be true or false, got {value!r}")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    if isinstance(default, int) or name in ("train_images", "threads"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
    return str(value)


def apply_overrides(config: SearchConfig, overrides: Mapping[str, Any]) -> SearchConfig:
    """A copy of ``config`` with ``overrides`` (field name -> value) applied; unknown names are errors."""
    changes = {}
    for name, value in overrides.items():
        key = name.replace("-", "_")
        if key not in _FIELDS:
            raise ConfigError(f"unknown config field {name!r}; fields are: {', '.join(_FIELDS)}")
        changes[key] = _coerce(key, value)
    return dataclasses.replace(config, **changes)


def set_total_epochs(config: SearchConfig, epochs: int) -> SearchConfig:
    """Rescale every stage (and its warm-up) so the stages add up to ``epochs`` (>= 1 per stage)."""
    if epochs < len(config.stages):
        raise ConfigError(f"--epochs {epochs} is fewer than the {len(config.stages)} stages of this search")
    total = config.epochs
    stages, used = [], 0
    for i, stage in enumerate(config.stages):
        share = epochs - used if i == len(config.stages) - 1 else max(1, round(epochs * stage.epochs / total))
        share = min(share, epochs - used - (len(config.stages) - 1 - i))
        used += share
        warmup = min(share, int(stage.arch_warmup * share / stage.epochs))
        stages.append(dataclasses.replace(stage, epochs=share, arch_warmup=warmup))
    return dataclasses.replace(config, stages=stages)


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read overrides from a ``.json`` or ``.toml`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(path.read_text())
        data = json.loads(path.read_text())
    except (ValueError, ImportError) as err:
        raise ConfigError(f"config file {path} could not be parsed: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold one object of field: value pairs")
    return data


# ----------------------------------------------------------------------------------------------- presets
_PRESETS: dict[str, Callable[[], dict[str, Any]]] = {}
_PRESET_DOCS: dict[str, str] = {}


def register_preset(name: str, doc: str) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
    """Decorator registering a preset: a function returning field overrides."""

    def add(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        if name in _PRESETS:
            raise ValueError(f"preset {name!r} is already registered")
        _PRESETS[name], _PRESET_DOCS[name] = fn, doc
        return fn

    return add


def preset_names() -> dict[str, str]:
    """Preset name -> one-line description."""
    return dict(_PRESET_DOCS)


def preset(name: str) -> SearchConfig:
    """The config of a named preset."""
    try:
        overrides = _PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(sorted(_PRESETS))}") from None
    return apply_overrides(SearchConfig(), {**overrides, "preset": name})


@register_preset("nb201", "NB201 space, 100 epochs, all channels (K=1), arch updates from the first step "
                          "(the authors' non-progressive script, which gave the paper's NB201 numbers)")
def _nb201() -> dict[str, Any]:
    return {"space": "nb201", "stages": [Stage(epochs=100, partial_k=1)]}


@register_preset("nb201-progressive", "NB201 space, progressive: 2 stages of 50 epochs, K=4 then 2, ops 5 then 3, "
                                      "10 warm-up epochs per stage (the authors' progressive script)")
def _nb201_progressive() -> dict[str, Any]:
    return {"space": "nb201", "stages": [Stage(epochs=50, partial_k=4, ops_kept=None, arch_warmup=10),
                                         Stage(epochs=50, partial_k=2, ops_kept=3, arch_warmup=10)]}


@register_preset("demo", "offline demo: NB201 space on the embedded digits data, small supernet, about a minute on 2 CPU cores")
def _demo() -> dict[str, Any]:
    return {"space": "nb201", "dataset": "digits", "channels": 8, "cells_per_stage": 1, "batch_size": 64,
            "lr": 0.05, "arch_lr": 3e-3,
            "stages": [Stage(epochs=10, partial_k=2, arch_warmup=2), Stage(epochs=10, partial_k=1, ops_kept=3, arch_warmup=2)]}
