"""The bilevel search loop: alternating architecture and weight steps, organised in stages.

The method is a strategy (:mod:`drnas.method.strategies`; DrNAS by default) that the loop never names. Each step: an
architecture step on a batch of the arch half (the strategy's rule: for DrNAS, first order as in paper §2.2,
``theta ~ Dir(beta)``, gradients only for ``eta``, Adam), then a weight step on a batch of the weight half (a
fresh sample of the strategy's mixing weights, no gradient to them, SGD with gradient clipping). Stages (paper
§2.4) are data: at the start of each stage after the first the supernet is widened to the stage's
``partial_k`` and each edge is pruned to its ``ops_kept`` strongest ops by the strategy's scores (``beta`` for
DrNAS); the SGD momentum and the cosine schedule carry on.

Every epoch ends with the strategy's derivation, validation with its deterministic mixing weights (the
Dirichlet mean for DrNAS), one metrics line, and an atomic checkpoint that makes ``Search.resume`` continue
bit-for-bit.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from drnas import fast
from drnas.analysis import hessian
from drnas.analysis.cost_table import OpCosts, check_costs, cost_fields, load_costs
from drnas.analysis.perturbation import perturbation_select
from drnas.bench import BenchmarkError, open_table
from drnas.config.options import settings_json
from drnas.config.search import ConfigError, SearchConfig, with_absolute_paths
from drnas.data import DeviceLoader, ImageArrays, ImageFolderIndex
from drnas.data.splits import SearchLoaders, search_folder_loaders, search_loaders
from drnas.engine.distributed import convert_sync_batchnorm, wrap_ddp
from drnas.engine.job import Job, NonFiniteLossError, lr_at
from drnas.engine.passes import SupernetPasses, accuracy_counts, clip_weight_gradients
from drnas.engine.runs import RunError, atomic_write_json
from drnas.errors import reraise_interrupt
from drnas.method.parts import drawing_in_cells
from drnas.method.strategies import Strategy, check_method, get_method
from drnas.method.strategies.base import Batch
from drnas.result import SearchResult
from drnas.spaces import Architecture, SupernetSpec, get_space
from drnas.table_search import TableSearch

CHECKPOINT_FORMAT = 1
#: validation batches the curvature (``hessian_every``) is measured on
HESSIAN_BATCHES = 2
#: the run's plot of the expected weights over the epochs is redrawn every this many epochs, and at the end
PLOT_EVERY = 5


class Search(SupernetPasses, Job):
    """A DrNAS search: build it from a config, ``run()`` it, read the derived architecture.

    >>> cfg = drnas.preset("demo")                              # doctest: +SKIP
    >>> result = drnas.Search(cfg, out="runs/demo").run()       # doctest: +SKIP
    >>> print(result.architecture)                              # doctest: +SKIP
    """

    kind = "search"
    config_class = SearchConfig
    #: ``torch.compile`` backend of ``compile=cells``: a name, or a backend object (tests use a cheaper one, and
    #: one that computes wrongly)
    compile_backend: Any = "inductor"

    def __new__(cls, config: SearchConfig, *args: Any, **kwargs: Any) -> Any:
        # a method that queries a benchmark table instead of training a supernet runs as a TableSearch
        if cls is Search and not get_method(config.method).uses_supernet:
            return TableSearch(config, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, config: SearchConfig, out: str | Path | None = None, *, data: ImageArrays | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = None, _resuming: bool = False) -> None:
        if not _resuming:  # a resume from another working directory must find the same files
            config = with_absolute_paths(config)
        self.config = config.validate()
        self.method = get_method(config.method)
        self.space = get_space(config.space, config.ops)
        check_method(config, self.space)
        self._init_job(config, out, progress, log, _resuming)
        # the table's accuracies of the current cell each epoch; an op set the table was not built from: one note
        self.table = open_table(self.space, config.benchmark, self.log)
        self.costs = _cost_table(config, self.space)  # search under a cost: the op costs of the config's table

        torch.manual_seed(config.seed)
        self._load_data(config, data)
        eager = f"method {config.method} runs one sampled op per edge" if self.method.single_path else None
        eager = eager or drawing_in_cells(config)  # compiled cells and CUDA graphs cannot follow either
        self._start_runner(fast.runner(config, self.device, self.dist, self.log, eager=eager,
                                       compile_pays=self.space.compiled_cells_pay_on_cpu,
                                       weight_steps=len(self.weight_loader) * config.epochs,
                                       backend=self.compile_backend))
        self.strategy: Strategy = self.method(self.space, config).to(self.device)
        if self.costs is not None:  # the strategy adds their expected value to its objective; its state holds them
            self.strategy.set_costs(self.costs.matrix, self.costs.constant)
        self.stage_index = 0
        self._build_network(config.stages[0].partial_k)
        self.arch_optimizer = self.strategy.make_arch_optimizer()
        self.derived: Architecture = self.strategy.derive(self.space, None, 0)
        self._validation_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self._seed_rank_streams(config.seed)
        if not _resuming:  # every setting of the method as it runs, also for a config made without with_method
            self.config = config = dataclasses.replace(
                config, method_settings=settings_json(self.strategy.settings),
                part_settings={part.name: settings_json(part.settings) for part in self.strategy.parts})
            self._start_run_dir(config.to_json())

    @property
    def relax(self) -> Strategy:
        """The strategy under its former name (it owns ``eta``, the mask and the sampler)."""
        return self.strategy

    # ------------------------------------------------------------------------------------------ building
    def _build_loaders(self, arrays: ImageArrays) -> None:
        """In-memory data: uint8 tensors on the device, augmented there (:func:`drnas.data.search_loaders`)."""
        self._use(search_loaders(arrays, self.config, self.device, rank=self.dist.rank,
                                 world_size=self.dist.world_size))

    def _build_folder_loaders(self) -> None:
        """ImageNet-style folders: JPEGs decoded by worker processes, a per-class sample for each half."""
        if not self.config.data:
            raise ConfigError(f"dataset {self.config.dataset} needs --data ROOT holding train/<class>/ image folders")
        self._use(search_folder_loaders(ImageFolderIndex.scan(self.config.data, "train"), self.config, self.device,
                                        rank=self.dist.rank, world_size=self.dist.world_size))

    def _use(self, loaders: SearchLoaders) -> None:
        self.weight_loader, self.arch_loader, self.valid_loader, self.info = loaders

    def _build_network(self, partial_k: int, stage: int = 0) -> None:
        """The supernet at ``partial_k`` and the depth of stage ``stage`` (its ``cells``, else the config's)."""
        cfg = self.config
        spec = SupernetSpec(channels=cfg.channels, cells_per_stage=cfg.cells_per_stage, cells=cfg.cells,
                            partial_k=partial_k, in_channels=self.info.channels, num_classes=self.info.num_classes,
                            imagenet_stem=self.info.image_size > 64)
        if cfg.stages[stage].cells is not None:
            spec = dataclasses.replace(spec, **{self.space.depth_field: cfg.stages[stage].cells})
        self.net = self.space.build_supernet(spec).to(self.device)
        self.net.set_kept(self.relax.kept_ops())
        self.weight_optimizer = torch.optim.SGD(self.net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                                weight_decay=cfg.weight_decay)
        self._wrap_network()

    def _wrap_network(self) -> None:
        """Hand the network to the runner (layout for the current K, speed paths, compiled cells when asked) and
        (re)build the DDP wrapper used by weight steps; again after every stage transition (widening makes new
        parameters, pruning changes what is used)."""
        self.runner.install(self.net)
        if self.config.sync_bn:
            self.net = convert_sync_batchnorm(self.net, self.device)
        # pruned ops keep parameters that get no gradient: DDP must then not wait for them
        self.train_net = wrap_ddp(self.net, self.dist, self.device,
                                  find_unused=self.relax.num_kept < len(self.space.ops) or self.method.single_path)

    # ------------------------------------------------------------------------------------------ stages
    def stage_at(self, epoch: int) -> tuple[int, int]:
        """(stage index, epoch within the stage) of a 0-based global epoch."""
        return self.config.stage_at(epoch)

    def _enter_stage(self, index: int) -> None:
        """Widen (eq. 8-9) then prune by beta, as paper §2.4 orders them; optimizer state carries over. A stage of
        another depth (P-DARTS) instead prunes, then starts a new supernet and new architecture parameters."""
        stage, depth = self.config.stages[index], self.config.stages[self.stage_index].cells
        deeper = stage.cells is not None and stage.cells != (depth or getattr(self.config, self.space.depth_field))
        if stage.partial_k != self.net.partial_k and not deeper:
            generator = torch.Generator().manual_seed(self.config.seed * 1009 + index)
            self.net.widen(stage.partial_k, generator, self.weight_optimizer)  # the same on every rank
        if stage.ops_kept is not None and stage.ops_kept < self.relax.num_kept:
            self.relax.prune(stage.ops_kept)  # eta is identical on every rank, so is the pruning
            self.net.set_kept(self.relax.kept_ops())
        if deeper:
            self._deepen(index)  # builds (and wraps) the new supernet over the ops just kept
        else:
            self._wrap_network()
        self.stage_index = index
        self.log(f"stage {index + 1}/{len(self.config.stages)}: partial_k={stage.partial_k}, "
                 f"ops kept per edge={self.relax.num_kept}")

    def _deepen(self, index: int) -> None:
        """P-DARTS' stage transition, after the pruning by the last stage's scores: a new supernet at this stage's
        depth and K, and new architecture parameters over the kept ops (from a generator of the seed and stage)."""
        self.relax.reinitialise(self.config.eta_init_std, torch.Generator().manual_seed(self.config.seed * 1013 + index))
        self.arch_optimizer = self.strategy.make_arch_optimizer()
        self._build_network(self.config.stages[index].partial_k, index)

    # ------------------------------------------------------------------------------------------ steps
    def arch_step(self, x: torch.Tensor, y: torch.Tensor,
                  weight_batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One architecture step of the strategy on an arch-half batch (``weight_batch``: the weight-half batch
        a second-order step unrolls on; the arch batch itself when not given). For DrNAS: one Adam step on eta
        from a fresh Dirichlet sample, the chain rule through eq. (5) outside the network pass."""
        return self.strategy.arch_step(self, self.arch_optimizer, (x, y), weight_batch or (x, y))

    def weight_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on the network weights with a fresh (non-differentiated) sample of the mixing weights
        (differentiated, on the plain path, when the clip counts the architecture's gradient: clip_counts_arch)."""
        counted = self.config.clip_counts_arch
        with torch.set_grad_enabled(counted):
            mixing = self.strategy.sample()
        mixing = self.strategy.mix(mixing, "weight", self, (x, y))  # the parts' perturbation (SDARTS), if any
        tensors = [t.detach().requires_grad_(counted) for t in mixing.tensors()]
        with self._running(mixing.active), self.runner.plain() if counted else contextlib.nullcontext():
            loss, correct = self.runner.checked(
                "weight", lambda: self.runner.step("weight", self._weight_pass, x, y, *tensors),
                lambda: self._weight_pass(x, y, *tensors), lambda out: (out[0],), weight_gradients=True)
        clip_weight_gradients(self.net.parameters(), self.config.grad_clip, self, *((mixing, tensors) if counted else ()))
        self.weight_optimizer.step()
        return loss, correct

    def _weight_pass(self, x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor,
                     edge_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Loss and correct count of one batch, gradients into ``.grad`` (capturable as a CUDA graph)."""
        return self.gradient_pass(
            self.weight_optimizer,
            lambda: self.train_net(self.runner.input(x), theta, edge_scale),
            y, lambda logits, target: (F.cross_entropy(logits, target), logits))

    @torch.no_grad()
    def evaluate(self, loader: DeviceLoader | None = None) -> tuple[float, float]:
        """Loss and accuracy (%) with the strategy's deterministic mixing weights (DrNAS: the Dirichlet mean),
        in eval mode."""
        loader = loader or self.valid_loader
        self.net.eval()
        mixing = self.strategy.mix(self.strategy.eval_mixing(), "eval")
        sums = torch.zeros(3, device=self.device)  # loss, correct, count (summed over ranks)
        with self._running(mixing.active):
            for x, y in loader.epoch(0):
                with self.runner.autocast():
                    logits = self.net(self.runner.input(x), mixing.theta, mixing.edge_scale).float()
                sums[0] += F.cross_entropy(logits, y, reduction="sum")
                sums[1] += accuracy_counts(logits, y)[0]
                sums[2] += len(y)
        self.net.train()
        loss, correct, count = self._reduced(sums)
        return loss / count, 100.0 * correct / count

    def derive(self) -> Architecture:
        """The current architecture, as the strategy derived it at the end of the last epoch (DrNAS: per edge,
        the strongest kept op by Dirichlet mean, eq. 6)."""
        return self.derived

    # ------------------------------------------------------------------------------------------ loop
    def _run_epoch(self) -> dict[str, Any]:
        index, epoch_in_stage = self.stage_at(self.epoch)
        while self.stage_index < index:
            self._enter_stage(self.stage_index + 1)
        return self._train_epoch(arch_on=self.method.trains_arch
                                 and epoch_in_stage >= self.config.stages[index].arch_warmup)

    def _train_epoch(self, arch_on: bool) -> dict[str, Any]:
        cfg, epoch = self.config, self.epoch
        started = time.perf_counter()
        lr = lr_at(*_schedule_position(cfg, epoch), cfg.lr, cfg.lr_min)
        for group in self.weight_optimizer.param_groups:
            group["lr"] = lr
        self.strategy.start_epoch(epoch, cfg.epochs)
        self.strategy.prepare_network(self.net)
        self.net.train()

        def step(batches: tuple[Batch, Batch], sums: torch.Tensor) -> None:
            (xw, yw), (xa, ya) = batches
            if arch_on:
                a_loss, a_correct = self.arch_step(xa, ya, (xw, yw))
                sums[2] += a_loss * len(ya)
                sums[3] += a_correct
            w_loss, w_correct = self.weight_step(xw, yw)
            sums[0] += w_loss * len(yw)
            sums[1] += w_correct
            sums[4] += len(yw)

        steps = len(self.weight_loader)
        # sums: weight loss, weight correct, arch loss, arch correct, seen
        values = self._epoch_steps(zip(self.weight_loader.epoch(epoch), self.arch_loader.epoch(epoch)), steps,
                                   f"epoch {epoch + 1}/{cfg.epochs} (stage {self.stage_index + 1})", 5, 4, step, self.net)
        self.derived = self.strategy.derive(self.space, self, epoch)
        if epoch + 1 == cfg.epochs and any(p.selects for p in self.strategy.parts):
            self.derived = _selected(self)  # DARTS-PT: the architecture selected by perturbation
        valid_loss, valid_acc = self.evaluate()
        if not math.isfinite(valid_loss):
            self._fail_non_finite(steps)
        measured = self.curvature() if cfg.hessian_every and (epoch + 1) % cfg.hessian_every == 0 else None
        record = self._epoch_record(values, int(values[4]), arch_on, lr, valid_loss, valid_acc,
                                    time.perf_counter() - started)
        if measured is not None:
            record["hessian"] = measured.to_json()
        return record

    def curvature(self, batches: int = HESSIAN_BATCHES) -> hessian.Curvature | None:
        """The largest eigenvalue and the trace of the Hessian of the validation loss (:meth:`hessian_loss`) in the
        strategy's architecture parameters; None for methods without them. Its random vectors come from a
        generator seeded by (seed, epoch), so runs and resumes stay identical."""
        logits = self.strategy.hessian_logits()
        if logits is None:
            return None
        self.net.eval()
        try:
            with self.runner.plain():
                hvp = hessian.loss_hvp(self.hessian_loss(batches), logits)
                return hessian.curvature(hvp, logits.shape, seed=self.config.seed * 100_003 + self.epoch,
                                         device=logits.device)
        finally:
            self.net.train()

    def hessian_loss(self, batches: int = HESSIAN_BATCHES) -> Callable[[torch.Tensor], torch.Tensor]:
        """``logits -> validation loss`` at the mixing weights ``strategy.hessian_mixing(logits)``, on the first
        ``batches`` batches of the validation half (fixed for the run). Call it in eval mode on the plain path
        (:meth:`curvature` does): the speed paths and compiled cells are not built for second derivatives."""
        data = list(itertools.islice(self.valid_loader.epoch(0), batches))
        count = sum(len(labels) for _, labels in data)

        def loss_of(x: torch.Tensor) -> torch.Tensor:
            mixing = self.strategy.hessian_mixing(x)
            total = x.new_zeros(())
            for images, labels in data:
                out = self.net(self.runner.input(images), mixing.theta, mixing.edge_scale)
                total = total + F.cross_entropy(out.float(), labels, reduction="sum")
            return total / count

        return loss_of

    def _epoch_record(self, sums: list[float], seen: int, arch_on: bool, lr: float, valid_loss: float,
                      valid_acc: float, seconds: float) -> dict[str, Any]:
        arch = self.derived
        record: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "stage": self.stage_index,
            "lr": lr,
            "train_loss": sums[0] / seen,
            "train_acc": 100.0 * sums[1] / seen,
            "arch_loss": sums[2] / seen if arch_on else None,
            "arch_acc": 100.0 * sums[3] / seen if arch_on else None,
            "valid_loss": valid_loss,
            "valid_acc": valid_acc,
            "arch": str(arch),
            **self.strategy.distribution_record(),
            "seconds": round(seconds, 3),
            **self.strategy.record(),
            **self.strategy.parts_record(),
        }
        if self.table is not None:
            try:
                record["nb201"] = self.table.accuracies(arch)  # type: ignore[arg-type]
            except BenchmarkError:
                record["nb201"] = None
        if self.costs is not None:
            record.update(cost_fields(self.costs, self.strategy, self.space, arch))
        return record

    def _stop_after(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The parts' stopping rules (DARTS+, DARTS-ES) after every epoch (:func:`_stop_record`)."""
        return _stop_record(self, record)

    def epoch_line(self, record: dict[str, Any]) -> str:
        line = (f"epoch {record['epoch']}/{self.config.epochs} stage {record['stage'] + 1} lr {record['lr']:.4g} "
                f"train {record['train_loss']:.3f}/{record['train_acc']:.1f}% valid {record['valid_loss']:.3f}/"
                f"{record['valid_acc']:.1f}% {record['seconds']:.1f}s  {record['arch']}")
        if record.get("nb201"):
            line += "  nb201 " + " ".join(f"{k}={v:.2f}" for k, v in record["nb201"].items())
        if self.costs is not None and record.get("expected_cost") is not None:
            arch_cost = "" if record.get("arch_cost") is None else f" arch {record['arch_cost']:.4g}"
            line += f"  {self.costs.column} expected {record['expected_cost']:.4g}{arch_cost}"
        return line

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "stage_index": self.stage_index,
            "partial_k": self.net.partial_k,
            "net": self.net.state_dict(),
            "relax": self.relax.state_dict(),
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "arch_optimizer": self.arch_optimizer.state_dict() if self.arch_optimizer is not None else None,
            "derived": self.derived.to_json(),
            "stopped": self.stopped,
            **self._rng_checkpoint(),
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise RunError(f"checkpoint format {state.get('format')} is not supported by this drnas "
                           f"(expects {CHECKPOINT_FORMAT})")
        check_costs(self.costs, self.strategy, state["relax"], self.run_dir)
        self.relax.load_state_dict(state["relax"])
        self._build_network(int(state["partial_k"]), int(state["stage_index"]))
        self.net.load_state_dict(state["net"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        if self.arch_optimizer is not None:
            self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.epoch, self.stage_index = int(state["epoch"]), int(state["stage_index"])
        self.stopped = state.get("stopped")
        self.derived = (self.space.from_json(state["derived"]) if "derived" in state
                        else self.strategy.derive(self.space, None, self.epoch))
        self._restore_rng(state)

    def _write_outputs(self) -> None:
        assert self.run_dir is not None
        atomic_write_json(self.run_dir.architecture, self.architecture_json())
        if self.epoch % PLOT_EVERY and self.epoch < self.config.epochs and self.stopped is None:
            return  # a plot takes a second or more to draw: every few epochs and at the end
        try:
            from drnas.analysis.plots import plot_dirichlet_means

            plot_dirichlet_means(self.metrics, self.space.edge_names(), self.space.ops,
                                 self.run_dir.path / self.method.mean_plot, self.config.to_json(),
                                 self.run_dir.path.resolve().name)
        except Exception as err:  # noqa: BLE001 - a plot must never stop a search (a Ctrl-C must)
            reraise_interrupt(err)
            self.log(f"warning: could not draw {self.method.mean_plot}: {err}", logging.WARNING)

    def final_images(self) -> list[tuple[str, bytes]]:
        """The heatmap of the learned distribution and the derived cells (TensorBoard, at the end)."""
        from drnas.analysis.diagrams import search_images

        return search_images(self.architecture_json())

    def architecture_json(self) -> dict[str, Any]:
        """The derived architecture plus eta, beta and the Dirichlet mean of every edge (:func:`_architecture_json`)."""
        return _architecture_json(self)

    def result(self) -> SearchResult:
        with torch.no_grad():
            mean = self.relax.expected_weights().cpu()
            return SearchResult(self.derived, self.relax.eta.detach().cpu().clone(),
                                self.relax.scores().cpu(), mean, self.epoch, list(self.metrics),
                                self.run_dir.path if self.run_dir is not None else None)


def _schedule_position(config: SearchConfig, epoch: int) -> tuple[int, int]:
    """(epoch, epochs) the weights' learning rate is scheduled by: the run's, or with ``lr_restart`` the stage's."""
    if not config.lr_restart:
        return epoch, config.epochs
    index, within = config.stage_at(epoch)
    return within, config.stages[index].epochs


def _cost_table(config: SearchConfig, space: Any) -> OpCosts | None:
    """The op-level costs of the config's ``cost_table`` in ``space``, or None without one; a bad file or
    column is one :class:`ConfigError` line."""
    return load_costs(config.cost_table, space) if config.cost_table else None


def _architecture_json(search: Search) -> dict[str, Any]:
    """What ``architecture.json`` holds: the derived architecture, and per edge eta, beta, the expected weights and
    the kept ops; the method, parts and early stop where there are."""
    with torch.no_grad():
        mean = search.relax.expected_weights().cpu()
        eta = search.relax.eta.detach().cpu()
        beta = search.relax.scores().cpu()
    arch = search.derived
    edges = []
    kept = search.relax.kept_ops()
    for e, name in enumerate(search.space.edge_names()):
        edges.append({"edge": name, "op": search.space.ops[int(mean[e].argmax())],
                      "kept": [search.space.ops[i] for i in kept[e]],
                      "eta": eta[e].tolist(), "beta": beta[e].tolist(), "mean": mean[e].tolist()})
    method = {} if search.config.method == SearchConfig.method else {"method": search.config.method}
    method.update({k: v for k, v in (("parts", list(search.config.parts)), ("stopped", search.stopped)) if v})
    return {**method, "space": search.space.name, "ops": list(search.space.ops), "architecture": arch.to_json(),
            "epochs_done": search.epoch, "epochs": search.config.epochs,
            "final": search.epoch >= search.config.epochs or search.stopped is not None,
            "edges": edges}


def _stop_record(search: Search, record: dict[str, Any]) -> dict[str, Any] | None:
    """Whether a stopping rule of ``search``'s parts ends it after the epoch of ``record``, written into the record
    (``stopped``: why, when, the epoch whose cell is kept), or None. A rule that looks back (DARTS-ES) keeps an
    earlier epoch's cell: the search's derived architecture, which the record then names (``arch``, ``nb201``),
    the cell at the stop kept as ``arch_at_stop``."""
    if not search.strategy.parts:  # no rule to ask: no cell graph to build
        return None
    stop = search.strategy.stop(search.metrics, search.space.graph(search.derived)[0].ops())
    if stop is None:
        return None
    stopped: dict[str, Any] = {"reason": stop.reason, "epoch": record["epoch"], "kept_epoch": stop.keep_epoch}
    if stop.keep_epoch != record["epoch"]:
        stopped["arch_at_stop"] = record["arch"]
        search.derived = search.space.parse(str(search.metrics[stop.keep_epoch - 1]["arch"]))
        record["arch"] = str(search.derived)
        if search.table is not None and record.get("nb201") is not None:
            record["nb201"] = search.table.accuracies(search.derived)
    record["stopped"] = stopped
    search.log(f"stopped after epoch {record['epoch']}: {stop.reason}; the search returns the cell of epoch "
               f"{stop.keep_epoch}")
    return stopped


def _selected(search: Search) -> Architecture:
    """At the end of a search with the ``darts-pt`` part: the architecture its perturbation selects
    (:func:`drnas.analysis.perturbation.perturbation_select`, which fine-tunes the supernet on the way)."""
    part = next(p for p in search.strategy.parts if p.selects)
    return perturbation_select(search, part.settings, search.log).architecture


def search_from_config(config: SearchConfig, out: str | Path | None = None, **kwargs: Any) -> SearchResult:
    """Convenience: build a :class:`Search` and run it to the end."""
    return Search(config, out, **kwargs).run()


__all__ = ["NonFiniteLossError", "Search", "SearchResult", "search_from_config"]
