"""``grad_norm``: the summed Euclidean norm of every layer's loss gradient at initialisation.

Abdelfattah, Mehrotra, Dudziak & Lane, Zero-Cost Proxies for Lightweight NAS, ICLR 2021 (its "grad_norm"
baseline): ``sum over conv/linear layers l of ||dL/dW_l||_2``, L the mean cross-entropy of one batch.
"""
from __future__ import annotations

import torch
from torch import nn

from drnas.analysis.proxies.base import loss_gradients, register_proxy


@register_proxy("grad_norm", doc="sum of the layers' loss-gradient norms ||dL/dW||",
                paper="Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021")
def grad_norm(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``sum_l ||dL/dW_l||_2`` over the convolutions and linear layers."""
    return float(sum(g.double().norm() for g in loss_gradients(network, x, y)))
