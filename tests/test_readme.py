"""Every command in the README and the documentation, checked against the code so that the pages cannot drift.

Each command of a fenced shell block (``drnas ...``, ``python -m drnas ...``, ``torchrun ... -m drnas ...``) is
parsed by the CLI's own parser. A new search, sweep or training run is resolved to its full config by the
functions the CLI uses (no data is loaded, nothing trains), so an unknown preset, method, protocol or field fails
here. Everything cheap (listing, counting, drawing, showing a run, resuming a finished one, a sweep's status) runs
end to end in a working directory laid out as the pages assume: ``runs/c10`` is a tiny real NB201 search,
``runs/darts`` a tiny DARTS search, ``nb201.csv`` the shared table. Python blocks compile, and run unless
PYTHON_NOT_RUN says why not. A test's id is the page and line of its command.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import NB201_CSV, SHARED

from drnas.spaces.archs import architecture_names, get_architecture

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}

#: placeholders of the pages (whole words of a command) and what a test puts there. Paths are relative to the
#: test's working directory (see ``workspace``); data directories are only resolved, never read.
PLACEHOLDERS = {
    "DIR": "data/cifar10",
    "IMAGENET_ROOT": "data/imagenet",
    "RUN": "runs/c10",
    "MASTER:29500": "127.0.0.1:29500",
    "Genotype(normal=[...], ...)": str(get_architecture("DrNAS_cifar10").arch),
    "...": None,  # "the rest of the command": left out, what remains must still be a valid command
}
#: programs of the pages' shell blocks that are not this project's, with why nothing of theirs is checked
OTHER_PROGRAMS = {"tensorboard": "TensorBoard's own viewer", "mkdocs": "the documentation builder (CI builds the site)",
                  "source": "the shell's own", "wandb": "Weights & Biases' own client"}
#: a latency budget depends on the machine and its load: a command with one runs with this many milliseconds
LATENCY_MS = "10000"
#: Python blocks that are compiled but not run, by page and a line of the block, with the reason
PYTHON_NOT_RUN = {
    ("docs/extending.md", "class TinySearchCell(SearchCell):"):
        "an excerpt of examples/plugin/src/drnas_example_plugin/space.py (imports left out), which the example's "
        "tests import and run whole",
    ("README.md", "search = drnas.Search(config, out=\"runs/c10-prog\")"):
        "a 100-epoch CIFAR-10 search and a 600-epoch retraining on data/cifar10",
}
#: commands the pages give wrongly today, by page and a part of the command, with the reason (strict xfail: the
#: test fails once the page is fixed, so the entry is removed with the fix)
KNOWN_WRONG: dict[tuple[str, str], str] = {}
#: seconds one command may run end to end
RUN_TIMEOUT = 120
#: the example plugin's source folder (examples/plugin): on PYTHONPATH for the Python blocks and for the commands that
#: name a plugin (``--plugin``, ``DRNAS_PLUGINS=``), which run in a process of their own, as a loaded plugin stays
#: loaded for the life of a process
PLUGIN_SRC = ROOT / "examples" / "plugin" / "src"
#: the NB201 latency table of HW-NAS-Bench and HELP (docs/hardware.md derives with it)
NB201_LATENCY_CSV = SHARED / "hw" / "nb201-latency.csv"


def _with_plugin_path() -> dict[str, str]:
    """This process's environment with the example plugin's folder first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGIN_SRC), os.environ.get("PYTHONPATH")]))}


@dataclass(frozen=True)
class Block:
    page: str     # relative to the repository root
    line: int     # of the block's first code line, 1-based
    language: str
    lines: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str     # as written, continuation lines joined

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page (``` or ~~~, also indented, e.g. inside a list or admonition)."""
    blocks, fence, indent, language, start, body = [], None, 0, "", 0, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.lstrip()
        if fence is None:
            match = re.match(r"(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if match:
                fence, indent, language = match.group(1), len(line) - len(stripped), match.group(2)
                start, body = number + 1, []
        elif stripped.startswith(fence) and not stripped[len(fence):].strip():
            blocks.append(Block(str(path.relative_to(ROOT)), start, language.lower(), tuple(body)))
            fence = None
        else:
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
    return blocks


def shell_commands(block: Block) -> list[Command]:
    """The commands of a shell block: a line ending in a backslash continues on the next; comment lines skipped;
    a ``$`` prompt dropped."""
    commands, pending, first = [], "", 0
    for offset, line in enumerate(block.lines):
        line = line.removeprefix("$ ") if not pending else line
        if not pending:
            first = block.line + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        if text and not text.startswith("#"):
            commands.append(Command(block.page, first, text))
    return commands


def _comment_start(text: str) -> int:
    """Where a shell comment begins: a ``#`` at the start of a word, outside quotes (the comment may hold any
    text, e.g. an apostrophe)."""
    quote, escaped = None, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return i
    return len(text)


def split(text: str) -> tuple[list[str], str]:
    """A command's words, with placeholders substituted and optional ``[...]`` groups expanded (the first
    alternative of ``[a | b]``), and its trailing comment."""
    cut = _comment_start(text)
    words, comment = shlex.split(text[:cut]), text[cut:].lstrip("# ").strip()
    out, group = [], None
    for word in words:
        if group is None and word.startswith("[") and not word.startswith("[{"):
            group, word = [], word[1:]
        if group is not None:
            closes = word.endswith("]")
            group.append(word[:-1] if closes else word)
            if closes:
                alternatives = " ".join(group).split(" | ")
                out += alternatives[0].split()
                group = None
            continue
        out.append(word)
    substituted = []
    for word in out:
        value = PLACEHOLDERS.get(word, word)
        if value is not None:
            substituted.append(value)
    return substituted, comment


def _collect() -> tuple[list[Command], list[Block]]:
    commands, python = [], []
    for page in PAGES:
        for block in fenced_blocks(page):
            if block.language in SHELL_LANGUAGES:
                commands += shell_commands(block)
            elif block.language in ("python", "py"):
                python.append(block)
    return commands, python


COMMANDS, PYTHON_BLOCKS = _collect()


def _params(items, marks_for):
    return [pytest.param(item, id=item.id, marks=marks_for(item)) for item in items]


def _known_wrong(command: Command):
    for (page, part), reason in KNOWN_WRONG.items():
        if command.page == page and part in command.text:
            return [pytest.mark.xfail(strict=True, reason=reason)]
    return []


# --------------------------------------------------------------------------------------------------- workspace
def _quiet(*argv: str) -> None:
    from drnas.cli import main

    assert main([*argv, "--quiet"]) == 0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A working directory as the pages assume it: tiny real runs where they name runs, the shared NB201 table
    as nb201.csv (when present), a genotype file, a planned sweep."""
    import torch

    from drnas.cli.parser import build_parser
    from drnas.cli.sweep import sweep_plan
    from drnas.sweep.driver import SweepDir

    torch.set_num_threads(1)  # every network here is tiny: one thread is the fastest on shared cores
    root = tmp_path_factory.mktemp("workspace")
    (root / "runs").mkdir()
    tiny = ["--dataset", "digits", "--train-images", "128", "--batch-size", "32", "--threads", "1"]
    _quiet("search", "--preset", "demo", "--epochs", "2", *tiny, "--set", "channels=4", "--out", str(root / "runs/c10"))
    _quiet("search", "--preset", "darts-cifar10", "--epochs", "2", *tiny, "--set", "channels=6", "--set", "cells=2",
           "--out", str(root / "runs/darts"))
    (root / "runs/di").symlink_to(root / "runs/darts")
    _quiet("train", "--arch", str(root / "runs/darts"), "--epochs", "1", *tiny, "--set", "channels=4", "--set",
           "cells=3", "--set", "auxiliary_weight=0", "--out", str(root / "runs/darts-train"))
    sweep = ["sweep", "--method", "drnas,darts", "--preset", "demo", "--epochs", "2"]
    plan, _ = sweep_plan(build_parser().parse_args(sweep))  # planned, not run: what --status and --summary read
    for name in ("table4", "t4", "collapse"):
        SweepDir(root / "sweeps" / name).create(plan)
    (root / "genotype.txt").write_text(str(get_architecture("DrNAS_cifar10").arch) + "\n")
    if NB201_CSV.is_file():
        (root / "nb201.csv").symlink_to(NB201_CSV)
    if NB201_LATENCY_CSV.is_file():
        (root / "nb201-latency.csv").symlink_to(NB201_LATENCY_CSV)
    return root


@contextlib.contextmanager
def _time_limit(seconds: int):
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------------------------- commands
def _drnas_argv(words: list[str]) -> list[str] | None:
    """The drnas arguments of a command (plain, ``python -m drnas`` or under torchrun); None if not drnas."""
    if words[0] == "drnas":
        return words[1:]
    if re.fullmatch(r"python3?", words[0]) and words[1:3] == ["-m", "drnas"]:
        return words[3:]
    if words[0] == "torchrun":
        from torch.distributed.run import get_args_parser

        try:
            launch = get_args_parser().parse_args(words[1:])  # torchrun's own options must exist too
        except SystemExit as exit_:
            pytest.fail(f"{' '.join(words)}: torchrun's parser refused it (exit {exit_.code})")
        assert launch.module and launch.training_script == "drnas", f"torchrun runs {launch.training_script}"
        return list(launch.training_script_args)
    return None


def _parse(argv: list[str]) -> argparse.Namespace | None:
    """The parsed arguments; None for -h and --version, which the parser answers itself."""
    from drnas.cli.parser import build_parser

    try:
        return build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse printed the reason to stderr
        if exit_.code == 0:
            return None
        pytest.fail(f"drnas {' '.join(argv)}: the parser refused it (exit {exit_.code})")


def _resolve(args: argparse.Namespace):
    """The full config of a new search, sweep or training run, by the functions the CLI uses (no data loaded);
    the plan of a sweep to resume."""
    from drnas.cli.search import search_config
    from drnas.cli.sweep import sweep_plan
    from drnas.cli.train import train_config

    if args.command == "proxies":  # its space and proxies exist (tests/test_proxies.py runs it on tiny data)
        from drnas.analysis.proxies import get_proxy, proxy_names
        from drnas.spaces import get_space

        return get_space(args.space), [get_proxy(n) for n in (args.proxies or ",".join(proxy_names())).split(",")]
    if args.command == "search":
        return search_config(args)
    if args.command == "train":
        return train_config(args)
    if args.resume:  # the sweep's saved plan, which a resume runs on
        from drnas.sweep.driver import SweepDir

        return SweepDir(args.resume).read_plan()
    plan, _ = sweep_plan(args)
    return plan


def _runs_end_to_end(args: argparse.Namespace) -> bool:
    """Cheap enough to run: everything but a new search, sweep or training, and a sweep's resume (it would run
    the sweep's searches)."""
    if args.command in ("search", "train"):
        return bool(args.resume)
    if args.command == "proxies":  # scores a dataset's images with full-size networks: resolved only
        return False
    if args.command == "sweep":
        return bool(args.status or args.summary)
    return True


def _check_other_program(words: list[str]) -> None:
    """A command of the pages that is not drnas: a project script exists and is valid bash (the demo's search is
    run by tests/test_packaging.py), a pip install names existing requirement files and extras, anything else is
    listed in OTHER_PROGRAMS."""
    if words[0] == "bash":
        script = ROOT / words[1]
        assert script.is_file(), f"{words[1]} does not exist"
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
        return
    if words[:2] == ["pip", "install"]:
        import tomllib

        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        rest = iter(words[2:])
        for word in rest:
            if word == "-r":
                name = next(rest)
                assert (ROOT / name).is_file(), f"pip install -r {name}: no such file"
                continue
            if word == "-e":
                word = next(rest)
            if (ROOT / word / "pyproject.toml").is_file() and word not in (".", "drnas"):  # a package of the repository
                continue
            match = re.fullmatch(r"(?:drnas|\.)(?:\[([\w,-]+)\])?", word)
            assert match, f"pip install {word}: expected drnas[EXTRA], . or .[EXTRA]"
            named = set(match.group(1).split(",")) if match.group(1) else set()
            assert named <= set(extras), f"{word}: the extras are {', '.join(extras)}"
        return
    assert words[0] in OTHER_PROGRAMS, (f"{words[0]} is neither drnas nor a known program: handle it in "
                                        f"{Path(__file__).name} (or list it in OTHER_PROGRAMS)")


@pytest.mark.parametrize("command", _params(COMMANDS, _known_wrong))
def test_command_of_the_pages(command: Command, workspace, monkeypatch, capsys):
    check(command.text, workspace, monkeypatch, capsys)


#: commands a page could get wrong, and the check must refuse: an option, a type, a preset, a config field, a
#: method, a protocol, a program, a number in the comment
WRONG = ["drnas search --preset nb201 --no-such-flag", "drnas search --epochs ten", "drnas search --preset nb202",
         "drnas search --set no_such_field=1", "drnas search --method no-such-method --dataset cifar10",
         "drnas train --arch DrNAS_cifar10 --protocol no-such-protocol", "drnas sweep --grid no_such_field=1,2",
         "drnaz presets", "drnas arch DrNAS_cifar10   # 4.100M parameters",
         "torchrun --nproc-per-node-typo 8 -m drnas presets"]


@pytest.mark.parametrize("text", WRONG)
def test_a_wrong_command_fails_the_check(text, workspace, monkeypatch, capsys):
    from drnas.errors import DrnasError

    with pytest.raises((pytest.fail.Exception, DrnasError, AssertionError)):
        check(text, workspace, monkeypatch, capsys)


def _run_with_plugin(argv: list[str], environment: dict[str, str], workspace: Path) -> None:
    """A command that names a plugin, run end to end as ``python -m drnas`` with the example plugin importable."""
    env = {**_with_plugin_path(), "OMP_NUM_THREADS": "1"}
    if "DRNAS_PLUGINS" in environment:
        env["DRNAS_PLUGINS"] = environment["DRNAS_PLUGINS"]
    done = subprocess.run([sys.executable, "-m", "drnas", *argv], cwd=workspace, env=env, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, f"drnas {' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-1500:]}"


def check(text: str, workspace: Path, monkeypatch, capsys) -> None:
    """Parse one command of a page; resolve it or run it (see the module's docstring)."""
    words, comment = split(text)
    environment = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # environment variables: only plugins' kept
        name, value = words.pop(0).split("=", 1)
        environment[name] = value
    assert words, f"{text}: no command"
    words[0] = words[0].removeprefix(".venv/bin/")  # the project's virtual environment, as setup.sh makes it
    argv = _drnas_argv(words)
    if argv is None:
        _check_other_program(words)
        return
    if "--plugin" in argv or "DRNAS_PLUGINS" in environment:
        _run_with_plugin(argv, environment, workspace)
        return
    args = _parse(argv)
    if args is None:  # -h or --version: the parser printed it
        return
    if getattr(args, "max_latency_ms", None) is not None:
        argv[argv.index("--max-latency-ms") + 1] = LATENCY_MS
    monkeypatch.chdir(workspace)
    if not _runs_end_to_end(args):
        assert _resolve(args) is not None
        return
    if "nb201.csv" in argv and not NB201_CSV.is_file():
        pytest.skip(f"NB201 table not found at {NB201_CSV} (set DRNAS_TEST_DATA to the directory holding nb201/)")
    if any(a.startswith("nb201-latency.csv") for a in argv) and not NB201_LATENCY_CSV.is_file():
        pytest.skip(f"NB201 latency table not found at {NB201_LATENCY_CSV} (DRNAS_TEST_DATA: the folder of hw/)")
    from drnas.cli import main

    capsys.readouterr()
    with _time_limit(RUN_TIMEOUT):
        code = main(argv)
    out = capsys.readouterr()
    assert code == 0, f"drnas {' '.join(argv)} exited {code}: {out.err.strip()[-1500:]}"
    # what the comment promises: sizes (4.099M) and named architectures appear in the output
    promised = re.findall(r"\b\d+(?:\.\d+)?M\b", comment) + [w for w in re.findall(r"\w+", comment)
                                                             if w in architecture_names()]
    missing = [p for p in promised if p not in out.out]
    assert not missing, f"the page's comment says {', '.join(missing)}; the output:\n{out.out}"


def test_the_pages_hold_commands():
    """The extraction finds the README's commands (a changed fence syntax would otherwise pass silently)."""
    pages = {c.page for c in COMMANDS}
    assert "README.md" in pages and sum(c.page == "README.md" for c in COMMANDS) >= 20
    assert any(c.text.startswith("torchrun") for c in COMMANDS)


# ---------------------------------------------------------------------------------------------------- Python
def _not_run(block: Block) -> str | None:
    for (page, line), reason in PYTHON_NOT_RUN.items():
        if block.page == page and any(line in l for l in block.lines):
            return reason
    return None


@pytest.mark.parametrize("block", _params(PYTHON_BLOCKS, lambda b: []))
def test_python_block_of_the_pages(block: Block, workspace, tmp_path):
    source = "\n".join(block.lines) + "\n"
    compile(source, block.id, "exec")  # a syntax error fails here, with the page and line
    reason = _not_run(block)
    if reason is not None:
        return  # compiled above; see PYTHON_NOT_RUN for why it does not run
    script = tmp_path / "block.py"  # a script run in the workspace, where the runs the pages name are
    script.write_text(source)
    done = subprocess.run([sys.executable, str(script)], cwd=workspace, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, env={**_with_plugin_path(), "MPLBACKEND": "Agg"})
    assert done.returncode == 0, f"{block.id} failed:\n{done.stderr[-1500:]}"
