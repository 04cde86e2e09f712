"""How a training step runs on its device: bf16 autocast and CUDA-graph replay.

Both exist for GPUs, where a search step is thousands of small kernels and the host's launch overhead, not the
arithmetic, sets the pace. ``cuda_graphs`` records the forward and backward pass of a step once and replays it:
one launch instead of thousands (several times faster steps). ``amp=bf16`` runs the network under bf16
autocast (the Dirichlet sample, the loss and the architecture gradient stay float32); it is off by default
because at a supernet's channel counts it was not faster and it changes the numbers, though it halves
activation memory. The optimizer steps and the Dirichlet sampling stay outside the graph (they are tiny), so
learning rates may change freely and eq. (5) still runs in float64. Measurements: docs/performance.md, "On a GPU".
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, ContextManager, Sequence

import torch

from drnas.config.settings import AMP_SETTINGS, GRAPH_SETTINGS
from drnas.errors import DrnasError, reraise_interrupt

#: ``compile=auto`` compiles runs with at least this many weight steps. On 2 CPU cores compiling costs 1.5-2
#: minutes per stage (cold inductor cache) and saves 0.1-0.2 s per NB201 iteration, so it pays from about 1,000
#: steps; 5,000 (13 epochs of CIFAR-10 at batch 64) leaves a wide margin and keeps quick tries and tests eager.
AUTO_COMPILE_MIN_STEPS = 5000

#: Logged when a GPU run asks for ``compile=cells``. On a GPU compiled cells made graphed NB201 steps faster but
#: gave wrong eta gradients against the CPU's (eager CUDA cells agree). The cause was torch 2.11's dynamo, on every
#: device (pytorch#180642: the in-place adds of the average pool's window sum sent its gradient astray; torch 2.13
#: does not show it), now avoided in ``drnas.fast.ops._box_sum_3x3`` and shown right on the CPU under torch 2.11
#: (docs/performance.md, "Compiled cells on a GPU"). Until
#: ``tests/test_gpu.py::test_search_passes_on_cuda_equal_the_cpu_eager_ones`` has passed on a GPU with that change,
#: compiled cells stay opt-in and warned there.
GPU_COMPILE_WARNING = ("compile=cells on a GPU is experimental: not yet tested on a GPU since the fix for "
                       "pytorch#180642 (the run checks its first compiled steps against eager cells); "
                       "--set compile=none runs the default eager cells")


class AccelError(DrnasError, ValueError):
    """An ``amp`` / ``cuda_graphs`` setting that cannot apply here."""


def cpp_compiler_found() -> bool:
    """Whether inductor finds the C++ compiler it needs for CPU code."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()  # raises when none of the compilers it searches for is installed
        return True
    except Exception as err:  # noqa: BLE001 - any failure means: do not compile automatically
        reraise_interrupt(err)
        return False


def resolve_compile(setting: str, device: torch.device, space_pays: bool, weight_steps: int) -> tuple[str, str]:
    """The compile mode of a run (``none`` or ``cells``) and a line saying why, for ``auto``.

    ``auto`` compiles where it was measured to pay: on a CPU under Linux (where it was measured; inductor needs
    a C++ compiler, and macOS compilers often lack OpenMP), in a space whose cells gain (``space_pays``: the space's
    ``compiled_cells_pay_on_cpu``, NB201's), and for runs of at least ``AUTO_COMPILE_MIN_STEPS`` weight steps. On a GPU
    the steps are replayed as CUDA graphs instead, and an explicit ``cells`` there comes with a warning (see
    ``GPU_COMPILE_WARNING``).
    """
    if setting == "cells" and device.type == "cuda":
        return setting, GPU_COMPILE_WARNING
    if setting != "auto":
        return setting, ""
    if device.type != "cpu" or not space_pays:
        return "none", ""
    if weight_steps < AUTO_COMPILE_MIN_STEPS:
        return "none", ""
    if not sys.platform.startswith("linux") or not cpp_compiler_found():
        return "none", ("compile=auto: cells stay eager (torch.compile's CPU code needs Linux and a C++ compiler "
                        "here); compiled cells are 1.14-1.32x faster on long NB201 searches")
    return "cells", (f"compile=auto: compiling the search cells with torch.compile ({weight_steps} weight steps on "
                     f"the CPU: 1.14-1.32x faster steps after 1.5-2 minutes of compiling at each stage's first "
                     f"steps and first validation); --set compile=none runs them eagerly")


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a run, or None for plain float32 (the default: see the module docstring)."""
    if setting not in AMP_SETTINGS:
        raise AccelError(f"amp must be one of {', '.join(AMP_SETTINGS)}, got {setting!r}")
    if setting == "off":
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise AccelError(f"amp=bf16: {torch.cuda.get_device_name(device)} has no bf16 support: use amp=off")
    return torch.bfloat16


def autocast(dtype: torch.dtype | None, device: torch.device) -> ContextManager[Any]:
    """Autocast to ``dtype`` on ``device`` (no-op for None). The cast cache is off: it is unsafe inside a graph
    capture, and each step casts the weights once anyway."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


def graphs_enabled(setting: str, device: torch.device, world_size: int) -> bool:
    """Whether steps replay CUDA graphs: ``auto`` = on a CUDA device in a single process.

    Under torchrun the weight step runs through DistributedDataParallel, whose gradient hooks are not captured
    here, so graphs are a single-process feature (``on`` with several processes is refused).
    """
    if setting not in GRAPH_SETTINGS:
        raise AccelError(f"cuda_graphs must be one of {', '.join(GRAPH_SETTINGS)}, got {setting!r}")
    if setting == "off":
        return False
    if setting == "on":
        if device.type != "cuda":
            raise AccelError(f"cuda_graphs=on needs a CUDA device, this run uses {device}: use cuda_graphs=auto or off")
        if world_size > 1:
            raise AccelError("cuda_graphs=on runs in a single process only: use cuda_graphs=auto (off under torchrun)")
        return True
    return device.type == "cuda" and world_size == 1


class GraphedStep:
    """Runs ``fn(*tensors)`` eagerly for ``warmup`` calls, then captures it as a CUDA graph and replays it.

    ``fn`` must be a fixed sequence of device work: no host synchronisation and no Python branch on tensor
    values; it returns a tuple of tensors. Inputs are copied into static buffers; a call whose inputs differ in
    shape or dtype from the captured ones (a smaller last batch) runs eagerly, and gives the same result.
    Gradients that ``fn`` accumulates into ``.grad`` must be zeroed in place inside ``fn`` (not set to None):
    the graph writes into the tensors that existed at capture. Several steps share one memory pool, which is
    safe because they replay in the order they were captured and never concurrently.
    """

    def __init__(self, fn: Callable[..., tuple[torch.Tensor, ...]], warmup: int = 2,
                 pool: Any | None = None) -> None:
        self.fn, self.warmup, self.pool = fn, warmup, pool
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.signature: tuple[Any, ...] | None = None
        self.static_inputs: list[torch.Tensor] = []
        self.static_outputs: tuple[torch.Tensor, ...] = ()

    @staticmethod
    def _signature(inputs: Sequence[torch.Tensor]) -> tuple[Any, ...]:
        return tuple((tuple(t.shape), t.dtype, t.device, t.stride()) for t in inputs)

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.graph is None and self.calls < self.warmup:
            self.calls += 1
            return self._on_side_stream(inputs)
        if self.graph is None:
            self._capture(inputs)
        if self._signature(inputs) != self.signature:
            return self.fn(*inputs)
        with torch.no_grad():  # a static input may have become a leaf that requires grad inside fn
            for static, value in zip(self.static_inputs, inputs):
                static.copy_(value)
        self.graph.replay()  # type: ignore[union-attr]
        return tuple(out.clone() for out in self.static_outputs)

    def _on_side_stream(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Warm-up calls run on a side stream, as capture needs (lazy library state is created here)."""
        side = torch.cuda.Stream(device=inputs[0].device)
        side.wait_stream(torch.cuda.current_stream(inputs[0].device))
        with torch.cuda.stream(side):
            out = self.fn(*inputs)
        torch.cuda.current_stream(inputs[0].device).wait_stream(side)
        return out

    def _capture(self, inputs: Sequence[torch.Tensor]) -> None:
        self.signature = self._signature(inputs)
        self.static_inputs = [t.clone() for t in inputs]
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            self.static_outputs = tuple(self.fn(*self.static_inputs))
        self.graph = graph


class StepRunner:
    """The steps of one job, each run eagerly or through a :class:`GraphedStep` sharing one memory pool.

    ``reset()`` drops every graph: call it whenever the parameters a step touches change (a stage transition
    widens and prunes; retraining changes the drop-path probability baked into the graph each epoch).
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._steps: dict[str, GraphedStep] = {}
        self._pool: Any | None = None

    def __call__(self, name: str, fn: Callable[..., tuple[torch.Tensor, ...]], *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.enabled:
            return fn(*inputs)
        if name not in self._steps:
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            self._steps[name] = GraphedStep(fn, pool=self._pool)
        return self._steps[name](*inputs)

    def reset(self) -> None:
        self._steps.clear()
        self._pool = None

    @property
    def captured(self) -> list[str]:
        """Names of the steps replaying a graph now."""
        return [name for name, step in self._steps.items() if step.graph is not None]
