"""``keep_freed_memory``: CPU search steps stop page-faulting their activations back in (glibc)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from drnas.fast.host_memory import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="mallopt thresholds are glibc's")

# six warm-up steps of a partial-channel NB201 search at batch 64 on 32x32 images, then the minor page faults
# per step (arch + weight) over eight more (glibc's adaptive thresholds settle in the first steps); run in a
# fresh process, since the setting is process-wide
_FAULTS_PER_STEP = """
import resource, sys
from helpers import pattern_images, tiny_config
from drnas import Search
search = Search(tiny_config(keep_freed_memory=sys.argv[1] == "on", channels=16, batch_size=64),
                data=pattern_images(64 * 28, size=32), progress=False, log=lambda m: None)
batches = list(zip(search.weight_loader.epoch(0), search.arch_loader.epoch(0)))
def steps(part):
    for (xw, yw), (xa, ya) in part:
        search.arch_step(xa, ya)
        search.weight_step(xw, yw)
steps(batches[:6])
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
steps(batches[6:14])
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 8)
"""


def _faults_per_step(setting: str) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
           "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", _FAULTS_PER_STEP, setting], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.split()[-1])


@glibc_only
def test_kept_memory_stops_the_page_faults_of_cpu_steps():
    """With the default setting a step reuses the heap (measured: 2-35 faults per step, against 18,000-20,000
    when glibc hands freed activations back to the kernel)."""
    kept, returned = _faults_per_step("on"), _faults_per_step("off")
    assert returned > 1000  # what the setting is for: without it, every step faults its activations back in
    assert kept < returned / 10


@glibc_only
def test_keep_freed_memory_is_in_effect_and_idempotent():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
