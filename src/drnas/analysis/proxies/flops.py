"""``flops``: the evaluation network's FLOPs for one image, in millions (NAS-Bench-201's "FLOPs (M)").

Counted by NAS-Bench-201's rule (Dong & Yang, ICLR 2020): a convolution costs ``k_h * k_w * C_in / groups * C_out``
per output position (plus one per output value for a bias), a linear layer ``in * out`` (plus ``out`` for a
bias); pooling, BatchNorm and activations are not counted. A baseline of Abdelfattah et al., ICLR 2021.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from drnas.analysis.proxies.base import logits_of, register_proxy


def layer_flops(module: nn.Module, out: torch.Tensor) -> int:
    """FLOPs of one image through one conv or linear layer (NAS-Bench-201's rule), ``out`` its output."""
    if isinstance(module, nn.Conv2d):
        positions = out.shape[-1] * out.shape[-2]
        kernel = module.kernel_size[0] * module.kernel_size[1] * (module.in_channels // module.groups)
        return positions * module.out_channels * (kernel + (1 if module.bias is not None else 0))
    if isinstance(module, nn.Linear):
        return module.out_features * (module.in_features + (1 if module.bias is not None else 0))
    return 0


@register_proxy("flops", doc="FLOPs of one image through the evaluation network, millions", needs_data=False,
                paper="Dong & Yang, NAS-Bench-201, ICLR 2020 (as a proxy: Abdelfattah et al., ICLR 2021)")
@torch.no_grad()
def flops(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs / 1e6 of one image of ``x``'s shape."""
    total = 0

    def count(module: nn.Module, args: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += layer_flops(module, out)

    hooks = [m.register_forward_hook(count) for m in network.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = network.training
    network.eval()  # one image: BatchNorm in training mode would need more than one value per channel
    try:
        logits_of(network(x[:1]))
    finally:
        network.train(was_training)
        for hook in hooks:
            hook.remove()
    return total / 1e6
