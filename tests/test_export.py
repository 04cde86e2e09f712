"""Exports of a trained network for inference: torch.export (.pt2), TorchScript (.pt), ONNX; no auxiliary head."""
from __future__ import annotations

import pytest
import torch

from drnas.config.search import ConfigError, apply_overrides
from drnas.analysis.cost import count_parameters
from drnas.engine.export import export_format
from drnas.train import PROTOCOLS, Trainer
from helpers import digits, pattern_images

QUIET = dict(progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def darts_trainer(tmp_path_factory) -> Trainer:
    """A tiny DARTS network with an auxiliary head, trained one epoch (so BN statistics are not the initial ones)."""
    config = apply_overrides(PROTOCOLS.get("darts-cifar"), {"arch": "DARTS_V2", "dataset": "npz", "epochs": 1,
                                                            "batch_size": 32, "channels": 4, "cells": 3, "cutout": 0,
                                                            "device": "cpu"})
    trainer = Trainer(config, tmp_path_factory.mktemp("darts") / "run", data=pattern_images(64, size=32), **QUIET)
    trainer.run()
    assert trainer.model.auxiliary_head is not None
    return trainer


@pytest.fixture(scope="module")
def nb201_trainer() -> Trainer:
    config = apply_overrides(PROTOCOLS.get("nb201"), {"arch": "DrNAS_nb201", "dataset": "digits", "epochs": 1,
                                                      "batch_size": 32, "channels": 4, "cells_per_stage": 1,
                                                      "device": "cpu"})
    trainer = Trainer(config, data=digits(96), **QUIET)
    trainer.run()
    return trainer


def _eval_logits(trainer: Trainer, x: torch.Tensor) -> torch.Tensor:
    trainer.model.eval()
    try:
        with torch.no_grad():
            return trainer.model(x)
    finally:
        trainer.model.train()


def test_torchscript_export_leaves_out_the_auxiliary_head(darts_trainer, tmp_path):
    params = count_parameters(darts_trainer.model)
    scripted = torch.jit.load(str(darts_trainer.export(tmp_path / "net.pt")))
    assert sum(p.numel() for p in scripted.parameters()) == darts_trainer.report["params_without_aux"] < params
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(scripted(x), _eval_logits(darts_trainer, x))
    # the trained model keeps its head, its parameters and its training mode
    assert darts_trainer.model.auxiliary_head is not None and count_parameters(darts_trainer.model) == params
    assert darts_trainer.model.training


@pytest.mark.parametrize("which", ["darts", "nb201"])
def test_torch_export_program_computes_the_modules_logits_at_any_batch_size(which, darts_trainer, nb201_trainer,
                                                                            tmp_path):
    trainer = darts_trainer if which == "darts" else nb201_trainer
    path = trainer.export(tmp_path / "net.pt2")
    assert path.is_file() and not list(tmp_path.glob(".*.tmp"))
    program = torch.export.load(str(path))
    assert sum(p.numel() for p in program.parameters()) == trainer.report["params_without_aux"]
    module = program.module()
    size, channels = trainer.info.image_size, trainer.info.channels
    for batch in (1, 5):  # the batch dimension is dynamic
        x = torch.randn(batch, channels, size, size)
        torch.testing.assert_close(module(x), _eval_logits(trainer, x))


def test_onnx_export_leaves_out_the_auxiliary_head(darts_trainer, tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(darts_trainer.export(tmp_path / "net.onnx")))
    onnx.checker.check_model(model)
    names = [init.name for init in model.graph.initializer]
    assert names and not any("auxiliary" in name for name in names)


def test_export_formats_by_suffix_and_unknown_ones_are_one_line_errors(tmp_path, capsys):
    assert [export_format(p) for p in ("a.pt2", "a.pt", "a.onnx")] == ["torch.export", "torchscript", "onnx"]
    assert export_format("a.bin", "torchscript") == "torchscript"
    with pytest.raises(ConfigError, match=r"end the path in \.pt2 \(torch\.export\), \.pt \(TorchScript\) or \.onnx"):
        export_format("net.onxx")
    with pytest.raises(ConfigError, match="export format must be one of torch.export, torchscript, onnx"):
        export_format("net.pt", "tflite")

    from drnas.cli import main

    # refused before any training starts: no run directory is made
    assert main(["train", "--arch", "DrNAS_nb201", "--dataset", "digits", "--epochs", "1", "--out",
                 str(tmp_path / "run"), "--export", str(tmp_path / "net.onxx"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("drnas: error: cannot tell the export format of") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_cli_exports_a_pt2_beside_the_training_run(tmp_path, capsys):
    from drnas.cli import main

    out, path = tmp_path / "run", tmp_path / "net.pt2"
    assert main(["train", "--arch", "DrNAS_nb201", "--dataset", "digits", "--epochs", "1", "--train-images", "96",
                 "--set", "channels=4", "--set", "cells_per_stage=1", "--out", str(out), "--export", str(path),
                 "--quiet"]) == 0
    assert f"exported: {path}" in capsys.readouterr().out
    trainer = Trainer.resume(out, **QUIET)  # the trained weights, from the run's checkpoint
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(torch.export.load(str(path)).module()(x), _eval_logits(trainer, x))
