"""The command line end to end on the embedded demo data, and its one-line errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drnas.cli import main
from drnas.search import PLOT_EVERY

DRNAS_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_demo_search_resume_and_show(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["search", "--preset", "demo", "--epochs", "3", "--train-images", "400", "--out", str(out), "--quiet"]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    arch_line = [l for l in stdout.splitlines() if l.startswith("architecture: ")]
    assert arch_line, stdout
    saved = json.loads((out / "architecture.json").read_text())
    assert arch_line[0].split(": ", 1)[1] == saved["architecture"]["arch"]
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "digits" and config["preset"] == "demo" and config["train_images"] == 400
    assert sum(s["epochs"] for s in config["stages"]) == 3
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3

    assert main(["search", "--resume", str(out), "--quiet"]) == 0  # already finished: prints the result
    assert arch_line[0] in capsys.readouterr().out

    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "3/3 epochs (finished)" in shown and saved["architecture"]["arch"] in shown
    assert main(["show", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == saved


def test_overrides_reach_the_saved_config(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"lr": 0.07, "seed": 4}))
    out = tmp_path / "run"
    assert main(["search", "--preset", "demo", "--config", str(cfg), "--seed", "5", "--set", "arch_lr=0.002",
                 "--set", 'stages=[{"epochs": 1, "partial_k": 2}]', "--train-images", "200", "--out", str(out),
                 "--quiet"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["lr"] == 0.07 and saved["seed"] == 5 and saved["arch_lr"] == 0.002
    assert saved["stages"] == [{"epochs": 1, "partial_k": 2, "ops_kept": None, "arch_warmup": 0, "cells": None}]


def test_search_with_benchmark_logs_nb201_accuracies(tmp_path, capsys, nb201_csv):
    out = tmp_path / "run"
    assert main(["search", "--preset", "demo", "--epochs", "2", "--train-images", "200", "--benchmark",
                 str(nb201_csv), "--out", str(out), "--quiet"]) == 0
    nb201 = [line for line in capsys.readouterr().out.splitlines() if line.startswith("nb201:")]
    assert len(nb201) == 1 and "cifar10_valid_acc=" in nb201[0], nb201
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(record["nb201"]) >= {"cifar10_valid_acc", "cifar10_test_acc", "cifar100_test_acc"}


def test_nb201_query(capsys, nb201_csv):
    assert main(["nb201", "query", DRNAS_ARCH, "--benchmark", str(nb201_csv)]) == 0
    assert "cifar10_test_acc: 94.3633" in capsys.readouterr().out
    assert main(["nb201", "query", DRNAS_ARCH, "--benchmark", str(nb201_csv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cifar10_test_acc"] == pytest.approx(94.36, abs=0.01)


@pytest.mark.parametrize("argv,needle", [
    (["nb201", "query", "|bad~0|", "--benchmark", "x.csv"], "node groups"),
    (["nb201", "query", DRNAS_ARCH, "--benchmark", "/no/such.csv"], "does not exist"),
    (["search", "--dataset", "cifar10", "--data", "/no/such/dir", "--out", "{tmp}/r"], "does not exist"),
    (["search", "--preset", "nope"], "unknown preset"),
    (["search", "--preset", "demo", "--set", "lr=fast", "--out", "{tmp}/r"], "must be a number"),
    (["search", "--preset", "demo", "--set", "stages=[{\"epochs\": 2, \"partial_k\": 3}]"], "must divide"),
    (["search", "--preset", "demo", "--config", "/no/such.toml"], "does not exist"),
    (["search", "--resume", "{tmp}"], "not a drnas run"),
    (["show", "{tmp}/missing"], "does not exist"),
    # values a fuzzer found to end in tracebacks or to run with nonsense
    *[(["search", "--preset", "demo", "--set", item, "--out", "{tmp}/r"], needle) for item, needle in [
        ("lr=-1", "lr must be > 0, got -1.0"), ("momentum=-1", "momentum must be in [0, 1)"),
        ("arch_lr=nan", "arch_lr must be a finite number"), ("lr=inf", "lr must be a finite number"),
        ("arch_betas=[0.5]", "arch_betas must be two numbers in [0, 1)"), ("arch_betas=nan,0.9", "finite numbers"),
        (f"seed={2**64}", "seed must be in [0, 9,223,372,036,854,775,807]"),
        ("threads=-1", "threads must be in [1, 1,024]"),
        ("device=mps", "device must be auto, cpu, cuda or cuda:N"), ("relaxation=foo", "choose one with --method"),
        ('stages=[{"epochs": "x"}]', "epochs must be an integer, got 'x'"),
        ('stages=[{"partial_k": 2}]', "missing 1 required positional argument: 'epochs'"),
        ("seed=" + "9" * 5000, "(5002 characters)"), ("batch_size=0", "batch_size must be in [1, 65,536]"),
        ("weight_decay=-0.1", "weight_decay must be >= 0")]],
])
def test_bad_input_gives_one_clear_line(argv, needle, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("drnas: error:") and needle in lines[0], lines
    assert not (tmp_path / "r").exists()  # a failed start leaves no half-made run directory


def test_resume_refuses_config_changes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--preset", "demo", "--epochs", "2", "--train-images", "200", "--out", str(out),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", "--resume", str(out), "--seed", "3"]) == 2
    assert "drop --seed" in _err_lines(capsys)[0]
    assert main(["search", "--resume", str(out), "--set", "batch_size=8", "--set", "compile=none"]) == 2
    line = _err_lines(capsys)[0]
    assert "drop --set batch_size=..." in line and "compile" in line.split("(")[-1] and "lr" in line.split("(")[-1]
    # how a step runs (not what it computes) may change on resume: e.g. stop compiling, another device or threads
    assert main(["search", "--resume", str(out), "--set", "compile=none", "--device", "cpu", "--threads", "1",
                 "--quiet"]) == 0
    assert main(["search", "--resume", str(out), "--set", "compile=sometimes"]) == 2
    assert "compile must be one of" in _err_lines(capsys)[0]
    assert "changes" not in json.loads((out / "config.json").read_text())
    # what a recovery needs may change too (a lower learning rate after a NaN), recorded in the run's config
    assert main(["search", "--resume", str(out), "--set", "lr=0.01", "--quiet"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["lr"] == 0.01 and saved["changes"] == [{"after_epoch": 2, "set": {"lr": 0.01}}]


def test_console_entry_point_runs_as_a_module():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-m", "drnas", "presets"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0 and "nb201-progressive" in done.stdout


def test_arch_command_reports_parameters_and_macs(capsys):
    assert main(["arch", "DrNAS_imagenet", "--dataset", "imagenet", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert round(report["params_without_aux"] / 1e6, 1) == 5.7 and round(report["macs"] / 1e6) == 624
    assert main(["arch", "DrNAS_cifar10"]) == 0
    out = capsys.readouterr().out
    assert "4.099M without the auxiliary head" in out and "20 cells" in out
    assert main(["arch", "--list"]) == 0
    assert "DARTS_V2" in capsys.readouterr().out
    assert main(["arch", "Genotype(normal=[('conv', 0)])"]) == 2
    assert "drnas: error:" in capsys.readouterr().err


def test_train_command_on_digits_with_resume_and_export(tmp_path, capsys):
    out = tmp_path / "train"
    argv = ["train", "--arch", "DrNAS_nb201", "--dataset", "digits", "--epochs", "2", "--set", "channels=8",
            "--set", "cells_per_stage=1", "--batch-size", "64", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "top1:" in stdout and "MACs:" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "train" and config["preset"] == "nb201" and config["epochs"] == 2
    assert main(["train", "--resume", str(out), "--export", str(tmp_path / "net.pt"), "--quiet"]) == 0
    assert (tmp_path / "net.pt").is_file()
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "(training)" in shown and "2/2 epochs (finished)" in shown and "test top1" in shown
    assert main(["train", "--resume", str(out), "--epochs", "5"]) == 2
    assert "drop --epochs" in capsys.readouterr().err
    # training has no compile field, so the message names only what its own config may change
    assert main(["train", "--resume", str(out), "--set", "compile=none"]) == 2
    line = _err_lines(capsys)[0]
    assert "drop --set compile=..." in line
    assert line.endswith("(on resume --set may change only cuda_graphs, cudnn_benchmark, keep_freed_memory, "
                         "tensorboard, wandb, lr, lr_min, grad_clip)")


def test_train_from_a_search_run_directory(tmp_path, capsys):
    search = tmp_path / "search"
    assert main(["search", "--preset", "demo", "--epochs", "2", "--train-images", "200", "--out", str(search),
                 "--quiet"]) == 0
    found = json.loads((search / "architecture.json").read_text())["architecture"]["arch"]
    assert main(["train", "--arch", str(search), "--dataset", "digits", "--epochs", "1", "--set", "channels=4",
                 "--set", "cells_per_stage=1", "--out", str(tmp_path / "t"), "--quiet"]) == 0
    assert json.loads((tmp_path / "t" / "architecture.json").read_text())["architecture"]["arch"] == found


@pytest.fixture
def sigint_reaches_children():
    """A test run started as a background job of a shell ignores SIGINT; children inherit that and Python in
    them then never raises KeyboardInterrupt. With a Python handler here (reset to the default across exec),
    the Ctrl-C tests' children handle SIGINT as a user's terminal would have them."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _search_probe(tmp_path: Path, name: str, patch: str, epochs: int) -> subprocess.CompletedProcess:
    """``python -m NAME`` of a module that runs ``patch`` and then ``python -m drnas search`` of the demo into
    ``tmp_path/run`` (through ``drnas.__main__``, the entry point where the -2 exit was seen)."""
    (tmp_path / f"{name}.py").write_text(
        "import runpy, signal, sys\n" + patch +
        f"sys.argv = ['drnas', 'search', '--preset', 'demo', '--epochs', '{epochs}', '--train-images', '64', "
        f"'--out', {str(tmp_path / 'run')!r}, '--quiet']\n"
        "runpy.run_module('drnas', run_name='__main__', alter_sys=True)\n")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), src])}
    return subprocess.run([sys.executable, "-m", name], capture_output=True, text=True, env=env, timeout=300)


def test_ctrl_c_inside_a_string_exec_still_exits_130(tmp_path, sigint_reaches_children):
    """A Ctrl-C that lands in code run by a string exec (dataclasses and other code generators) once made
    ``python -m drnas`` die by SIGINT (-2) after printing its message; a race of the last test, made certain."""
    proc = _search_probe(tmp_path, "string_exec_probe", (
        "import drnas.search\n"
        "def interrupted_run(self):\n"
        "    exec('import signal\\nsignal.raise_signal(signal.SIGINT)\\nfor _ in range(10): pass', {})\n"
        "drnas.search.Search.run = interrupted_run\n"), epochs=2)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "interrupted" in proc.stderr and "Traceback" not in proc.stderr


def test_ctrl_c_landing_in_a_finaliser_still_stops_the_run(tmp_path, sigint_reaches_children):
    """A Ctrl-C that lands in a finaliser (or weakref callback) cannot be raised there: Python prints "Exception
    ignored" and runs on. The run must stop as for any other Ctrl-C, not finish as if nothing had happened."""
    proc = _search_probe(tmp_path, "finaliser_probe", (
        "import drnas.search\n"
        "class Interrupted:\n"
        "    def __del__(self):\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "        for _ in range(10): pass\n"
        "real_run = drnas.search.Search.run\n"
        "def run(self):\n"
        "    Interrupted()\n"
        "    return real_run(self)\n"
        "drnas.search.Search.run = run\n"), epochs=2)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "interrupted" in proc.stderr and "Exception ignored" not in proc.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # stopped before its first epoch ended


def test_ctrl_c_that_a_library_turns_into_another_error_still_stops_the_run(tmp_path, sigint_reaches_children):
    """The Ctrl-C of the last test once landed in matplotlib's first import, inside a ``__set_name__``, which
    Python 3.11 reports as a RuntimeError; the plot's "never stop a search" handler then swallowed it and the
    search ran to its end, in about one run of thirty."""
    proc = _search_probe(tmp_path, "plot_probe", (
        "import drnas.analysis.plots\n"
        "def plot(*args, **kwargs):\n"
        "    class Descriptor:\n"
        "        def __set_name__(self, owner, name):\n"
        "            signal.raise_signal(signal.SIGINT)\n"
        "            for _ in range(10): pass\n"
        "    class Owner:\n"
        "        field = Descriptor()\n"
        "drnas.analysis.plots.plot_dirichlet_means = plot\n"), epochs=PLOT_EVERY + 1)
    assert proc.returncode == 130, proc.stderr[-2000:]  # the first plot, after epoch PLOT_EVERY, stopped it
    assert f"interrupted; the last checkpoint (after epoch {PLOT_EVERY})" in proc.stderr
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == PLOT_EVERY


def test_ctrl_c_stops_cleanly_and_the_run_resumes(tmp_path, sigint_reaches_children):
    import time

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "drnas", "search", "--preset", "demo", "--epochs", "12",
                             "--train-images", "256", "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and f"drnas search --resume {out}" in err and "Traceback" not in err
    done = len((out / "metrics.jsonl").read_text().splitlines())
    assert 1 <= done < 12
    assert main(["search", "--resume", str(out), "--quiet"]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 12


def test_reraise_interrupt_finds_a_ctrl_c_behind_other_errors_and_only_then():
    from drnas.errors import reraise_interrupt

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise ImportError("partially initialised module") from interrupt
    except ImportError as err:
        wrapped = RuntimeError("Error calling __set_name__")
        wrapped.__context__ = err
    with pytest.raises(KeyboardInterrupt):
        reraise_interrupt(wrapped)
    plain = ValueError("no display")
    plain.__context__ = RuntimeError("while drawing")
    plain.__context__.__context__ = plain  # a cycle must not loop
    assert reraise_interrupt(plain) is None


_PAIRS = "[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)]"


@pytest.mark.parametrize("text,needle", [
    ("x" * 300, "... (302 characters) is not an architecture"),  # a path too long for the file system
    ("~nosuchuser", "is not an architecture"),
    (f"Genotype(normal={_PAIRS}, normal_concat=range(2, 50000000), reduce={_PAIRS}, reduce_concat=[2])",
     "at most 8 intermediate nodes, got range(2, 50000000)"),
    ("Genotype(normal=" + "[('sep_conv_3x3', 0)," * 30 + ")", "not valid notation"),
    ("Genotype(normal=[" + "('sep_conv_3x3', 0), " * 2000 + "], normal_concat=[2], reduce=[], reduce_concat=[2])",
     "far shorter"),
    ('{"space": "darts", "normal": 5, "reduce": []}', "normal must be a list"),
    ('{"space": "darts", "normal": [' + '["sep_conv_3x3", 0], ' * 40 + '["sep_conv_3x3", 0]], "reduce": []}',
     "at most 8 intermediate nodes"),
    ('{"a": ' * 60000, "could not be parsed (RecursionError"),
    ('{"space": "nb201", "arch": ' + "9" * 5000 + "}", "could not be parsed (ValueError"),
    ("|" + "a" * 5000 + "~0|", "(5006 characters) has 1 node groups"),
])
def test_hostile_architecture_text_is_one_line_in_bounded_time(text, needle, capsys):
    started = time.perf_counter()
    assert main(["arch", text]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("drnas: error:") and needle in lines[0], lines
    assert len(lines[0]) < 400 and time.perf_counter() - started < 2.0


def test_an_architecture_file_that_is_not_text_is_one_line(tmp_path, capsys):
    (tmp_path / "arch.txt").write_bytes(b"\xff\xfe\x00 not utf-8")
    assert main(["arch", str(tmp_path / "arch.txt")]) == 2
    assert "could not be read (UnicodeDecodeError)" in _err_lines(capsys)[0]


def test_control_characters_in_echoed_paths_are_escaped(tmp_path, capsys):
    """A path holding a newline or a terminal escape cannot break the one-line error or drive the terminal."""
    evil = tmp_path / "a\nb\x1b[31mred"
    assert main(["show", str(evil)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "a\\nb\\x1b[31mred" in err


def test_the_version_comes_from_one_place(capsys):
    """pyproject.toml reads src/drnas/version.py: the installed metadata, --version and drnas.__version__ agree."""
    from importlib.metadata import version

    import drnas

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"drnas {drnas.__version__}" == f"drnas {version('drnas')}"


def test_every_command_and_option_has_help():
    """`drnas COMMAND -h` explains everything: each subcommand has a one-line help and a description, each
    argument (positional ones included) a help text; --method and --preset list the registered names."""
    import argparse

    from drnas.cli.parser import build_parser
    from drnas.config.presets import preset_names
    from drnas.method.strategies import method_names

    def commands(parser, path):
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    assert helps.get(name), f"drnas {' '.join(path + [name])} has no help"
                    yield from commands(sub, path + [name])

    found = list(commands(build_parser(), []))
    assert len(found) >= 12
    for path, parser in found:
        if path:
            assert parser.description, f"drnas {' '.join(path)} has no description"
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help and action.help.strip(), f"drnas {' '.join(path)} {action.dest} has no help"
    options = {tuple(path): {a.dest: a.help for a in parser._actions} for path, parser in found}
    for path in (("search",), ("sweep",)):
        assert all(name in options[path]["method"] for name in method_names())
        assert all(name in options[path]["preset"] for name in preset_names())
    for flag in ("tensorboard", "wandb"):
        assert "search" not in options[("train",)][flag] and "search" in options[("search",)][flag]


@pytest.mark.parametrize("argv, says", [
    (["train", "--arch", "DrNAS_nb201", "--dataset", "digits", "--epochs", "1", "--export", "/proc/drnas-test.pt2"],
     "--export '/proc/drnas-test.pt2' cannot be written"),
    (["arch", "DrNAS_nb201", "--plot", "/proc/drnas-test/cells.svg"], "--plot '/proc/drnas-test/cells.svg' cannot be written"),
])
def test_an_output_file_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys, argv, says):
    out = tmp_path / "run"
    assert main([*argv, *(["--out", str(out)] if argv[0] == "train" else [])]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and says in err[0] and err[0].startswith("drnas: error: "), err
    assert not out.exists()
