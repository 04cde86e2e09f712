"""Shared fixtures: tiny real configs and paths to the shared data (skipped with a reason when absent); how the
suite shares the cores between pytest-xdist's workers (``scripts/test.sh`` runs ``-n 2``)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

#: the shared data (the NB201 table, a CIFAR-10 copy): $DRNAS_TEST_DATA, else ../shared/data beside the clone
SHARED = Path(os.environ.get("DRNAS_TEST_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
NB201_CSV = SHARED / "nb201" / "nb201.csv"
CIFAR_NPZ = SHARED / "cifar10" / "cifar10.npz"


#: the cores the suite may use (CI has 2), shared by the xdist workers
CORES = 2
#: threads per test: the cores split between the workers (1 under ``-n 2``, 2 in a serial run); DRNAS_TEST_THREADS
#: sets it (1 while other jobs hold the cores)
TEST_THREADS = int(os.environ.get("DRNAS_TEST_THREADS")
                   or max(1, CORES // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)))
# ... and per process a test starts (the CLI, a built wheel's demo), unless the environment says otherwise
os.environ.setdefault("OMP_NUM_THREADS", str(TEST_THREADS))

#: files whose tests each start several busy processes (torchrun's ranks, a sweep's pool of 2, a local Ray): one
#: unit of work together, so two of them never run at once on the 2 cores
MULTI_PROCESS = ("test_distributed.py", "test_sweep.py")
#: files whose tests share a module-scoped fixture that takes seconds to build (a workspace of runs, the site, a
#: wheel, a run to draw): one unit each, so it is built once rather than once per worker
SHARED_FIXTURE = ("test_diagrams.py", "test_docs.py", "test_example_plugin.py", "test_packaging.py", "test_plots.py",
                  "test_readme.py", "test_sampling.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under ``-n`` (``--dist load``): each test is a unit of work, except the files above. ``--dist loadgroup``
    with ``xdist_group`` marks would say the same, but pytest-xdist 3.8 groups by rewriting node ids, which
    pytest 9.2 no longer reads: the groups are silently ignored (pytest-dev/pytest-xdist#1386)."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            name = path.rpartition("/")[2]
            return "multi-process" if name in MULTI_PROCESS else path if name in SHARED_FIXTURE else nodeid

    return Units(config, log)


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(TEST_THREADS)


@pytest.fixture(autouse=True)
def _default_fast_paths():
    """A test may flip the fast-path switchboard with ``fastpaths.configure``; the next one starts from the
    defaults."""
    from drnas.fast import settings as fastpaths
    yield
    fastpaths.configure(fastpaths.DEFAULT)


@pytest.fixture
def nb201_csv() -> Path:
    if not NB201_CSV.is_file():
        pytest.skip(f"NB201 table not found at {NB201_CSV} (set DRNAS_TEST_DATA to the directory holding nb201/)")
    return NB201_CSV


@pytest.fixture(scope="session")
def imagenet_tree(tmp_path_factory) -> Path:
    """A tiny ImageNet-style folder: train/ and val/ with 3 classes of JPEGs whose colour tells the class."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        for c, wnid in enumerate(("n01", "n02", "n03")):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 90, (100, 120, 3), dtype=np.uint8)
                pixels[..., c] += 150
                Image.fromarray(pixels).save(folder / f"{i:04d}.JPEG", quality=90)
    return root
