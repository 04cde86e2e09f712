"""Search configuration: one dataclass, named presets, and overrides from files and the command line.

Resolution order: dataclass defaults < preset < config file (JSON or TOML) < explicit overrides. The
resolved config is saved in the run directory as ``config.json`` and is all a resume needs.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from drnas.fast.accel import AMP_SETTINGS, COMPILE_MODES, GRAPH_SETTINGS, MEMORY_FORMATS
from drnas.errors import ConfigError, shown
from drnas.registry import Registry


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
        where = f"stage {index + 1}"  # 1-based in messages, as `drnas show` and the plots count
        if self.epochs < 1:
            raise ConfigError(f"{where}: epochs must be >= 1, got {shown(self.epochs)}")
        if self.partial_k < 1:
            raise ConfigError(f"{where}: partial_k must be >= 1, got {shown(self.partial_k)}")
        if self.ops_kept is not None and self.ops_kept < 1:
            raise ConfigError(f"{where}: ops_kept must be >= 1 or null, got {shown(self.ops_kept)}")
        if not 0 <= self.arch_warmup <= self.epochs:
            raise ConfigError(f"{where}: arch_warmup must be between 0 and its {self.epochs} epochs")


#: config fields that decide how a step runs, not what it computes (beyond float rounding): ``--resume`` may change
#: them with ``--set``, e.g. ``compile=none`` when compiling fails on a machine the run moved to; and
#: ``tensorboard`` and ``wandb``, which only add a view of the run's metrics
RESUME_SETTABLE = ("compile", "cuda_graphs", "cudnn_benchmark", "keep_freed_memory", "fast_paths", "tensorboard",
                   "wandb")
#: fields a resume may change to recover a run (e.g. after a NaN): they change what the rest of the run computes,
#: so each change is recorded in the run's config.json ("changes": after which epoch, which values)
RECOVERY_SETTABLE = ("lr", "lr_min", "arch_lr", "grad_clip")


@dataclass
class SearchConfig:
    """Everything that defines a search. Defaults follow the paper and the authors' NB201 settings."""

    space: str = "nb201"
    dataset: str = "cifar10"
    data: str | None = None
    download: bool = False
    stages: list[Stage] = field(default_factory=lambda: [Stage(epochs=100)])
    # supernet: NB201 uses cells_per_stage (N), the DARTS space uses cells (total); ops=None keeps all of the space's ops
    channels: int = 16
    cells_per_stage: int = 5
    cells: int = 8
    ops: list[str] | None = None
    # weights: SGD with cosine annealing over all epochs (paper §4.1/4.3)
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    # the search method (``drnas methods``); its own hyperparameters are applied over the preset by --method
    method: str = "drnas"
    tau_max: float | None = None  # Gumbel temperature at the first epoch (snas, gdas; None: the method's own)
    tau_min: float | None = None  # ... and at the last
    candidates: int = 100  # rsps, enas: architectures sampled and ranked on the supernet to derive the result
    queries: int = 100  # random, reinforce: benchmark-table queries over the whole search
    # architecture: Adam on eta; the anchor on beta (eq. 4) as L2 on eta (Adam weight decay) or KL
    relaxation: str = "dirichlet"
    arch_lr: float = 3e-4
    arch_betas: tuple[float, ...] = (0.5, 0.999)
    regulariser: str = "l2"
    reg_scale: float = 1e-3
    eta_init_std: float = 1e-3
    # data: train_portion splits the training set by position into weight and arch halves; subset_fractions
    # instead samples these fractions of every class (seeded) for the two halves (ImageNet: [0.1, 0.025])
    train_portion: float = 0.5
    subset_fractions: list[float] | None = None
    train_images: int | None = None
    cutout: int = 0
    image_size: int = 224
    workers: int = 4
    # run; batch_size is the global batch, split over the processes of a torchrun launch
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    sync_bn: bool = False
    memory_format: str = "auto"
    amp: str = "off"  # "bf16": autocast the network (less memory; not faster on measured supernets, see drnas.fast.accel)
    cuda_graphs: str = "auto"  # replay each step as a CUDA graph: auto = on a GPU in a single process
    cudnn_benchmark: bool = False  # on a GPU, let cuDNN time its algorithms (faster DARTS steps; see the README)
    keep_freed_memory: bool = True  # on a CPU under glibc: reuse freed memory, no page faults (drnas.fast.host_memory)
    compile: str = "auto"  # "cells": torch.compile each search cell; auto = on a CPU for long NB201 searches
    # "plain": every speed path off (no edge fusion or folding, fast pooling, compiled cells, CUDA graphs or
    # channels_last): the mixed op exactly as the paper writes it, the reference the fast paths are tested against
    fast_paths: str = "default"
    hessian_every: int = 0  # every N epochs log the validation Hessian's dominant eigenvalue and trace (0: never)
    tensorboard: bool = False  # also write the metrics (and a search's pictures) for TensorBoard to RUN/tensorboard/
    wandb: bool = False  # also send the metrics (and at the end the pictures) to Weights & Biases (drnas[wandb])
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
                raise ConfigError(f"stage {i + 1}: partial_k must not grow between stages (widening only), "
                                  f"got {shown(self.stages[i - 1].partial_k)} then {self.stages[i].partial_k}")
        if self.stages[0].ops_kept is not None:
            raise ConfigError("stage 1: ops_kept must be null (all ops); pruning happens between stages")
        if self.relaxation != "dirichlet":
            raise ConfigError(f"relaxation={self.relaxation!r}: the relaxation comes with the method; choose one with "
                              "--method (darts: softmax, snas: Gumbel-softmax, gdas: hard Gumbel; `drnas methods` "
                              "lists them)")
        for name in ("tau_max", "tau_min"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be a positive temperature, got {shown(value)}")
        positive = {"batch_size": self.batch_size, "channels": self.channels, "cells_per_stage": self.cells_per_stage,
                    "cells": self.cells, "image_size": self.image_size, "candidates": self.candidates,
                    "queries": self.queries}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {shown(value)}")
        if not 0.0 < self.train_portion < 1.0:
            raise ConfigError(f"train_portion must be in (0, 1), got {shown(self.train_portion)}")
        if self.subset_fractions is not None and (len(self.subset_fractions) != 2 or sum(self.subset_fractions) > 1
                                                  or min(self.subset_fractions) <= 0):
            raise ConfigError(f"subset_fractions must be two positive fractions adding up to at most 1, "
                              f"got {shown(self.subset_fractions)}")
        if self.ops is not None and len(self.ops) < 2:
            raise ConfigError(f"ops must list at least two candidate ops, got {shown(self.ops)}")
        check_device_settings(self)
        if self.compile not in COMPILE_MODES:
            raise ConfigError(f"compile must be one of {', '.join(COMPILE_MODES)} (cells: torch.compile every "
                              f"search cell; auto: only where that pays), got {shown(self.compile)}")
        if self.fast_paths not in ("default", "plain"):
            raise ConfigError(f"fast_paths must be 'default' or 'plain' (every speed path off), got {shown(self.fast_paths)}")
        if self.fast_paths == "plain" and (self.compile == "cells" or self.cuda_graphs == "on"
                                           or self.memory_format == "channels_last"):
            raise ConfigError("fast_paths=plain runs the plain eager path: drop compile=cells, cuda_graphs=on and "
                              "memory_format=channels_last")
        if self.regulariser not in ("l2", "kl"):
            raise ConfigError(f"regulariser must be 'l2' or 'kl', got {shown(self.regulariser)}")
        for stage_index, stage in enumerate(self.stages):
            if self.channels % stage.partial_k:
                raise ConfigError(f"stage {stage_index + 1}: partial_k={stage.partial_k} must divide channels={self.channels}")
        return self

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["arch_betas"] = list(self.arch_betas)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SearchConfig":
        return apply_overrides(cls(), data)


def with_absolute_paths(config: SearchConfig) -> SearchConfig:
    """``config`` with its file paths (data, benchmark) absolute, so a resume from another directory finds them."""
    paths = {name: str(Path(getattr(config, name)).expanduser().resolve())
             for name in ("data", "benchmark") if getattr(config, name)}
    return dataclasses.replace(config, **paths)


#: ranges of the numeric fields, by name, for every config class that has them: (test, what the field must be)
NUMBER_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **{name: (lambda v: v > 0, "> 0") for name in ("lr", "arch_lr", "grad_clip")},
    **{name: (lambda v: v >= 0, ">= 0") for name in ("lr_min", "weight_decay", "reg_scale", "eta_init_std",
                                                      "auxiliary_weight", "workers", "cutout",
                                                      "hessian_every")},
    **{name: (lambda v: 0 <= v < 1, "in [0, 1)") for name in ("momentum", "label_smoothing")},
    **{name: (lambda v: v >= 1, ">= 1") for name in ("threads", "train_images", "image_size", "batch_size")},
    "seed": (lambda v: 0 <= v < 2**63, "an integer in [0, 2**63)"),
    "arch_betas": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1), e.g. 0.5,0.999"),
}


def check_device_settings(config: Any) -> None:
    """The fields that search and training configs share: numeric ranges (``NUMBER_RULES``), the device name, and
    the device-speed fields (memory_format, amp, cuda_graphs), by name; whether a speed setting applies to the
    device is decided at run time (drnas.fast.accel)."""
    own = {f.name for f in dataclasses.fields(config)}
    for name, (ok, wanted) in NUMBER_RULES.items():
        value = getattr(config, name) if name in own else None
        if value is not None and not ok(value):
            raise ConfigError(f"{name} must be {wanted}, got {shown(value)}")
    device = config.device
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {shown(device)}")
    for name, allowed in (("memory_format", MEMORY_FORMATS), ("amp", AMP_SETTINGS), ("cuda_graphs", GRAPH_SETTINGS)):
        value = getattr(config, name)
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {shown(value)}")


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Turn a JSON/TOML/CLI value into the declared type of field ``name`` of dataclass ``cls``."""
    if name == "stages":
        return _coerce_stages(value)
    annotation = str({f.name: f.type for f in dataclasses.fields(cls)}[name])
    optional = "None" in annotation
    null_word = isinstance(value, str) and value.lower() in ("none", "null")
    if null_word and annotation == "str":  # a plain string field may have "none" as a value (compile=none)
        return value
    if value is None or null_word:
        if optional:
            return None
        raise ConfigError(f"{name} cannot be null")
    if annotation.startswith(("list", "tuple")):
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as err:
                raise ConfigError(f"{name} must be a list, e.g. --set {name}=a,b ({type(err).__name__}: "
                                  f"{str(err)[:80]})") from None
        elif isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, e.g. --set {name}=a,b")
        kind = float if "float" in annotation else str
        try:
            items = [kind(v) for v in value]
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a list of numbers, got {shown(value)}") from None
        if kind is float and not all(math.isfinite(v) for v in items):
            raise ConfigError(f"{name} must hold finite numbers, got {shown(value)}")
        return tuple(items) if annotation.startswith("tuple") else items
    if annotation.startswith("bool"):
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{name} must be true or false, got {shown(value)}")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    for kind, word in ((int, "an integer"), (float, "a number")):
        if annotation.startswith(kind.__name__):
            try:
                number = kind(value)
            except (TypeError, ValueError, OverflowError):
                raise ConfigError(f"{name} must be {word}, got {shown(value)}") from None
            if kind is int and isinstance(value, float) and value != number:
                raise ConfigError(f"{name} must be an integer, got {shown(value)}")
            if kind is float and not math.isfinite(number):
                raise ConfigError(f"{name} must be a finite number, got {shown(value)}")
            return number
    return str(value)


def _coerce_stages(value: Any) -> list[Stage]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as err:  # malformed, nested too deep, numbers too long
            raise ConfigError(f"stages must be a JSON list of stage objects ({type(err).__name__}: "
                              f"{str(err)[:80]})") from None
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
            raise ConfigError(f"unknown stage field(s) {shown(sorted(unknown))}: use epochs, partial_k, ops_kept, "
                              "arch_warmup")
        try:
            stages.append(Stage(**{key: _coerce(Stage, key, v) for key, v in item.items()}))
        except TypeError as err:
            raise ConfigError(f"stage {shown(dict(item))}: {err}") from None
    return stages


def apply_overrides(config: Any, overrides: Mapping[str, Any]) -> Any:
    """A copy of the dataclass ``config`` with ``overrides`` (field name -> value) applied; unknown names are errors."""
    names = [f.name for f in dataclasses.fields(config)]
    changes = {}
    for name, value in overrides.items():
        key = name.replace("-", "_")
        if key not in names:
            raise ConfigError(f"unknown config field {name!r}; fields are: {', '.join(names)}")
        changes[key] = _coerce(type(config), key, value)
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
    except (ValueError, ImportError, RecursionError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} could not be parsed ({type(err).__name__}: {str(err)[:120]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold one object of field: value pairs")
    return data


# ----------------------------------------------------------------------------------------------- presets
class PresetRegistry:
    """Named config presets of one kind: functions returning field overrides of ``config_cls``' defaults."""

    def __init__(self, kind: str, config_cls: type) -> None:
        self.kind, self.config_cls = kind, config_cls
        self._presets: Registry[Callable[[], dict[str, Any]]] = Registry(kind, ConfigError)

    def register(self, name: str, doc: str) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
        return self._presets.register(name, doc=doc)  # type: ignore[return-value]

    def names(self) -> dict[str, str]:
        """Preset name -> one-line description."""
        return self._presets.docs()

    def get(self, name: str) -> Any:
        overrides = self._presets.get(name)()
        return apply_overrides(self.config_cls(), {**overrides, "preset": name})


SEARCH_PRESETS = PresetRegistry("preset", SearchConfig)
register_preset = SEARCH_PRESETS.register
preset_names = SEARCH_PRESETS.names
preset = SEARCH_PRESETS.get


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


# DARTS space (paper §4.1-4.2). Common: SGD momentum 0.9, weight decay 3e-4, clip 5, batch 64, L2 anchor 1e-3.
_DARTS_DIRECT = {"space": "darts", "dataset": "cifar10", "cells": 20, "channels": 36, "batch_size": 64,
                 "lr": 0.1, "lr_min": 0.0, "arch_lr": 6e-4}


@register_preset("darts-cifar10", "DARTS space on CIFAR-10, direct progressive search as the paper states it: 20 cells, "
                                  "36 channels, 2 stages of 25 epochs, K=6 then 3, 8 then 4 ops, 10 warm-up epochs per stage")
def _darts_cifar10() -> dict[str, Any]:
    return {**_DARTS_DIRECT, "stages": [Stage(25, 6, None, 10), Stage(25, 3, 4, 10)]}


@register_preset("darts-cifar10-code", "as darts-cifar10 but as the authors' released code runs it: no 'none' op "
                                       "(7 ops, then 4) and K=6 then 4")
def _darts_cifar10_code() -> dict[str, Any]:
    ops = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
    return {**_DARTS_DIRECT, "ops": ops, "stages": [Stage(25, 6, None, 10), Stage(25, 4, 4, 10)]}


@register_preset("darts-cifar10-proxy", "DARTS space on CIFAR-10 without progressive learning (paper's ablation row): "
                                        "8 cells, 16 channels, all channels, 50 epochs, DARTS' proxy settings")
def _darts_cifar10_proxy() -> dict[str, Any]:
    return {"space": "darts", "dataset": "cifar10", "cells": 8, "channels": 16, "batch_size": 64, "lr": 0.025,
            "lr_min": 0.001, "arch_lr": 6e-4, "stages": [Stage(50, 1, None, 0)]}


@register_preset("darts-imagenet", "DARTS space searched directly on ImageNet (paper §4.2): 14 cells, 48 channels, "
                                   "ImageNet stem to 28x28, 10%/2.5% of each class for the weight/arch halves, "
                                   "2 stages of 25 epochs, K=6 then 3, 8 then 4 ops")
def _darts_imagenet() -> dict[str, Any]:
    # Batch, lr and arch lr follow PC-DARTS' ImageNet search (which the paper says it follows): batch 1024 over
    # 8 GPUs, lr 0.5, arch lr 6e-3; scale batch_size and lr together for fewer GPUs.
    return {"space": "darts", "dataset": "imagenet", "cells": 14, "channels": 48, "batch_size": 1024, "lr": 0.5,
            "lr_min": 0.0, "arch_lr": 6e-3, "subset_fractions": [0.1, 0.025], "image_size": 224,
            "stages": [Stage(25, 6, None, 10), Stage(25, 3, 4, 10)]}
