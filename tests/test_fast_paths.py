"""Optimised paths give the same numbers as the plain ones (within float tolerance) on tiny real networks."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from drnas.fast import fusion
from drnas.search import Search
from drnas.fast.compiled import cell_compile_options, compile_cells, compiled_with
from drnas.train import PROTOCOLS, Trainer
from drnas.config.search import Stage, apply_overrides
from drnas.fast import preferred_memory_format
from helpers import pattern_images, tiny_config

QUIET = dict(progress=False, log=lambda m: None)


def _one_search_step(memory_format: str, partial_k: int):
    torch.manual_seed(0)
    stage = tiny_config().stages[0].__class__(epochs=1, partial_k=partial_k)
    search = Search(tiny_config(memory_format=memory_format, stages=[stage]), data=pattern_images(128), **QUIET)
    (xw, yw), (xa, ya) = next(iter(zip(search.weight_loader.epoch(0), search.arch_loader.epoch(0))))
    torch.manual_seed(1)
    arch_loss, _ = search.arch_step(xa, ya)
    eta_grad = search.relax.eta.grad.clone()
    weight_loss, _ = search.weight_step(xw, yw)
    weights = torch.cat([p.detach().reshape(-1) for p in search.net.parameters()])
    return search.runner.memory_format, arch_loss, eta_grad, weight_loss, weights


@pytest.mark.parametrize("partial_k", [1, 2])
def test_channels_last_gives_the_same_step(partial_k):
    fmt_a, *plain = _one_search_step("contiguous", partial_k)
    fmt_b, *fast = _one_search_step("channels_last", partial_k)
    assert fmt_a == torch.contiguous_format and fmt_b == torch.channels_last
    for a, b in zip(plain, fast):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_auto_memory_format_rule():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert preferred_memory_format("auto", cpu, 1) == torch.channels_last
    assert preferred_memory_format("auto", cpu, 4) == torch.contiguous_format
    assert preferred_memory_format("auto", cuda, 1) == torch.contiguous_format
    assert preferred_memory_format("channels_last", cuda, 4) == torch.channels_last


def test_stage_transition_switches_layout_and_keeps_optimizer_parameters():
    search = Search(tiny_config(), data=pattern_images(128), **QUIET)  # K=2 then K=1
    assert search.runner.memory_format == torch.contiguous_format
    search._enter_stage(1)
    assert search.runner.memory_format == torch.channels_last
    conv = next(m for m in search.net.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 1 and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    in_optimizer = {id(p) for g in search.weight_optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in search.net.parameters()}


def test_arch_step_gradient_equals_full_backward():
    """The arch step differentiates only eta; its gradient is what a full backward gives eta."""
    torch.manual_seed(0)
    search = Search(tiny_config(stages=[tiny_config().stages[1].__class__(epochs=1)]), data=pattern_images(64), **QUIET)
    x, y = next(iter(search.arch_loader.epoch(0)))
    torch.manual_seed(3)
    theta = search.relax.sample().theta
    loss = torch.nn.functional.cross_entropy(search.net(x.contiguous(memory_format=search.runner.memory_format), theta), y)
    (full,) = torch.autograd.grad(loss, [search.relax.eta], retain_graph=True)
    loss.backward(inputs=[search.relax.eta])
    assert torch.allclose(search.relax.eta.grad, full)
    assert all(p.grad is None for p in search.net.parameters())


def test_training_step_same_in_both_layouts():
    data = pattern_images(64, size=32)
    results = []
    for fmt in ("contiguous", "channels_last"):
        config = apply_overrides(PROTOCOLS.get("darts-cifar"), {"arch": "DARTS_V2", "dataset": "npz", "channels": 8,
                                                                "cells": 3, "batch_size": 16, "device": "cpu",
                                                                "drop_path": 0.0, "memory_format": fmt})
        torch.manual_seed(0)
        trainer = Trainer(config, data=data, **QUIET)
        x, y = next(iter(trainer.train_loader.epoch(0)))
        loss, _ = trainer.train_step(x, y)
        results.append((loss, torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])))
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-5)
    # one SGD step (lr 0.025) from identical weights: layouts sum in different orders, ~2e-5 apart at most
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("regulariser", ["l2", "kl"])
def test_arch_step_split_at_theta_equals_one_backward(regulariser):
    """The arch step differentiates the network up to theta (the part a CUDA graph may replay), then applies
    eq. (5) and the penalty outside: the same eta gradient as one backward through everything."""
    stage = tiny_config().stages[0].__class__(epochs=1, partial_k=2)
    search = Search(tiny_config(method_settings={"regulariser": regulariser}, stages=[stage]), data=pattern_images(128),
                    **QUIET)
    xa, ya = next(iter(search.arch_loader.epoch(0)))
    torch.manual_seed(5)
    theta = search.relax.sample().theta
    objective = torch.nn.functional.cross_entropy(search.net(xa, theta), ya)
    if search.relax.penalty() is not None:
        objective = objective + search.relax.penalty()
    (expected,) = torch.autograd.grad(objective, search.relax.eta)
    torch.manual_seed(5)
    search.arch_step(xa, ya)
    assert torch.allclose(search.relax.eta.grad, expected, rtol=1e-5, atol=1e-10)
    assert expected.abs().max() > 0


def test_device_speed_settings_apply_by_device():
    from drnas.fast.accel import AccelError, amp_dtype, graphs_enabled

    cpu = torch.device("cpu")
    assert amp_dtype("off", cpu) is None and amp_dtype("bf16", cpu) == torch.bfloat16
    assert graphs_enabled("auto", cpu, 1) is False and graphs_enabled("off", cpu, 1) is False
    with pytest.raises(AccelError, match="needs a CUDA device"):
        graphs_enabled("on", cpu, 1)
    with pytest.raises(AccelError, match="single process"):
        graphs_enabled("on", torch.device("cuda"), 2)


def test_bf16_autocast_search_step_on_cpu_keeps_theta_and_eta_float32():
    """amp=bf16 runs the network in bf16 while the Dirichlet sample and eta stay float32 (CPU autocast here; the
    GPU comparison against float32 is in test_gpu.py)."""
    torch.manual_seed(0)
    search = Search(tiny_config(amp="bf16"), data=pattern_images(128), **QUIET)
    (xw, yw), (xa, ya) = next(iter(zip(search.weight_loader.epoch(0), search.arch_loader.epoch(0))))
    arch_loss, _ = search.arch_step(xa, ya)
    weight_loss, _ = search.weight_step(xw, yw)
    assert search.relax.eta.grad.dtype == torch.float32 and torch.isfinite(search.relax.eta.grad).all()
    assert arch_loss.dtype == weight_loss.dtype == torch.float32
    assert 0.5 < float(weight_loss) < 3.0  # 4 classes: ln 4 = 1.39 at the start


# ---------------------------------------------------------------------------------------- compiled cells
def _compiled_search(config, backend: str) -> Search:
    """A search with ``compile="cells"``, its cells compiled by ``backend`` (stage transitions keep it)."""
    search = Search(config, data=pattern_images(128), **QUIET)
    search.runner.compile_backend = backend
    compile_cells(search.net, "none")
    compile_cells(search.net, "cells", backend=backend)
    return search


class _MiscompilingBackend:
    """A ``torch.compile`` backend with a bug: it runs the captured cell and returns its output times 1.5."""

    def __call__(self, graph_module, example_inputs, **options):
        def run(*args):
            return [out * 1.5 if isinstance(out, torch.Tensor) and out.is_floating_point() else out
                    for out in graph_module(*args)]
        return run


def _first_steps(search: Search):
    """eta's gradient after one arch step, then the weights and BatchNorm statistics after one weight step."""
    (xw, yw), (xa, ya) = next(iter(zip(search.weight_loader.epoch(0), search.arch_loader.epoch(0))))
    torch.manual_seed(1)
    search.arch_step(xa, ya)
    eta_grad = search.relax.eta.grad.clone()
    search.weight_step(xw, yw)
    return (eta_grad, torch.cat([p.detach().reshape(-1) for p in search.net.parameters()]),
            torch.cat([b.reshape(-1).double() for b in search.net.buffers()]))


@pytest.mark.parametrize("backend", ["aot_eager", _MiscompilingBackend()], ids=["faithful", "miscompiling"])
def test_compiled_cells_are_checked_against_eager_cells_and_dropped_when_off(monkeypatch, backend):
    """The first arch and weight steps of newly compiled cells run again with eager cells (drnas.fast.compile_check):
    a faithful compiler keeps the cells compiled, and the steps are the compiled ones bit for bit (eta's gradient,
    weights, BatchNorm statistics: as if unchecked, so a resumed run repeats them); one that computes wrongly (as
    torch 2.11's dynamo did through the average pool, pytorch#180642) is dropped with a warning, and the steps
    are the eager ones bit for bit."""
    monkeypatch.setattr(Search, "compile_backend", backend)
    torch.manual_seed(0)
    if backend == "aot_eager":
        unchecked = Search(tiny_config(compile="cells"), data=pattern_images(128), **QUIET)
        unchecked.runner.unchecked.clear()
        reference = _first_steps(unchecked)
    else:
        reference = _first_steps(Search(tiny_config(), data=pattern_images(128), **QUIET))
    logs: list[str] = []
    torch.manual_seed(0)
    search = Search(tiny_config(compile="cells"), data=pattern_images(128), progress=False, log=logs.append)
    assert search.runner.unchecked == {"arch", "weight"}
    checked = _first_steps(search)
    for a, b in zip(reference, checked):
        assert torch.equal(a, b)
    assert search.runner.unchecked == set()
    warnings = [line for line in logs if "going on with eager cells" in line]
    cells = list(search.net.search_cells())
    if backend == "aot_eager":
        assert not warnings and search.runner.compile_mode == "cells"
        assert [line.split(" pass ")[0] for line in logs if line.startswith("compiled cells checked")] == \
            ["compiled cells checked: their arch", "compiled cells checked: their weight"]
        assert all(cell._compiled_call_impl is not None for cell in cells)
        search._enter_stage(1)  # widened and pruned cells are new graphs: checked again
        assert search.runner.unchecked == {"arch", "weight"}
    else:
        assert len(warnings) == 1 and "arch pass" in warnings[0] and "torch " + torch.__version__ in warnings[0]
        assert search.runner.compile_mode == "none" and all(cell._compiled_call_impl is None for cell in cells)
        search._enter_stage(1)
        assert search.runner.unchecked == set()  # stays eager


def _steps_through_a_transition(config, backend: str | None, evaluate: bool):
    """Arch step, weight step (and validation) in stage 0, then again after widening and pruning."""
    torch.manual_seed(0)
    search = (Search(config, data=pattern_images(128), **QUIET) if backend is None
              else _compiled_search(dataclasses.replace(config, compile="cells"), backend))
    batches = list(zip(search.weight_loader.epoch(0), search.arch_loader.epoch(0)))
    results = []
    for stage, ((xw, yw), (xa, ya)) in enumerate(batches[:2]):
        if stage:
            search._enter_stage(1)
        torch.manual_seed(1 + stage)
        arch_loss, _ = search.arch_step(xa, ya)
        if stage == 0:  # the arch step computes no weight gradients
            assert all(p.grad is None for p in search.net.parameters())
        eta_grad = search.relax.eta.grad.clone()
        weight_loss, _ = search.weight_step(xw, yw)
        grads = torch.cat([p.grad.reshape(-1) for p in search.net.parameters() if p.grad is not None])
        valid_loss = torch.tensor(search.evaluate()[0] if evaluate else 0.0)
        buffers = torch.cat([b.reshape(-1).float() for b in search.net.buffers()])
        results.append((arch_loss, eta_grad, weight_loss, grads, valid_loss, buffers))
    return results


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_compiled_cells_give_the_same_steps_across_a_stage_transition(space):
    """Dynamo captures each cell (aot_eager backend: no C++ build, so this stays quick) with the arch step's
    frozen weights, the weight step's no-grad theta and evaluation (NB201 only: DARTS cells are slower to
    capture), and recaptures after widening and pruning; losses, eta and weight gradients and BN statistics match
    eager, with one graph per cell shape and mode. ~10 s (NB201) and ~25 s (DARTS) on 2 cores."""
    from torch._dynamo.utils import counters

    stages = [Stage(epochs=1, partial_k=2), Stage(epochs=1, partial_k=1, ops_kept=2)]
    extra = dict(space="darts", cells=3, channels=8) if space == "darts" else {}
    config = tiny_config(stages=stages, ops=["none", "skip_connect", "avg_pool_3x3"], **extra)
    torch._dynamo.reset()
    counters.clear()
    evaluate = space == "nb201"
    eager = _steps_through_a_transition(config, None, evaluate)
    compiled = _steps_through_a_transition(config, "aot_eager", evaluate)
    for plain, fast in zip(eager, compiled):
        for a, b in zip(plain, fast):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    # 3 cell shapes x (arch step, weight step[, evaluation]) x 2 stages; none ran eagerly for lack of a graph
    assert counters["stats"]["unique_graphs"] == 3 * (2 + evaluate) * 2
    assert not counters["graph_break"]


def test_compiled_cells_keep_the_nchw_layout_of_partial_channel_stages_on_the_cpu():
    """Partial-channel stages run in NCHW on the CPU and their compiled cells keep it; a K=1 stage runs in
    channels_last and leaves the layout to inductor. Changed settings recompile (a new wrapper per cell)."""
    stages = [Stage(epochs=1, partial_k=2), Stage(epochs=1, partial_k=1, ops_kept=2)]
    search = Search(tiny_config(stages=stages, compile="cells"), data=pattern_images(128), **QUIET)
    cells = list(search.net.search_cells())
    assert search.runner.memory_format == torch.contiguous_format
    assert compiled_with(search.net) == ("inductor", True)
    assert cell_compile_options("inductor", True) == {"layout_optimization": False}
    assert cell_compile_options("aot_eager", True) is None  # inductor's options only
    before = [cell._compiled_call_impl for cell in cells]
    compile_cells(search.net, "cells", keep_layout=True)  # same settings: the same wrappers
    assert [cell._compiled_call_impl for cell in cells] == before
    search._enter_stage(1)
    assert search.runner.memory_format == torch.channels_last
    assert compiled_with(search.net) == ("inductor", False)
    assert all(cell._compiled_call_impl is not old for cell, old in zip(cells, before))
    compile_cells(search.net, "none")
    assert compiled_with(search.net) is None and all(c._compiled_call_impl is None for c in cells)


@pytest.mark.parametrize("keep_layout", [True, False])
def test_compiled_cell_matches_eager_with_inductor(keep_layout):
    """Inductor's code for one partial-channel NB201 cell, forward and backward (to theta and the weights at
    once: the search-level test above covers each step's own mix), with the NCHW layout kept (what a CPU search
    compiles for partial channels) and with inductor's own layout choice; its 1x1 convs over 4 channels are the
    compiled path's channel sums (``compiled_pointwise_conv_channels``), and its 3x3 convs take
    their input gradients from flipped weights (``compiled_flipped_input_grad_channels``). Costs
    ~40 s on 2 cores with a cold inductor cache (mostly inductor's one-time setup), ~3 s warm."""
    from torch._dynamo.utils import counters

    from drnas.spaces.nb201 import NB201Cell

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    cells = [fusion.install(NB201Cell(8, 2, ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")))
             for _ in range(2)]
    cells[1].load_state_dict(cells[0].state_dict())
    # what drnas.fast.compiled.compile_cells does to every cell
    cells[1].compile(dynamic=False, options=cell_compile_options("inductor", keep_layout))
    x = torch.randn(4, 8, 6, 6)
    theta = torch.softmax(torch.randn(6, 4), -1)
    outs = []
    for cell in cells:
        t = theta.clone().requires_grad_()
        y = cell(x, t)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append([y, t.grad, *(p.grad for p in cell.parameters()), *cell.buffers()])
    assert counters["stats"]["unique_graphs"] == 1  # the compiled cell did not fall back to eager
    for a, b in zip(*outs):  # float rounding, relative to each tensor's scale (sums run in other orders)
        scale = max(a.float().abs().max().item(), 1.0)
        assert (a.float() - b.float()).abs().max().item() <= 2e-5 * scale


# ---------------------------------------------------------------------------------------- compile=auto
def test_cudnn_benchmark_leaves_the_process_alone_on_a_cpu():
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        Search(tiny_config(cudnn_benchmark=True), data=pattern_images(64), progress=False, log=lambda m: None)
        assert torch.backends.cudnn.benchmark is False  # a GPU-only setting: a CPU job does not touch it
    finally:
        torch.backends.cudnn.benchmark = saved


def test_compile_auto_rule(monkeypatch):
    """``auto`` compiles long CPU searches in a space where that was measured to pay, and nothing else."""
    from drnas.fast import accel
    from drnas.fast.accel import AUTO_COMPILE_MIN_STEPS, resolve_compile

    monkeypatch.setattr(accel.sys, "platform", "linux")
    cpu, cuda, long = torch.device("cpu"), torch.device("cuda"), AUTO_COMPILE_MIN_STEPS
    assert accel.cpp_compiler_found()  # inductor's own search: the test suite's inductor tests need one too
    mode, why = resolve_compile("auto", cpu, True, long)
    assert mode == "cells" and "compile=none" in why and "\n" not in why
    assert resolve_compile("auto", cpu, True, long - 1) == ("none", "")  # a quick try: not worth compiling
    assert resolve_compile("auto", cpu, False, long) == ("none", "")     # DARTS cells: slower compiled
    assert resolve_compile("auto", cuda, True, long) == ("none", "")     # GPUs replay CUDA graphs instead
    assert resolve_compile("cells", cpu, False, 1) == ("cells", "")      # explicit settings are kept,
    assert resolve_compile("cells", cuda, False, 1) == ("cells", accel.GPU_COMPILE_WARNING)  # with a warning on GPUs
    assert resolve_compile("none", cpu, True, long) == ("none", "")
    with torch._inductor.config.patch({"cpp.cxx": ("no-such-compiler-drnas",)}):  # (monkeypatch would delete it)
        assert not accel.cpp_compiler_found()
        mode, why = resolve_compile("auto", cpu, True, long)
    assert mode == "none" and "C++ compiler" in why
    monkeypatch.setattr(accel.sys, "platform", "darwin")
    assert resolve_compile("auto", cpu, True, long)[0] == "none"


@pytest.mark.parametrize("space, compiled", [("nb201", True), ("darts", False)])
def test_search_resolves_compile_auto_from_its_length(monkeypatch, space, compiled):
    """The search counts its weight steps (batches per epoch x epochs) and compiles its cells (lazily: nothing
    is compiled before the first step) when ``auto`` says so, saying why in its log."""
    from drnas.fast import accel
    changes = {"space": space, "cells": 3, "channels": 8} if space == "darts" else {}
    lines: list[str] = []
    short = Search(tiny_config(**changes), data=pattern_images(128), progress=False, log=lines.append)
    assert short.config.compile == "auto" and short.runner.compile_mode == "none"
    assert all(cell._compiled_call_impl is None for cell in short.net.search_cells())
    assert not [line for line in lines if "compil" in line]  # (the log also gets the DEBUG device line)
    steps = len(short.weight_loader) * short.config.epochs
    monkeypatch.setattr(accel, "AUTO_COMPILE_MIN_STEPS", steps)
    search = Search(tiny_config(**changes), data=pattern_images(128), progress=False, log=lines.append)
    assert search.runner.compile_mode == ("cells" if compiled else "none")
    assert all((cell._compiled_call_impl is not None) == compiled for cell in search.net.search_cells())
    assert any(f"{steps} weight steps" in line for line in lines) == compiled


def test_compile_auto_leaves_a_space_it_was_not_measured_to_pay_for_eager(monkeypatch):
    """``auto`` compiles only the spaces whose ``compiled_cells_pay_on_cpu`` says it was measured to pay."""
    from drnas.fast import accel
    from drnas.spaces.nb201 import NB201Space
    monkeypatch.setattr(accel, "AUTO_COMPILE_MIN_STEPS", 1)
    monkeypatch.setattr(NB201Space, "compiled_cells_pay_on_cpu", False)
    search = Search(tiny_config(), data=pattern_images(128), **QUIET)
    assert search.runner.compile_mode == "none"
