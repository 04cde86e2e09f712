"""The one door from the jobs to the speed paths: :func:`runner` makes the :class:`Runner` a job steps through.

A job hands every network it builds to ``runner.install`` (again after widening) and runs its passes through
``runner.step`` / ``runner.checked``; it never names a speed path. What the runner does, from the run's settings
and device: the memory layout, the fused edges and fast pooling (:mod:`drnas.fast.fusion`), compiled cells
(:mod:`drnas.fast.compiled`) checked against eager ones (:mod:`drnas.fast.compile_check`), CUDA-graph replay and
bf16 autocast (:mod:`drnas.fast.accel`), and the process settings (freed memory kept, cuDNN benchmark).
``fast_paths=plain`` turns every path off but bf16, which changes what is computed and is asked for by name.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterator

import torch

from drnas.config.settings import MEMORY_FORMATS
from drnas.engine.distributed import all_reduce_sum
from drnas.engine.passes import Pass, PlainRunner
from drnas.errors import ConfigError
from drnas.fast import compile_check, compiled, fusion
from drnas.fast import settings as switchboard
from drnas.fast.accel import StepRunner, amp_dtype, autocast, graphs_enabled, resolve_compile
from drnas.fast.host_memory import keep_freed_memory
from drnas.method.supernet import Supernet


def preferred_memory_format(setting: str, device: torch.device, partial_k: int = 1) -> torch.memory_format:
    """The layout convolutions run in.

    ``auto`` picks channels_last on the CPU when no partial-channel slicing happens (K=1): oneDNN's convolutions
    are much faster in that layout (about 1.6x on the NB201 search and the CIFAR training steps), while slicing
    channels out of a channels_last tensor makes the partial-channel mixed ops slower. GPUs keep the contiguous
    layout: channels_last was measured there only together with bf16 autocast, not with the float32 default.
    Measurements: docs/performance.md.
    """
    if setting not in MEMORY_FORMATS:
        raise ValueError(f"memory_format must be one of {', '.join(MEMORY_FORMATS)}, got {setting!r}")
    if setting == "channels_last" or (setting == "auto" and device.type == "cpu" and partial_k == 1):
        return torch.channels_last
    return torch.contiguous_format


class Runner(PlainRunner):
    """A job's passes with the speed paths its settings allow (see the module docstring)."""

    def __init__(self, *, device: torch.device, plain: bool, memory_format: str, amp: torch.dtype | None,
                 graphs: bool, compile_mode: str, backend: Any, world: Any, log: Callable[..., None]) -> None:
        self.device, self.plain_path, self.layout = device, plain, memory_format
        self.amp_dtype = amp
        self.steps = StepRunner(graphs)
        self.compile_mode, self.compile_backend = compile_mode, backend
        self.world, self.log = world, log
        self.memory_format = torch.contiguous_format
        self.network: torch.nn.Module | None = None
        #: the passes of newly compiled cells still to be checked against eager cells
        self.unchecked: set[str] = set()

    @property
    def keeps_gradient_tensors(self) -> bool:  # type: ignore[override]
        return self.steps.enabled

    def describe(self) -> str:
        amp = "bf16" if self.amp_dtype is not None else "off"
        return f"amp {amp}, CUDA graphs {'on' if self.steps.enabled else 'off'}" + (", plain path" if self.plain_path else "")

    def install(self, network: torch.nn.Module) -> torch.nn.Module:
        """The layout for the network's current K, the fast paths (again for the ops widening rebuilt) and,
        when asked, compiled cells; the CUDA graphs of the previous network are dropped and newly compiled
        cells get their first passes checked."""
        supernet = isinstance(network, Supernet)  # an evaluation network has no partial channels, no search cells
        self.memory_format = preferred_memory_format("contiguous" if self.plain_path else self.layout, self.device,
                                                     network.partial_k if supernet else 1)
        network.to(memory_format=self.memory_format)  # in place: the optimizer keeps the same parameters
        if not self.plain_path:
            fusion.install(network)
        if supernet:
            # compiled cells keep an NCHW network's layout on the CPU (see drnas.fast.compiled.cell_compile_options)
            compiled.compile_cells(network, self.compile_mode, self.compile_backend,
                                   keep_layout=self.device.type == "cpu"
                                   and self.memory_format == torch.contiguous_format)
            self.unchecked = {"arch", "weight"} if self.compile_mode == "cells" else set()
        self.network = network
        self.steps.reset()  # captured graphs point at the parameters of the previous network
        return network

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory_format)

    def step(self, name: str, fn: Pass, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.steps(name, fn, *inputs)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return autocast(self.amp_dtype, self.device)

    @contextlib.contextmanager
    def plain(self) -> Iterator[None]:
        with switchboard.using(switchboard.PLAIN):
            if self.network is None:
                yield
                return
            with compiled.eager_cells(self.network):
                yield

    def reset(self) -> None:
        self.steps.reset()

    def checked(self, name: str, run: Callable[[], tuple[torch.Tensor, ...]],
                run_eager: Callable[[], tuple[torch.Tensor, ...]],
                compared: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]],
                weight_gradients: bool = False) -> tuple[torch.Tensor, ...]:
        """``run()``; the first ``name`` pass of newly compiled cells is also run with eager cells from the same
        state (``run_eager()``) and ``compared`` (with every weight gradient when ``weight_gradients``). Within
        tolerance the pass is the compiled one, bit for bit (results, gradients, BatchNorm statistics), so a
        resumed run repeats it; beyond it on any rank, the pass is the eager one and every rank goes on with
        eager cells."""
        if name not in self.unchecked or self.network is None:
            return run()
        net = self.network
        self.unchecked.discard(name)

        def values(out: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            return (*compared(out), compile_check.flat_gradients(net)) if weight_gradients else compared(out)

        before = compile_check.State.of(net)
        compiled_out = run()
        compiled_values, compiled_state = values(compiled_out), compile_check.State.of(net)
        before.restore(net)
        with compiled.eager_cells(net):
            eager = run_eager()
        off = compile_check.largest_difference(compiled_values, values(eager))
        accepted = compile_check.tolerance(self.amp_dtype or next(net.parameters()).dtype, self.device)
        failed = all_reduce_sum(torch.tensor([float(off > accepted)], device=self.device), self.world)
        if float(failed) == 0:
            self.log(f"compiled cells checked: their {name} pass is {off:.2g} from the eager cells' (relative; "
                     f"accepted: {accepted:g})", logging.DEBUG)
            compiled_state.restore(net)
            return compiled_out
        self.log(f"warning: compiled cells' {name} pass was {off:.3g} away from the eager cells' (relative; "
                 f"accepted: {accepted:g}) under torch {torch.__version__}: going on with eager cells, as with "
                 f"--set compile=none", logging.WARNING)
        self.compile_mode = "none"
        compiled.compile_cells(net, "none")
        self.unchecked.clear()
        return eager


def runner(config: Any, device: torch.device, world: Any, log: Callable[..., None], *, eager: str | None = None,
           compile_pays: bool = False, weight_steps: int = 0, backend: Any = "inductor") -> Runner:
    """The runner of a job with ``config`` (a search or training config) on ``device`` in the process group
    ``world``; makes the process-wide settings. ``eager``: why compiled cells and CUDA graphs cannot follow this
    run (a method running one sampled op per edge, a part drawing random numbers in the cells), or None; ``auto``
    then leaves them off and an explicit request is an error.
    ``compile_pays``: compiled cells were measured to pay on a CPU for this space; ``weight_steps``: the run's
    length, for ``compile=auto``."""
    if config.keep_freed_memory and device.type == "cpu":
        keep_freed_memory()  # process-wide: fewer page faults per step, same results
    if config.cudnn_benchmark and device.type == "cuda":
        # process-wide: cuDNN then times its algorithms for each new shape and keeps the fastest (faster DARTS
        # supernet steps); the choice may differ between runs, so results match only to rounding
        torch.backends.cudnn.benchmark = True
    amp = amp_dtype(config.amp, device)
    graphs = graphs_enabled(config.cuda_graphs, device, world.world_size)
    plain = getattr(config, "fast_paths", "default") == "plain"
    setting = getattr(config, "compile", "none")
    if eager and setting == "cells":
        raise ConfigError(f"{eager}, which compiled cells cannot follow: use --set compile=none (or auto)")
    if eager and config.cuda_graphs == "on":
        raise ConfigError(f"{eager}, which a CUDA graph cannot follow: use --set cuda_graphs=auto (or off)")
    graphs = graphs and not (plain or eager)
    mode, why = resolve_compile("none" if plain else setting, device, compile_pays and not eager, weight_steps)
    if why:
        log(why)
    return Runner(device=device, plain=plain, memory_format=config.memory_format, amp=amp,
                  graphs=graphs, compile_mode=mode, backend=backend, world=world, log=log)
