"""Property-based fuzzing of every text a user hands drnas: architecture strings and files, genotype JSON,
``--set`` values and config files. Whatever the input, the answer is a result or one ``DrnasError`` line (which
the CLI prints as ``drnas: error: ...`` with exit 2), within a time bound, never another exception.

A fast slice runs in CI (``max_examples`` below); ``DRNAS_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py`` runs a
longer campaign.
"""
from __future__ import annotations

import dataclasses
import json
import os

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from drnas.cli import main  # noqa: E402
from drnas.config.search import SearchConfig, apply_overrides, load_config_file  # noqa: E402
from drnas.errors import DrnasError  # noqa: E402
from drnas.spaces.resolve import architecture_from_json, resolve_architecture  # noqa: E402
from drnas.spaces.darts import DARTS_OPS  # noqa: E402
from drnas.spaces.nb201 import NB201_OPS  # noqa: E402

EXAMPLES = int(os.environ.get("DRNAS_FUZZ_EXAMPLES", "150"))
#: every example within 2 s (the issue's bound for a rejection); deadline is per example
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def _one_line_or_result(call) -> None:
    try:
        call()
    except DrnasError as err:
        message = str(err)
        assert message and "\n" not in message and len(message) < 1000, message


ops = st.sampled_from(list(DARTS_OPS) + list(NB201_OPS) + ["", "conv", "none", "sep_conv_3x3 ", "\x00"])
numbers = st.one_of(st.integers(-10, 10), st.integers(), st.floats(allow_nan=True, allow_infinity=True))
pair = st.tuples(ops, numbers)
genotype_text = st.builds(
    lambda n, nc, r, rc: f"Genotype(normal={n}, normal_concat={nc}, reduce={r}, reduce_concat={rc})",
    st.lists(pair, max_size=20), st.one_of(st.lists(numbers, max_size=12), st.builds(
        lambda a, b: f"range({a}, {b})", st.integers(-5, 10**12), st.integers(-5, 10**12))),
    st.lists(pair, max_size=20), st.lists(numbers, max_size=12))
nb201_text = st.builds(lambda groups: "+".join("|" + "|".join(f"{op}~{i}" for op, i in g) + "|" for g in groups),
                       st.lists(st.lists(st.tuples(ops, st.integers(-2, 5)), max_size=4), max_size=5))
json_values = st.recursive(st.none() | st.booleans() | numbers | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=5), max_leaves=30)
genotype_json = st.fixed_dictionaries({}, optional={
    "space": st.sampled_from(["darts", "nb201", "other", 3]), "normal": json_values, "reduce": json_values,
    "normal_concat": json_values, "reduce_concat": json_values, "arch": json_values})


@FUZZ
@given(st.one_of(genotype_text, nb201_text, st.text(max_size=300),
                 st.builds(lambda p, t: p + t, st.sampled_from(["Genotype(", "|", "{", "~", "/", "runs/"]),
                           st.text(max_size=200))))
def test_architecture_text(text):
    _one_line_or_result(lambda: resolve_architecture(text))


@FUZZ
@given(genotype_json)
def test_architecture_json(data):
    _one_line_or_result(lambda: architecture_from_json(data))
    _one_line_or_result(lambda: resolve_architecture(json.dumps(data, allow_nan=True)))


_FIELDS = [f.name for f in dataclasses.fields(SearchConfig)]
set_values = st.one_of(st.text(max_size=40), numbers.map(str), st.sampled_from(
    ["nan", "inf", "-1", "0", "1e400", "[0.5]", "[]", "null", "true", '[{"epochs": "x"}]', '[{"epochs": 1}]',
     "9" * 5000, "cuda:99", "mps", "[" * 100]))


@FUZZ
@given(st.sampled_from(_FIELDS), set_values)
def test_set_values(field, value):
    _one_line_or_result(lambda: apply_overrides(SearchConfig(), {field: value}).validate())


@settings(max_examples=max(20, EXAMPLES // 5), deadline=2000,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(_FIELDS + ["nope"]), json_values, max_size=6))
def test_config_files(tmp_path, data):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data, allow_nan=True))
    _one_line_or_result(lambda: apply_overrides(SearchConfig(), load_config_file(path)).validate())


@settings(max_examples=max(10, EXAMPLES // 10), deadline=5000,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.one_of(genotype_text, nb201_text, st.text(max_size=100)))
@example("-:")  # found by a CI run (2026-12-07): read as an option
def test_the_arch_command_exits_0_or_2_with_one_line(capsys, text):
    try:
        code = main(["arch", text])
    except SystemExit as exit_:  # a text argparse reads as an option ("-:"): its error leaves as the entry point's
        code = exit_.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 0 or (code == 2 and len(err) == 1 and err[0].startswith("drnas: error:")), (code, err)


# ------------------------------------------------------------------------------------------------ the run's own files
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished two-epoch demo search whose files the fuzzers below damage (each on a copy)."""
    import torch

    path = tmp_path_factory.mktemp("fuzz") / "run"
    torch.set_num_threads(1)
    assert main(["search", "--preset", "demo", "--epochs", "2", "--train-images", "96", "--batch-size", "32",
                 "--quiet", "--out", str(path)]) == 0
    return path


def _damaged_copy(run, tmp_path_factory, name: str, content: bytes):
    import shutil

    copy = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.lock", ".lock"))
    (copy / name).write_bytes(content)
    return copy


def _record_mutations(record: dict):
    """A valid epoch record with one field replaced by any JSON value (the architecture parameters most often)."""
    keys = sorted(record) + ["architecture_parameters"] * 4
    params = record["architecture_parameters"]
    return st.one_of(
        st.builds(lambda k, v: {**record, k: v}, st.sampled_from(keys), json_values),
        st.builds(lambda k, v: {**record, "architecture_parameters": {**params, k: v}},
                  st.sampled_from(["eta", "kept", "other"]), json_values),
        st.builds(lambda row, v: {**record, "architecture_parameters": {
            **params, "eta": [r if i != row else v for i, r in enumerate(params["eta"])]}},
            st.integers(0, len(params["eta"]) - 1), st.lists(numbers, max_size=8)))


def _exits_0_or_2_with_one_line(capsys, argv) -> None:
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("warning")]
    assert code == 0 or (code == 2 and len(err) == 1 and err[0].startswith("drnas: error:")), (code, err)


RUN_FUZZ = settings(max_examples=max(8, EXAMPLES // 12), deadline=10000,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@RUN_FUZZ
@given(data=st.data())
def test_a_damaged_metrics_history_is_read_or_refused_in_one_line(finished_run, tmp_path_factory, capsys, data):
    lines = (finished_run / "metrics.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    mutated = data.draw(st.one_of(_record_mutations(last), json_values))
    text = "\n".join([*lines[:-1], json.dumps(mutated, allow_nan=True)]) + "\n"
    text = data.draw(st.sampled_from([text, text[: data.draw(st.integers(0, len(text)))]]))
    run = _damaged_copy(finished_run, tmp_path_factory, "metrics.jsonl", text.encode())
    command = data.draw(st.sampled_from([["show", str(run)], ["sample", str(run), "--n", "5"],
                                         ["sample", str(run), "--n", "3", "--all-epochs"]]))
    _exits_0_or_2_with_one_line(capsys, command)


@RUN_FUZZ
@given(data=st.data())
def test_a_damaged_config_or_architecture_file_is_read_or_refused_in_one_line(finished_run, tmp_path_factory,
                                                                                capsys, data):
    name = data.draw(st.sampled_from(["config.json", "architecture.json"]))
    saved = json.loads((finished_run / name).read_text())
    mutated = data.draw(st.one_of(st.builds(lambda k, v: {**saved, k: v}, st.sampled_from(sorted(saved)), json_values),
                                  json_values))
    content = data.draw(st.one_of(st.just(json.dumps(mutated, allow_nan=True).encode()), st.binary(max_size=200)))
    run = _damaged_copy(finished_run, tmp_path_factory, name, content)
    command = data.draw(st.sampled_from([["show", str(run)], ["show", str(run), "--json"],
                                         ["sample", str(run), "--n", "3"]]))
    _exits_0_or_2_with_one_line(capsys, command)


# ------------------------------------------------------------------------------------------------ benchmark tables
csv_cells = st.one_of(st.sampled_from(["91.5", "nan", "inf", "-1", "", "1e999", "9" * 400, "x", '"', "a,b"]),
                      st.text(max_size=12))
nb201_arch = st.builds(lambda ops: "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops),
                       st.lists(st.sampled_from(list(NB201_OPS)), min_size=6, max_size=6))


@settings(max_examples=max(20, EXAMPLES // 3), deadline=2000,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(header=st.lists(st.sampled_from(["arch", "cifar10_valid_acc", "cifar10_test_acc", "x", ""]), max_size=4),
       rows=st.lists(st.tuples(st.one_of(nb201_arch, st.text(max_size=30)), st.lists(csv_cells, max_size=5)),
                     max_size=6),
       raw=st.binary(max_size=300), use_raw=st.booleans())
def test_a_benchmark_table_is_read_or_refused_in_one_line(tmp_path, header, rows, raw, use_raw):
    from drnas.bench.nb201 import NB201Table

    path = tmp_path / "table.csv"
    if use_raw:
        path.write_bytes(raw)
    else:
        path.write_text("\n".join([",".join(header), *(",".join([arch, *cells]) for arch, cells in rows)]) + "\n")

    def read() -> None:
        table = NB201Table.load(path)
        for arch, _ in rows:
            try:
                table.query(arch)
            except DrnasError as err:  # an architecture not in the table: one line too
                assert "\n" not in str(err)
    _one_line_or_result(read)
