"""The one rich console on standard error, shared by the CLI's messages and every progress bar (the image
commands' and training's): a line printed while a bar is up is written above it, as the bar's own console writes it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def stderr_console() -> Console:
    """The console (rich imported on first use, so ``aetool --help`` does not pay for it). Click's echo had written
    a message onto the image bar's line, and a second console onto the training bar's."""
    from rich.console import Console

    return Console(stderr=True)
