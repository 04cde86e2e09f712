"""Compiled search cells: every search cell's forward through ``torch.compile``.

The whole supernet is too large a graph to compile in reasonable time; cells of one shape share one compiled
graph. Which runs compile (``compile=auto``) is decided in :mod:`drnas.fast.accel`; the first compiled passes
are checked against eager cells (:mod:`drnas.fast.compile_check`).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from torch import nn

from drnas.method.supernet import SearchCell

#: compiled graphs one cell class may accumulate: widths x (arch step, weight step, evaluation, last partial
#: batch) x stages; DARTS has ~9 cell shapes. Dynamo's default (8) would silently fall back to eager.
CELL_RECOMPILE_LIMIT = 256


def cell_compile_options(backend: str | Callable, keep_layout: bool) -> dict[str, bool] | None:
    """Inductor options of compiled cells. ``keep_layout`` turns off inductor's layout optimisation (which runs
    convolutions in channels_last whatever the network's layout): for the partial-channel NB201 stages, which
    run in NCHW on the CPU, it left 4-8-channel tensors in channels_last next to NCHW ones, and the generated
    kernels transposed between them in 4-channel tiles. Keeping NCHW made those compiled CPU steps faster; for
    the channels_last K=1 network it changed nothing, so there inductor keeps its choice (docs/performance.md,
    "Compiled cells")."""
    return {"layout_optimization": not keep_layout} if backend == "inductor" else None


def search_cells(net: nn.Module) -> list[SearchCell]:
    return [m for m in net.modules() if isinstance(m, SearchCell)]


def compile_cells(net: nn.Module, mode: str, backend: str | Callable = "inductor", keep_layout: bool = False) -> None:
    """``mode="cells"``: every search cell of ``net`` runs through ``torch.compile`` (static shapes).

    ``keep_layout``: the compiled graphs keep the layout the network runs in (see :func:`cell_compile_options`).
    Idempotent (cells compiled with the same settings keep their wrapper; other settings replace it); call it
    again after widening or pruning: dynamo's guards on parameter shapes and on the host-side ``MixedOp.active``
    lists then recompile once per new cell shape. ``"none"`` undoes it.
    """
    if mode not in ("none", "cells"):
        raise ValueError(f"compile_cells takes 'none' or 'cells' (resolve 'auto' first), got {mode!r}")
    if mode == "cells":
        import torch._dynamo

        config = torch._dynamo.config
        config.recompile_limit = max(config.recompile_limit, CELL_RECOMPILE_LIMIT)
        config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, 4 * CELL_RECOMPILE_LIMIT)
    settings = (backend, keep_layout)
    for cell in search_cells(net):
        if mode == "none":
            cell._compiled_call_impl = None
        elif cell._compiled_call_impl is None or compiled_with(net) != settings:
            # dynamic=False: one graph specialised to each cell shape; dynamo would otherwise switch to symbolic
            # sizes once the second width shows up
            cell.compile(backend=backend, dynamic=False, options=cell_compile_options(backend, keep_layout))
    net.__dict__["_cell_compile_settings"] = settings if mode == "cells" else None


def compiled_with(net: nn.Module) -> tuple[str | Callable, bool] | None:
    """``(backend, keep_layout)`` the cells were last compiled with by :func:`compile_cells`; None: not compiled."""
    return net.__dict__.get("_cell_compile_settings")


@contextlib.contextmanager
def eager_cells(net: nn.Module) -> Iterator[None]:
    """Run every search cell eagerly inside this block; compiled cells get their compiled forward back after it
    (what :mod:`drnas.fast.compile_check` compares against)."""
    cells = search_cells(net)
    compiled = [cell._compiled_call_impl for cell in cells]
    for cell in cells:
        cell._compiled_call_impl = None
    try:
        yield
    finally:
        for cell, forward in zip(cells, compiled):
            cell._compiled_call_impl = forward
