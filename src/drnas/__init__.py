"""drnas: DrNAS (Dirichlet Neural Architecture Search, Chen et al., ICLR 2021) as a library and CLI.

Typical use::

    import drnas
    config = drnas.preset("nb201")                          # or drnas.SearchConfig(...)
    config = drnas.with_method(config, "darts")             # optional: another method (drnas.method_names())
    config = drnas.apply_overrides(config, {"dataset": "cifar10", "data": "data/cifar10"})
    search = drnas.Search(config, out="runs/nb201")
    result = search.run()
    print(result.architecture)                              # an NB201 architecture string
    drnas.NB201Table.load("nb201.csv").accuracies(result.architecture)

Runs report through :mod:`logging` (loggers under ``drnas``: a line per epoch with the run's ETA, notes, warnings)
and print nothing but a progress bar on stderr (``progress=False`` hides it). To see the lines, configure logging,
e.g. ``logging.basicConfig(level=logging.INFO, format="%(message)s")``, or pass ``log=print`` to ``Search`` or
``Trainer``. ``drnas.analysis.report.run_summary(RUN_DIR)`` gives the summary that ``drnas show`` prints.
"""
from drnas.version import __version__

from drnas.bench import BenchmarkError, NB201Table
from drnas.config import ConfigError, SearchConfig, Stage, apply_overrides, load_config_file, preset, preset_names, set_total_epochs
from drnas.data import DataError, load_dataset
from drnas.method.relax import concentration, dirichlet_kl_to_uniform, sample_dirichlet
from drnas.search import NonFiniteLossError, Search, SearchResult
from drnas.spaces.archs import architecture_names, get_architecture
from drnas.spaces import ArchitectureError, DartsGenotype, NB201Arch, NetworkSpec, SupernetSpec, get_space, space_names
from drnas.method.strategies import Strategy, get_method, method_names, with_method
from drnas import train

__all__ = [
    "ArchitectureError", "BenchmarkError", "ConfigError", "DartsGenotype", "DataError", "Strategy", "get_method",
    "method_names", "with_method",
    "NB201Arch", "NetworkSpec", "architecture_names", "get_architecture", "train",
    "NB201Table", "NonFiniteLossError", "Search", "SearchConfig", "SearchResult", "Stage", "SupernetSpec",
    "apply_overrides", "concentration", "dirichlet_kl_to_uniform", "get_space", "load_config_file",
    "load_dataset", "preset", "preset_names", "sample_dirichlet", "set_total_epochs", "space_names",
    "__version__",
]
