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
from hypothesis import HealthCheck, given, settings  # noqa: E402
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
def test_the_arch_command_exits_0_or_2_with_one_line(capsys, text):
    code = main(["arch", text])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 0 or (code == 2 and len(err) == 1 and err[0].startswith("drnas: error:")), (code, err)
