"""``params``: the evaluation network's parameters, in millions (NAS-Bench-201's "params (MB)").

Counted as NAS-Bench-201 counts them (Dong & Yang, ICLR 2020): every parameter, BatchNorm's affine ones included,
without an auxiliary head. A baseline of Abdelfattah et al., ICLR 2021 and NAS-Bench-Suite-Zero.
"""
from __future__ import annotations

import torch
from torch import nn

from drnas.analysis.proxies.base import register_proxy


@register_proxy("params", doc="parameters of the evaluation network, millions", needs_data=False,
                paper="Dong & Yang, NAS-Bench-201, ICLR 2020 (as a proxy: Abdelfattah et al., ICLR 2021)")
def params(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Parameters / 1e6 (the auxiliary head left out)."""
    return sum(p.numel() for name, p in network.named_parameters() if "auxiliary" not in name) / 1e6
