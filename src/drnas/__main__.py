import sys

from drnas.cli import INTERRUPTED, main
from drnas.engine.distributed import exit_without_teardown
from drnas.sweep.driver import exit_with_parent

exit_with_parent()  # a run started by `drnas sweep` ends with the sweep (a no-op otherwise)
code = main()
if code == INTERRUPTED:
    # CPython remembers a KeyboardInterrupt that left a string exec/eval (dataclasses and other code generators
    # run those) as unhandled even after the CLI caught it, and under ``python -m`` ends the process by SIGINT
    # (-2 to ``subprocess``) once the interpreter is torn down, whatever status we return: about one Ctrl-C in
    # ten did. Leaving before that teardown keeps the status. The last checkpoint is written by then.
    exit_without_teardown(code)
sys.exit(code)
