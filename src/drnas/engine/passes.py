"""The network passes a search runs, and the plain runner every pass goes through.

:class:`SupernetPasses` is the engine side of the strategy contract (the ``Engine`` protocol of
:mod:`drnas.method.strategies.base`): a network pass always returns dL/dθ for detached mixing weights, and the
strategy's own autograd graph carries it to its parameters. :class:`PlainRunner` is what a job steps through:
each call runs the plain path; :func:`drnas.fast.runner` returns a runner with the same calls that puts the speed
paths in (layouts, CUDA graphs, compiled cells and their check, bf16), so a job never names one.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

from drnas.engine.distributed import average_gradients
from drnas.method.strategies import Mixing

Pass = Callable[..., tuple[torch.Tensor, ...]]


class PlainRunner:
    """How a job's passes run on the plain path: inputs as they are, every pass eager, float32."""

    #: whether the same gradient tensors must persist between steps (a replayed graph writes into them)
    keeps_gradient_tensors = False

    def describe(self) -> str:
        """The run's speed settings, for the job's first DEBUG line."""
        return "plain path"

    def install(self, network: torch.nn.Module) -> torch.nn.Module:
        """Prepare a (newly built or widened) network; the plain path leaves it as it is."""
        return network

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the layout the network runs in."""
        return x.contiguous()

    def step(self, name: str, fn: Pass, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``fn(*inputs)``: a pass made only of device work, which a fast runner may replay."""
        return fn(*inputs)

    def checked(self, name: str, run: Callable[[], tuple[torch.Tensor, ...]],
                run_eager: Callable[[], tuple[torch.Tensor, ...]],
                compared: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
        """``run()``; a fast runner also checks a pass of newly compiled code against ``run_eager()``."""
        return run()

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The precision passes run under (float32 here)."""
        return contextlib.nullcontext()

    def plain(self) -> contextlib.AbstractContextManager[Any]:
        """Inside this block every pass runs the plain path (second derivatives, exports, counts)."""
        return contextlib.nullcontext()

    def reset(self) -> None:
        """The parameters a pass touches changed (a new stage, a new drop-path rate): forget what was recorded."""


@contextlib.contextmanager
def frozen(params: Iterable[torch.nn.Parameter]) -> Iterator[None]:
    """Parameters that need no gradient for a while: autograd (and a compiled cell's backward graph, which
    would otherwise compute every weight gradient only to drop it) then leaves their gradients out."""
    held = [p for p in params if p.requires_grad]
    for p in held:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in held:
            p.requires_grad_(True)


def accuracy_counts(logits: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...] = (1,)) -> list[torch.Tensor]:
    """Number of samples whose label is among the top-k logits, for each k (device tensors, no sync)."""
    k = min(max(topk), logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hits = top == target.unsqueeze(1)
    return [hits[:, : min(t, k)].any(1).sum() for t in topk]


class SupernetPasses:
    """The passes a strategy asks of a supernet search (the ``Engine`` protocol), on ``self.net`` through
    ``self.runner``. The search provides ``net``, ``strategy``, ``runner``, ``weight_optimizer``,
    ``valid_loader``, ``dist`` and ``_validation_batch``."""

    net: Any
    strategy: Any
    runner: PlainRunner
    weight_optimizer: torch.optim.Optimizer
    valid_loader: Any
    dist: Any
    _validation_batch: tuple[torch.Tensor, torch.Tensor] | None

    @contextlib.contextmanager
    def _running(self, active: list[list[int]] | None) -> Iterator[None]:
        """Single-path mixing: only ``active[e]`` of each edge runs inside the block."""
        if active is None:
            yield
            return
        self.net.set_kept(active)
        try:
            yield
        finally:
            self.net.set_kept(self.strategy.kept_ops())

    def gradients(self, mixing: Mixing, x: torch.Tensor, y: torch.Tensor, weights: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Loss, correct count, dL/d(mixing weights) and, with ``weights``, dL/dw (no update). Without weight
        gradients the weights are frozen for the pass (neither eager autograd nor a compiled cell's backward
        computes them) and the runner may replay the pass; it runs the bare network (DDP only reduces weight
        gradients)."""
        def leaves() -> list[torch.Tensor]:  # fresh leaves for every pass: gradients never accumulate
            return [t.detach() for t in mixing.tensors()]

        with self._running(mixing.active):
            if weights:
                out = self._full_pass(x, y, *leaves())
                count = len(mixing.tensors())
                return out[0], out[1], list(out[2:2 + count]), list(out[2 + count:])
            out = self.runner.checked(
                "arch", lambda: self.runner.step("arch", self._arch_pass, x, y, *leaves()),
                lambda: self._arch_pass(x, y, *leaves()), lambda out: (out[0], *out[2:]))
        return out[0], out[1], list(out[2:]), []

    def _arch_pass(self, x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor,
                   edge_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Loss, correct count and dL/dtheta (and dL/d edge_scale) of one batch (device work only)."""
        leaves = [theta] if edge_scale is None else [theta, edge_scale]
        for leaf in leaves:
            leaf.requires_grad_(True)
        with frozen(self.net.parameters()):
            with self.runner.autocast():
                logits = self.net(self.runner.input(x), theta, edge_scale)
            loss = F.cross_entropy(logits.float(), y)
            if loss.requires_grad:  # not when a single-path draw cuts every path (all ops into a cell's output: none)
                loss.backward(inputs=leaves)  # fresh leaves (or the graph's static inputs): grads assigned
        return (loss.detach(), accuracy_counts(logits, y)[0],
                *[torch.zeros_like(leaf) if leaf.grad is None else leaf.grad for leaf in leaves])

    def _full_pass(self, x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor,
                   edge_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Loss, correct count, gradients of the mixing weights, then of every weight (second-order steps)."""
        leaves = [theta] if edge_scale is None else [theta, edge_scale]
        for leaf in leaves:
            leaf.requires_grad_(True)
        params = self.weight_parameters()
        with self.runner.autocast():
            logits = self.net(self.runner.input(x), theta, edge_scale)
        loss = F.cross_entropy(logits.float(), y)
        grads = (torch.autograd.grad(loss, leaves + params, allow_unused=True) if loss.requires_grad
                 else (None,) * len(leaves + params))
        grads = tuple(torch.zeros_like(t) if g is None else g for t, g in zip(leaves + params, grads))
        return (loss.detach(), accuracy_counts(logits, y)[0], *grads)

    def weight_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.net.parameters())

    def weight_step_rule(self) -> tuple[float, float, float, list[torch.Tensor | None]]:
        group = self.weight_optimizer.param_groups[0]
        buffers = [self.weight_optimizer.state.get(p, {}).get("momentum_buffer") for p in self.weight_parameters()]
        return group["lr"], group["momentum"], group["weight_decay"], buffers

    def average_gradients(self, params: Any) -> None:
        average_gradients(list(params), self.dist)

    @torch.no_grad()
    def evaluate_batch(self, mixing: Mixing, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        """Loss and correct count of one batch in eval mode (BatchNorm statistics untouched)."""
        self.net.eval()
        try:
            with self._running(mixing.active), self.runner.autocast():
                logits = self.net(self.runner.input(x), mixing.theta, mixing.edge_scale).float()
        finally:
            self.net.train()
        return float(F.cross_entropy(logits, y)), int(accuracy_counts(logits, y)[0])

    def validation_batch(self, index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The first batch of the validation half (fixed for the whole run)."""
        if self._validation_batch is None:
            self._validation_batch = next(iter(self.valid_loader.epoch(0)))
        return self._validation_batch


def clip_weight_gradients(weights: Iterable[torch.nn.Parameter], clip: float, engine: Any = None,
                          mixing: Mixing | None = None, leaves: list[torch.Tensor] | None = None) -> None:
    """Clip the weight gradients in place to total norm ``clip``, the weight step's clip. Given the ``mixing``
    the pass ran with and its ``leaves`` (detached copies of the mixing weights the pass ran on, holding dL/dθ),
    the norm also counts the architecture parameters' gradient of the weight loss, chained through the sample, as
    the authors' code does by clipping ``model.parameters()``, which hold η. That gradient only sets the scale: the
    architecture parameters' ``.grad`` is left as it was, and under DDP it is averaged over the ranks first, so
    every rank scales its weights alike."""
    weights = list(weights)
    if mixing is None or leaves is None:
        torch.nn.utils.clip_grad_norm_(weights, clip)
        return
    params = engine.strategy.arch_parameters()
    sources = [(t, leaf.grad) for t, leaf in zip(mixing.tensors(), leaves) if t.requires_grad and leaf.grad is not None]
    grads = (torch.autograd.grad([t for t, _ in sources], params, [g for _, g in sources], allow_unused=True)
             if sources else (None,) * len(params))
    saved = [p.grad for p in params]
    try:
        for p, g in zip(params, grads):
            p.grad = torch.zeros_like(p) if g is None else g  # every rank reduces the same list
        engine.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(weights + params, clip)
    finally:
        for p, g in zip(params, saved):
            p.grad = g
