"""The search loop on tiny real data: learning, stage transitions, exact resume, NaN handling."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from drnas.engine.runs import RunDir, RunError
from drnas.search import NonFiniteLossError, Search
from drnas.engine.job import MEASURED_FIELDS
from helpers import pattern_images, tiny_config


def test_arch_steps_lower_the_arch_half_loss():
    """With the weights fixed, Adam on eta alone lowers the loss on the arch half (the upper level of eq. 4)."""
    data = pattern_images(512)
    search = Search(tiny_config(stages=[tiny_config().stages[0]], arch_lr=0.05), data=data, progress=False,
                    log=lambda m: None)
    for x, y in search.weight_loader.epoch(0):  # give the ops something to tell apart
        search.weight_step(x, y)
    before, _ = search.evaluate()
    eta_before = search.relax.eta.detach().clone()
    for epoch in range(4):
        for x, y in search.arch_loader.epoch(epoch):
            search.arch_step(x, y)
    after, _ = search.evaluate()
    assert not torch.equal(eta_before, search.relax.eta)
    assert after < before - 0.05, (before, after)


def test_search_learns_and_logs_an_epoch_record(tmp_path):
    data = pattern_images(512)
    search = Search(tiny_config(), tmp_path / "run", data=data, progress=False, log=lambda m: None)
    result = search.run()
    assert result.epochs_done == 4 and len(result.metrics) == 4
    first, last = result.metrics[0], result.metrics[-1]
    assert first["arch_loss"] is None and last["arch_loss"] is not None  # warm-up, then arch updates
    assert last["train_loss"] < first["train_loss"]
    assert last["valid_acc"] > 40.0  # 4 classes: chance is 25%
    assert [m["stage"] for m in result.metrics] == [0, 0, 1, 1]
    # stage 1 pruned every edge to 3 ops; the derived op is one of them
    arch = json.loads((tmp_path / "run" / "architecture.json").read_text())
    assert arch["final"] and len(arch["edges"]) == 6
    for edge in arch["edges"]:
        assert len(edge["kept"]) == 3 and edge["op"] in edge["kept"]
        assert sum(edge["mean"]) == pytest.approx(1.0, abs=1e-5)
        assert len(edge["eta"]) == len(edge["beta"]) == 5
    assert arch["architecture"]["arch"] == str(result.architecture)
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "dirichlet_mean.png"):
        assert (tmp_path / "run" / name).is_file()
    assert search.net.partial_k == 1


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    data = pattern_images(256)
    quiet = dict(data=data, progress=False, log=lambda m: None)
    full = Search(tiny_config(), tmp_path / "full", **quiet).run()

    Search(tiny_config(), tmp_path / "parts", **quiet).run(max_epochs=1)  # "interrupted" after epoch 1
    Search.resume(tmp_path / "parts", **quiet).run(max_epochs=2)        # crosses the stage transition
    parts = Search.resume(tmp_path / "parts", **quiet).run()

    assert torch.equal(full.eta, parts.eta)
    assert str(full.architecture) == str(parts.architecture)
    a = RunDir(tmp_path / "full").load_checkpoint()
    b = RunDir(tmp_path / "parts").load_checkpoint()
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])
    strip = lambda ms: [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in ms]  # noqa: E731
    assert strip(full.metrics) == strip(parts.metrics)
    assert len((tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()) == 4


def test_non_finite_loss_stops_with_the_last_checkpoint_intact(tmp_path):
    data = pattern_images(256)
    search = Search(tiny_config(), tmp_path / "run", data=data, progress=False, log=lambda m: None)
    search.run(max_epochs=1)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    search.config.lr = search.config.lr_min = 1e30  # make the next epoch blow up
    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        search.run()
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == digest
    resumed = Search.resume(tmp_path / "run", data=data, progress=False, log=lambda m: None)
    assert resumed.epoch == 1 and len(resumed.metrics) == 1


def test_out_dir_holding_a_run_is_refused(tmp_path):
    data = pattern_images(128)
    Search(tiny_config(stages=[tiny_config().stages[0]]), tmp_path / "run", data=data, progress=False,
           log=lambda m: None).run(max_epochs=1)
    with pytest.raises(RunError, match="--resume"):
        Search(tiny_config(), tmp_path / "run", data=data, progress=False)
    with pytest.raises(RunError, match="not a drnas run"):
        Search.resume(tmp_path)


def test_kl_regulariser_runs_and_moves_eta():
    data = pattern_images(128)
    search = Search(tiny_config(method_settings={"regulariser": "kl"}, reg_scale=0.1, stages=[tiny_config().stages[0]]),
                    data=data, progress=False, log=lambda m: None)
    result = search.run()
    assert torch.isfinite(result.eta).all() and result.eta.abs().max() > 1e-3


def test_relative_paths_are_saved_absolute_so_resume_works_elsewhere(tmp_path, monkeypatch):
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    (tmp_path / "table.csv").write_text(f"arch,cifar10_test_acc\n{arch},94.36\n")
    monkeypatch.chdir(tmp_path)
    data = pattern_images(128)
    quiet = dict(data=data, progress=False, log=lambda m: None)
    Search(tiny_config(benchmark="table.csv"), "run", **quiet).run(max_epochs=1)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["benchmark"] == str(tmp_path / "table.csv")
    monkeypatch.chdir("/")
    resumed = Search.resume(tmp_path / "run", **quiet)
    assert resumed.table is not None and resumed.epoch == 1


def test_a_run_saved_with_the_retired_relaxation_field_resumes(tmp_path):
    """``relaxation`` left the config (the method decides it): runs saved with its one value still resume, and
    setting it is a one-line error pointing to --method."""
    from drnas.config import ConfigError, SearchConfig, apply_overrides

    data = pattern_images(128)
    Search(tiny_config(), out=tmp_path / "run", data=data, progress=False, log=lambda m: None).run(max_epochs=1)
    config_file = tmp_path / "run" / "config.json"
    saved = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**saved, "relaxation": "dirichlet"}))
    resumed = Search.resume(tmp_path / "run", data=data, progress=False, log=lambda m: None)
    assert resumed.epoch == 1 and not hasattr(resumed.config, "relaxation")
    with pytest.raises(ConfigError, match="relaxation is no config field any more: .* --method"):
        apply_overrides(SearchConfig(), {"relaxation": "softmax"})
