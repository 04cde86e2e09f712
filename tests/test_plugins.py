"""Plugins (drnas.registry.plugins): found by --plugin and DRNAS_PLUGINS, listed by `drnas plugins`, recorded by a
run and imported again when it is reopened; a missing, broken or clashing plugin is one error line.

Each command runs in its own process, as a user's would: a loaded plugin stays loaded for the life of a process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = '''
"""A test plugin: DARTS under another name."""
__version__ = "1.2.3"

from drnas.method.strategies import register_method
from drnas.method.strategies.darts import DARTS


@register_method("darts-copy", doc="DARTS under another name (a test plugin)")
class DartsCopy(DARTS):
    name = "darts-copy"
'''

TINY = ["--preset", "demo", "--epochs", "2", "--train-images", "128", "--quiet", "--threads", "1"]


def drnas(*args: str, path: Path | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
          ) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("DRNAS_PLUGINS", "PYTHONPATH")}
    environ.update({"OMP_NUM_THREADS": "1", **(env or {})})
    if path is not None:
        environ["PYTHONPATH"] = str(path)
    return subprocess.run([sys.executable, "-m", "drnas", *args], capture_output=True, text=True, env=environ,
                          cwd=cwd, timeout=300)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("drnas: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "myplug.py").write_text(PLUGIN)
    return folder


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_plugin_is_listed_with_what_it_registered(plugin_dir, how):
    if how == "flag":
        done = drnas("plugins", "--plugin", "myplug", path=plugin_dir)
    else:
        done = drnas("plugins", path=plugin_dir, env={"DRNAS_PLUGINS": "myplug"})
    assert done.returncode == 0, done.stderr
    assert "myplug 1.2.3" in done.stdout and "method: darts-copy" in done.stdout
    assert ("[--plugin]" if how == "flag" else "[DRNAS_PLUGINS]") in done.stdout
    listed = drnas("methods", "--plugin", "myplug", path=plugin_dir)
    assert "darts-copy" in listed.stdout


def test_no_plugins_says_how_to_add_one():
    done = drnas("plugins")
    assert done.returncode == 0 and "--plugin MODULE" in done.stdout


@pytest.mark.parametrize("body, expected", [
    ("from drnas.method.strategies import register_method\n"
     "from drnas.method.strategies.darts import DARTS\n"
     "@register_method('darts')\nclass Again(DARTS):\n    name = 'darts'\n",
     "registers method 'darts', a name drnas itself already holds: register it under another name"),
    ("from drnas.spaces.ops import register_op\n"
     "register_op('skip_connect')(lambda c_in, c_out, stride, affine, track: None)\n",
     "registers op 'skip_connect', a name drnas itself already holds"),
    ("raise RuntimeError('half-written plugin')\n", "failed to import (RuntimeError: half-written plugin)"),
    ("import no_such_dependency_xyz\n", "it needs 'no_such_dependency_xyz', which is not installed"),
])
def test_a_broken_or_clashing_plugin_is_one_line(tmp_path, body, expected):
    (tmp_path / "badplug.py").write_text(body)
    line = one_error_line(drnas("methods", "--plugin", "badplug", path=tmp_path))
    assert "plugin 'badplug'" in line and expected in line


def test_two_plugins_clashing_name_the_first(plugin_dir):
    (plugin_dir / "otherplug.py").write_text(PLUGIN)
    line = one_error_line(drnas("methods", "--plugin", "myplug", "--plugin", "otherplug", path=plugin_dir))
    assert "a name plugin myplug already holds" in line


@pytest.mark.parametrize("module", ["no_such_plugin_xyz", "not a module", "os.path.no_such"])
def test_a_missing_plugin_is_one_line(module):
    line = one_error_line(drnas("search", "--plugin", module, *TINY))
    assert repr(module) in line


def test_a_run_records_its_plugins_and_reopens_with_them(plugin_dir, tmp_path):
    run = tmp_path / "run"
    done = drnas("search", "--plugin", "myplug", "--method", "darts-copy", *TINY, "--out", str(run), path=plugin_dir)
    assert done.returncode == 0, done.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["plugins"] == [{"module": "myplug", "version": "1.2.3"}] and config["method"] == "darts-copy"
    # reopened with no flag: the run's record imports the plugin
    for command in (["show", str(run)], ["sample", str(run), "--n", "5"], ["derive", str(run)], ["arch", str(run)],
                    ["search", "--resume", str(run), "--quiet"]):
        reopened = drnas(*command, path=plugin_dir)
        assert reopened.returncode == 0, (command, reopened.stderr)
    # without the plugin: one line naming the module and the run, nothing written
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    for command in (["show", str(run)], ["derive", str(run)], ["arch", str(run)],
                    ["search", "--resume", str(run), "--quiet"]):
        line = one_error_line(drnas(*command))
        assert "plugin 'myplug'" in line and str(run) in line, line
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_a_sweep_hands_its_plugins_to_every_run(plugin_dir, tmp_path):
    out = tmp_path / "sweep"
    done = drnas("sweep", "--plugin", "myplug", "--method", "darts-copy,drnas", "--seeds", "0", *TINY[:-2],
                 "--jobs", "2", "--threads", "1", "--out", str(out), path=plugin_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    plan = json.loads((out / "sweep.json").read_text())
    assert plan["plugins"] == [{"module": "myplug", "version": "1.2.3"}]
    configs = sorted(out.glob("runs/*/config.json")) or sorted(out.glob("*/config.json"))
    assert len(configs) == 2
    assert {json.loads(c.read_text())["method"] for c in configs} == {"darts-copy", "drnas"}
    assert all(json.loads(c.read_text())["plugins"][0]["module"] == "myplug" for c in configs)
    status = drnas("sweep", "--status", str(out), path=plugin_dir)
    assert status.returncode == 0, status.stderr


def test_python_api_loads_a_plugin_once(plugin_dir):
    code = textwrap.dedent("""
        from drnas.registry import plugins
        from drnas.method.strategies import method_names
        first = plugins.load("myplug")
        assert plugins.load("myplug") is first
        assert first.registered == {"method": ["darts-copy"]} and first.version == "1.2.3"
        assert "darts-copy" in method_names() and plugins.records() == [{"module": "myplug", "version": "1.2.3"}]
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(plugin_dir)})
    assert done.stdout.strip() == "ok", done.stderr


def test_plugin_flags_are_read_before_parsing():
    from drnas.registry.plugins import flag_values

    assert flag_values(["search", "--plugin", "a", "--plugin=b.c", "--set", "x=1"]) == ["a", "b.c"]
    assert flag_values(["search", "--", "--plugin", "a"]) == []
