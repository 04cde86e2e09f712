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

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from drnas import fast
from drnas.analysis.cost import model_report, network_spec
from drnas.config.train import PROTOCOLS, TrainConfig
from drnas.data import ImageArrays, ImageFolderIndex, dataset_names, streams_folders
from drnas.data.splits import TrainLoaders, train_folder_loaders, train_loaders
from drnas.engine.distributed import convert_sync_batchnorm, wrap_ddp
from drnas.engine.export import export_model
from drnas.engine.job import Job, lr_at, progress_bar
from drnas.engine.passes import accuracy_counts
from drnas.engine.runs import RunError, atomic_write_json
from drnas.errors import ConfigError
from drnas.spaces import get_space, space_names
from drnas.spaces.resolve import resolve_architecture

CHECKPOINT_FORMAT = 1


def default_protocol(space: str, dataset: str) -> str:
    return get_space(space).default_protocol(dataset)


#: fields that only matter when set above zero (0 / false is what the network or data does anyway)
_OFF_IS_HARMLESS = ("auxiliary_weight", "drop_path", "cutout", "download")


def uses_folders(config: TrainConfig, data: ImageArrays | None = None) -> bool:
    """Whether the run streams ImageNet-style folders from disk (else it trains on arrays in memory)."""
    return data is None and streams_folders(config.dataset)


def check_fields_apply(config: TrainConfig, space: str, folders: bool) -> None:
    """Raise :class:`ConfigError` for a field the ``space``'s network or the dataset kind does not use, when it
    was given: when it differs from the value of the protocol the config came from (``config.preset``; the
    dataclass default without one). A protocol's own values never count, so every protocol runs on every space."""
    reference = PROTOCOLS.get(config.preset) if config.preset in PROTOCOLS.names() else TrainConfig()

    def given(name: str) -> bool:
        value = getattr(config, name)
        return value != getattr(reference, name) and not (name in _OFF_IS_HARMLESS and not value)

    this = get_space(space)
    for owner in map(get_space, space_names()):
        for name in owner.network_fields if owner.name != this.name else ():
            if name in this.network_fields or not given(name):
                continue
            if name in ("cells", "cells_per_stage"):
                fix = f"{this.label} network's depth is {this.depth_setting}"
            elif name == "auxiliary_weight":
                fix = f"{this.label} network has no auxiliary head: leave auxiliary_weight unset (or 0)"
            else:
                fix = f"{this.label} network's cells have no drop-path: leave drop_path unset (or 0)"
            raise ConfigError(f"{name} is {owner.label} field; {fix}")
    where = f"--dataset {config.dataset}"
    streamed = " or ".join(name for name in dataset_names() if streams_folders(name))  # the registry's, live
    if folders:
        if given("cutout"):
            raise ConfigError(f"cutout applies to in-memory datasets (CIFAR, ImageNet16-120, digits, npz); image "
                              f"folders ({streamed}) train with crops and flips only: leave cutout unset (or 0)")
        if given("download"):
            raise ConfigError("--download fetches CIFAR; image folders are read from --data ROOT: drop --download")
    else:
        if given("image_size"):
            raise ConfigError(f"image_size applies to image folders (--dataset {streamed}); {where} keeps its "
                              "images' own size: leave image_size unset")
        if given("workers"):
            raise ConfigError(f"workers applies to image folders (--dataset {streamed}), which decode images in "
                              f"worker processes; {where} is held in memory: leave workers unset")


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
        self._start_runner(fast.runner(config, self.device, self.dist, self.log))
        self.runner.install(self.model)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay, nesterov=config.nesterov)
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
        self._use(train_loaders(arrays, self.config, self.device, rank=self.dist.rank,
                                world_size=self.dist.world_size, log=self.log))

    def _build_folder_loaders(self) -> None:
        cfg = self.config
        if not cfg.data:
            raise ConfigError(f"dataset {cfg.dataset} needs --data ROOT holding train/ and val/ class folders")
        self._use(train_folder_loaders(ImageFolderIndex.scan(cfg.data, "train"), ImageFolderIndex.scan(cfg.data, "val"),
                                       cfg, self.device, rank=self.dist.rank, world_size=self.dist.world_size))

    def _use(self, loaders: TrainLoaders) -> None:
        self.train_loader, self.test_loader, self.info = loaders

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
        loss, correct = self.runner.step("train", self._train_pass, x, y)
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return loss, correct

    def _train_pass(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and correct count of one batch, gradients into ``.grad`` (capturable as a CUDA graph)."""
        return self.gradient_pass(self.optimizer, lambda: self.train_model(self.runner.input(x)),
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
            with self.runner.autocast():
                logits = self.model(self.runner.input(x)).float()
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
            self.runner.reset()  # a recorded pass holds the previous epoch's probability
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
        return export_model(self.model, self.info, path, fmt, plain=self.runner.plain)
