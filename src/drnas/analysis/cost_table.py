"""Cost tables: what an architecture of a space costs on a device (latency, energy, ...), as an additive per-op
model a budgeted derivation bounds and a differentiable penalty weighs.

**Two file formats**, both CSV with a header, read by :func:`load_costs` from ``FILE[:COLUMN]``:

- *op-level* (what ``drnas latency`` writes): ``edge,op,<column>[,<column>...]``, one row per (edge, op) of the
  space, ``edge`` the space's edge name as :meth:`~drnas.spaces.SearchSpace.edge_names` gives it (NB201:
  ``1<-0``; DARTS: ``normal 2<-0``) and ``op`` an op name; one more row ``*,*,...`` holds the constant (the
  network's fixed parts: stem, reductions, head). Rows of ops the space does not use are ignored.
- *per-architecture* (the NB201 latency file of HW-NAS-Bench/HELP): ``arch,<column>[,<column>...]``, one row per
  architecture text of the space. The op-level costs are then fitted by least squares (:func:`fit_op_costs`).

**The model** (:class:`OpCosts`): an architecture's cost is ``constant + sum of matrix[edge, op]`` over its
chosen (edge, op) pairs; for mixing weights ``w [edges, ops]`` (a distribution's mean), ``constant + sum(w *
matrix)``, differentiable in ``w``.

**The fit.** Features are the one-hot op choice of each edge plus a constant. Where every architecture sets
exactly one op on an edge (NB201), that edge's one-hots sum to 1 like the constant column: the first op of the
space seen on the edge (NB201: ``none``) is the reference, costing 0, and the others are fitted relative to it.
An op never seen on an edge cannot be fitted: a zero op (``none``) gets cost 0, any other is an error. R² is
reported on the fitted rows; rows whose cost is missing or NaN are skipped and counted.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from drnas.config.limits import read_bounded
from drnas.engine.runs import RunError, atomic_write_bytes
from drnas.errors import ConfigError, shown
from drnas.spaces import ArchitectureError, SearchSpace
from drnas.spaces.ops import is_zero_op

#: the ``edge`` and ``op`` of the row holding an op-level table's constant
CONSTANT = "*"
#: the key columns of each format
OP_KEYS, ARCH_KEY = ("edge", "op"), "arch"


@dataclass(frozen=True)
class Fit:
    """How well the least-squares fit of a per-architecture table explains it (on the rows it was fitted to)."""

    r2: float
    rows: int  # architectures fitted
    skipped: int  # rows left out: cost missing or NaN, or an op the space does not have
    parameters: int  # unknowns fitted (the constant included)
    rmse: float
    mean_relative_error: float  # mean |prediction - cost| / |cost| over rows with a nonzero cost
    median_relative_error: float  # the median of the same (tiny costs, as a pruned NB201 cell has, weigh less)

    def to_json(self) -> dict[str, Any]:
        return {"r2": self.r2, "rows": self.rows, "skipped": self.skipped, "parameters": self.parameters,
                "rmse": self.rmse, "mean_relative_error": self.mean_relative_error,
                "median_relative_error": self.median_relative_error}


@dataclass(frozen=True)
class OpCosts:
    """One cost column as an additive per-op model of a space: ``matrix`` (float64 ``[edges, ops]`` in the
    space's op order) and ``constant``, in the column's unit (ms for ``*_ms``). ``fit`` is set when the costs
    were fitted from a per-architecture table."""

    column: str
    matrix: torch.Tensor
    constant: float
    source: str
    fit: Fit | None = field(default=None, compare=False)
    #: a per-architecture table's own values by architecture text: the exact cost where the fit only estimates
    lookup: Mapping[str, float] | None = field(default=None, compare=False, repr=False)

    @property
    def unit(self) -> str:
        """``ms`` for a ``*_ms`` column, else empty (the column's own unit, unknown here)."""
        return "ms" if self.column.endswith("_ms") else ""

    def predict(self, weights_or_onehot: torch.Tensor) -> torch.Tensor:
        """``constant + sum(weights * matrix)``: the expected cost under mixing weights ``[edges, ops]`` (a
        one-hot architecture's cost), differentiable in the weights, on their device and in their dtype."""
        if tuple(weights_or_onehot.shape) != tuple(self.matrix.shape):
            raise ValueError(f"cost table {self.column}: weights of shape {tuple(weights_or_onehot.shape)}, expected "
                             f"{tuple(self.matrix.shape)}")
        dtype = weights_or_onehot.dtype if weights_or_onehot.is_floating_point() else torch.float64
        matrix = self.matrix.to(device=weights_or_onehot.device, dtype=dtype)
        return (weights_or_onehot.to(dtype) * matrix).sum() + self.constant

    def of_architecture(self, space: SearchSpace, arch: Any) -> float:
        """The cost of one architecture of ``space``: the table's own value where it lists the architecture (a
        per-architecture table), else the per-op sum."""
        if self.lookup is not None and str(arch) in self.lookup:
            return self.lookup[str(arch)]
        return float(self.predict(one_hot(space, arch).double()))

    def describe(self) -> str:
        """``pixel3_ms of FILE (fitted, R² 0.993)``: for messages."""
        fitted = f", fitted per op on {self.fit.rows:,} architectures with R² {self.fit.r2:.4f}" if self.fit else ""
        return f"{self.column} of {self.source}{fitted}"


# ------------------------------------------------------------------------------------------------ architectures
def one_hot(space: SearchSpace, arch: Any) -> torch.Tensor:
    """The (edge, op) choices of ``arch`` as 0/1 weights ``[edges, ops]`` of ``space``."""
    if not space.one_op_per_edge:
        encode = getattr(space, "one_hot", None)
        if encode is None:
            raise ConfigError(f"space {space.name} cannot list an architecture's (edge, op) choices, so a cost table "
                              "cannot price its architectures: use an op-level table with derive's --cost-table")
        return encode(arch)
    return torch.from_numpy(one_hots(space, [arch])[0])


def one_hots(space: SearchSpace, archs: Sequence[Any]) -> np.ndarray:
    """``[n, edges, ops]`` one-hot choices of architectures of a one-op-per-edge space (``arch.ops`` per edge)."""
    index = {op: i for i, op in enumerate(space.ops)}
    out = np.zeros((len(archs), space.num_edges, len(space.ops)))
    for row, arch in enumerate(archs):
        for edge, op in enumerate(arch.ops):
            if op not in index:
                raise ArchitectureError(f"architecture {arch} uses {op}, which is not an op of this {space.name} "
                                        f"space ({', '.join(space.ops)})")
            out[row, edge, index[op]] = 1.0
    return out


# ------------------------------------------------------------------------------------------------ the fit
def fit_op_costs(space: SearchSpace, archs: Sequence[Any] | np.ndarray, values: Sequence[float], column: str = "cost",
                 source: str = "") -> OpCosts:
    """Least-squares op-level costs of ``space`` from the costs ``values`` of architectures ``archs`` (objects of
    the space, or their one-hot choices ``[n, edges, ops]``); rows whose value is NaN are skipped. See the module
    docstring for the reference ops and the unobserved ones."""
    x = np.asarray(archs, dtype=np.float64) if isinstance(archs, (np.ndarray, torch.Tensor)) else (
        np.stack([one_hot(space, a).numpy() for a in archs]) if not space.one_op_per_edge else one_hots(space, archs))
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    edges, ops = space.num_edges, len(space.ops)
    if x.ndim != 3 or x.shape[1:] != (edges, ops) or x.shape[0] != y.size:
        raise ValueError(f"expected {y.size} one-hot choices of shape {(edges, ops)}, got {x.shape}")
    keep = np.isfinite(y)
    x, y, skipped = x[keep], y[keep], int((~keep).sum())
    if y.size == 0:
        raise ConfigError(f"{source or 'the table'}: no row has a {column} value to fit op costs to")
    names = space.edge_names()
    seen = x.sum(axis=0) > 0  # [edges, ops]
    columns: list[tuple[int, int]] = []  # the (edge, op) of each fitted feature after the constant
    for e in range(edges):
        unseen = [space.ops[o] for o in range(ops) if not seen[e, o] and not is_zero_op(space.ops[o])]
        if unseen:
            raise ConfigError(f"{source or 'the table'}: no architecture with a {column} value has "
                              f"{', '.join(unseen)} on edge {names[e]}, so its cost cannot be fitted: give a table "
                              "covering every op on every edge, or an op-level table")
        present = [o for o in range(ops) if seen[e, o]]
        exactly_one = bool(np.all(x[:, e, :].sum(axis=1) == 1.0))
        columns += [(e, o) for o in (present[1:] if exactly_one else present)]  # present[0]: the reference
    design = np.concatenate([np.ones((y.size, 1)), np.stack([x[:, e, o] for e, o in columns], axis=1)
                             if columns else np.zeros((y.size, 0))], axis=1)
    solution, _, _, _ = np.linalg.lstsq(design, y, rcond=None)  # minimum-norm where still rank-deficient
    matrix = np.zeros((edges, ops))
    for (e, o), value in zip(columns, solution[1:]):
        matrix[e, o] = value
    residual = y - design @ solution
    total = float(((y - y.mean()) ** 2).sum())
    sse = float((residual ** 2).sum())
    r2 = 1.0 - sse / total if total > 0 else (1.0 if sse <= 1e-18 else 0.0)
    nonzero = y != 0
    relative = np.abs(residual[nonzero] / y[nonzero])
    fit = Fit(r2, int(y.size), skipped, design.shape[1], math.sqrt(sse / y.size),
              float(relative.mean()) if relative.size else math.nan,
              float(np.median(relative)) if relative.size else math.nan)
    return OpCosts(column, torch.from_numpy(matrix), float(solution[0]), source, fit)


# ------------------------------------------------------------------------------------------------ reading
def split_spec(spec: str) -> tuple[str, str | None]:
    """``FILE[:COLUMN]`` as (file, column or None). A path that exists as given is a file without a column (so
    a file name holding ``:`` still works)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("--cost-table needs FILE[:COLUMN], e.g. latency.csv:pixel3_ms")
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    path, column = spec.rsplit(":", 1)
    if not column or "/" in column or os.sep in column:
        return spec, None
    return path, column


def _rows(path: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a bounded CSV file (one :class:`ConfigError` line for anything else)."""
    what = "a cost table CSV (edge,op,COLUMN... or arch,COLUMN...)"
    try:
        text = read_bounded(path, "table_bytes", what)
    except FileNotFoundError:
        raise ConfigError(f"cost table {shown(path)} does not exist: give FILE[:COLUMN] of a CSV, e.g. "
                          "latency.csv:pixel3_ms") from None
    except OSError as err:
        raise ConfigError(f"cost table {shown(path)} cannot be read ({type(err).__name__}: {err.strerror}): give a "
                          "readable file") from None
    if "\x00" in text:
        raise ConfigError(f"{shown(path)} holds NUL bytes, which no CSV text has: give {what}")
    try:
        table = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as err:
        raise ConfigError(f"{shown(path)} is not a CSV table ({str(err)[:100]}): give {what}") from None
    table = [row for row in table if row]  # blank lines
    if not table:
        raise ConfigError(f"{shown(path)} is empty: give {what}")
    header = [name.strip() for name in table[0]]
    for number, row in enumerate(table[1:], start=2):
        if len(row) != len(header):
            raise ConfigError(f"{shown(path)}, line {number}: {len(row)} values for the {len(header)} columns of the "
                              f"header ({', '.join(header)[:200]}): give {what}")
    return header, table[1:]


def _pick_column(path: str, header: list[str], keys: Sequence[str], column: str | None) -> int:
    """The index of the cost column asked for (or of the only one)."""
    costs = [name for name in header if name not in keys]
    listed = ", ".join(costs)[:400]
    if column is None:
        if len(costs) != 1:
            raise ConfigError(f"{shown(path)} has {len(costs)} cost columns ({listed}): name one, e.g. "
                              f"--cost-table {path}:{costs[0] if costs else 'COLUMN'}")
        column = costs[0]
    if column not in costs:
        raise ConfigError(f"{shown(path)} has no cost column {shown(column)}: it has {listed or 'none'}")
    if header.count(column) > 1:
        raise ConfigError(f"{shown(path)} has the column {shown(column)} more than once: rename one")
    return header.index(column)


def _number(path: str, line: int, text: str, column: str) -> float:
    """A cost value; empty or ``nan`` is NaN (a missing value)."""
    text = text.strip()
    if text == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{shown(path)}, line {line}: {column} {shown(text)} is not a number") from None
    if math.isinf(value):
        raise ConfigError(f"{shown(path)}, line {line}: {column} is infinite: give a finite cost")
    return value


def load_costs(spec: str, space: SearchSpace) -> OpCosts:
    """The costs of ``space`` in column ``COLUMN`` of ``FILE`` (``spec`` = ``FILE[:COLUMN]``; COLUMN may be left
    out when the file has one cost column): read from an op-level table, or fitted to a per-architecture table
    (see the module docstring). Every problem with the file is one :class:`ConfigError` line."""
    path, column = split_spec(spec)
    header, rows = _rows(path)
    if header[:2] == list(OP_KEYS):
        index = _pick_column(path, header, OP_KEYS, column)
        return _op_level(path, space, header[index], [(r[0].strip(), r[1].strip(), r[index], n)
                                                       for n, r in enumerate(rows, start=2)])
    if header[:1] == [ARCH_KEY]:
        index = _pick_column(path, header, (ARCH_KEY,), column)
        return _per_architecture(path, space, header[index], [(r[0], r[index], n) for n, r in enumerate(rows, start=2)])
    raise ConfigError(f"{shown(path)} starts with the columns {', '.join(header[:3])[:120]}: a cost table starts with "
                      "edge,op (per op, as `drnas latency` writes) or arch (one row per architecture)")


def _op_level(path: str, space: SearchSpace, column: str, rows: list[tuple[str, str, str, int]]) -> OpCosts:
    edges = {name: e for e, name in enumerate(space.edge_names())}
    ops = {name: o for o, name in enumerate(space.ops)}
    matrix = np.full((space.num_edges, len(space.ops)), np.nan)
    constant = math.nan
    for edge, op, text, line in rows:
        if (edge, op) == (CONSTANT, CONSTANT):
            if not math.isnan(constant):
                raise ConfigError(f"{shown(path)}, line {line}: a second {CONSTANT},{CONSTANT} row: keep one")
            constant = _number(path, line, text, column)
            continue
        if edge not in edges:
            raise ConfigError(f"{shown(path)}, line {line}: edge {shown(edge)} is not an edge of the {space.name} "
                              f"space ({', '.join(edges)[:200]}): is it a table of another space?")
        if op not in ops:
            continue  # an op this space leaves out
        if not math.isnan(matrix[edges[edge], ops[op]]):
            raise ConfigError(f"{shown(path)}, line {line}: edge {edge}, op {op} is listed twice: keep one row")
        value = _number(path, line, text, column)
        if math.isnan(value):
            raise ConfigError(f"{shown(path)}, line {line}: edge {edge}, op {op} has no {column} value: give one")
        matrix[edges[edge], ops[op]] = value
    missing = [(space.edge_names()[e], space.ops[o]) for e, o in zip(*np.nonzero(np.isnan(matrix)))]
    if missing:
        listed = ", ".join(f"{op} on {edge}" for edge, op in missing[:4])
        raise ConfigError(f"{shown(path)} lacks {len(missing)} (edge, op) costs of the {space.name} space's ops "
                          f"({listed}{', ...' if len(missing) > 4 else ''}): measure it for this space, e.g. "
                          f"`drnas latency --space {space.name} --out FILE`")
    if math.isnan(constant):
        raise ConfigError(f"{shown(path)} has no {CONSTANT},{CONSTANT} row with the constant (the network's fixed "
                          f"parts) in {column}: add one, e.g. `*,*,0`")
    return OpCosts(column, torch.from_numpy(matrix), constant, str(path))


def _per_architecture(path: str, space: SearchSpace, column: str, rows: list[tuple[str, str, int]]) -> OpCosts:
    archs, values, other_ops = [], [], 0
    for text, value, line in rows:
        try:
            arch = space.parse(text)
            if space.one_op_per_edge and any(op not in space.ops for op in arch.ops):
                other_ops += 1  # an architecture outside this space's ops: not one it can pick
                continue
        except ArchitectureError as err:
            raise ConfigError(f"{shown(path)}, line {line}: not an architecture of the {space.name} space "
                              f"({str(err)[:160]}): give a table of this space") from None
        archs.append(arch)
        values.append(_number(path, line, value, column))
    if not archs:
        raise ConfigError(f"{shown(path)} holds no architecture of this {space.name} space's ops "
                          f"({', '.join(space.ops)})")
    costs = fit_op_costs(space, archs, values, column, str(path))
    fit = costs.fit if not other_ops or costs.fit is None else Fit(
        **{**costs.fit.to_json(), "skipped": costs.fit.skipped + other_ops})
    lookup = {str(a): v for a, v in zip(archs, values) if not math.isnan(v)}
    return dataclasses.replace(costs, fit=fit, lookup=lookup)


# ------------------------------------------------------------------------------------------------ writing
def op_table_text(space: SearchSpace, costs: Sequence[OpCosts]) -> str:
    """The op-level CSV of one or more cost columns of ``space`` (values written exactly: they read back equal)."""
    if not costs:
        raise ValueError("an op-level table needs at least one cost column")
    shape = (space.num_edges, len(space.ops))
    for c in costs:
        if tuple(c.matrix.shape) != shape:
            raise ValueError(f"cost column {c.column} has shape {tuple(c.matrix.shape)}, not the space's {shape}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(OP_KEYS) + [c.column for c in costs])
    for e, edge in enumerate(space.edge_names()):
        for o, op in enumerate(space.ops):
            writer.writerow([edge, op] + [repr(float(c.matrix[e, o])) for c in costs])
    writer.writerow([CONSTANT, CONSTANT] + [repr(float(c.constant)) for c in costs])
    return out.getvalue()


def write_op_table(path: str | os.PathLike, space: SearchSpace, costs: Sequence[OpCosts]) -> None:
    """Write :func:`op_table_text` to ``path`` atomically (a crash leaves any previous file whole)."""
    atomic_write_bytes(Path(path), op_table_text(space, costs).encode("utf-8"))


def cost_fields(costs: OpCosts, strategy: Any, space: Any, arch: Any) -> dict[str, Any]:
    """An epoch's record of a search under a cost: ``expected_cost`` (E[cost] under the distribution) and
    ``arch_cost``, the derived architecture's table cost (None in a space that cannot list an architecture's
    (edge, op) choices, as DARTS' cells, which pick two inputs per node)."""
    with torch.no_grad():
        expected = strategy.expected_cost()
    try:
        arch_cost: float | None = costs.of_architecture(space, arch)
    except ConfigError:
        arch_cost = None
    return {"expected_cost": float(expected) if expected is not None else None, "arch_cost": arch_cost}


def check_costs(costs: Any, strategy: Any, relax: dict[str, Any], run_dir: Any) -> None:
    """A run searches under the costs it started with, which its checkpoint holds (``relax``, the strategy's
    state): a cost table whose file changed since, or a config.json that lost it, refuses the resume in one line."""
    if costs is None:
        if relax.get("cost") is not None:
            raise RunError(f"this run searched under a cost table its config.json no longer names (cost_table): "
                           f"restore {run_dir.config if run_dir else 'config.json'}, or start a new run")
        return
    saved, now = [relax.get("cost"), relax.get("cost_constant")], [strategy.cost, strategy.cost_constant]
    if any(a is None or b is None or not torch.equal(a.cpu(), b.cpu()) for a, b in zip(saved, now)):
        raise RunError(f"the cost table {costs.source} holds other costs than when this run started (the checkpoint "
                       f"keeps those): restore the file it started with, or start a new run")


__all__ = ["CONSTANT", "Fit", "OpCosts", "check_costs", "cost_fields", "fit_op_costs", "load_costs", "one_hot",
           "one_hots", "op_table_text", "split_spec", "write_op_table"]
