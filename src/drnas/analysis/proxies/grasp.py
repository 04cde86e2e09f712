"""``grasp``: gradient signal preservation, summed over the network.

Wang, Zhang & Grosse, Picking Winning Tickets Before Training by Preserving Gradient Flow, ICLR 2020; summed as a
NAS proxy by Abdelfattah et al., ICLR 2021: ``sum -W * (H g)`` over conv/linear weights, with ``g = dL/dW`` and
``H`` the Hessian of the mean cross-entropy ``L`` of one batch (``H g`` is a Hessian-vector product: the gradient
of ``g . stop_gradient(g)``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from drnas.analysis.proxies.base import logits_of, register_proxy, weight_layers


@register_proxy("grasp", doc="gradient signal preservation sum -W * (H g)",
                paper="Wang et al., Picking Winning Tickets Before Training by Preserving Gradient Flow, ICLR 2020")
def grasp(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``sum_l sum -W_l * (H g)_l``."""
    weights = [m.weight for m in weight_layers(network)]
    loss = F.cross_entropy(logits_of(network(x)), y)
    grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    used = [(w, g) for w, g in zip(weights, grads) if g is not None]
    inner = sum((g * g.detach()).sum() for _, g in used)
    hg = torch.autograd.grad(inner, [w for w, _ in used], allow_unused=True)
    return float(sum((-w.detach() * h).double().sum() for (w, _), h in zip(used, hg) if h is not None))
