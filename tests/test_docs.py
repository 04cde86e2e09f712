"""The documentation site builds with ``mkdocs build --strict`` (a broken link, a missing API reference or a
docstring warning fails it), and its generated pages say what the code says: every CLI subcommand and option,
docstrings on the API pages, every file of a run directory."""
from __future__ import annotations

import argparse
import html
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing() -> list[str]:
    missing = []
    for name in NEEDED:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ModuleNotFoundError:  # a parent package is missing
            missing.append(name)
    return missing


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = _missing()
    if missing:
        pytest.skip(f"the docs tooling is not installed ({', '.join(missing)}): pip install -r requirements/docs.txt")
    out = tmp_path_factory.mktemp("site")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")})
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    print(f"mkdocs build --strict: {seconds:.1f} s")
    return out


def _page_text(site: Path, page: str) -> str:
    """The visible text of a built page, whitespace collapsed."""
    markup = (site / page / "index.html").read_text()
    markup = markup[markup.index("<article"):markup.index("</article>")]
    markup = re.sub(r"</?(?:code|a|em|strong|span|abbr)\b[^>]*>", "", markup)  # inline: no word break
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def _plain(docstring: str) -> str:
    """A docstring line as the site shows it: reST roles and backticks dropped."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", docstring).replace("``", "").replace("`", "")
    return " ".join(text.split())


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [((*path, name), sub), *_commands(sub, (*path, name))]
    return found


def test_site_builds_strict_with_every_page(site: Path) -> None:
    for page in ("index.html", "cli/index.html", "run-directory/index.html", "method/index.html",
                 "performance/index.html", "distributed/index.html", "api/search/index.html", "api/train/index.html"):
        assert (site / page).is_file(), page


def test_cli_reference_has_every_command_and_option(site: Path) -> None:
    from drnas.cli.parser import build_parser

    markup = (site / "cli" / "index.html").read_text()
    text = _page_text(site, "cli")
    commands = _commands(build_parser())
    assert len(commands) >= 10
    for path, parser in commands:
        assert f'id="drnas-{"-".join(path)}"' in markup, f"no section for drnas {' '.join(path)}"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):  # -h is on every command; the page says so once
                continue
            for option in action.option_strings:
                assert option in text, f"drnas {' '.join(path)} {option} is missing from the CLI reference"
            if action.help and action.help != argparse.SUPPRESS and "%(" not in action.help:
                assert _plain(action.help) in text, f"the help of drnas {' '.join(path)} {action.dest} is missing"


def test_api_pages_show_the_docstrings(site: Path) -> None:
    import drnas
    from drnas import train
    from drnas.method import relax
    from drnas.engine import runs
    for page, obj in (("api/search", drnas.SearchConfig), ("api/search", drnas.Search), ("api/train", train.TrainConfig),
                      ("api/train", train.Trainer), ("api/methods", relax.sample_dirichlet), ("api/data", runs.RunDir)):
        first = _plain(inspect.getdoc(obj).split("\n\n")[0])
        assert first and first in _page_text(site, page), f"{obj.__qualname__}'s docstring is missing from {page}"


def test_run_directory_page_names_every_run_file(site: Path) -> None:
    from drnas.engine.runs import RunDir

    text = _page_text(site, "run-directory")
    run = RunDir(Path("RUN"))
    paths = [member.fget(run) for member in vars(RunDir).values() if isinstance(member, property)]
    names = {path.name for path in paths if isinstance(path, Path) and path != run.path}
    assert {"config.json", "metrics.jsonl", "checkpoint.pt", "architecture.json"} <= names
    for name in sorted(names):
        assert name in text, f"the run directory page does not describe {name}"
