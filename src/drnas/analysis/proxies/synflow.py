"""``synflow``: synaptic flow through the network with every weight made positive, for an all-ones input.

Tanaka, Kunin, Yamins & Ganguli, Pruning neural networks without any data by iteratively conserving synaptic flow,
NeurIPS 2020; summed as a NAS proxy by Abdelfattah et al., ICLR 2021. Every parameter and BatchNorm statistic is
replaced by its absolute value, the network runs in double precision in evaluation mode (BatchNorm with its initial
statistics, i.e. nearly the identity) on one all-ones image, and with ``R`` the sum of the logits the score is
``log sum |W * dR/dW|`` over conv/linear weights (the sum grows exponentially with depth, past what a float32
holds for a DARTS network: its natural logarithm is reported, as NASLib's published scores are; ranks are the
same). It reads no data (only the images' shape).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from drnas.analysis.proxies.base import logits_of, register_proxy, weight_layers


@register_proxy("synflow", doc="synaptic flow log sum |W * dR/dW| of the all-positive network on a ones input",
                needs_data=False,
                paper="Tanaka et al., Pruning neural networks without any data by iteratively conserving synaptic "
                      "flow, NeurIPS 2020")
def synflow(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``log sum_l sum |W_l * dR/dW_l|`` (the network is changed in place: the driver hands each proxy a copy)."""
    network.double().eval()
    with torch.no_grad():
        for value in network.state_dict().values():
            if value.is_floating_point():
                value.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    layers = weight_layers(network)
    total = logits_of(network(ones)).sum()
    grads = torch.autograd.grad(total, [m.weight for m in layers], allow_unused=True)
    flow = sum((m.weight.detach() * g).abs().sum() for m, g in zip(layers, grads) if g is not None)
    return math.log(float(flow)) if float(flow) > 0 else -math.inf
