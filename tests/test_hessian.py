"""The curvature analysis (paper Fig. 3, Proposition 1): power iteration and Hutchinson's trace against dense
linear algebra, the search's Hessian against torch's dense one, and every differentiable method logging it
identically across a resume."""
from __future__ import annotations

import pytest
import torch

from drnas.fast import settings as fastpaths

from drnas.analysis import hessian
from drnas.engine.runs import RunDir
from drnas.search import Search
from drnas.method.strategies import get_method, method_names, with_method
from helpers import pattern_images, tiny_config

QUIET = dict(progress=False, log=lambda m: None)
DATA = pattern_images(192)


def _quadratic(matrix: torch.Tensor):
    b = torch.linspace(-1, 1, matrix.shape[0])
    return lambda x: 0.5 * x @ matrix @ x + b @ x


@pytest.mark.parametrize("negative_top", [False, True])
def test_largest_eigenvalue_matches_a_dense_decomposition(negative_top):
    """Spectra whose largest-magnitude eigenvalue is positive, and one where it is negative (the shifted second
    run must then find the top of the spectrum, not the bottom)."""
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(12, 12))
    spectrum = torch.linspace(-1.0, 3.0, 12) if not negative_top else torch.linspace(-5.0, 0.7, 12)
    matrix = q @ torch.diag(spectrum) @ q.T
    hvp = hessian.loss_hvp(_quadratic(matrix), torch.randn(12))
    v = torch.randn(12)
    assert torch.allclose(hvp(v), matrix @ v, atol=1e-5)
    generator = torch.Generator().manual_seed(0)
    value, _, converged = hessian.largest_eigenvalue(hvp, (12,), generator, tolerance=1e-6, iterations=2000)
    assert converged and value == pytest.approx(float(spectrum.max()), rel=1e-3)


def test_hutchinson_trace_is_exact_on_a_diagonal_and_close_on_a_dense_matrix():
    generator = torch.Generator().manual_seed(0)
    diagonal = torch.diag(torch.tensor([3.0, -1.0, 0.5, 2.0]))
    hvp = hessian.loss_hvp(_quadratic(diagonal), torch.zeros(4))
    assert hessian.hutchinson_trace(hvp, (4,), generator, samples=3) == pytest.approx(4.5)
    torch.manual_seed(1)
    a = torch.randn(10, 10)
    dense = (a + a.T) / 4 + torch.diag(torch.linspace(1, 5, 10))
    hvp = hessian.loss_hvp(_quadratic(dense), torch.zeros(10))
    estimate = hessian.hutchinson_trace(hvp, (10,), generator, samples=2000)
    assert estimate == pytest.approx(float(dense.trace()), rel=0.05)


def _search(method: str, **changes) -> Search:
    torch.manual_seed(0)
    return Search(with_method(tiny_config(**changes), method), data=DATA, **QUIET)


@pytest.mark.parametrize("method", ["drnas", "darts"])
def test_the_search_hessian_is_the_dense_hessian_of_its_validation_loss(method):
    """On a tiny supernet (6 edges x 5 ops = 30 parameters) the logged eigenvalue is the top of the spectrum of
    the dense Hessian that torch.autograd.functional.hessian computes from the same loss."""
    search = _search(method)
    search.run(max_epochs=1)
    measured = search.curvature()
    logits = search.strategy.hessian_logits()
    search.net.eval()
    with fastpaths.using(fastpaths.PLAIN):
        dense = torch.autograd.functional.hessian(search.hessian_loss(), logits)
    search.net.train()
    n = logits.numel()
    eigenvalues = torch.linalg.eigvalsh(dense.reshape(n, n).double())
    assert measured.eigenvalue == pytest.approx(float(eigenvalues.max()), rel=0.02, abs=1e-6)
    assert abs(measured.trace - float(eigenvalues.sum())) <= 0.5 * float(eigenvalues.abs().sum()) + 1e-6


def test_drnas_differentiates_at_the_dirichlet_mean():
    """Proposition 1: softmax(mu), mu = log beta - mean log beta, is the Dirichlet mean beta / sum beta."""
    search = _search("drnas")
    with torch.no_grad():
        search.strategy.eta.normal_()
    mixing = search.strategy.hessian_mixing(search.strategy.hessian_logits())
    assert torch.allclose(mixing.theta, search.strategy.expected_weights(), atol=1e-6)


DIFFERENTIABLE = [m for m in method_names() if get_method(m).uses_supernet and m not in ("rsps", "enas")]


@pytest.mark.parametrize("method", DIFFERENTIABLE)
def test_every_differentiable_method_logs_its_curvature_and_resumes_it_identically(method, tmp_path):
    # 4 channels and one validation batch: every Hessian-vector product of the power iteration is cheap
    stages = [tiny_config().stages[0].__class__(epochs=2, partial_k=2, arch_warmup=0)]
    config = with_method(tiny_config(stages=stages, hessian_every=1, channels=4), method)
    data = pattern_images(64)
    full = Search(config, tmp_path / "full", data=data, **QUIET).run()
    Search(config, tmp_path / "part", data=data, **QUIET).run(max_epochs=1)
    parts = Search.resume(tmp_path / "part", data=data, **QUIET).run()
    for record in full.metrics:
        assert set(record["hessian"]) == {"eigenvalue", "trace", "iterations", "converged"}
        assert all(isinstance(record["hessian"][k], float) for k in ("eigenvalue", "trace"))
    assert [m["hessian"] for m in full.metrics] == [m["hessian"] for m in parts.metrics]
    assert len(RunDir(tmp_path / "part").read_metrics()) == 2


@pytest.mark.parametrize("method", ["rsps", "enas"])
def test_methods_without_architecture_logits_log_no_curvature(method):
    search = _search(method, hessian_every=1, stages=[tiny_config().stages[0]])
    assert search.strategy.hessian_logits() is None and search.curvature() is None


def test_fig3_curves_average_seeds_per_method_and_draw(tmp_path):
    from drnas.analysis.plots import hessian_trajectories, plot_hessian_trajectories

    def records(values):
        return [{"epoch": e + 1, "hessian": {"eigenvalue": v}} for e, v in enumerate(values)] + [{"epoch": 9}]

    runs = [("darts", records([1.0, 4.0])), ("darts", records([3.0, 8.0])), ("drnas", records([1.0, 1.5]))]
    curves = hessian_trajectories(runs)
    assert curves["darts"] == {"epoch": [1, 2], "mean": [2.0, 6.0], "min": [1.0, 4.0], "max": [3.0, 8.0],
                               "runs": [2, 2]}
    assert curves["drnas"]["mean"] == [1.0, 1.5] and curves["drnas"]["runs"] == [1, 1]
    pytest.importorskip("matplotlib")
    plot_hessian_trajectories(runs, tmp_path / "fig3.png")
    assert (tmp_path / "fig3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
