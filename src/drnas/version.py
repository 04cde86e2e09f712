"""The package version, written in this one place (pyproject.toml reads it; `drnas --version` and every run's
config.json show it)."""
__version__ = "0.1.0"
