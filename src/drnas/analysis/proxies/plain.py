"""``plain``: the first-order Taylor estimate of the loss change when every weight is removed, signed.

Mozer & Smolensky, Skeletonization: A Technique for Trimming the Fat from a Network via Relevance Assessment,
NeurIPS 1989; as a NAS proxy in Abdelfattah et al., ICLR 2021: ``sum dL/dW * W`` over conv/linear weights (no
absolute value, unlike snip), L the mean cross-entropy of one batch.
"""
from __future__ import annotations

import torch
from torch import nn

from drnas.analysis.proxies.base import loss_gradients, register_proxy, weight_layers


@register_proxy("plain", doc="signed saliency sum dL/dW * W",
                paper="Mozer & Smolensky, Skeletonization, NeurIPS 1989 (as a proxy: Abdelfattah et al., ICLR 2021)")
def plain(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``sum_l sum dL/dW_l * W_l``."""
    grads = loss_gradients(network, x, y)
    return float(sum((g * m.weight.detach()).double().sum() for g, m in zip(grads, weight_layers(network))))
