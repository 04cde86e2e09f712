"""The proxy registry and what several proxies share: the weighted layers they sum over, the loss gradients and
the input Jacobian of one batch.

A proxy is a function ``score(network, x, y) -> float`` of a freshly initialised network (in training mode, as
the papers' code scores it: BatchNorm normalises with the batch's statistics) and one batch of images ``x``
with labels ``y``; a larger score predicts a better architecture, except where the proxy's docstring says
otherwise. The driver (:mod:`drnas.analysis.proxies.score`) hands every proxy its own copy of the network, so
that no proxy sees another's gradients, BatchNorm statistics or changed weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from drnas.errors import ConfigError
from drnas.registry import Registry

#: ``score(network, images, labels) -> float``
ScoreFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]


@dataclass(frozen=True)
class Proxy:
    """A registered zero-cost proxy: its ``name``, ``score`` function, one-line ``doc`` and ``paper``.
    ``needs_data``: False for the proxies that read only the network (params, flops, l2_norm, synflow), which
    still receive the batch (its shape)."""

    name: str
    score: ScoreFn
    doc: str
    paper: str
    needs_data: bool = True


#: every registered proxy, in registration order
PROXIES: Registry[Proxy] = Registry("proxy", ConfigError)


def register_proxy(name: str, *, doc: str, paper: str, needs_data: bool = True) -> Callable[[ScoreFn], ScoreFn]:
    """``@register_proxy("name", doc=..., paper=...)`` above a ``score(network, x, y) -> float`` function."""
    def add(fn: ScoreFn) -> ScoreFn:
        PROXIES.register(name, Proxy(name, fn, doc, paper, needs_data), doc=doc)
        return fn

    return add


def get_proxy(name: str) -> Proxy:
    """The proxy registered as ``name`` (an unknown name is one :class:`ConfigError` line listing them)."""
    return PROXIES.get(name)


def proxy_names() -> tuple[str, ...]:
    return PROXIES.names()


# ------------------------------------------------------------------------------------------------ shared pieces
def weight_layers(network: nn.Module) -> list[nn.Module]:
    """The convolutions and linear layers, in module order: the layers the gradient-based proxies sum over
    (BatchNorm's affine parameters are left out, as in Abdelfattah et al.'s scores)."""
    return [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def logits_of(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The main logits of a network's output (a DARTS network with an auxiliary head returns a pair)."""
    return output[0] if isinstance(output, tuple) else output


def loss_gradients(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """dL/dW of every layer of :func:`weight_layers` for the mean cross-entropy ``L`` of the batch (zeros for a
    layer the loss does not reach)."""
    layers = weight_layers(network)
    loss = F.cross_entropy(logits_of(network(x)), y)
    grads = torch.autograd.grad(loss, [m.weight for m in layers], allow_unused=True)
    return [torch.zeros_like(m.weight) if g is None else g for m, g in zip(layers, grads)]


def input_jacobian(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``[batch, pixels]``: the gradient of the sum of all logits with respect to each input image, flattened
    (Mellor et al.'s per-image Jacobian; in training mode BatchNorm ties the images of a batch together, as it
    does in their code). A cell that does not pass its input on (every path through ``none``) gives zeros."""
    inputs = x.detach().clone().requires_grad_(True)
    logits = logits_of(network(inputs))
    (grad,) = torch.autograd.grad(logits.sum(), inputs, allow_unused=True)
    return (torch.zeros_like(inputs) if grad is None else grad).reshape(len(x), -1)


def correlation(rows: torch.Tensor) -> torch.Tensor:
    """The Pearson correlation matrix of the rows of ``rows`` (float64; a constant row correlates 0 with the
    others and 1 with itself, where numpy's ``corrcoef`` would give NaN)."""
    r = rows.double() - rows.double().mean(dim=1, keepdim=True)
    norm = r.norm(dim=1, keepdim=True)
    r = torch.where(norm > 0, r / norm.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(r))
    corr = r @ r.T
    corr.fill_diagonal_(1.0)
    return corr


__all__ = ["PROXIES", "Proxy", "ScoreFn", "correlation", "get_proxy", "input_jacobian", "logits_of", "loss_gradients",
           "proxy_names", "register_proxy", "weight_layers"]
