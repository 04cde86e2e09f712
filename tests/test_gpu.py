"""GPU paths: the Dirichlet guards on CUDA, CUDA-graph replay and bf16 autocast against plain eager float32.

Skipped without a CUDA device (CI has none); run on a GPU machine with ``pytest tests/test_gpu.py``.
"""
from __future__ import annotations

import math

import pytest
import torch

from drnas.method.relax import _DirichletPathwise, sample_dirichlet
from drnas.search import Search
from drnas.train import Trainer
from helpers import pattern_images, tiny_config
from test_train import tiny_train_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
QUIET = dict(progress=False, log=lambda m: None)
CUDA = torch.device("cuda")


@pytest.mark.parametrize("beta", [[1e-3, 2e-3, 5e-4], [0.5, 1.0, 3.0, 2.0], [1e3, 2e3, 5e2], [2e5, 1e5, 3e5, 1.0]])
def test_pathwise_gradient_on_cuda_equals_cpu_and_is_finite(beta):
    """Same draw on both devices: theta and the eq. (5) gradient agree (CUDA's float32 kernel returns NaN for
    large concentrations, pytorch#57447; ours runs in float64 everywhere)."""
    torch.manual_seed(0)
    b = torch.tensor(beta).expand(64, -1).contiguous()
    gamma_boost = torch._standard_gamma(b.double() + 1.0)
    log_uniform = torch.log(torch.rand(b.shape, dtype=torch.float64))
    upstream = torch.randn(b.shape)
    results = []
    for device in ("cpu", "cuda"):
        leaf = b.to(device, copy=True).requires_grad_(True)
        theta = _DirichletPathwise.apply(leaf, log_uniform.to(device), gamma_boost.to(device))
        theta.backward(upstream.to(device))
        results.append((theta.detach().cpu(), leaf.grad.cpu()))
    (theta_cpu, grad_cpu), (theta_gpu, grad_gpu) = results
    assert torch.isfinite(grad_gpu).all()
    assert torch.allclose(theta_cpu, theta_gpu, rtol=1e-5, atol=1e-7)
    assert torch.allclose(grad_cpu, grad_gpu, rtol=1e-4, atol=1e-8 * float(grad_cpu.abs().max()) + 1e-12)


def test_tiny_concentrations_sample_correctly_on_cuda():
    """With beta = 1e-3 nearly all mass sits on one op per draw (torch's own sampler returns the uniform vector
    when every Gamma draw underflows, pytorch#76030): each coordinate exceeds 0.01 as often as its Beta(a, 3a)
    marginal says (about 25.3%; uniform vectors would make it 100%), and every op wins equally often."""
    from scipy import stats

    torch.manual_seed(0)
    a = 1e-3
    theta = sample_dirichlet(torch.full((20000, 4), a, device=CUDA))
    assert theta.dtype == torch.float32 and theta.device.type == "cuda"
    expected = float(stats.beta.sf(0.01, a, 3 * a))
    observed = float((theta > 0.01).float().mean())
    assert abs(observed - expected) < 4 * (expected * (1 - expected) / theta.numel()) ** 0.5
    assert torch.allclose(theta.mean(0).cpu(), torch.full((4,), 0.25), atol=0.02)


def _search(**changes) -> Search:
    torch.manual_seed(0)
    return Search(tiny_config(device="cuda", **changes), data=pattern_images(256), **QUIET)


@pytest.fixture
def deterministic_cudnn():
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def _snapshot(search: Search) -> dict:
    return {"net": {k: v.clone() for k, v in search.net.state_dict().items()},
            "eta": search.relax.eta.detach().clone(), "rng": torch.cuda.get_rng_state(),
            "weight_opt": search.weight_optimizer.state_dict(), "arch_opt": search.arch_optimizer.state_dict()}


def _restore(search: Search, saved: dict) -> None:
    import copy

    search.net.load_state_dict(saved["net"])
    with torch.no_grad():
        search.relax.eta.copy_(saved["eta"])
    search.weight_optimizer.load_state_dict(copy.deepcopy(saved["weight_opt"]))
    search.arch_optimizer.load_state_dict(copy.deepcopy(saved["arch_opt"]))
    torch.cuda.set_rng_state(saved["rng"])


def _captured_step_and_eager_step(search: Search, make_eager) -> tuple[tuple, tuple]:
    """Warm up and capture the graphed steps, then from one saved state run a replayed step (arch then weight) and,
    after ``make_eager(search)``, an eager one; each gives (arch loss, eta gradient, weight loss, updated weights)."""
    (xw, yw), (xa, ya) = next(iter(zip(search.weight_loader.epoch(0), search.arch_loader.epoch(0))))
    for _ in range(3):  # two eager warm-up calls, then capture
        search.arch_step(xa, ya)
        search.weight_step(xw, yw)
    assert sorted(search.runner.steps.captured) == ["arch", "weight"]
    saved = _snapshot(search)
    results = []
    for replay in (True, False):
        _restore(search, saved)
        if not replay:
            make_eager(search)
        arch_loss, _ = search.arch_step(xa, ya)
        eta_grad = search.relax.eta.grad.clone()
        weight_loss, _ = search.weight_step(xw, yw)
        weights = torch.cat([p.detach().reshape(-1) for p in search.net.parameters()])
        results.append((arch_loss, eta_grad, weight_loss, weights))
    return results[0], results[1]


def _graphs_off(search: Search) -> None:
    search.runner.steps.enabled = False


@pytest.mark.parametrize("stage", [0, 1])
def test_graphed_step_equals_the_eager_step_from_the_same_state(stage, deterministic_cudnn):
    """From one state, a replayed step (arch then weight) gives the eager step's losses, eta gradient and
    updated weights, in stage 0 (K=2, all ops) and after widening + pruning (stage 1, K=1, 3 ops)."""
    search = _search(amp="off", cuda_graphs="on")
    if stage:
        search._enter_stage(1)
    for replayed, eager in zip(*_captured_step_and_eager_step(search, _graphs_off)):
        assert torch.allclose(replayed, eager, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("stage", [0, 1])
def test_compiled_cells_replay_as_graphs_exactly(stage, deterministic_cudnn):
    """``compile=cells`` on a GPU: inductor's kernels captured in the step's CUDA graph replay the compiled eager
    step bit for bit (losses, eta gradient, updated weights). Whether compiled cells compute what eager cells
    do is :func:`test_search_passes_on_cuda_equal_the_cpu_eager_ones`'s question."""
    pytest.importorskip("triton")
    search = _search(amp="off", cuda_graphs="on", compile="cells")
    if stage:
        search._enter_stage(1)
    for replayed, eager in zip(*_captured_step_and_eager_step(search, _graphs_off)):
        assert torch.equal(replayed, eager)


#: ways to run the CUDA side of :func:`test_search_passes_on_cuda_equal_the_cpu_eager_ones`: (compile, fused
#: edges, joining partial channels with ``_JoinShuffle``)
CUDA_PASS_VARIANTS = {"eager": ("none", True, True), "eager-edge-by-edge": ("none", False, True),
                      "eager-plain-join": ("none", True, False), "compiled": ("cells", True, True)}


#: the tiny DARTS supernet of these tests (3 cells: a reduction cell between two normal ones)
TINY_DARTS = dict(space="darts", cells=3, channels=8)


def _search_for_passes(device: str, compile_mode: str, stage: int, space: str = "nb201") -> Search:
    torch.manual_seed(0)
    changes = TINY_DARTS if space == "darts" else {}
    search = Search(tiny_config(device=device, compile=compile_mode, cuda_graphs="off", **changes),
                    data=pattern_images(256), **QUIET)
    if stage:
        search._enter_stage(1)
    return search


def _passes(search: Search, batch: tuple[torch.Tensor, torch.Tensor], theta: torch.Tensor) -> list[torch.Tensor]:
    """Arch loss, dL/dtheta, weight loss and weight gradients of one arch pass and one weight pass on the given
    batch and mixing weights, as CPU tensors. The network runs in float64: in float32 two correct paths can
    disagree by percents where rounding moves an activation across a ReLU's kink (found on the CPU: fused and
    edge-by-edge float32 cells 2.3% apart in weight gradients; in float64 they agree to 1e-14)."""
    search.net.double()
    x, y, theta = batch[0].double().to(search.device), batch[1].to(search.device), theta.double().to(search.device)
    with torch.backends.cudnn.flags(enabled=True, deterministic=True):
        arch_loss, _, theta_grad = search._arch_pass(x, y, theta.clone())
        weight_loss, _ = search._weight_pass(x, y, theta.clone())
    grads = [p.grad for p in search.net.parameters() if p.grad is not None]
    return [t.detach().cpu() for t in (arch_loss, theta_grad, weight_loss, *grads)]


@pytest.mark.parametrize("space, variant, stage",
                         [("nb201", variant, stage) for variant in CUDA_PASS_VARIANTS for stage in (0, 1)]
                         + [("darts", variant, stage) for variant in ("eager", "eager-edge-by-edge")
                            for stage in (0, 1)])
def test_search_passes_on_cuda_equal_the_cpu_eager_ones(space, variant, stage):
    """From the same weights, batch and mixing weights, a CUDA arch pass gives the CPU's dL/dtheta and a CUDA
    weight pass its weight gradients (float64). On an H200 (torch 2.11, 2026-12-04) every eager variant agreed
    and ``compiled`` did not (dL/dtheta 0.07 off at a scale of 0.16): torch 2.11's dynamo misroutes the gradient
    of an autograd.Function whose forward adds in place (pytorch#180642), as the average pool's window sum did on
    every device; see ``drnas.fast.ops._box_sum_3x3``."""
    from drnas.fast import settings as fastpaths
    compile_mode, fuse, join_shuffle = CUDA_PASS_VARIANTS[variant]
    if compile_mode == "cells":
        pytest.importorskip("triton")
    cpu_search = _search_for_passes("cpu", "none", stage, space)
    state = {k: v.clone() for k, v in cpu_search.net.state_dict().items()}
    batch = next(iter(cpu_search.arch_loader.epoch(0)))
    torch.manual_seed(1)
    theta = cpu_search.relax.sample().theta.detach()  # pruned ops at 0 in stage 1
    cpu = _passes(cpu_search, batch, theta)
    cuda_search = _search_for_passes("cuda", compile_mode, stage, space)
    cuda_search.net.load_state_dict(state)
    with fastpaths.using(fuse_edges=fuse, join_shuffle=join_shuffle):
        cuda = _passes(cuda_search, batch, theta)
    assert len(cpu) == len(cuda)
    for name, a, b in zip(["arch loss", "dL/dtheta", "weight loss"] + ["weight grad"] * (len(cpu) - 3), cpu, cuda):
        scale = float(a.abs().max())
        assert torch.allclose(b, a, rtol=1e-5, atol=1e-7 * scale), \
            f"{name}: CUDA {variant} differs from CPU by {float((b - a).abs().max()):.3g} (scale {scale:.3g})"


def test_graphed_steps_replay_the_graph_and_fall_back_on_a_short_batch():
    search = _search(amp="off", cuda_graphs="on")
    (xw, yw), (xa, ya) = next(iter(zip(search.weight_loader.epoch(0), search.arch_loader.epoch(0))))
    for _ in range(3):
        search.arch_step(xa, ya)
        search.weight_step(xw, yw)
    assert sorted(search.runner.steps.captured) == ["arch", "weight"]
    loss, correct = search.weight_step(xw[:7], yw[:7])  # another shape: eager, same function
    assert math.isfinite(float(loss)) and 0 <= int(correct) <= 7
    before = search.relax.eta.detach().clone()
    search.arch_step(xa, ya)
    assert not torch.equal(before, search.relax.eta.detach())


def test_cudnn_benchmark_is_switched_on_by_a_gpu_job_that_asks():
    saved = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        search = _search(amp="off", cudnn_benchmark=True)
        assert torch.backends.cudnn.benchmark
        xw, yw = next(iter(search.weight_loader.epoch(0)))
        loss, _ = search.weight_step(xw, yw)
        assert math.isfinite(float(loss))
    finally:
        torch.backends.cudnn.benchmark = saved


def test_bf16_autocast_search_stays_close_to_float32():
    plain = _search(amp="off", cuda_graphs="off").run()
    mixed_search = _search(amp="bf16", cuda_graphs="on")
    assert mixed_search.amp_dtype == torch.bfloat16
    mixed = mixed_search.run()
    for a, b in zip(plain.metrics, mixed.metrics):
        assert math.isfinite(b["train_loss"]) and b["train_loss"] == pytest.approx(a["train_loss"], rel=0.1)
    assert mixed.eta.dtype == torch.float32


def test_graphed_training_matches_eager(deterministic_cudnn):
    data = pattern_images(256, size=32)
    runs = []
    for graphs in ("off", "on"):
        torch.manual_seed(0)
        trainer = Trainer(tiny_train_config(device="cuda", amp="off", cuda_graphs=graphs, drop_path=0.0, epochs=2),
                          data=data, **QUIET)
        runs.append((trainer, trainer.run()))
    (_, eager), (graphed_trainer, graphed) = runs
    assert graphed_trainer.runner.steps.captured == ["train"]
    for a, b in zip(eager.metrics, graphed.metrics):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-3, abs=1e-4)


def test_graphed_training_with_drop_path_and_bf16_learns():
    torch.manual_seed(0)
    trainer = Trainer(tiny_train_config(device="cuda", epochs=3, amp="bf16"), data=pattern_images(384, size=32), **QUIET)
    assert trainer.runner.amp_dtype == torch.bfloat16 and trainer.runner.steps.enabled  # graphs are the default on a GPU
    result = trainer.run()
    assert trainer.runner.steps.captured == ["train"] and result.top1 > 40.0  # 4 classes
