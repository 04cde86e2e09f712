"""A compiled search step checked against the eager one, once per compilation.

``torch.compile`` has shipped silent gradient bugs: under torch 2.11, compiled NB201 cells put dL/dtheta 42% away
from the eager cells' (pytorch#180642, through the average pool's in-place window sum; avoided here since, and
absent from torch 2.13). A search runs for days on whatever torch the user has, so the first arch step and the
first weight step after the cells are (re)compiled run a second time with eager cells, from the same state, and
are compared. Within tolerance, that step is the compiled one, bit for bit (so a resumed run repeats it), and the
search goes on compiled; otherwise the step is the eager one, a warning is logged, and the search goes on with
eager cells. The difference is logged either way, one line per check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


def tolerance(dtype: torch.dtype, device: torch.device) -> float:
    """Largest accepted :func:`relative_difference` for a network computing in ``dtype`` on ``device``.

    Float32 sums in another order moved dL/dtheta by up to 1.7e-2 on the CPU (the first steps of the NB201
    presets, deep K=1 cells the most; 1e-6 for the partial-channel stages); a GPU's TF32 convolutions (PyTorch's
    default there) put an eager CUDA pass another 1.4e-2 from float64, hence more room; bf16 and fp16 autocast
    round far more. pytorch#180642 moved it by 0.42.
    """
    if dtype == torch.float64:
        return 1e-6
    if dtype in (torch.bfloat16, torch.float16):
        return 0.3
    tf32 = device.type == "cuda" and (torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)
    return 0.25 if tf32 else 0.1


def relative_difference(compiled: torch.Tensor, eager: torch.Tensor) -> float:
    """``|compiled - eager| / |eager|`` in the Euclidean norm (the difference's own norm where eager is zero)."""
    eager = eager.detach().double()
    off = float(torch.linalg.vector_norm(compiled.detach().double() - eager))
    scale = float(torch.linalg.vector_norm(eager))
    return off / scale if scale > 0 else off


def largest_difference(compiled: Sequence[torch.Tensor], eager: Sequence[torch.Tensor]) -> float:
    return max(relative_difference(c, e) for c, e in zip(compiled, eager))


def flat_gradients(module: nn.Module) -> torch.Tensor:
    """Every parameter's gradient in one vector (zeros where a parameter has none), as a copy."""
    return torch.cat([p.grad.detach().reshape(-1) if p.grad is not None else p.detach().new_zeros(p.numel())
                      for p in module.parameters()])


@dataclass
class State:
    """A module's buffers (BatchNorm statistics) and parameter gradients at one moment, as copies."""

    buffers: list[torch.Tensor]
    grads: list[torch.Tensor | None]

    @classmethod
    def of(cls, module: nn.Module) -> State:
        return cls([b.detach().clone() for b in module.buffers()],
                   [None if p.grad is None else p.grad.detach().clone() for p in module.parameters()])

    def restore(self, module: nn.Module) -> None:
        """Back to this state, in place where a tensor exists (a captured CUDA graph keeps writing into it)."""
        with torch.no_grad():
            for b, value in zip(module.buffers(), self.buffers):
                b.copy_(value)
            for p, grad in zip(module.parameters(), self.grads):
                if grad is None or p.grad is None:
                    p.grad = None if grad is None else grad.clone()
                else:
                    p.grad.copy_(grad)
