"""The package as a user gets it: a wheel built from a copy of the tree, installed into a folder of its own, and
its console script, ``python -m drnas`` and the offline demo run from outside the repository.

The wheel is built without build isolation (setuptools from the test requirements, no download) and installed
with ``--no-deps --target``, so the environment running the tests is left as it is; the commands run with the
test environment's Python (torch and the other dependencies) and ``PYTHONPATH`` set to the installed folder.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import TEST_THREADS

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "drnas"
#: what a clone holds but a build must not see (.gitignore's entries and the repository itself)
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "runs", "sweeps", "site", "*.egg-info",
                                    "__pycache__", ".pytest_cache", ".hypothesis")


def _version() -> str:
    """The version as src/drnas/version.py writes it (read as text: the imported package may be another copy)."""
    match = re.search(r'^__version__ = "([^"]+)"', (SOURCE / "version.py").read_text(), re.MULTILINE)
    assert match, "src/drnas/version.py has no __version__ line"
    return match.group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, site, env, cwd): the built wheel, the folder it is installed into, the environment that imports it
    from there, and a working directory outside the repository."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (requirements/test.txt)")
    root = tmp_path_factory.mktemp("packaging")
    tree = root / "tree"
    shutil.copytree(ROOT, tree, ignore=NOT_SOURCE, symlinks=True)  # the build's files stay out of the clone
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", str(tree), "--no-deps", "--no-build-isolation", "-w", str(root / "dist")],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheels = list((root / "dist").glob("drnas-*.whl"))
    assert len(wheels) == 1, wheels
    site = root / "site"
    done = subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheels[0])], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": str(TEST_THREADS)}
    cwd = root / "elsewhere"
    cwd.mkdir()
    return wheels[0], site, env, cwd


def _run(argv: list[str], installed, timeout: int = 300) -> subprocess.CompletedProcess:
    _, _, env, cwd = installed
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}"
    return done


def test_the_wheel_holds_every_module_and_the_data_and_no_tests(installed):
    wheel = installed[0]
    assert wheel.name == f"drnas-{_version()}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {f"drnas/{p.relative_to(SOURCE).as_posix()}" for p in SOURCE.rglob("*.py")}
    assert modules - names == set(), "modules missing from the wheel"
    packages = {f"drnas/{p.parent.relative_to(SOURCE).as_posix()}/__init__.py" for p in SOURCE.rglob("*/__init__.py")}
    assert packages and packages <= names
    data = {f"drnas/_data/{p.name}" for p in (SOURCE / "_data").glob("*.npz")}
    assert data and data <= names, "the embedded datasets are missing from the wheel"
    assert not [n for n in names if n.split("/")[0] in ("tests", "benchmarks", "scripts", "docs", "tools")]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    info = f"drnas-{_version()}.dist-info"
    assert f"{info}/licenses/LICENSE" in names or f"{info}/LICENSE" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert re.search(r"^drnas = drnas\.cli:main$", entry_points, re.MULTILINE), entry_points


def test_the_installed_package_is_the_one_imported(installed):
    _, site, _, _ = installed
    done = _run([sys.executable, "-c", "import drnas; print(drnas.__file__); print(drnas.__version__)"], installed)
    path, version = done.stdout.split()
    assert Path(path).resolve().is_relative_to(site.resolve()), f"drnas imported from {path}, not the wheel"
    assert version == _version()


def test_version_from_the_module_and_the_console_script(installed):
    _, site, _, _ = installed
    expected = f"drnas {_version()}"
    assert _run([sys.executable, "-m", "drnas", "--version"], installed).stdout.strip() == expected
    assert _run([str(site / "bin" / "drnas"), "--version"], installed).stdout.strip() == expected
    from drnas.cli.parser import build_parser

    assert "--version" in build_parser().format_help()  # drnas -h lists it


def test_the_offline_demo_runs_from_the_installed_console_script(installed):
    """The demo's search (scripts/demo.sh runs `drnas search --preset demo`), shortened to two epochs on 200 of
    the embedded digits; its config.json records the version that ran it."""
    _, site, _, cwd = installed
    out = cwd / "runs" / "demo"
    done = _run([str(site / "bin" / "drnas"), "search", "--preset", "demo", "--epochs", "2", "--train-images", "200",
                 "--threads", str(TEST_THREADS), "--out", str(out), "--quiet"], installed)
    assert re.search(r"^architecture: \|.+\|$", done.stdout, re.MULTILINE), done.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["drnas_version"] == _version() and config["preset"] == "demo" and config["dataset"] == "digits"
    assert (out / "architecture.json").is_file() and (out / "checkpoint.pt").is_file()
    assert "drnas search --preset demo " in (ROOT / "scripts" / "demo.sh").read_text(), "the demo changed: follow it"
