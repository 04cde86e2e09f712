"""The speed paths, apart from the method: a job asks :func:`runner` for its :class:`Runner` and steps through
it; :func:`using` flips the switchboard (:mod:`drnas.fast.settings`) for a block."""
from drnas.fast.runner import Runner, preferred_memory_format, runner
from drnas.fast.settings import DEFAULT, PLAIN, FastPaths, current, using

__all__ = ["DEFAULT", "PLAIN", "FastPaths", "Runner", "current", "preferred_memory_format", "runner", "using"]
