"""The Dirichlet relaxation: sampling moments, the pathwise gradient of eq. (5), KL, guards, pruning."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import special, stats

from drnas.method.relax import concentration, dirichlet_kl_to_uniform, sample_dirichlet
from drnas.config.search import ConfigError, SearchConfig
from drnas.method.strategies.drnas import DrNAS


def DirichletRelaxation(edges: int, ops: int, regulariser: str = "l2", scale: float = 1e-3) -> DrNAS:
    """The DrNAS strategy on a space of ``edges`` x ``ops`` (only its shape matters here)."""
    shape = SimpleNamespace(num_edges=edges, ops=tuple(range(ops)))
    return DrNAS(shape, SearchConfig(method_settings={"regulariser": regulariser}, reg_scale=scale))


def test_concentration_is_elu_plus_one():
    eta = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0])
    expected = torch.where(eta > 0, eta, torch.exp(eta) - 1) + 1
    assert torch.allclose(concentration(eta), expected)


@pytest.mark.parametrize("beta", [[0.3, 1.0, 2.5], [1.0, 1.0, 1.0, 1.0, 1.0], [5.0, 0.8, 12.0, 0.2]])
def test_sample_moments_match_dirichlet(beta):
    torch.manual_seed(0)
    b = torch.tensor(beta)
    samples = sample_dirichlet(b.expand(40000, -1).contiguous())
    assert samples.dtype == torch.float32
    assert torch.allclose(samples.sum(-1), torch.ones(40000), atol=1e-5)
    total = b.sum()
    mean = b / total
    var = b * (total - b) / (total ** 2 * (total + 1))
    assert torch.allclose(samples.mean(0), mean, atol=4 * (var.max() / 40000) ** 0.5 + 1e-3)
    assert torch.allclose(samples.var(0), var, rtol=0.06, atol=1e-4)


def _eq5_jacobian(theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """d theta_i / d beta_j from eq. (5), with scipy's regularised incomplete beta and a finite difference."""
    total = beta.sum()
    jac = np.zeros((len(beta), len(beta)))
    for j in range(len(beta)):
        a, b = beta[j], total - beta[j]
        h = 1e-5 * a
        d_cdf = (special.betainc(a + h, b, theta[j]) - special.betainc(a - h, b, theta[j])) / (2 * h)
        pdf = stats.beta.pdf(theta[j], a, b)
        for i in range(len(beta)):
            jac[i, j] = -d_cdf / pdf * (float(i == j) - theta[i]) / (1 - theta[j])
    return jac


@pytest.mark.parametrize("seed,beta", [(0, [0.7, 1.3, 2.0, 0.5]), (1, [1.0, 1.0, 1.0, 1.0, 1.0]),
                                       (2, [3.0, 0.4, 8.0]), (3, [0.05, 0.5, 1.5, 4.0, 2.2])])
def test_pathwise_gradient_matches_eq5(seed, beta):
    torch.manual_seed(seed)
    b = torch.tensor(beta, requires_grad=True)
    theta = sample_dirichlet(b)
    autograd = torch.stack([torch.autograd.grad(theta[i], b, retain_graph=True)[0] for i in range(len(beta))])
    expected = _eq5_jacobian(theta.detach().double().numpy(), np.array(beta, dtype=np.float64))
    np.testing.assert_allclose(autograd.numpy(), expected, rtol=2e-3, atol=1e-5)


def test_pathwise_gradient_agrees_with_torch_dirichlet():
    """Same sample value => same implicit gradient as torch.distributions.Dirichlet's backward."""
    torch.manual_seed(0)
    b = torch.tensor([[0.6, 1.7, 3.0], [2.0, 2.0, 0.9]], requires_grad=True)
    theta = sample_dirichlet(b)
    weights = torch.tensor([[0.3, -1.0, 2.0], [1.5, 0.2, -0.7]])
    (grad_ours,) = torch.autograd.grad((theta * weights).sum(), b)
    total = b.detach().sum(-1, keepdim=True).expand_as(b)
    c = torch._dirichlet_grad(theta.detach(), b.detach(), total)
    grad_torch = c * (weights - (theta.detach() * weights).sum(-1, keepdim=True))
    assert torch.allclose(grad_ours, grad_torch, rtol=1e-4, atol=1e-6)


def test_small_concentrations_sample_correctly():
    """pytorch#76030: torch's Gamma-based sampler returns the uniform vector for concentrations << 1."""
    torch.manual_seed(0)
    beta = torch.full((20000, 3), 1e-3)
    theta = sample_dirichlet(beta)
    assert torch.isfinite(theta).all()
    # Dir(1e-3) puts almost all mass near a vertex (P(max < 0.5) is about 0.2%), never at the centre.
    assert (theta.max(-1).values < 0.5).float().mean() < 0.01
    # And each vertex is equally likely.
    counts = torch.bincount(theta.argmax(-1), minlength=3).float() / 20000
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.02)


def test_extreme_concentrations_give_finite_gradients():
    """pytorch#57447 (NaN gradients for large concentrations on CUDA) and tiny ones: eta far out either way."""
    torch.manual_seed(0)
    relax = DirichletRelaxation(6, 5)
    with torch.no_grad():
        relax.eta.copy_(torch.tensor([[1e5, 2e5, 10.0, -50.0, -200.0]] * 6))
    theta = relax.sample().theta
    (theta * torch.arange(5.0)).sum().backward()
    assert torch.isfinite(theta).all() and torch.isfinite(relax.eta.grad).all()


def test_kl_closed_form_matches_torch_and_monte_carlo():
    beta = torch.tensor([[0.5, 2.0, 1.0], [3.0, 3.0, 0.2], [1.0, 1.0, 1.0]], dtype=torch.float64)
    ours = dirichlet_kl_to_uniform(beta.float()).double()
    reference = torch.distributions.kl_divergence(torch.distributions.Dirichlet(beta),
                                                  torch.distributions.Dirichlet(torch.ones_like(beta)))
    assert torch.allclose(ours, reference, atol=1e-4)
    assert ours[2].abs() < 1e-5
    rng = np.random.default_rng(0)
    x = rng.dirichlet(beta[0].numpy(), size=200000)
    mc = np.mean(stats.dirichlet.logpdf(x.T, beta[0].numpy()) - stats.dirichlet.logpdf(x.T, np.ones(3)))
    assert abs(mc - float(ours[0])) < 0.02


def test_regulariser_l2_is_adam_weight_decay_and_kl_is_a_penalty():
    l2 = DirichletRelaxation(6, 5, "l2", 1e-3)
    assert l2.adam_weight_decay == 1e-3 and l2.penalty() is None
    kl = DirichletRelaxation(6, 5, "kl", 0.5)
    assert kl.adam_weight_decay == 0.0
    with torch.no_grad():
        kl.eta.normal_()
    expected = 0.5 * dirichlet_kl_to_uniform(kl.beta()).sum()
    assert torch.allclose(kl.penalty(), expected)
    with pytest.raises(ConfigError, match="method drnas: regulariser must be one of l2, kl, got 'l1'"):
        DirichletRelaxation(6, 5, "l1")


def test_eta_initialised_small():
    torch.manual_seed(0)
    relax = DirichletRelaxation(6, 5)
    assert relax.eta.shape == (6, 5)
    assert 0.3e-3 < float(relax.eta.detach().std()) < 3e-3


def test_prune_keeps_top_ops_by_beta_and_masks_them_out():
    relax = DirichletRelaxation(3, 5)
    with torch.no_grad():
        relax.eta.copy_(torch.tensor([[0.1, 0.5, -0.2, 0.3, 0.0],
                                      [2.0, -1.0, 1.0, 0.5, 0.4],
                                      [-0.3, -0.1, -0.2, 0.6, 0.2]]))
    relax.prune(3)
    assert relax.kept_ops() == [[0, 1, 3], [0, 2, 3], [1, 3, 4]]
    assert relax.num_kept == 3
    torch.manual_seed(0)
    theta = relax.sample().theta
    assert torch.allclose(theta.sum(-1), torch.ones(3))
    assert (theta[~relax.mask] == 0).all() and (theta[relax.mask] > 0).all()
    mean = relax.expected_weights()
    assert (mean[~relax.mask] == 0).all()
    # Pruning again works among the kept ops only; pruned ops are never chosen again.
    with torch.no_grad():
        relax.eta[0, 2] = 100.0  # a pruned op becoming strong must not come back
    relax.prune(2)
    assert relax.kept_ops()[0] == [1, 3]
    with pytest.raises(ValueError):
        relax.prune(3)


def test_pruned_sample_has_marginal_dirichlet_of_kept_ops():
    """Sampling over the kept ops equals Dir(beta_kept): check the mean against beta_kept / sum."""
    torch.manual_seed(0)
    relax = DirichletRelaxation(1, 5)
    with torch.no_grad():
        relax.eta.copy_(torch.tensor([[0.9, -0.5, 0.4, 0.1, 1.5]]))
    relax.prune(3)
    samples = torch.stack([relax.sample().theta for _ in range(4000)])
    beta = relax.beta()[0]
    kept = relax.mask[0]
    expected = torch.where(kept, beta, torch.zeros_like(beta))
    expected = expected / expected.sum()
    assert torch.allclose(samples.mean(0)[0], expected, atol=0.015)


def test_mask_cache_survives_state_dict_round_trip():
    relax = DirichletRelaxation(4, 5)
    with torch.no_grad():
        relax.eta.normal_()
    relax.prune(2)
    other = DirichletRelaxation(4, 5)
    other.load_state_dict(relax.state_dict())
    assert other.kept_ops() == relax.kept_ops() and other.num_kept == 2
