"""``nwot``: how distinct the ReLU activation patterns of a batch's images are.

Mellor, Turner, Storkey & Crowley, Neural Architecture Search without Training, ICML 2021. Every ReLU unit
gives each image a binary code (active or not); ``K_H[i, j]`` counts the units on which images ``i`` and ``j``
agree (the number of units minus the Hamming distance of their codes), and the score is ``log |det K_H|``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from drnas.analysis.proxies.base import register_proxy


@register_proxy("nwot", doc="log|det K_H|, K_H the agreement of the images' ReLU codes",
                paper="Mellor et al., Neural Architecture Search without Training, ICML 2021")
@torch.no_grad()
def nwot(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``log |det K_H|`` of the batch."""
    kernel = torch.zeros(len(x), len(x), dtype=torch.float64, device=x.device)

    def count(module: nn.Module, args: Any, out: torch.Tensor) -> None:
        nonlocal kernel
        codes = (out.detach().flatten(1) > 0).double()  # relu(a) > 0 exactly where a > 0 (in-place ReLUs too)
        kernel = kernel + codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T

    hooks = [m.register_forward_hook(count) for m in network.modules() if isinstance(m, nn.ReLU)]
    try:
        network(x)
    finally:
        for hook in hooks:
            hook.remove()
    return float(torch.linalg.slogdet(kernel)[1])
