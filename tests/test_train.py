"""Retraining: protocols, the loop with exact resume, export, reports, and search -> retrain end to end."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from drnas.engine.runs import RunDir
from drnas.config.search import Stage, apply_overrides
from drnas.data import ImageArrays, load_dataset
from drnas.analysis.cost import count_macs, count_parameters
from drnas.search import Search
from drnas.spaces import NB201Arch, NetworkSpec, get_space
from drnas.train import PROTOCOLS, Trainer, TrainConfig, default_protocol
from drnas.engine.job import MEASURED_FIELDS, lr_at
from conftest import CIFAR_NPZ
from helpers import pattern_images

QUIET = dict(progress=False, log=lambda m: None)


def tiny_train_config(**changes) -> TrainConfig:
    base = {"arch": "DARTS_V2", "dataset": "npz", "epochs": 3, "batch_size": 32, "channels": 8, "cells": 3,
            "cutout": 4, "drop_path": 0.2, "auxiliary_weight": 0.4, "lr": 0.05, "device": "cpu"}
    return apply_overrides(PROTOCOLS.get("darts-cifar"), {**base, **changes})


def test_protocols_hold_the_papers_settings():
    cifar = PROTOCOLS.get("darts-cifar")
    assert (cifar.epochs, cifar.batch_size, cifar.lr, cifar.schedule, cifar.momentum, cifar.weight_decay,
            cifar.grad_clip, cifar.cutout, cifar.drop_path, cifar.auxiliary_weight, cifar.channels, cifar.cells) == \
        (600, 96, 0.025, "cosine", 0.9, 3e-4, 5.0, 16, 0.3, 0.4, 36, 20)
    imagenet = PROTOCOLS.get("darts-imagenet")
    assert (imagenet.epochs, imagenet.lr, imagenet.schedule, imagenet.warmup_epochs, imagenet.weight_decay,
            imagenet.label_smoothing, imagenet.auxiliary_weight, imagenet.channels, imagenet.cells) == \
        (250, 0.5, "linear", 5, 3e-5, 0.1, 0.4, 48, 14)
    assert default_protocol("nb201", "cifar10") == "nb201"
    assert default_protocol("darts", "imagenet") == "darts-imagenet"


def test_learning_rate_schedules():
    assert lr_at(0, 10, 0.1, 0.0, "cosine") == pytest.approx(0.1)
    assert lr_at(5, 10, 0.1, 0.0, "cosine") == pytest.approx(0.05)
    assert [round(lr_at(e, 10, 0.5, 0.0, "linear", 5), 4) for e in range(10)] == \
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.4, 0.3, 0.2, 0.1]


def test_training_learns_resumes_exactly_and_exports(tmp_path):
    data = pattern_images(384, size=32)
    full = Trainer(tiny_train_config(), tmp_path / "full", data=data, **QUIET).run()
    assert full.epochs_done == 3 and full.top1 > 40.0  # 4 classes
    assert full.report["params"] > full.report["params_without_aux"] > 0 and full.report["macs"] > 0

    Trainer(tiny_train_config(), tmp_path / "parts", data=data, **QUIET).run(max_epochs=1)
    trainer = Trainer.resume(tmp_path / "parts", data=data, **QUIET)
    parts = trainer.run()
    strip = lambda ms: [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in ms]  # noqa: E731
    assert strip(full.metrics) == strip(parts.metrics)
    a = RunDir(tmp_path / "full").load_checkpoint()["model"]
    b = RunDir(tmp_path / "parts").load_checkpoint()["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    result = json.loads((tmp_path / "parts" / "result.json").read_text())
    assert result["final"] and result["top1"] == parts.top1 and result["params_without_aux"] == parts.report["params_without_aux"]

    x = next(iter(trainer.test_loader.epoch(0)))[0][:4]
    trainer.model.eval()
    expected = trainer.model(x)
    scripted = torch.jit.load(str(trainer.export(tmp_path / "net.pt")))
    assert torch.allclose(scripted(x), expected, atol=1e-5)
    onnx = pytest.importorskip("onnx")
    path = trainer.export(tmp_path / "net.onnx")
    onnx.checker.check_model(onnx.load(str(path)))


def test_search_resume_refuses_a_training_run(tmp_path):
    from drnas.engine.runs import RunError

    Trainer(tiny_train_config(epochs=1), tmp_path / "t", data=pattern_images(64, size=32), **QUIET).run()
    with pytest.raises(RunError):
        Trainer.resume(tmp_path / "missing")
    with pytest.raises(Exception, match="train"):
        Search.resume(tmp_path / "t", data=pattern_images(64, size=32), **QUIET)


def test_nb201_protocol_trains_an_nb201_cell_and_matches_benchmark_costs(nb201_csv):
    from drnas.bench.nb201 import NB201Table

    table = NB201Table.load(nb201_csv)
    space = get_space("nb201")
    for arch in ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
                 "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
                 "|none~0|+|avg_pool_3x3~0|none~1|+|nor_conv_1x1~0|none~1|avg_pool_3x3~2|"]:
        net = space.build_network(NB201Arch.parse(arch), NetworkSpec(channels=16, cells_per_stage=5, num_classes=10))
        row = table.query(arch)
        assert count_parameters(net) / 1e6 == pytest.approx(row["params_mb_cifar10"], abs=1e-6)
        assert count_macs(net, (1, 3, 32, 32)) / 1e6 == pytest.approx(row["flops_m_cifar10"], abs=0.01)


def test_nb201_protocol_on_digits():
    config = apply_overrides(PROTOCOLS.get("nb201"), {"arch": "DrNAS_nb201", "dataset": "digits", "epochs": 2,
                                                      "channels": 8, "cells_per_stage": 1, "batch_size": 64,
                                                      "device": "cpu"})
    trainer = Trainer(config, **QUIET)
    assert trainer.optimizer.param_groups[0]["nesterov"]
    result = trainer.run()
    assert result.top1 > 30.0  # 10 classes


def test_search_then_retrain_on_real_cifar_beats_chance(tmp_path):
    if not CIFAR_NPZ.is_file():
        pytest.skip(f"CIFAR-10 arrays not found at {CIFAR_NPZ}")
    full = load_dataset("cifar10", CIFAR_NPZ)
    small = ImageArrays(full.x_train[:800], full.y_train[:800], full.x_test[:500], full.y_test[:500], full.info)
    from helpers import tiny_config

    search_cfg = tiny_config(space="darts", dataset="cifar10", cells=3, channels=4, batch_size=32, lr=0.05,
                             train_images=384, stages=[Stage(1, 2, None, 0), Stage(1, 1, 4, 0)])
    found = Search(search_cfg, tmp_path / "search", data=small, **QUIET).run()
    assert all(op != "none" for op, _ in found.architecture.normal + found.architecture.reduce)
    config = tiny_train_config(arch=str(tmp_path / "search"), dataset="cifar10", epochs=6, batch_size=32, lr=0.05)
    result = Trainer(config, tmp_path / "train", data=small, **QUIET).run()
    assert result.top1 > 20.0, result.top1  # chance is 10%
    saved = json.loads((tmp_path / "train" / "architecture.json").read_text())
    assert saved["architecture"] == found.architecture.to_json()


def test_imagenet_folders_for_search_and_retraining(tmp_path, imagenet_tree):
    from drnas.config.search import ConfigError
    from helpers import tiny_config

    search_cfg = tiny_config(space="darts", dataset="imagenet", data=str(imagenet_tree), cells=3, channels=8,
                             batch_size=4, image_size=96, workers=0, subset_fractions=[0.5, 0.5],
                             stages=[Stage(1, 2, None, 0)])
    search = Search(search_cfg, **QUIET)
    assert search.info.num_classes == 3 and len(search.weight_loader) == 3  # 12 of the 24 images, batch 4
    assert search.net.stem1 is not None  # ImageNet stem: 96 -> 12
    found = search.run().architecture
    assert found.space == "darts"

    config = apply_overrides(PROTOCOLS.get("darts-imagenet"), {"arch": "DrNAS_imagenet", "data": str(imagenet_tree),
                                                               "epochs": 2, "batch_size": 6, "channels": 8, "cells": 3,
                                                               "image_size": 96, "workers": 0, "warmup_epochs": 1,
                                                               "auxiliary_weight": 0.0, "device": "cpu"})
    trainer = Trainer(config, **QUIET)
    assert trainer.info.num_classes == 3 and len(trainer.train_loader) == 4
    result = trainer.run()
    assert 0.0 <= result.top1 <= 100.0 and result.top5 == pytest.approx(100.0)  # 3 classes: top-5 is everything
    with pytest.raises(ConfigError, match="auxiliary head"):
        Trainer(apply_overrides(config, {"auxiliary_weight": 0.4}), **QUIET)


# ------------------------------------------------------------------ fields the space or dataset does not use
NB201_ARCH, DARTS_ARCH = "DrNAS_nb201", "DARTS_V2"
UNUSED_FIELDS = {  # arch, dataset, given fields -> the one error line
    "cells_per_stage on DARTS": (DARTS_ARCH, "digits", {"cells_per_stage": "1"},
                                 "cells_per_stage is an NB201 field; a DARTS network's depth is --set cells=N"),
    "cells on NB201": (NB201_ARCH, "digits", {"cells": "3"},
                       "cells is a DARTS field; an NB201 network's depth is --set cells_per_stage=N"),
    "auxiliary head on NB201": (NB201_ARCH, "digits", {"auxiliary_weight": "0.4"},
                                "auxiliary_weight is a DARTS field; an NB201 network has no auxiliary head"),
    "drop-path on NB201": (NB201_ARCH, "digits", {"drop_path": "0.2"},
                           "drop_path is a DARTS field; an NB201 network's cells have no drop-path"),
    "image_size on arrays": (NB201_ARCH, "digits", {"image_size": "64"},
                             "image_size applies to image folders (--dataset imagenet or folder); --dataset digits"),
    "workers on arrays": (NB201_ARCH, "digits", {"workers": "2"},
                          "workers applies to image folders (--dataset imagenet or folder)"),
    "cutout on folders": (DARTS_ARCH, "imagenet", {"cutout": "16"}, "cutout applies to in-memory datasets"),
    "download on folders": (DARTS_ARCH, "imagenet", {"download": "true"}, "--download fetches CIFAR"),
}


def _tiny_sizes(arch: str) -> list[str]:
    return ["--set", "channels=4"] + (["--set", "cells_per_stage=1"] if arch == NB201_ARCH else ["--set", "cells=3"])


@pytest.mark.parametrize("case", UNUSED_FIELDS, ids=list(UNUSED_FIELDS))
def test_a_field_the_network_or_dataset_does_not_use_is_a_one_line_cli_error(case, tmp_path, capsys):
    from drnas.cli import main

    arch, dataset, given, message = UNUSED_FIELDS[case]
    # 10 epochs: the ImageNet protocol warms up for 5 (nothing trains: the error comes first)
    argv = ["train", "--arch", arch, "--dataset", dataset, "--epochs", "10", "--out", str(tmp_path / "run"), "--quiet"]
    argv += ["--data", str(tmp_path / "no-folder")] if dataset == "imagenet" else []
    for name, value in given.items():
        argv += ["--download"] if name == "download" else ["--set", f"{name}={value}"]
    assert main(argv + _tiny_sizes(arch)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"drnas: error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", UNUSED_FIELDS, ids=list(UNUSED_FIELDS))
def test_a_field_the_network_or_dataset_does_not_use_is_a_config_error_in_python(case):
    from drnas.config.search import ConfigError

    arch, dataset, given, message = UNUSED_FIELDS[case]
    sizes = {"channels": 4, **({"cells_per_stage": 1} if arch == NB201_ARCH else {"cells": 3})}
    config = apply_overrides(PROTOCOLS.get(default_protocol("nb201" if arch == NB201_ARCH else "darts", dataset)),
                             {"arch": arch, "dataset": dataset, "epochs": 10, "device": "cpu", **sizes, **given})
    with pytest.raises(ConfigError) as caught:
        Trainer(config, **QUIET)  # fails before any data loads
    assert str(caught.value).startswith(message)


def test_a_protocols_own_values_and_harmless_zeros_are_no_error():
    from helpers import digits

    data = digits(64)
    # darts-cifar sets auxiliary_weight 0.4 and drop_path 0.3, which an NB201 cell does not use: the protocol's
    # own values are not the user's, so they pass (as before)
    nb201_by_darts = apply_overrides(PROTOCOLS.get("darts-cifar"), {"arch": NB201_ARCH, "dataset": "digits",
                                                                    "channels": 4, "cells_per_stage": 1, "epochs": 1,
                                                                    "device": "cpu"})
    assert Trainer(nb201_by_darts, data=data, **QUIET).report["params"] > 0
    # setting a DARTS-only weight to 0 on an NB201 cell asks for nothing it lacks
    zeros = apply_overrides(PROTOCOLS.get("nb201"), {"arch": NB201_ARCH, "dataset": "digits", "channels": 4,
                                                     "cells_per_stage": 1, "epochs": 1, "auxiliary_weight": 0,
                                                     "drop_path": 0, "device": "cpu"})
    Trainer(zeros, data=data, **QUIET)
    # a resumed run continues with its saved config, even one saved before the check existed
    resumed = dataclasses.replace(zeros, cells=7)
    with pytest.raises(Exception, match="cells is a DARTS field"):
        Trainer(resumed, data=data, **QUIET)
    Trainer(resumed, data=data, _resuming=True, **QUIET)


# ------------------------------------------------------------------ --test-images and the evaluation bar
def test_test_images_limits_the_evaluation_and_is_recorded(tmp_path, capsys):
    from drnas.cli import main

    def train(out, test_images: str) -> int:
        # digits has no test split: 40 of the 400 images are held out, of which the first N are evaluated
        return main(["train", "--arch", NB201_ARCH, "--dataset", "digits", "--epochs", "1", "--train-images", "400",
                     "--test-images", test_images, "--out", str(out), "--quiet"] + _tiny_sizes(NB201_ARCH))

    assert train(tmp_path / "run", "30") == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["test_images"] == 30
    trainer = Trainer.resume(tmp_path / "run", **QUIET)
    assert len(trainer.test_loader.x) == 30 and trainer.config.test_images == 30
    capsys.readouterr()
    assert train(tmp_path / "bad", "0") == 2
    err = capsys.readouterr().err
    assert err == "drnas: error: test_images must be >= 1 (or unset for all images), got 0\n"


def test_evaluation_shows_a_progress_bar_on_a_terminal_unless_quiet(capsys, monkeypatch):
    """A bar while stderr is a terminal; none when it is a file or a pipe (a log gets the epoch's line only) or
    with progress off."""
    import sys

    from helpers import digits

    config = apply_overrides(PROTOCOLS.get("nb201"), {"arch": NB201_ARCH, "dataset": "digits", "channels": 4,
                                                      "cells_per_stage": 1, "epochs": 1, "batch_size": 16,
                                                      "device": "cpu"})
    data = digits(200)  # no test split: 20 held out, evaluated in batches of 256
    capsys.readouterr()
    logged = Trainer(config, data=data, progress=True, log=lambda m: None)
    record = logged.evaluate()
    assert capsys.readouterr().err == ""  # stderr is captured here: not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    shown = Trainer(config, data=data, progress=True, log=lambda m: None)
    assert shown.evaluate() == record
    err = capsys.readouterr().err
    assert "test:" in err and "/1 [" in err and f"top1={record['top1']:.1f}" in err, err  # tqdm, like an epoch's bar
    quiet = Trainer(config, data=data, **QUIET)
    assert quiet.evaluate() == record and capsys.readouterr().err == ""


def test_test_images_of_folders_spread_over_the_classes(imagenet_tree):
    config = apply_overrides(PROTOCOLS.get("darts-imagenet"), {"arch": "DrNAS_imagenet", "data": str(imagenet_tree),
                                                               "epochs": 1, "batch_size": 6, "channels": 4, "cells": 3,
                                                               "image_size": 64, "workers": 0, "warmup_epochs": 0,
                                                               "auxiliary_weight": 0.0, "device": "cpu",
                                                               "train_images": 9, "test_images": 5})
    trainer = Trainer(config, **QUIET)
    assert len(trainer.train_loader.index) == 9 and sorted(set(trainer.train_loader.index.labels)) == [0, 1, 2]
    assert len(trainer.test_loader.index) == 5 and sorted(set(trainer.test_loader.index.labels)) == [0, 1, 2]
