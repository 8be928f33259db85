"""How a benchmark script ends on an error its user can cause: one line on stderr and the error's exit code, as
aetool's commands end (a missing data folder or model file was a 10- to 26-line traceback)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from aetool.errors import AetoolError


def run_script(main: Callable[[], object]) -> None:
    """Call a script's ``main``; an ``AetoolError`` (a data folder, run or model file that is not there or not
    usable) becomes one line, ``SCRIPT: error: …``, and its exit code (2 unless the error says otherwise)."""
    try:
        main()
    except AetoolError as err:
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
