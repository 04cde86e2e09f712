"""An example drnas plugin: importing it registers one of each thing a researcher most often adds.

* :mod:`~drnas_example_plugin.method`: the search method ``temperature-softmax`` (with a setting);
* :mod:`~drnas_example_plugin.ops`: the candidate op ``conv_5x5``;
* :mod:`~drnas_example_plugin.space`: the search space ``tiny-cell`` (a 3-node cell using ``conv_5x5``);
* :mod:`~drnas_example_plugin.dataset`: the dataset ``noise16`` (seeded random images, no ``--data``).

drnas imports this module when it is installed (the entry point in pyproject.toml), named by ``--plugin
drnas_example_plugin`` or listed in ``DRNAS_PLUGINS``; a run records it and imports it again when reopened.
"""
from drnas_example_plugin import dataset, method, ops, space  # noqa: F401  (each registers on import)

__version__ = "0.1.0"
