"""Retraining a derived architecture from scratch (paper §4.1-4.2, and NAS-Bench-201's own recipe).

A :class:`TrainConfig` names the architecture (a registered name, a file, a search run directory or the text
itself), the dataset and a *protocol* (a preset of training settings). :class:`Trainer` builds the space's
evaluation network and trains it with checkpoints every epoch and a bit-exact ``resume``, reporting top-1/top-5,
parameter counts (with and without the auxiliary head) and multiply-accumulates, and exports the trained
network for inference (:func:`export_model`): ``torch.export`` (``.pt2``, dynamic batch size), TorchScript
(``.pt``) or ONNX (``.onnx``), always without the auxiliary head, which only serves training.

A field the chosen space or dataset does not use (``cells_per_stage`` for a DARTS network, ``cells``,
``auxiliary_weight`` or ``drop_path`` for an NB201 one, ``image_size``/``workers`` for in-memory arrays,
``cutout``/``download`` for ImageNet folders) is an error when it differs from what the protocol sets
(:func:`check_fields_apply`), so a run never silently trains something else than it was told.
"""
from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from drnas.config.search import ConfigError, PresetRegistry, check_device_settings
from drnas.data.formats import (IMAGENET_MEAN, IMAGENET_STD, DatasetInfo, DeviceLoader, ImageArrays, ImageFolderIndex,
                   ImageFolderLoader)
from drnas.errors import DrnasError, shown
from drnas.analysis.cost import count_macs, count_parameters
from drnas.spaces.resolve import resolve_architecture
from drnas.engine.runs import RunError, atomic_write_json
from drnas.spaces import NetworkSpec, get_space
from drnas.fast.settings import PLAIN, using as fast_paths
from drnas.fast.fusion import install as install_fast_paths
from drnas.engine.distributed import convert_sync_batchnorm, wrap_ddp
from drnas.engine.job import Job, accuracy_counts, lr_at, preferred_memory_format, progress_bar

CHECKPOINT_FORMAT = 1
#: Share of the training images held out for testing when a dataset has no test split (e.g. digits).
HOLDOUT_FRACTION = 0.1


@dataclass
class TrainConfig:
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
    image_size: int = 224
    workers: int = 4
    train_images: int | None = None
    test_images: int | None = None  # evaluate on the first N test images only (quicker, noisier)
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    sync_bn: bool = False
    memory_format: str = "auto"
    amp: str = "off"  # "bf16": autocast the network (less memory; not faster on measured supernets, see drnas.fast.accel)
    cuda_graphs: str = "auto"  # replay each step as a CUDA graph: auto = on a GPU in a single process
    cudnn_benchmark: bool = False  # on a GPU, let cuDNN time its algorithms (see the README)
    keep_freed_memory: bool = True  # on a CPU under glibc: reuse freed memory, no page faults (drnas.fast.host_memory)
    tensorboard: bool = False  # also write the metrics for TensorBoard to RUN/tensorboard/ (drnas[tensorboard])
    wandb: bool = False  # also send the metrics to a Weights & Biases run (drnas[wandb]; WANDB_MODE honoured)
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


def default_protocol(space: str, dataset: str) -> str:
    return get_space(space).default_protocol(dataset)


#: the config fields only one space's evaluation network uses (NB201 cells have no drop-path, and NB201 has no
#: auxiliary head), and how each space sets its depth
_SPACE_FIELDS = {"darts": ("cells", "auxiliary_weight", "drop_path"), "nb201": ("cells_per_stage",)}
_SPACE_LABELS = {"darts": "a DARTS", "nb201": "an NB201"}
_DEPTH = {"darts": "--set cells=N (cells in all)", "nb201": "--set cells_per_stage=N (cells per stage)"}
#: fields that only matter when set above zero (0 / false is what the network or data does anyway)
_OFF_IS_HARMLESS = ("auxiliary_weight", "drop_path", "cutout", "download")


def uses_folders(config: TrainConfig, data: ImageArrays | None = None) -> bool:
    """Whether the run streams ImageNet-style folders from disk (else it trains on arrays in memory)."""
    return data is None and config.dataset == "imagenet"


def check_fields_apply(config: TrainConfig, space: str, folders: bool) -> None:
    """Raise :class:`ConfigError` for a field the ``space``'s network or the dataset kind does not use, when it
    was given: when it differs from the value of the protocol the config came from (``config.preset``; the
    dataclass default without one). A protocol's own values never count, so every protocol runs on every space."""
    reference = PROTOCOLS.get(config.preset) if config.preset in PROTOCOLS.names() else TrainConfig()

    def given(name: str) -> bool:
        value = getattr(config, name)
        return value != getattr(reference, name) and not (name in _OFF_IS_HARMLESS and not value)

    if space in _SPACE_FIELDS:
        for owner, fields in _SPACE_FIELDS.items():
            for name in fields if owner != space else ():
                if not given(name):
                    continue
                owner_is = f"{name} is {_SPACE_LABELS[owner]} field"
                if name in ("cells", "cells_per_stage"):
                    fix = f"{_SPACE_LABELS[space]} network's depth is {_DEPTH[space]}"
                elif name == "auxiliary_weight":
                    fix = f"{_SPACE_LABELS[space]} network has no auxiliary head: leave auxiliary_weight unset (or 0)"
                else:
                    fix = f"{_SPACE_LABELS[space]} network's cells have no drop-path: leave drop_path unset (or 0)"
                raise ConfigError(f"{owner_is}; {fix}")
    where = f"--dataset {config.dataset}"
    if folders:
        if given("cutout"):
            raise ConfigError("cutout applies to in-memory datasets (CIFAR, ImageNet16-120, digits, npz); ImageNet "
                              "folders train with random-resized crops and flips: leave cutout unset (or 0)")
        if given("download"):
            raise ConfigError("--download fetches CIFAR; ImageNet folders are read from --data ROOT: drop --download")
    else:
        if given("image_size"):
            raise ConfigError(f"image_size applies to ImageNet folders (--dataset imagenet); {where} keeps its "
                              "images' own size: leave image_size unset")
        if given("workers"):
            raise ConfigError(f"workers applies to ImageNet folders (--dataset imagenet), which decode JPEGs in "
                              f"worker processes; {where} is held in memory: leave workers unset")


def network_spec(config: TrainConfig, info: DatasetInfo, space: str | None = None) -> NetworkSpec:
    """The evaluation network's size; with ``space``, an auxiliary head only where that space has one."""
    auxiliary = config.auxiliary_weight > 0 and (space is None or "auxiliary_weight" in _SPACE_FIELDS.get(space, ()))
    aux_size = info.image_size // (32 if info.image_size > 64 else 4)  # resolution after the second reduction
    if auxiliary and aux_size < 5:
        raise ConfigError(f"the auxiliary head needs at least 5x5 features at 2/3 depth, but {info.image_size}px "
                          f"images give {aux_size}x{aux_size}: use --set auxiliary_weight=0")
    return NetworkSpec(channels=config.channels, cells=config.cells, cells_per_stage=config.cells_per_stage,
                       in_channels=info.channels, num_classes=info.num_classes,
                       auxiliary=auxiliary, imagenet_stem=info.image_size > 64)


def model_report(model: torch.nn.Module, info: DatasetInfo) -> dict[str, Any]:
    """Parameters with and without the auxiliary head, and MACs of one image (auxiliary head excluded)."""
    return {"params": count_parameters(model), "params_without_aux": count_parameters(model, ("auxiliary",)),
            "macs": count_macs(model, (1, info.channels, info.image_size, info.image_size))}


@dataclass
class TrainResult:
    top1: float
    top5: float
    epochs_done: int
    report: dict[str, Any]
    metrics: list[dict[str, Any]]
    run_dir: Path | None


class Trainer(Job):
    """Train an architecture's evaluation network from scratch; ``run()``, ``evaluate()``, ``export()``."""

    kind = "train"
    config_class = TrainConfig

    def __init__(self, config: TrainConfig, out: str | Path | None = None, *, data: ImageArrays | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = None, _resuming: bool = False) -> None:
        self.config = config.validate()
        self.arch = resolve_architecture(config.arch)
        self.space = get_space(self.arch.space)
        if not _resuming:  # a saved run continues as it started
            check_fields_apply(config, self.space.name, uses_folders(config, data))
        self._init_job(config, out, progress, log, _resuming)
        torch.manual_seed(config.seed)
        self._load_data(config, data)
        self.model = self.space.build_network(self.arch, network_spec(config, self.info, self.space.name)).to(self.device)
        self.report = model_report(self.model, self.info)
        install_fast_paths(self.model)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay, nesterov=config.nesterov)
        self.memory_format = preferred_memory_format(config.memory_format, self.device)
        self.model.to(memory_format=self.memory_format)
        if config.sync_bn:
            self.model = convert_sync_batchnorm(self.model, self.device)
        self.train_model = wrap_ddp(self.model, self.dist, self.device)
        self._seed_rank_streams(config.seed)
        if not _resuming:
            self._start_run_dir(config.to_json())
            if self.run_dir is not None:
                atomic_write_json(self.run_dir.architecture, {"space": self.arch.space, "architecture": self.arch.to_json()})
        self.log(f"{self.space.name} network: {self.report['params_without_aux'] / 1e6:.3f}M parameters without the "
                 f"auxiliary head ({self.report['params'] / 1e6:.3f}M with), {self.report['macs'] / 1e6:.1f}M MACs")

    # ------------------------------------------------------------------------------------------ data
    def _build_loaders(self, arrays: ImageArrays) -> None:
        cfg = self.config
        x, y = arrays.x_train, arrays.y_train
        if arrays.x_test is not None and arrays.y_test is not None:
            x_test, y_test = arrays.x_test, arrays.y_test
        else:  # no test split: hold out the last images of the training set
            cut = len(x) - max(1, int(len(x) * HOLDOUT_FRACTION))
            x, y, x_test, y_test = x[:cut], y[:cut], x[cut:], y[cut:]
            self.log(f"{self.info.name} has no test split: holding out the last {len(x_test)} training images")
        if cfg.test_images is not None:
            x_test, y_test = x_test[:cfg.test_images], y_test[:cfg.test_images]
        shard = dict(rank=self.dist.rank, world_size=self.dist.world_size)
        self.train_loader = DeviceLoader(x, y, self.info, batch_size=cfg.batch_size, device=self.device, augment=True,
                                         cutout=cfg.cutout, seed=cfg.seed, **shard)
        self.test_loader = DeviceLoader(x_test, y_test, self.info, batch_size=max(cfg.batch_size, 256),
                                        device=self.device, augment=False, shuffle=False, drop_last=False, **shard)

    def _build_folder_loaders(self) -> None:
        cfg = self.config
        if not cfg.data:
            raise ConfigError("dataset imagenet needs --data ROOT holding train/ and val/ class folders")
        train = _spread(ImageFolderIndex.scan(cfg.data, "train"), cfg.train_images)
        val = _spread(ImageFolderIndex.scan(cfg.data, "val"), cfg.test_images)
        if train.classes != val.classes:
            raise ConfigError(f"{cfg.data}: train/ and val/ hold different class folders")
        self.info = DatasetInfo("imagenet", len(train.classes), 3, cfg.image_size, IMAGENET_MEAN, IMAGENET_STD, True, 0)
        common = dict(batch_size=cfg.batch_size, device=self.device, image_size=cfg.image_size, workers=cfg.workers,
                      rank=self.dist.rank, world_size=self.dist.world_size)
        self.train_loader = ImageFolderLoader(train, train=True, seed=cfg.seed, **common)
        self.test_loader = ImageFolderLoader(val, train=False, **common)

    # ------------------------------------------------------------------------------------------ loop
    def _loss(self, output: Any, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, aux = output if isinstance(output, tuple) else (output, None)
        loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
        if aux is not None:
            loss = loss + self.config.auxiliary_weight * F.cross_entropy(aux, y, label_smoothing=self.config.label_smoothing)
        return loss, logits

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step; the network pass replays a CUDA graph when enabled (re-captured each epoch, as the
        drop-path probability is part of it)."""
        loss, correct = self.steps("train", self._train_pass, x, y)
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return loss, correct

    def _train_pass(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and correct count of one batch, gradients into ``.grad`` (capturable as a CUDA graph)."""
        return self.gradient_pass(self.optimizer, lambda: self.train_model(x.contiguous(memory_format=self.memory_format)),
                                  y, self._loss)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss, top-1 and top-5 accuracy (%) on the test split (``test_images``: its first N), in eval mode,
        with a progress bar like the training epoch's (this rank's running top-1 every 10 batches)."""
        self.model.eval()
        sums = torch.zeros(4, device=self.device)  # loss, top-1 hits, top-5 hits, count (summed over ranks)
        steps = len(self.test_loader)
        bar = progress_bar(self.progress, steps, "test")
        for index, (x, y) in enumerate(self.test_loader.epoch(0), start=1):
            with self.autocast():
                logits = self.model(x.contiguous(memory_format=self.memory_format)).float()
            top1, top5 = accuracy_counts(logits, y, (1, 5))
            sums[:3] += torch.stack([F.cross_entropy(logits, y, reduction="sum"), top1.float(), top5.float()])
            sums[3] += len(y)
            if bar is not None:
                if index % 10 == 0 or index == steps:  # a host synchronisation: only while a bar is shown
                    loss, hits, _, seen = sums.tolist()
                    bar.set_postfix(loss=f"{loss / seen:.3f}", top1=f"{100 * hits / seen:.1f}")
                bar.update(1)
        if bar is not None:
            bar.close()
        self.model.train()
        loss, top1, top5, count = self._reduced(sums)
        loss, top1, top5 = loss / count, top1 / count, top5 / count
        return {"test_loss": loss, "top1": 100 * top1, "top5": 100 * top5}

    def _run_epoch(self) -> dict[str, Any]:
        cfg, epoch = self.config, self.epoch
        started = time.perf_counter()
        lr = lr_at(epoch, cfg.epochs, cfg.lr, cfg.lr_min, cfg.schedule, cfg.warmup_epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if hasattr(self.model, "drop_path_prob"):
            self.model.drop_path_prob = cfg.drop_path * epoch / cfg.epochs  # grows linearly, as in DARTS
            self.steps.reset()  # a captured graph holds the previous epoch's probability
        self.model.train()

        def step(batch: tuple[torch.Tensor, torch.Tensor], sums: torch.Tensor) -> None:
            x, y = batch
            loss, correct = self.train_step(x, y)
            sums[0] += loss * len(y)
            sums[1] += correct
            sums[2] += len(y)

        # sums: loss, correct, seen
        train_loss, train_correct, seen = self._epoch_steps(self.train_loader.epoch(epoch), len(self.train_loader),
                                                            f"epoch {epoch + 1}/{cfg.epochs}", 3, 2, step, self.model)
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss / seen, "train_acc": 100 * train_correct / seen,
                  **self.evaluate(), "seconds": round(time.perf_counter() - started, 3)}
        return record

    def epoch_line(self, record: dict[str, Any]) -> str:
        return (f"epoch {record['epoch']}/{self.config.epochs} lr {record['lr']:.4g} train {record['train_loss']:.3f}/"
                f"{record['train_acc']:.1f}% test top1 {record['top1']:.2f}% top5 {record['top5']:.2f}% "
                f"{record['seconds']:.1f}s")

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "epoch": self.epoch, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), **self._rng_checkpoint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise RunError(f"checkpoint format {state.get('format')} is not supported (expects {CHECKPOINT_FORMAT})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self._restore_rng(state)

    def _write_outputs(self) -> None:
        assert self.run_dir is not None
        atomic_write_json(self.run_dir.path / "result.json", self._result_json())

    def _result_json(self) -> dict[str, Any]:
        last = self.metrics[-1] if self.metrics else {}
        return {"architecture": self.arch.to_json(), "dataset": self.config.dataset, "epochs_done": self.epoch,
                "epochs": self.config.epochs, "final": self.epoch >= self.config.epochs,
                "top1": last.get("top1"), "top5": last.get("top5"), **self.report}

    def result(self) -> TrainResult:
        last = self.metrics[-1] if self.metrics else {}
        return TrainResult(last.get("top1", float("nan")), last.get("top5", float("nan")), self.epoch, dict(self.report),
                           list(self.metrics), self.run_dir.path if self.run_dir else None)

    # ------------------------------------------------------------------------------------------ export
    def export(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write the trained network for inference, without its auxiliary head: ``torch.export`` (.pt2),
        ``torchscript`` (.pt) or ``onnx`` (.onnx); see :func:`export_model`."""
        return export_model(self.model, self.info, path, fmt)


#: export formats by file suffix (``export_model``'s ``fmt`` names them when the suffix is another)
EXPORT_SUFFIXES = {".pt2": "torch.export", ".pt": "torchscript", ".onnx": "onnx"}
EXPORT_FORMATS = ("torch.export", "torchscript", "onnx")


def export_format(path: str | Path, fmt: str | None = None) -> str:
    """The format ``export_model`` writes ``path`` in: ``fmt`` if given, else by suffix; one-line errors."""
    if fmt is not None:
        if fmt not in EXPORT_FORMATS:
            raise ConfigError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {shown(fmt)}")
        return fmt
    suffix = Path(path).suffix
    if suffix not in EXPORT_SUFFIXES:
        raise ConfigError(f"cannot tell the export format of {shown(str(path))}: end the path in .pt2 (torch.export), "
                          ".pt (TorchScript) or .onnx (ONNX)")
    return EXPORT_SUFFIXES[suffix]


def inference_copy(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``model`` without its auxiliary head (every submodule named ``*auxiliary*``, which
    only adds a training loss), in the standard memory layout; the trained model is left as it is."""
    net = copy.deepcopy(model).eval()
    for parent in list(net.modules()):
        for name, _ in list(parent.named_children()):
            if "auxiliary" in name:
                setattr(parent, name, None)
    return net.to(memory_format=torch.contiguous_format)


def export_model(model: torch.nn.Module, info: DatasetInfo, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``model`` for inference (logits of normalised images; any batch size): ``torch.export`` saves an
    ExportedProgram (``torch.export.load(path).module()``), ``torchscript`` a traced module (``torch.jit.load``),
    ``onnx`` an ONNX graph (needs ``drnas[export]``). The auxiliary head is left out (:func:`inference_copy`)."""
    path = Path(path)
    fmt = export_format(path, fmt)
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise ExportError("ONNX export needs the onnx package: pip install 'drnas[export]'") from None
    net = inference_copy(model)
    device = next(net.parameters()).device
    shape = (info.channels, info.image_size, info.image_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings(), fast_paths(PLAIN):  # plain ops: a graph of standard nodes
            warnings.simplefilter("ignore")  # torch.jit and the TorchScript-based ONNX exporter warn about deprecation
            if fmt == "torch.export":
                # batch 2, not 1: torch.export specialises dimensions of size 0 and 1 to constants
                batch = torch.export.Dim("batch", min=1)
                program = torch.export.export(net, (torch.zeros(2, *shape, device=device),),
                                              dynamic_shapes=({0: batch},))
                with open(tmp, "wb") as file:
                    torch.export.save(program, file)
            elif fmt == "torchscript":
                torch.jit.trace(net, torch.zeros(1, *shape, device=device)).save(str(tmp))
            else:
                torch.onnx.export(net, (torch.zeros(1, *shape, device=device),), str(tmp), dynamo=False,
                                  input_names=["images"], output_names=["logits"],
                                  dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _spread(index: ImageFolderIndex, n: int | None) -> ImageFolderIndex:
    """``n`` images spread evenly over a folder index (which is sorted by class, so its first N would be a
    few classes only); the whole index when ``n`` is None or not smaller."""
    if n is None or n >= len(index):
        return index
    return index.subset(np.linspace(0, len(index) - 1, n).round().astype(np.int64))


class ExportError(DrnasError, RuntimeError):
    """An export that cannot be done here (e.g. a missing optional package)."""

