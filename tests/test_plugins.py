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
from typing import Any

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


def in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """``drnas ARGS`` through :func:`drnas.cli.main` in this process, as a finished process (for plugins that fail
    to load, which leave nothing behind)."""
    from drnas.cli import main
    from drnas.registry import plugins

    loaded = len(plugins.loaded())
    code = main(list(args))
    assert len(plugins.loaded()) == loaded
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out.out, out.err)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("drnas: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def main_codes(commands: list[list[str]], path: Path | None, capture: bool = False) -> Any:
    """The exit codes of several ``drnas`` commands run one after another by a fresh process (which loads what
    they need, no more)."""
    code = f"from drnas.cli import main\nfor argv in {commands!r}:\n    print('@exit', main(argv))"
    env = {k: v for k, v in os.environ.items() if k not in ("DRNAS_PLUGINS", "PYTHONPATH")}
    env.update({"OMP_NUM_THREADS": "1", **({"PYTHONPATH": str(path)} if path else {})})
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    done.stdout = " ".join(line.split()[1] for line in done.stdout.splitlines() if line.startswith("@exit "))
    if capture:
        return done
    assert done.returncode == 0, done.stderr
    return [int(c) for c in done.stdout.split()]


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
def test_a_broken_or_clashing_plugin_is_one_line(tmp_path, monkeypatch, capsys, body, expected):
    # in this process: a plugin that fails to import registers nothing and is not kept as loaded
    module = f"badplug_{abs(hash(body))}"
    (tmp_path / f"{module}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    line = one_error_line(in_process(capsys, "methods", "--plugin", module))
    assert f"plugin '{module}'" in line and expected in line


def test_two_plugins_clashing_name_the_first(plugin_dir):
    (plugin_dir / "otherplug.py").write_text(PLUGIN)
    line = one_error_line(drnas("methods", "--plugin", "myplug", "--plugin", "otherplug", path=plugin_dir))
    assert "a name plugin myplug already holds" in line


@pytest.mark.parametrize("module", ["no_such_plugin_xyz", "not a module", "os.path.no_such"])
def test_a_missing_plugin_is_one_line(module, capsys, tmp_path):
    line = one_error_line(in_process(capsys, "search", "--plugin", module, *TINY, "--out", str(tmp_path / "run")))
    assert repr(module) in line and not (tmp_path / "run").exists()


def test_a_run_records_its_plugins_and_reopens_with_them(plugin_dir, tmp_path):
    run = tmp_path / "run"
    done = drnas("search", "--plugin", "myplug", "--method", "darts-copy", *TINY, "--out", str(run), path=plugin_dir)
    assert done.returncode == 0, done.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["plugins"] == [{"module": "myplug", "version": "1.2.3"}] and config["method"] == "darts-copy"
    # reopened with no flag: the run's record imports the plugin (every reopening command: test_example_plugin.py)
    commands = [["derive", str(run)], ["search", "--resume", str(run), "--quiet"], ["arch", str(run)]]
    assert main_codes(commands, plugin_dir) == [0, 0, 0]
    # without the plugin: one line per command naming the module and the run, nothing written
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    done = main_codes(commands, None, capture=True)
    assert done.returncode == 0 and done.stdout.split() == ["2", "2", "2"], done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("drnas: error: ") for line in lines), done.stderr
    assert all("plugin 'myplug'" in line and str(run) in line for line in lines), lines
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


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


def test_a_plainly_imported_module_is_recorded_when_a_run_uses_it(plugin_dir, tmp_path):
    """A method imported with ``import myplug`` rather than loaded: the run records the module that defines it."""
    run = tmp_path / "run"
    code = textwrap.dedent(f"""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        import drnas, myplug
        from drnas.method.strategies.darts import DARTS
        from drnas.method.strategies import register_method

        @register_method("darts-script")
        class FromScript(DARTS):
            pass

        for method, out in (("darts-copy", {str(run)!r}), ("darts-script", {str(run)!r} + "-script")):
            config = drnas.apply_overrides(drnas.preset("demo"), {{"method": method, "train_images": 128}})
            drnas.Search(drnas.set_total_epochs(config, 2), out=out, progress=False).run()
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(plugin_dir), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "config.json").read_text())["plugins"] == [{"module": "myplug", "version": "1.2.3"}]
    assert "plugins" not in json.loads((tmp_path / "run-script" / "config.json").read_text())
    assert "FromScript is defined in the script itself (__main__)" in done.stderr
    assert drnas("show", str(run), path=plugin_dir).returncode == 0
