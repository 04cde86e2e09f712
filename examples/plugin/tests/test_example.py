"""Tests of the example plugin, as a plugin's own tests would be: import it, check what it registered, and run a
tiny real search through drnas' public API. ``pytest examples/plugin/tests`` (the plugin importable: installed, or
``PYTHONPATH=examples/plugin/src``)."""
from __future__ import annotations

import pytest
import torch

import drnas
import drnas_example_plugin  # noqa: F401  (registers on import)
from drnas.data.formats import DATASETS, load_dataset
from drnas.method.strategies import METHODS
from drnas.spaces import NetworkSpec, SupernetSpec, get_space
from drnas.spaces.ops import OPS, build_op
from drnas.spaces.resolve import resolve_architecture
from drnas_example_plugin.space import TinyArch


def test_importing_registers_each_kind():
    assert "temperature-softmax" in METHODS and "conv_5x5" in OPS and "noise16" in DATASETS
    assert "tiny-cell" in drnas.space_names()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_temperature_divides_alpha_before_the_softmax(temperature):
    method = METHODS.get("temperature-softmax")
    config = drnas.SearchConfig(space="tiny-cell", method="temperature-softmax",
                                method_settings={"temperature": temperature})
    strategy = method(get_space("tiny-cell"), config)
    with torch.no_grad():
        strategy.eta.copy_(torch.randn_like(strategy.eta))
    expected = torch.softmax(strategy.eta.detach() / temperature, dim=-1)
    assert torch.allclose(strategy.sample().theta, expected)
    assert torch.allclose(strategy.expected_weights(), expected)
    strategy.sample().theta[:, 2].sum().backward()  # the weights carry a gradient back to alpha
    assert strategy.eta.grad is not None and strategy.eta.grad.abs().sum() > 0


def test_conv_5x5_keeps_or_halves_the_size():
    x = torch.randn(2, 4, 16, 16)
    assert build_op("conv_5x5", 4, 8, 1)(x).shape == (2, 8, 16, 16)
    assert build_op("conv_5x5", 4, 8, 2)(x).shape == (2, 8, 8, 8)


def test_an_architecture_round_trips_through_text_and_json():
    arch = TinyArch(("conv_5x5", "skip_connect", "none"))
    assert str(arch) == "tiny:conv_5x5,skip_connect,none"
    assert resolve_architecture(str(arch)) == arch  # what `drnas arch` and `drnas train --arch` read
    assert get_space("tiny-cell").from_json(arch.to_json()) == arch
    with pytest.raises(drnas.ArchitectureError, match="3 edges"):
        get_space("tiny-cell").parse("tiny:conv_5x5,none")


def test_the_networks_classify_noise16():
    space, data = get_space("tiny-cell"), load_dataset("noise16")
    x = torch.from_numpy(data.x_train[:4]).permute(0, 3, 1, 2).float()
    supernet = space.build_supernet(SupernetSpec(channels=4, cells_per_stage=1, num_classes=3))
    theta = torch.full((space.num_edges, len(space.ops)), 1 / len(space.ops))
    assert supernet(x, theta).shape == (4, 3)
    network = space.build_network(space.derive(theta), NetworkSpec(channels=4, cells_per_stage=1, num_classes=3))
    assert network(x).shape == (4, 3)


@pytest.mark.parametrize("method", ["temperature-softmax", "drnas", "darts", "pc-darts", "rsps"])
def test_a_tiny_search_derives_a_tiny_cell(method, tmp_path):
    torch.set_num_threads(1)
    config = drnas.SearchConfig(space="tiny-cell", dataset="noise16", method=method, channels=4, cells_per_stage=1,
                                train_images=128, batch_size=32, threads=1)
    config = drnas.set_total_epochs(drnas.with_method(config, method), 1)
    result = drnas.Search(config, out=tmp_path / "run", progress=False).run()
    assert isinstance(result.architecture, TinyArch)
    assert resolve_architecture(str(tmp_path / "run")) == result.architecture
