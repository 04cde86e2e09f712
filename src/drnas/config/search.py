"""Search configuration: one dataclass, its field rules, and overrides from files and the command line.

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

from drnas.config.limits import check_limit, check_limits, read_bounded
from drnas.config.settings import (
    AMP_SETTINGS,
    COMPILE_MODES,
    FAST_PATH_SETTINGS,
    GRAPH_SETTINGS,
    MEMORY_FORMATS,
    RunSettings,
)
from drnas.errors import ConfigError, shown


@dataclass(frozen=True)
class Stage:
    """One stage of progressive learning (paper §2.4); a plain search is one stage.

    ``partial_k``: 1/K of the channels go through the mixed ops. ``ops_kept``: ops per edge after pruning at
    the start of the stage (None keeps all). ``arch_warmup``: epochs at the start of the stage during which
    only the network weights are trained. ``cells``: the supernet's depth in this stage, in the space's depth
    field (the DARTS space's cells, NB201's cells per stage; None: the config's), P-DARTS' progressive depth: a
    stage of another depth starts a new supernet and new architecture parameters over the ops kept.
    """

    epochs: int
    partial_k: int = 1
    ops_kept: int | None = None
    arch_warmup: int = 0
    cells: int | None = None

    def validate(self, index: int) -> None:
        where = f"stage {index + 1}"  # 1-based in messages, as `drnas show` and the plots count
        check_limit("epochs", self.epochs, f"{where}: epochs")
        if self.partial_k < 1:
            raise ConfigError(f"{where}: partial_k must be >= 1, got {shown(self.partial_k)}")
        if self.ops_kept is not None and self.ops_kept < 1:
            raise ConfigError(f"{where}: ops_kept must be >= 1 or null, got {shown(self.ops_kept)}")
        if not 0 <= self.arch_warmup <= self.epochs:
            raise ConfigError(f"{where}: arch_warmup must be between 0 and its {self.epochs} epochs")
        if self.cells is not None:
            check_limit("cells", self.cells, f"{where}: cells")


#: values of ``SearchConfig.arch_batches``
ARCH_BATCHES = ("epoch", "fresh")
#: config fields that decide how a step runs, not what it computes (beyond float rounding): ``--resume`` may change
#: them with ``--set``, e.g. ``compile=none`` when compiling fails on a machine the run moved to; and
#: ``tensorboard`` and ``wandb``, which only add a view of the run's metrics
RESUME_SETTABLE = ("compile", "cuda_graphs", "cudnn_benchmark", "keep_freed_memory", "fast_paths", "tensorboard",
                   "wandb")
#: fields a resume may change to recover a run (e.g. after a NaN): they change what the rest of the run computes,
#: so each change is recorded in the run's config.json ("changes": after which epoch, which values)
RECOVERY_SETTABLE = ("lr", "lr_min", "arch_lr", "grad_clip")


@dataclass
class SearchConfig(RunSettings):
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
    # the weights' cosine schedule runs once over the whole search, or restarts at each stage over its own epochs
    # (P-DARTS: each stage trains a new supernet)
    lr_restart: bool = False
    # the search method (``drnas methods``); its paper's values of the fields below apply over the preset, and
    # its own settings (``drnas methods NAME``: Gumbel temperatures, PC-DARTS' K, RSPS' candidates...) are
    # method_settings, every one of them once resolved (``--set method.NAME=VALUE``; {}: the method's defaults)
    method: str = "drnas"
    method_settings: dict[str, Any] = field(default_factory=dict)
    # parts added to the method (``drnas methods --parts``: SDARTS' perturbations, beta-decay, GAEA, early
    # stopping...), in order (``--with NAME``), and every part's settings once resolved (part -> field -> value,
    # ``--set part.NAME.FIELD=VALUE``)
    parts: list[str] = field(default_factory=list)
    part_settings: dict[str, Any] = field(default_factory=dict)
    # architecture: Adam on eta, with weight decay reg_scale on it (DrNAS' L2 anchor on beta, eq. 4; the KL
    # anchor is DrNAS' setting regulariser=kl)
    arch_lr: float = 3e-4
    arch_betas: tuple[float, ...] = (0.5, 0.999)
    reg_scale: float = 1e-3
    eta_init_std: float = 1e-3
    # the architecture step's batches: "epoch" (each image of the arch half once per epoch, in a random order) or
    # "fresh" (each step a batch drawn afresh from the whole arch half, as the authors' released code does)
    arch_batches: str = "epoch"
    # the weight step's gradient-norm clip also counts the architecture parameters' gradient of the weight loss (the
    # authors' released code clips model.parameters(), which hold eta); that gradient only sets the clip's scale
    clip_counts_arch: bool = False
    # data: train_portion splits the training set by position into weight and arch halves; subset_fractions
    # instead samples these fractions of every class (seeded) for the two halves (ImageNet: [0.1, 0.025])
    train_portion: float = 0.5
    subset_fractions: list[float] | None = None
    train_images: int | None = None
    cutout: int = 0
    # augmentation of the training images: the random flip and the padding of the random crop (None: the
    # dataset's own, `drnas datasets`); image folders are decoded at image_size (None: the dataset's, ImageNet 224)
    hflip: bool | None = None
    crop_padding: int | None = None
    image_size: int | None = None
    workers: int = 4
    # run; batch_size is the global batch, split over the processes of a torchrun launch
    seed: int = 0
    # the run settings shared with retraining (device, threads, layout, amp, CUDA graphs, writers): RunSettings
    compile: str = "auto"  # "cells": torch.compile each search cell; auto = on a CPU for long NB201 searches
    # "plain": every speed path off (no edge fusion or folding, fast pooling, compiled cells, CUDA graphs or
    # channels_last): the mixed op exactly as the paper writes it, the reference the fast paths are tested against
    fast_paths: str = "default"
    hessian_every: int = 0  # every N epochs log the validation Hessian's dominant eigenvalue and trace (0: never)
    # search under a cost (differentiable methods): a cost table FILE[:COLUMN] (op-level, or per architecture and
    # fitted per op), whose expected cost under the current distribution is logged each epoch and, with
    # cost_weight (lambda) or cost_target (a budget in the column's unit), added to the architecture objective:
    # lambda * E[cost], or lambda * max(0, E[cost] - target) with a target (lambda unset: 1 / target)
    cost_table: str | None = None
    cost_weight: float = 0.0
    cost_target: float | None = None
    benchmark: str | None = None
    preset: str | None = None

    @property
    def epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    def stage_at(self, epoch: int) -> tuple[int, int]:
        """(stage index, epoch within the stage) of a 0-based epoch of the search."""
        for index, stage in enumerate(self.stages):
            if epoch < stage.epochs:
                return index, epoch
            epoch -= stage.epochs
        raise IndexError(f"epoch past the {self.epochs} epochs of this search")

    def validate(self) -> "SearchConfig":
        if not self.stages:
            raise ConfigError("stages: give at least one stage")
        check_limit("stages", len(self.stages), "the number of stages")
        for i, stage in enumerate(self.stages):
            stage.validate(i)
        check_limit("epochs", self.epochs, "the stages' epochs in total")
        check_limits(self)
        for i in range(1, len(self.stages)):
            if self.stages[i].partial_k > self.stages[i - 1].partial_k:
                raise ConfigError(f"stage {i + 1}: partial_k must not grow between stages (widening only), "
                                  f"got {shown(self.stages[i - 1].partial_k)} then {self.stages[i].partial_k}")
        if self.stages[0].ops_kept is not None:
            raise ConfigError("stage 1: ops_kept must be null (all ops); pruning happens between stages")
        positive = {"batch_size": self.batch_size, "channels": self.channels, "cells_per_stage": self.cells_per_stage,
                    "cells": self.cells}
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
        if self.arch_batches not in ARCH_BATCHES:
            raise ConfigError(f"arch_batches must be epoch (every arch image once per epoch) or fresh (each step a "
                              f"batch drawn afresh, as the authors' code), got {shown(self.arch_batches)}")
        if self.fast_paths not in FAST_PATH_SETTINGS:
            raise ConfigError(f"fast_paths must be 'default' or 'plain' (every speed path off), got {shown(self.fast_paths)}")
        if self.fast_paths == "plain" and (self.compile == "cells" or self.cuda_graphs == "on"
                                           or self.memory_format == "channels_last"):
            raise ConfigError("fast_paths=plain runs the plain eager path: drop compile=cells, cuda_graphs=on and "
                              "memory_format=channels_last")
        for stage_index, stage in enumerate(self.stages):
            if self.channels % stage.partial_k:
                raise ConfigError(f"stage {stage_index + 1}: partial_k={stage.partial_k} must divide channels={self.channels}")
        if not self.cost_table and (self.cost_weight or self.cost_target is not None):
            given = "cost_weight" if self.cost_weight else "cost_target"
            raise ConfigError(f"{given} needs a cost table to take the cost from: give --set cost_table=FILE[:COLUMN] "
                              f"(an op-level or per-architecture cost CSV, e.g. what `drnas latency` writes)")
        return self

    @property
    def cost_weight_in_use(self) -> float:
        """The weight lambda of the cost penalty: ``cost_weight``, or with only a ``cost_target``, 1 / target (every
        100% over the budget then weighs as much as one nat of cross-entropy, whatever the column's unit)."""
        if self.cost_weight or self.cost_target is None:
            return self.cost_weight
        return 1.0 / self.cost_target

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["arch_betas"] = list(self.arch_betas)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SearchConfig":
        return apply_overrides(cls(), data)


def with_absolute_paths(config: SearchConfig) -> SearchConfig:
    """``config`` with its file paths (data, benchmark, the cost table's file) absolute, so a resume from another
    directory finds them."""
    paths = {name: str(Path(getattr(config, name)).expanduser().resolve())
             for name in ("data", "benchmark") if getattr(config, name)}
    if config.cost_table:
        file, column = split_cost_spec(config.cost_table)
        paths["cost_table"] = str(Path(file).expanduser().resolve()) + (f":{column}" if column is not None else "")
    return dataclasses.replace(config, **paths)


def split_cost_spec(spec: str) -> tuple[str, str | None]:
    """FILE and COLUMN of a cost-table spec ``FILE[:COLUMN]``: the column is what follows the last colon, unless
    the whole spec names an existing file or that part holds a path separator (then it is all a file name)."""
    file, colon, column = spec.rpartition(":")
    if not colon or not file or not column or "/" in column or os.sep in column or Path(spec).expanduser().exists():
        return spec, None
    return file, column


#: ranges of the numeric fields, by name, for every config class that has them: (test, what the field must be);
#: sizes and counts are bounded in drnas.config.limits
NUMBER_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **{name: (lambda v: v > 0, "> 0") for name in ("lr", "arch_lr", "grad_clip")},
    **{name: (lambda v: v >= 0, ">= 0") for name in ("lr_min", "weight_decay", "reg_scale", "auxiliary_weight",
                                                      "hessian_every")},
    "eta_init_std": (lambda v: 0 <= v <= 1, "in [0, 1] (the papers draw eta with std 1e-3)"),
    **{name: (lambda v: 0 <= v < 1, "in [0, 1)") for name in ("momentum", "label_smoothing")},
    # the cost penalty's weight (loss per unit of cost) and budget (in the cost column's unit, e.g. ms)
    "cost_weight": (lambda v: 0 <= v <= 1e6, "in [0, 1e6] (0: log the expected cost only)"),
    "cost_target": (lambda v: 0 < v <= 1e12, "in (0, 1e12] (a budget in the cost column's unit)"),
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


def annotation_text(annotation: Any) -> str:
    """A field's declared type as text, ``"float | None"``, whether the module that declared it wrote
    ``from __future__ import annotations`` (the type is then already text) or not (a class, a union, ``Optional``)."""
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    if text.startswith("Optional[") and text.endswith("]"):
        return f"{text[9:-1]} | None"
    return text


def coerce_field(cls: type, name: str, value: Any) -> Any:
    """Turn a JSON/TOML/CLI value into the declared type of field ``name`` of dataclass ``cls`` (a config, a
    stage, or a method's settings: :func:`drnas.config.options.make_settings`)."""
    if name == "stages":
        return _coerce_stages(value)
    annotation = annotation_text({f.name: f.type for f in dataclasses.fields(cls)}[name])
    optional = "None" in annotation
    null_word = isinstance(value, str) and value.lower() in ("none", "null")
    if null_word and annotation == "str":  # a plain string field may have "none" as a value (compile=none)
        return value
    if value is None or null_word:
        if optional:
            return None
        raise ConfigError(f"{name} cannot be null")
    if annotation.startswith("dict"):  # method_settings: the values are the method's to coerce
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as err:
                raise ConfigError(f"{name} must be a JSON object ({type(err).__name__}: {str(err)[:80]})") from None
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{name} must be an object of name: value pairs, got {shown(value)}")
        return dict(value)
    if annotation.startswith(("list", "tuple")):
        if isinstance(value, str) and value.lstrip().startswith("["):
            bare = value.strip()[1:-1] if value.strip().endswith("]") else None
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as err:
                # a list of bare words as a shell keeps it (--set ops=[none,skip_connect]): its items
                if bare is None or any(ch in bare for ch in "[]{}\"'"):
                    raise ConfigError(f"{name} must be a list, e.g. --set {name}=a,b ({type(err).__name__}: "
                                      f"{str(err)[:80]})") from None
                value = [v.strip() for v in bare.split(",") if v.strip()]
        elif isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, e.g. --set {name}=a,b")
        kind: type = float if "float" in annotation else int if "int" in annotation else str
        try:
            items = [kind(v) for v in value]
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a list of numbers, got {shown(value)}") from None
        if kind is int and any(isinstance(v, float) and v != int(v) for v in value):
            raise ConfigError(f"{name} must be a list of integers, got {shown(value)}")
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
        raise ConfigError("stages must be a list of {epochs, partial_k, ops_kept, arch_warmup, cells} objects")
    stages = []
    for item in value:
        if isinstance(item, Stage):
            stages.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ConfigError(f"stage {item!r} must be an object with epochs, partial_k, ops_kept, arch_warmup, cells")
        unknown = set(item) - {f.name for f in dataclasses.fields(Stage)}
        if unknown:
            raise ConfigError(f"unknown stage field(s) {shown(sorted(unknown))}: use epochs, partial_k, ops_kept, "
                              "arch_warmup, cells")
        try:
            stages.append(Stage(**{key: coerce_field(Stage, key, v) for key, v in item.items()}))
        except TypeError as err:
            raise ConfigError(f"stage {shown(dict(item))}: {err}") from None
    return stages


#: fields that configs no longer have: what to do instead. A run's config.json from before keeps the field with the
#: one value it could have, which a resume drops (:func:`without_retired`)
RETIRED_FIELDS = {
    "relaxation": ("dirichlet", "the relaxation comes with the method: choose one with --method (darts: softmax, "
                                "snas: Gumbel-softmax, gdas: hard Gumbel; `drnas methods` lists them)"),
}


def without_retired(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A saved config without the retired fields it holds at their one former value."""
    return {k: v for k, v in saved.items() if not (k in RETIRED_FIELDS and v == RETIRED_FIELDS[k][0])}


@dataclass
class MovedFields:
    """Search config fields that became settings of the methods that use them (``method_settings``), with their
    old types and defaults. Config files, ``--set`` and the config.json of runs from before may still hold them:
    :func:`moved_settings` turns them into method settings."""

    tau_max: float | None = None  # snas, gdas (None meant: the method's own)
    tau_min: float | None = None
    candidates: int = 100  # rsps, enas
    queries: int = 100  # random, reinforce
    regulariser: str = "l2"  # drnas


#: the names of :class:`MovedFields`
MOVED_TO_METHOD = tuple(f.name for f in dataclasses.fields(MovedFields))


def moved_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The old fields among ``values`` (names of :data:`MOVED_TO_METHOD`) as method settings, those at their old
    default left out: an old run's config.json holds every field, and a method that does not declare one of them
    ran as if it were not there; any other value must be one of the method's settings (the method checks)."""
    out = {}
    for name, value in values.items():
        key = name.replace("-", "_")
        if key in MOVED_TO_METHOD:
            value = coerce_field(MovedFields, key, value)
            if value != getattr(MovedFields, key):
                out[key] = value
    return out


def apply_overrides(config: Any, overrides: Mapping[str, Any]) -> Any:
    """A copy of the dataclass ``config`` with ``overrides`` (field name -> value) applied; unknown names are errors.
    On a search config, the fields that moved into the methods' settings (:data:`MOVED_TO_METHOD`) are added to
    ``method_settings`` (:func:`moved_settings`)."""
    names = [f.name for f in dataclasses.fields(config)]
    settings = "method_settings" in names
    changes = {}
    for name, value in overrides.items():
        key = name.replace("-", "_")
        if key in RETIRED_FIELDS and key not in names:
            raise ConfigError(f"{key} is no config field any more: {RETIRED_FIELDS[key][1]}")
        if settings and key in MOVED_TO_METHOD:
            continue
        if key not in names:
            raise ConfigError(f"unknown config field {name!r}; fields are: {', '.join(names)}")
        changes[key] = coerce_field(type(config), key, value)
    moved = moved_settings(overrides) if settings else {}
    if moved:  # over the config's method settings; under those the same overrides name
        given = changes.get("method_settings")
        changes["method_settings"] = {**moved, **given} if given is not None else {**config.method_settings, **moved}
    return dataclasses.replace(config, **changes)


def set_total_epochs(config: SearchConfig, epochs: int) -> SearchConfig:
    """Rescale every stage (and its warm-up) so the stages add up to ``epochs`` (>= 1 per stage)."""
    check_limit("epochs", epochs, "--epochs")
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

            return tomllib.loads(read_bounded(path, what="a config file"))
        data = json.loads(read_bounded(path, what="a config file"))
    except (ValueError, ImportError, RecursionError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} could not be parsed ({type(err).__name__}: {str(err)[:120]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold one object of field: value pairs")
    return data
