"""``fisher``: the Fisher information of every channel of the network, summed.

Theis, Korshunova, Tejani & Huszár, Faster gaze prediction with dense networks and Fisher pruning, arXiv 2018 (and
Turner et al., BlockSwap, ICLR 2020); as a NAS proxy in Abdelfattah et al., ICLR 2021. For the output ``a`` of every
convolution and linear layer and ``g = dL/da`` (L the mean cross-entropy of one batch), channel ``k`` scores
``F_k = 1/2 * mean over images n of (sum over positions of a * g)[n, k]^2``. Abdelfattah et al. give every weight
the score of the channel it feeds and sum over all weights: the network scores ``sum_k F_k * |W_k|``, ``|W_k|``
the number of weights of output channel ``k`` (``C_in / groups * k_h * k_w``; a linear layer's inputs).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from drnas.analysis.proxies.base import logits_of, register_proxy, weight_layers


@register_proxy("fisher", doc="channel Fisher information 1/2 mean_n (sum a * dL/da)^2, summed over the weights",
                paper="Theis et al., Faster gaze prediction with dense networks and Fisher pruning, arXiv 2018")
def fisher(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``sum_k |W_k| * 1/2 mean_n (sum_positions a * dL/da)_{n,k}^2`` over the outputs of the conv/linear layers."""
    outputs: list[tuple[nn.Module, torch.Tensor]] = []  # in call order (a layer called twice: twice)

    def keep(module: nn.Module, args: Any, out: torch.Tensor) -> None:
        outputs.append((module, out))

    hooks = [m.register_forward_hook(keep) for m in weight_layers(network)]
    try:
        loss = F.cross_entropy(logits_of(network(x)), y)
    finally:
        for hook in hooks:
            hook.remove()
    grads = torch.autograd.grad(loss, [out for _, out in outputs], allow_unused=True)
    total = torch.zeros((), dtype=torch.float64)
    for (layer, a), g in zip(outputs, grads):
        if g is None:
            continue
        per_channel = (a.detach() * g).double()
        if per_channel.dim() > 2:
            per_channel = per_channel.flatten(2).sum(-1)
        total += 0.5 * per_channel.pow(2).mean(0).sum() * layer.weight[0].numel()
    return float(total)
