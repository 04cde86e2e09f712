"""Curvature of the validation loss in the architecture parameters (the DrNAS paper's Fig. 3 and Proposition 1).

Given a Hessian-vector product ``hvp(v) = H v`` of a scalar loss in parameters ``x`` (from double backward,
:func:`loss_hvp`), :func:`largest_eigenvalue` finds the largest eigenvalue by (shifted) power iteration and
:func:`hutchinson_trace` estimates ``tr H`` as the mean of ``v^T H v`` over Rademacher vectors ``v``. Both draw
their vectors from a generator of their own, so they never move the run's random streams.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

HVP = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Curvature:
    eigenvalue: float  # the largest eigenvalue (the paper's "dominant eigenvalue")
    trace: float  # Hutchinson's estimate of the trace
    iterations: int  # power-iteration steps taken
    converged: bool  # relative change of the eigenvalue below the tolerance

    def to_json(self) -> dict[str, float | int | bool]:
        return {"eigenvalue": self.eigenvalue, "trace": self.trace, "iterations": self.iterations,
                "converged": self.converged}


def loss_hvp(loss_of: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor) -> HVP:
    """``v -> (d^2 loss / dx^2 at x0) v``: the gradient graph is built once (create_graph), and each product is one
    backward pass through it."""
    x = x0.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of(x), x, create_graph=True)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        (product,) = torch.autograd.grad(grad, x, grad_outputs=v, retain_graph=True)
        return product.detach()

    return hvp


def dominant_eigenvalue(hvp: HVP, shape: torch.Size | tuple[int, ...], generator: torch.Generator,
                        device: torch.device | str = "cpu", iterations: int = 100,
                        tolerance: float = 1e-3) -> tuple[float, int, bool]:
    """The eigenvalue of largest magnitude of the symmetric H behind ``hvp``, by power iteration from a random
    start, stopping when the Rayleigh quotient changes by less than ``tolerance`` (relative). Returns
    ``(eigenvalue, iterations, converged)``."""
    v = torch.randn(tuple(shape), generator=generator, dtype=torch.float64).to(device)
    v = v / v.norm()
    value = 0.0
    for step in range(1, iterations + 1):
        hv = hvp(v.to(torch.float32)).to(torch.float64)
        new = float((v * hv).sum())
        norm = hv.norm()
        if norm == 0:
            return 0.0, step, True
        v = hv / norm
        if step > 1 and abs(new - value) <= tolerance * max(abs(new), 1e-12):
            return new, step, True
        value = new
    return value, iterations, False


def largest_eigenvalue(hvp: HVP, shape: torch.Size | tuple[int, ...], generator: torch.Generator,
                       device: torch.device | str = "cpu", iterations: int = 100,
                       tolerance: float = 1e-3) -> tuple[float, int, bool]:
    """The largest (most positive) eigenvalue, the one the curvature analyses of DARTS and DrNAS plot: power
    iteration finds the largest in magnitude; when that one is negative, a second run on ``H - lambda I`` (whose
    spectrum is shifted to be non-negative) finds the top of the spectrum."""
    value, steps, converged = dominant_eigenvalue(hvp, shape, generator, device, iterations, tolerance)
    if value >= 0:
        return value, steps, converged
    shifted, more, converged = dominant_eigenvalue(lambda v: hvp(v) - value * v, shape, generator, device,
                                                   iterations, tolerance)
    return shifted + value, steps + more, converged


def hutchinson_trace(hvp: HVP, shape: torch.Size | tuple[int, ...], generator: torch.Generator,
                     device: torch.device | str = "cpu", samples: int = 20) -> float:
    """Hutchinson's unbiased estimate of ``tr H``: the mean of ``v^T H v`` over Rademacher vectors ``v``."""
    total = 0.0
    for _ in range(samples):
        v = (torch.randint(0, 2, tuple(shape), generator=generator) * 2 - 1).to(torch.float32).to(device)
        total += float((v * hvp(v)).sum())
    return total / samples


def curvature(hvp: HVP, shape: torch.Size | tuple[int, ...], seed: int, device: torch.device | str = "cpu",
              iterations: int = 100, tolerance: float = 1e-3, samples: int = 20) -> Curvature:
    """Dominant eigenvalue and trace estimate of one Hessian, from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    value, steps, converged = largest_eigenvalue(hvp, shape, generator, device, iterations, tolerance)
    trace = hutchinson_trace(hvp, shape, generator, device, samples)
    return Curvature(value, trace, steps, converged)
