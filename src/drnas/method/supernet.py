"""The mixed op and the supernet machinery shared by every search space.

* :class:`MixedOp` is one edge of a cell: the weighted sum of its candidate ops, with partial channels
  (PC-DARTS style, paper §2.4): only the first ``1/K`` of the channels go through the ops, the rest bypass
  them, and a channel shuffle mixes the two parts for the next layer.
* :func:`cell_nodes` evaluates a cell written once for both spaces: the edges leaving a node are evaluated
  together, and each node joins its partial channels and shuffles once instead of once per incoming edge.
  What runs a node's ops and joins its channels is the cell's ``paths``: plain here, fused by
  :func:`drnas.fast.fusion.install` (each candidate op once for all the edges, the join in one pass).
* An op's output may be dropped out while the network trains (``MixedOp.drop``: P-DARTS' dropout on skip
  connections), on every path alike: :func:`mix_from_source` applies it to the weighted terms the paths return.
* Pruned ops and the zero op are skipped exactly: the list of ops to run is kept on the host and only
  changes at stage transitions, so no forward pass looks at a device tensor to decide what to run.
* Widening (eq. 8-9): when ``K`` shrinks, every op is rebuilt with more channels and its parameters and
  buffers are filled with ``U[o, i, ...] = W[g(o), g(i), ...]`` where ``g(j) = j`` for old channels and a
  random old channel otherwise, without Net2Net's division by the replication factor. The SGD momentum of
  each widened tensor is mapped the same way, so the optimizer keeps its state across stages.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: builds one candidate op: ``factory(name, c_in, c_out, stride, affine, track_running_stats)``; the space hands
#: in its own (an op module with ``is_zero = True`` outputs zeros, and mixed ops skip it exactly)
OpFactory = Callable[[str, int, int, int, bool, bool], nn.Module]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` channel groups (ShuffleNet), so the next layer's partial slice mixes both parts."""
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # shuffle the innermost (channel) dim of the NHWC data, so the result stays channels_last
        nhwc = x.permute(0, 2, 3, 1).reshape(n, h, w, groups, c // groups)
        return nhwc.transpose(3, 4).reshape(n, h, w, c).permute(0, 3, 1, 2)
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def join_and_shuffle(ops: torch.Tensor, bypass: torch.Tensor, groups: int) -> torch.Tensor:
    """A partial-channel node: the op channels and the bypassed channels, concatenated and shuffled."""
    return channel_shuffle(torch.cat([ops, bypass], dim=1), groups)


def run_ops(modules: Sequence[nn.Module], x: torch.Tensor, scales: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``[s * m(x)]``: one candidate op of several edges that read the same node, each scaled by its weight."""
    return [s * m(x) for s, m in zip(scales, modules)]


class CellPaths:
    """How a cell runs the pieces the fast paths replace; :class:`SearchCell` uses these plain ones until
    :func:`drnas.fast.fusion.install` gives it faster ones that compute the same."""

    run_ops = staticmethod(run_ops)
    join_and_shuffle = staticmethod(join_and_shuffle)


PLAIN_CELL = CellPaths()


def widen_mapping(old: int, new: int, generator: torch.Generator) -> torch.Tensor:
    """The random mapping g of eq. (8): identity on the first ``old`` indices, random old ones after."""
    if new < old:
        raise ValueError(f"cannot widen from {old} to {new} channels")
    extra = torch.randint(0, old, (new - old,), generator=generator)
    return torch.cat([torch.arange(old), extra])


class WidenMapping:
    """The random maps g of eq. (8) of one edge: one per (old size, new size), drawn once and then reused for
    weights, BN statistics and momentum alike, so every tensor of the edge is widened consistently."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator
        self.maps: dict[tuple[int, int], torch.Tensor] = {}

    def __call__(self, old: int, new: int) -> torch.Tensor:
        if (old, new) not in self.maps:
            self.maps[(old, new)] = widen_mapping(old, new, self.generator)
        return self.maps[(old, new)]


def widen_tensor(old: torch.Tensor, new_shape: Sequence[int],
                 mapping: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
    """Eq. (9) for any tensor: every dim that grows from n to q is indexed by ``mapping(n, q)`` (= g)."""
    if old.dim() != len(new_shape):
        raise ValueError(f"cannot widen a tensor of shape {tuple(old.shape)} to {tuple(new_shape)}")
    out = old
    for dim, (before, after) in enumerate(zip(old.shape, new_shape)):
        if before == after:
            continue
        index = mapping(before, after) if after > before else None
        if index is None or len(index) != after:
            raise ValueError(f"cannot widen a tensor of shape {tuple(old.shape)} to {tuple(new_shape)}")
        out = out.index_select(dim, index.to(out.device))
    return out.clone()


class MixedOp(nn.Module):
    """One edge: ``sum_o theta_o * op_o(x)`` over the kept ops, on ``channels // partial_k`` channels."""

    def __init__(self, op_names: Sequence[str], channels: int, stride: int = 1, partial_k: int = 1,
                 affine: bool = False, track_running_stats: bool = True, *, op_factory: OpFactory) -> None:
        super().__init__()
        if channels % partial_k:
            raise ValueError(f"partial_k={partial_k} must divide the {channels} channels of every edge")
        self.op_names = tuple(op_names)
        self.channels, self.stride, self.partial_k = channels, stride, partial_k
        self._affine, self._track, self._op_factory = affine, track_running_stats, op_factory
        self.ops = nn.ModuleList(self._build_ops(channels // partial_k))
        # Partial channels bypass the ops; at stride 2 they are pooled to the output resolution (PC-DARTS).
        self.bypass_pool = nn.MaxPool2d(2, 2) if stride == 2 else nn.Identity()
        self.zero_ops = frozenset(i for i, op in enumerate(self.ops) if getattr(op, "is_zero", False))
        self.active: list[int] = [i for i in range(len(self.op_names)) if i not in self.zero_ops]
        #: op index -> probability of dropping each element of that op's output in training mode (a part sets it
        #: before every epoch: P-DARTS' skip dropout); empty: nothing dropped
        self.drop: dict[int, float] = {}

    def _build_ops(self, width: int) -> list[nn.Module]:
        return [self._op_factory(name, width, width, self.stride, self._affine, self._track) for name in self.op_names]

    @property
    def width(self) -> int:
        return self.channels // self.partial_k

    def set_kept(self, kept: Sequence[int]) -> None:
        """Run only these ops (pruned and zero ops are skipped exactly)."""
        self.active = [i for i in kept if i not in self.zero_ops]

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        (out,), bypass = mix_from_source(x, [self], [weights])
        return join_partial([out], [bypass] if bypass is not None else [], self.partial_k)

    def zeros(self, part: torch.Tensor) -> torch.Tensor:
        """The output of an edge whose kept ops are all the zero op."""
        h = (part.shape[2] + self.stride - 1) // self.stride
        return part.new_zeros(part.shape[0], self.width, h, h)

    @torch.no_grad()
    def widen(self, partial_k: int, generator: torch.Generator) -> dict[nn.Parameter, tuple[nn.Parameter, WidenMapping]]:
        """Rebuild the ops at ``channels // partial_k`` channels, filled by eq. (9).

        Returns ``{old_param: (new_param, mapping)}`` so the caller can carry optimizer state.
        """
        if self.channels % partial_k:
            raise ValueError(f"partial_k={partial_k} must divide the {self.channels} channels of every edge")
        old_width, new_width = self.width, self.channels // partial_k
        if new_width == old_width:
            return {}
        mapping = WidenMapping(generator)  # one g per edge (and size), shared by its ops
        mapping(old_width, new_width)      # the edge's channel map is drawn first
        device = next(iter(self.buffers()), torch.empty(0)).device
        new_ops = [op.to(device).train(self.training) for op in self._build_ops(new_width)]
        carried: dict[nn.Parameter, tuple[nn.Parameter, WidenMapping]] = {}
        for old_op, new_op in zip(self.ops, new_ops):
            for old_p, new_p in zip(old_op.parameters(), new_op.parameters()):
                new_p.copy_(widen_tensor(old_p, new_p.shape, mapping))
                carried[old_p] = (new_p, mapping)
            for old_b, new_b in zip(old_op.buffers(), new_op.buffers()):
                new_b.copy_(widen_tensor(old_b, new_b.shape, mapping))
        self.ops = nn.ModuleList(new_ops)
        self.partial_k = partial_k
        return carried


def mix_from_source(x: torch.Tensor, edges: Sequence[MixedOp], weights: Sequence[torch.Tensor],
                    paths: CellPaths = PLAIN_CELL) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """The mixed ops of every edge leaving one node, before partial-channel joining.

    Returns ``(outputs, bypass)``: per edge ``sum_o weights[e][o] * op_o(x[:, :width])`` over its kept ops,
    and the bypassed channels ``x[:, width:]`` (pooled at stride 2), shared by the edges, or None when K=1.
    The edges must have the same width and stride (they do: they leave the same node of one cell). Each op's
    copies on the edges that keep it go to ``paths.run_ops`` together (which the fast paths run as one op).
    """
    first = edges[0]
    # one split rather than two slices: its backward writes both gradients into one tensor, where each slice's
    # would zero-fill a full-size tensor
    part, rest = (x, None) if first.partial_k == 1 else x.split([first.width, x.shape[1] - first.width], dim=1)
    keeping: dict[int, list[int]] = {}
    for position, mixed in enumerate(edges):
        for op_index in mixed.active:
            keeping.setdefault(op_index, []).append(position)
    outputs: list[torch.Tensor | None] = [None] * len(edges)
    for op_index in sorted(keeping):
        positions = keeping[op_index]
        ops = [edges[p].ops[op_index] for p in positions]
        scales = [weights[p][op_index] for p in positions]
        terms = paths.run_ops(ops, part, scales)
        for p, term in zip(positions, terms):
            rate = edges[p].drop.get(op_index) if edges[p].training else None
            if rate:  # dropout(θ·op(x)) = θ·dropout(op(x)); drawn in the same order on every path
                term = F.dropout(term, rate)
            outputs[p] = term if outputs[p] is None else outputs[p] + term
    done = [out if out is not None else edges[p].zeros(part) for p, out in enumerate(outputs)]
    bypass = None if rest is None else first.bypass_pool(rest)
    return done, bypass


def join_partial(outputs: Sequence[torch.Tensor], bypasses: Sequence[torch.Tensor], partial_k: int,
                 paths: CellPaths = PLAIN_CELL) -> torch.Tensor:
    """A node: the sum of its incoming edges. With partial channels, the op outputs and the bypassed channels
    are summed apart and shuffled once (concatenation and shuffle are linear and the same for every edge)."""
    total = outputs[0]
    for out in outputs[1:]:
        total = total + out
    if partial_k == 1:
        return total
    bypass = bypasses[0]
    for other in bypasses[1:]:
        bypass = bypass + other
    return paths.join_and_shuffle(total, bypass, partial_k)


def cell_nodes(inputs: Sequence[torch.Tensor], edges: Sequence[tuple[int, int]], mixed: Sequence[MixedOp],
               theta: torch.Tensor, edge_scale: torch.Tensor | None = None,
               paths: CellPaths = PLAIN_CELL) -> list[torch.Tensor]:
    """All nodes of a cell. ``edges[e] = (target, source)`` node ids, mixed op ``mixed[e]`` with weights
    ``theta[e]``; nodes ``0..len(inputs)-1`` are the inputs and node t sums the edges into it. The edges
    leaving a node are evaluated together (:func:`mix_from_source`) once the node is complete.

    ``edge_scale[e]`` (PC-DARTS' edge normalisation) multiplies edge e's whole output, bypassed channels
    included: folded into ``theta[e]`` for the ops (Σ γθ·op = γ Σ θ·op) and applied to the bypass."""
    if edge_scale is not None:
        theta = theta * edge_scale.unsqueeze(-1)
    nodes = list(inputs)
    num_nodes = max(t for t, _ in edges) + 1
    incoming: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {t: ([], []) for t, _ in edges}
    for node in range(num_nodes):
        if node >= len(inputs):
            outs, bypasses = incoming[node]
            nodes.append(join_partial(outs, bypasses, mixed[0].partial_k, paths))
        leaving = [e for e, (_, source) in enumerate(edges) if source == node]
        if not leaving:
            continue
        outs, bypass = mix_from_source(nodes[node], [mixed[e] for e in leaving], [theta[e] for e in leaving], paths)
        for e, out in zip(leaving, outs):
            incoming[edges[e][0]][0].append(out)
            if bypass is not None:
                incoming[edges[e][0]][1].append(bypass if edge_scale is None else edge_scale[e] * bypass)
    return nodes


class SearchCell(nn.Module):
    """Base of every space's search cell: the unit :mod:`drnas.fast.compiled` compiles.

    ``paths``: how :func:`cell_nodes` runs a node's ops and joins its channels; the plain path until
    :func:`drnas.fast.fusion.install` gives the cell the fast one.
    """

    paths: CellPaths = PLAIN_CELL


class Supernet(nn.Module):
    """Base of every space's search network: ``forward(x, theta, edge_scale=None)`` with ``theta`` of shape
    ``[edges, ops]`` and an optional weight per edge ``[edges]`` (see :func:`cell_nodes`)."""

    def search_cells(self) -> Iterator[SearchCell]:
        return (m for m in self.modules() if isinstance(m, SearchCell))

    def mixed_ops(self) -> Iterator[tuple[int, MixedOp]]:
        """``(edge index into theta, mixed op)`` for every mixed op of the network."""
        raise NotImplementedError

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    @property
    def partial_k(self) -> int:
        return next(op for _, op in self.mixed_ops()).partial_k

    def set_kept(self, kept_ops: Sequence[Sequence[int]]) -> None:
        """Tell every mixed op which ops its edge still keeps (``kept_ops[edge]``)."""
        for edge, op in self.mixed_ops():
            op.set_kept(kept_ops[edge])

    @torch.no_grad()
    def widen(self, partial_k: int, generator: torch.Generator,
              optimizer: torch.optim.Optimizer | None = None) -> None:
        """Widen every mixed op to ``partial_k`` (eq. 8-9) and move the optimizer's state along."""
        carried: dict[nn.Parameter, tuple[nn.Parameter, WidenMapping]] = {}
        for _, op in self.mixed_ops():
            carried.update(op.widen(partial_k, generator))
        if optimizer is not None:
            carry_optimizer_state(optimizer, carried)


def carry_optimizer_state(optimizer: torch.optim.Optimizer,
                          carried: dict[nn.Parameter, tuple[nn.Parameter, WidenMapping]]) -> None:
    """Swap widened parameters into ``optimizer`` in place, widening their per-parameter state by eq. (9)."""
    for group in optimizer.param_groups:
        params = group["params"]
        for i, p in enumerate(params):
            if p not in carried:
                continue
            new_p, mapping = carried[p]
            params[i] = new_p
            state = optimizer.state.pop(p, None)
            if state:
                optimizer.state[new_p] = {
                    key: widen_tensor(value, new_p.shape, mapping)
                    if torch.is_tensor(value) and value.shape == p.shape else value
                    for key, value in state.items()
                }
