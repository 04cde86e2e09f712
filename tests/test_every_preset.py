"""Every method on every preset (and every preset in every space): `drnas search --method M --preset P` resolves
and its strategy builds, or it is refused when the command is parsed, before anything is written, with a fix the
user can type as flags; and typing that fix makes it work. The combinations are read from the registries, so a
new method, preset or space is covered as soon as it registers. Then every method really runs on the first
preset a newcomer tries (`demo`) through the command line."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import write_synthetic_nb201_table

from drnas.cli import main
from drnas.cli.parser import build_parser
from drnas.cli.search import search_config
from drnas.config.presets import SEARCH_PRESETS
from drnas.config.search import SearchConfig
from drnas.errors import ConfigError
from drnas.method.strategies import get_method, method_names
from drnas.spaces import get_space, space_names

#: a flag and its value in an error's fix ("--space nb201", "--benchmark FILE"); --set fixes are quoted JSON
FIX = re.compile(r"(--(?!set\b)[a-z][a-z-]*) ([^\s,;()']+)")


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("table") / "nb201.csv"
    write_synthetic_nb201_table(path)
    return path


def _resolve(argv: list[str]) -> SearchConfig:
    """The config `drnas search ARGV` would run, resolved and checked as the command does before it writes."""
    return search_config(build_parser().parse_args(["search", *argv]))


#: a --set fix, quoted for the shell: --set 'stages=[...]'
SET_FIX = re.compile(r"--set '([^']+)'")


def _fixes(message: str, table: Path) -> list[str]:
    """The flags an error tells the user to type, with FILE (a benchmark table) filled in."""
    flags = []
    for flag, value in FIX.findall(message):
        flags += [flag, str(table) if value == "FILE" else value]
    for value in SET_FIX.findall(message):
        flags += ["--set", value]
    return flags


def _resolves_or_says_how(argv: list[str], table: Path) -> tuple[SearchConfig, list[str]]:
    """Resolve ``argv``; on a refusal, check it is one line with a `--` fix, type the fix and resolve again (a fix
    may reveal the next, as a user would meet them). Returns the config and the flags that had to be added."""
    added: list[str] = []
    for _ in range(4):
        try:
            return _resolve([*argv, *added]), added
        except ConfigError as err:
            message = str(err)
            assert "\n" not in message and "--" in message, message
            fixes = _fixes(message, table)
            assert fixes and not set(fixes[::2]) & set(added[::2]), f"no new flag to type in: {message}"
            added += fixes
    raise AssertionError(f"still refused after typing {added}")


def _builds(config: SearchConfig) -> None:
    """The method's strategy builds for the config's space (the architecture parameters of every edge)."""
    space = get_space(config.space, config.ops)
    strategy = get_method(config.method)(space, config)
    assert tuple(strategy.eta.shape) == (space.num_edges, len(space.ops))


@pytest.mark.parametrize("preset", SEARCH_PRESETS.names())
@pytest.mark.parametrize("method", method_names())
def test_every_method_on_every_preset_works_or_says_which_flags_to_type(method, preset, table):
    config, added = _resolves_or_says_how(["--method", method, "--preset", preset], table)
    assert config.method == method and config.preset == preset
    _builds(config)
    cls = get_method(method)
    if not cls.prunable:  # the preset's stages, without pruning: epochs, K and warm-ups as the preset has them
        assert all(s.ops_kept is None for s in config.stages)
    if cls.uses_supernet and len(SEARCH_PRESETS.get(preset).stages) > 1:
        assert [(s.epochs, s.partial_k, s.arch_warmup) for s in config.stages] == \
            [(s.epochs, s.partial_k, s.arch_warmup) for s in SEARCH_PRESETS.get(preset).stages]
    if not cls.uses_supernet and getattr(cls, "evaluator", None) is None:  # a table query (a proxy search needs none)
        assert "--benchmark" in added


@pytest.mark.parametrize("space", space_names())
@pytest.mark.parametrize("preset", SEARCH_PRESETS.names())
def test_a_space_or_dataset_flag_overrides_every_preset(preset, space, table):
    config, _ = _resolves_or_says_how(["--preset", preset, "--space", space], table)
    assert config.space == space and config.preset == preset
    if space != SEARCH_PRESETS.get(preset).space:
        assert config.ops is None  # the preset's ops named its own space's ops
    _builds(config)
    assert _resolve(["--preset", preset, "--dataset", "digits"]).dataset == "digits"


def test_own_stages_that_prune_are_refused_for_a_method_without_op_strengths_with_the_stages_to_type(capsys, tmp_path):
    out = tmp_path / "run"
    stages = '[{"epochs": 1, "partial_k": 2}, {"epochs": 1, "ops_kept": 3}]'
    assert main(["search", "--method", "rsps", "--preset", "demo", "--set", f"stages={stages}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and not out.exists()
    fix = err[0].split("--set ", 1)[1]
    assert fix.startswith("'stages=") and fix.endswith("'")
    config = _resolve(["--method", "rsps", "--preset", "demo", "--set", fix.strip("'")])
    assert [(s.epochs, s.partial_k, s.ops_kept) for s in config.stages] == [(1, 2, None), (1, 1, None)]


@pytest.mark.parametrize("method", method_names())
def test_every_method_runs_on_the_demo_preset_from_the_command_line(method, table, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--method", method, "--preset", "demo", "--epochs", "2", "--train-images", "128", "--quiet",
            "--out", str(out)]
    code = main(argv)
    if code == 2:  # refused when parsed, nothing written: type the fix it gives
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and not out.exists(), err
        code = main([*argv, *_fixes(err[0], table)])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((out / "config.json").read_text())
    cls = get_method(method)
    assert saved["method"] == method and list(saved["method_settings"]) == \
        [f for f in cls.Settings.__dataclass_fields__]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "architecture.json").read_text())["architecture"]
    if cls.uses_supernet:  # the demo's two stages; pruning at the second only where the method can rank ops
        assert [s["ops_kept"] for s in saved["stages"]] == [None, 3 if cls.prunable else None]
