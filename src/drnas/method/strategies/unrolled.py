"""Second-order architecture gradient: DARTS' unrolled step (Liu et al., ICLR 2019, eq. 7-8), for any
differentiable strategy.

With one virtual weight step ``w' = w - xi * (m * buf + dL_train/dw + wd * w)`` (the weight optimizer's own
SGD rule: learning rate ``xi``, momentum ``m`` and its buffer, weight decay ``wd``), the hypergradient of the
validation loss w.r.t. the mixing weights θ is

    dL_val(w', θ)/dθ - xi * d²L_train(w, θ)/dθ dw · dL_val(w', θ)/dw'

and the Hessian-vector product is the central difference
``(dL_train(w+, θ)/dθ - dL_train(w-, θ)/dθ) / 2ε`` at ``w± = w ± ε v``, ``v = dL_val/dw'``,
``ε = 0.01 / ||v||`` (DARTS' choice). The strategy then carries dL/dθ to its own parameters (η of DrNAS through
the Dirichlet sample, α of DARTS through the softmax), which is how DrNAS gets a working second-order step:
its authors' unrolled code does not run on current PyTorch.

Everything is written against plain callables so that it can be checked against the exact hypergradient on a
tiny problem (``tests/test_strategies.py``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import torch

if TYPE_CHECKING:  # annotations only: the strategy base class calls into this module
    from drnas.method.strategies.base import Batch, Engine, Mixing

#: DARTS' finite-difference step: ε = FD_SCALE / ||v||
FD_SCALE = 0.01


def unrolled_hypergradient(params: Sequence[torch.Tensor],
                           train_weight_grads: Callable[[], list[torch.Tensor]],
                           val_grads: Callable[[], tuple[list[torch.Tensor], list[torch.Tensor]]],
                           train_mixing_grads: Callable[[], list[torch.Tensor]],
                           lr: float, momentum: float, weight_decay: float,
                           momentum_buffers: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
    """dL_val/dθ of the unrolled step, for θ = the tensors the callables differentiate.

    ``train_weight_grads()``: dL_train/dw at the current ``params``. ``val_grads()``: (dL_val/dθ, dL_val/dw)
    at the current params. ``train_mixing_grads()``: dL_train/dθ at the current params. ``params`` are changed
    in place during the call and restored exactly (a copy of their values is taken first).
    """
    saved = [p.detach().clone() for p in params]
    try:
        g_train = train_weight_grads()
        with torch.no_grad():
            for p, g, buf in zip(params, g_train, momentum_buffers):
                step = g + weight_decay * p
                if buf is not None:
                    step = step + momentum * buf
                p.sub_(lr * step)
        val_theta, v = val_grads()
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in v))
        eps = FD_SCALE / max(float(norm), 1e-12)
        with torch.no_grad():
            for p, s, g in zip(params, saved, v):
                p.copy_(s + eps * g)
        plus = train_mixing_grads()
        with torch.no_grad():
            for p, s, g in zip(params, saved, v):
                p.copy_(s - eps * g)
        minus = train_mixing_grads()
        return [vt - lr * (gp - gm) / (2 * eps) for vt, gp, gm in zip(val_theta, plus, minus)]
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


def unrolled_mixing_gradients(engine: Engine, mixing: Mixing, arch_batch: Batch, weight_batch: Batch
                              ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The second-order architecture step's network passes: (validation loss and correct count at w',
    dL/dθ of the unrolled step)."""
    params = engine.weight_parameters()
    lr, momentum, weight_decay, buffers = engine.weight_step_rule()
    seen: dict[str, torch.Tensor] = {}

    def val_grads() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        loss, correct, theta_grads, weight_grads = engine.gradients(mixing, *arch_batch, weights=True)
        seen["loss"], seen["correct"] = loss, correct
        return theta_grads, weight_grads

    grads = unrolled_hypergradient(
        params, lambda: engine.gradients(mixing, *weight_batch, weights=True)[3], val_grads,
        lambda: engine.gradients(mixing, *weight_batch)[2], lr, momentum, weight_decay, buffers)
    return seen["loss"], seen["correct"], grads
