"""RobustDARTS' four reduced DARTS spaces (Zela et al., "Understanding and Robustifying Differentiable
Architecture Search", ICLR 2020, §3), where DARTS fails: DARTS' cells, supernet, derivation and retraining
protocol with other candidate ops.

* ``darts-s1``: two ops per edge, different on every edge of the normal and of the reduction cell: the pairs the
  paper kept as the two strongest of a DARTS search (its released ``primitives_1``), searched as the union of the
  ops with every other op masked out from the start (:meth:`DartsS1.allowed_ops`);
* ``darts-s2``: skip_connect and sep_conv_3x3 on every edge;
* ``darts-s3``: none, skip_connect and sep_conv_3x3;
* ``darts-s4``: noise and sep_conv_3x3, ``noise`` being Gaussian noise N(0, 1) of the edge's output shape,
  which passes nothing of its input (registered here as an op).

Their architectures are DARTS genotypes: ``drnas train`` retrains them with the DARTS protocol.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from drnas.spaces.base import ArchitectureError, register_space
from drnas.spaces.darts import EDGES_PER_CELL, DartsSpace
from drnas.spaces.ops import register_op


class Noise(nn.Module):
    """RobustDARTS' ``noise`` op: N(mean, std) noise of the output shape (the input subsampled by the stride),
    drawn afresh at every call, in training and evaluation alike, from the run's random stream."""

    def __init__(self, stride: int, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.stride, self.mean, self.std = stride, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x[:, :, ::self.stride, ::self.stride].shape
        return torch.empty(shape, device=x.device, dtype=x.dtype).normal_(self.mean, self.std)


@register_op("noise")
def _noise(c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> nn.Module:
    if c_in != c_out:
        raise ValueError(f"the noise op keeps the channels, got {c_in} in and {c_out} out")
    return Noise(stride)


class _FixedOps(DartsSpace):
    """A DARTS space whose candidate ops are its own (``OPS``); a config's ``ops`` may only repeat them."""

    OPS: tuple[str, ...] = ()
    #: the space whose code this one runs with other ops (the suite's space-by-space tests run that one's)
    variant_of = "darts"

    def __init__(self, ops: Sequence[str] | None = None) -> None:
        if ops is not None and tuple(ops) != self.OPS:
            raise ArchitectureError(f"space {self.name} searches its own ops {', '.join(self.OPS)}: drop ops "
                                    f"(or search the darts space with --set ops=...)")
        super().__init__(self.OPS)


@register_space("darts-s2")
class DartsS2(_FixedOps):
    """RobustDARTS' S2: skip_connect and sep_conv_3x3 on every edge."""

    name = "darts-s2"
    OPS = ("skip_connect", "sep_conv_3x3")


@register_space("darts-s3")
class DartsS3(_FixedOps):
    """RobustDARTS' S3: none, skip_connect and sep_conv_3x3 on every edge."""

    name = "darts-s3"
    OPS = ("none", "skip_connect", "sep_conv_3x3")


@register_space("darts-s4")
class DartsS4(_FixedOps):
    """RobustDARTS' S4: noise and sep_conv_3x3 on every edge."""

    name = "darts-s4"
    OPS = ("noise", "sep_conv_3x3")


#: S1's two ops of every edge, in the DARTS cell's edge order (node 2 from 0, 1; node 3 from 0, 1, 2; ...): the
#: normal cell's 14 edges, then the reduction cell's (RobustDARTS' released primitives_1)
S1_NORMAL = (("skip_connect", "dil_conv_3x3"), ("skip_connect", "dil_conv_5x5"), ("skip_connect", "dil_conv_5x5"),
             ("skip_connect", "sep_conv_3x3"), ("skip_connect", "dil_conv_3x3"), ("max_pool_3x3", "skip_connect"),
             ("skip_connect", "sep_conv_3x3"), ("skip_connect", "sep_conv_3x3"), ("skip_connect", "dil_conv_3x3"),
             ("skip_connect", "sep_conv_3x3"), ("max_pool_3x3", "skip_connect"), ("skip_connect", "dil_conv_3x3"),
             ("dil_conv_3x3", "dil_conv_5x5"), ("dil_conv_3x3", "dil_conv_5x5"))
S1_REDUCE = (("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "dil_conv_3x3"), ("max_pool_3x3", "avg_pool_3x3"),
             ("max_pool_3x3", "avg_pool_3x3"), ("skip_connect", "dil_conv_5x5"), ("max_pool_3x3", "avg_pool_3x3"),
             ("max_pool_3x3", "sep_conv_3x3"), ("skip_connect", "dil_conv_3x3"), ("skip_connect", "dil_conv_5x5"),
             ("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "avg_pool_3x3"), ("skip_connect", "dil_conv_5x5"),
             ("skip_connect", "dil_conv_5x5"), ("skip_connect", "dil_conv_5x5"))


@register_space("darts-s1")
class DartsS1(_FixedOps):
    """RobustDARTS' S1: two ops per edge, its own pair on every edge."""

    name = "darts-s1"
    OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3", "dil_conv_5x5")
    assert len(S1_NORMAL) == len(S1_REDUCE) == EDGES_PER_CELL

    def allowed_ops(self) -> torch.Tensor:
        """bool ``[edges, ops]``: the ops each edge searches (its pair); the strategy masks the others out."""
        allowed = torch.zeros(self.num_edges, len(self.ops), dtype=torch.bool)
        for edge, pair in enumerate(S1_NORMAL + S1_REDUCE):
            for op in pair:
                allowed[edge, self.ops.index(op)] = True
        return allowed
