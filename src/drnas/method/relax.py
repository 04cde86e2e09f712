"""Architecture parameters and the Dirichlet relaxation's math.

:class:`Relaxation` owns the raw architecture parameters ``eta`` of shape ``[edges, ops]`` and the mask of ops
still in the search; every search method (:mod:`drnas.method.strategies`) builds on it and turns ``eta`` into mixing
weights ``theta`` for one forward pass (one batched draw for all edges). DrNAS (paper §2.2) is the Dirichlet
relaxation: ``beta = ELU(eta) + 1``, ``theta ~ Dir(beta)`` with the pathwise (implicit reparameterisation)
gradient of eq. (5), implemented here. Pruned ops (progressive learning, §2.4) are excluded through a boolean
``mask``: the Dirichlet is drawn over the kept ops only, which is the same distribution as drawing over all ops
and renormalising over the kept ones (the aggregation property), and pruned ops get weight 0.

PyTorch pitfalls guarded here (pytorch issues 57447 and 76030):

* ``torch.distributions.Dirichlet`` samples by normalising Gamma draws, which underflow to 0 for
  concentrations far below 1, and a fully underflowed row comes back as the uniform vector. We draw in log
  space instead (``log G(a) = log G(a + 1) + log(U) / a``, exact for any ``a > 0``) and normalise with a
  softmax, so tiny concentrations sample correctly.
* The CUDA kernel of the implicit gradient (``_dirichlet_grad``) computes in float32 and returns NaN for
  large concentrations, while the CPU kernel works in float64. We call it in float64 on every device, which
  makes the two devices agree, and zero any non-finite entry that would remain.

The returned ``theta`` is float32 whatever autocast is active: the sample never runs in reduced precision.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: Concentrations are clamped into this range before sampling: the lower bound keeps ``beta`` away from
#: 0 (ELU(eta)+1 underflows to 0 in float32 for eta < -88), the upper bound keeps eq. (5) well inside
#: float64 range. Values outside it are far beyond anything a regularised search reaches.
BETA_MIN = 1e-6
BETA_MAX = 1e6
#: Samples are kept at least this far from the simplex faces when evaluating eq. (5), whose Beta pdf
#: in the denominator is 0 (or infinite) on the faces.
_THETA_EPS = 1e-12


def concentration(eta: torch.Tensor) -> torch.Tensor:
    """The Dirichlet concentration ``beta = ELU(eta) + 1`` (paper §4.1), kept in a safe range."""
    return (F.elu(eta.float()) + 1.0).clamp(BETA_MIN, BETA_MAX)


class _DirichletPathwise(torch.autograd.Function):
    """theta ~ Dir(beta) (rows of ``beta``), backward = implicit reparameterisation gradient, eq. (5)."""

    @staticmethod
    def forward(ctx, beta: torch.Tensor, log_uniform: torch.Tensor, gamma_boost: torch.Tensor):  # type: ignore[override]
        # log of a Gamma(beta) draw, computed without underflow: G(b) = G(b + 1) * U^(1/b).
        log_gamma = torch.log(gamma_boost) + log_uniform / beta.double()
        theta = torch.softmax(log_gamma, dim=-1)
        ctx.save_for_backward(theta, beta)
        return theta.to(beta.dtype)

    @staticmethod
    def backward(ctx, grad_theta: torch.Tensor):  # type: ignore[override]
        theta, beta = ctx.saved_tensors
        beta64 = beta.double()
        total = beta64.sum(-1, keepdim=True).expand_as(beta64)
        x = theta.clamp(_THETA_EPS, 1.0 - _THETA_EPS)
        # c_j = -dF_Beta/dbeta_j (theta_j | beta_j, total - beta_j) / f_Beta(theta_j | ...) / (1 - theta_j),
        # the common factor of eq. (5); float64 on every device (the CUDA float32 kernel returns NaN for
        # large concentrations, pytorch#57447).
        c = torch._dirichlet_grad(x, beta64, total)
        g = grad_theta.double()
        # eq. (5): dtheta_i/dbeta_j = c_j (delta_ij - theta_i)  =>  dL/dbeta_j = c_j (g_j - sum_i g_i theta_i)
        grad_beta = c * (g - (g * theta).sum(-1, keepdim=True))
        grad_beta = torch.nan_to_num(grad_beta, nan=0.0, posinf=0.0, neginf=0.0)
        return grad_beta.to(beta.dtype), None, None


def sample_dirichlet(beta: torch.Tensor) -> torch.Tensor:
    """One reparameterised draw ``theta ~ Dir(beta)`` per row of ``beta`` (float32, on beta's device).

    Gradients reach ``beta`` through eq. (5) of the paper. Draws from the device's default generator, so
    checkpointing the global RNG state makes a run reproducible.
    """
    beta = beta.float()
    with torch.no_grad():
        b64 = beta.detach().double()
        gamma_boost = torch._standard_gamma(b64 + 1.0)
        uniform = torch.rand(b64.shape, dtype=torch.float64, device=b64.device)
        log_uniform = torch.log(uniform.clamp_min(torch.finfo(torch.float64).tiny))
    return _DirichletPathwise.apply(beta, log_uniform, gamma_boost)


def dirichlet_kl_to_uniform(beta: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(Dir(beta) || Dir(1)) for each row of ``beta`` (the paper's KL anchor, eq. 4)."""
    beta = beta.float()
    total = beta.sum(-1)
    k = beta.shape[-1]
    # KL(Dir(a)||Dir(b)) = lnG(a0) - sum lnG(a_i) - lnG(b0) + sum lnG(b_i) + sum (a_i - b_i)(psi(a_i) - psi(a0))
    log_norm_b = -torch.lgamma(torch.tensor(float(k), device=beta.device))  # lnG(b0) - sum lnG(1) with b=1
    return (torch.lgamma(total) - torch.lgamma(beta).sum(-1) + log_norm_b
            + ((beta - 1.0) * (torch.digamma(beta) - torch.digamma(total).unsqueeze(-1))).sum(-1))


class Relaxation(torch.nn.Module):
    """Base class: owns ``eta`` ``[edges, ops]`` and the mask of ops still in the search.

    The indices of the kept ops are cached on the host side of the module (refreshed on prune and load),
    so a forward pass never synchronises with the device to look at the mask.
    """

    name = "base"

    def __init__(self, num_edges: int, num_ops: int, init_std: float = 1e-3) -> None:
        super().__init__()
        self.eta = torch.nn.Parameter(init_std * torch.randn(num_edges, num_ops))
        self.register_buffer("mask", torch.ones(num_edges, num_ops, dtype=torch.bool))
        self.register_buffer("_kept_index", torch.arange(num_ops).repeat(num_edges, 1), persistent=False)
        self._all_kept = True

    @property
    def num_edges(self) -> int:
        return self.mask.shape[0]

    @property
    def num_ops(self) -> int:
        return self.mask.shape[1]

    @property
    def num_kept(self) -> int:
        """Ops kept per edge (every edge keeps the same number)."""
        return self._kept_index.shape[1]

    def _refresh_mask_cache(self) -> None:
        counts = self.mask.sum(-1)
        if not bool((counts == counts[0]).all()) or int(counts[0]) == 0:
            raise ValueError("every edge must keep the same, non-zero number of ops")
        self._kept_index = torch.nonzero(self.mask, as_tuple=False)[:, 1].view(self.num_edges, -1)
        self._all_kept = bool(self.mask.all())

    def kept_ops(self) -> list[list[int]]:
        """Per edge, the indices of the ops still in the search."""
        return self._kept_index.tolist()

    def scores(self) -> torch.Tensor:
        """Per-op strength used for pruning and derivation (higher is stronger)."""
        raise NotImplementedError

    def expected_weights(self) -> torch.Tensor:
        """Deterministic mixing weights (mean of the distribution) with pruned ops at 0."""
        raise NotImplementedError

    def sample(self) -> torch.Tensor:
        """Mixing weights for one forward pass, ``[edges, ops]``, pruned ops at 0."""
        raise NotImplementedError

    def penalty(self) -> torch.Tensor | None:
        """Extra term added to the architecture loss (None when the regulariser lives in the optimizer)."""
        return None

    @property
    def adam_weight_decay(self) -> float:
        """Weight decay the architecture optimizer should apply to eta."""
        return 0.0

    @torch.no_grad()
    def reinitialise(self, init_std: float, generator: torch.Generator) -> None:
        """New ``eta`` ~ N(0, init_std²) from ``generator`` (P-DARTS' stages start afresh); the mask stays."""
        self.eta.copy_((init_std * torch.randn(self.eta.shape, generator=generator)).to(self.eta))

    @torch.no_grad()
    def restrict(self, allowed: torch.Tensor) -> None:
        """Search only the ``allowed`` ops (bool ``[edges, ops]``, the same number on every edge) from the start:
        a space whose edges have ops of their own (RobustDARTS' S1)."""
        self.mask.copy_(allowed.to(self.mask.device))
        self._refresh_mask_cache()

    @torch.no_grad()
    def prune(self, keep: int) -> None:
        """Keep the ``keep`` strongest ops of each edge among those still kept (paper §2.4)."""
        if not 1 <= keep <= self.num_kept:
            raise ValueError(f"cannot keep {keep} ops per edge: {self.num_kept} are left")
        scores = self.scores().masked_fill(~self.mask, float("-inf"))
        top = scores.topk(keep, dim=-1).indices
        self.mask.zero_().scatter_(1, top, True)
        self._refresh_mask_cache()

    def _load_from_state_dict(self, *args, **kwargs):  # type: ignore[override]
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh_mask_cache()
