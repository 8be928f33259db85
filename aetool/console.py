"""The one rich console on standard error, shared by the CLI's messages and every progress bar (the image
commands' and training's): a line printed while a bar is up is written above it, as the bar's own console writes it;
and ``Echo``, where the library's functions print their progress lines.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def stderr_console() -> Console:
    """The console (rich imported on first use, so ``aetool --help`` does not pay for it). Click's echo had written
    a message onto the image bar's line, and a second console onto the training bar's."""
    from rich.console import Console

    return Console(stderr=True)


Echo = Callable[[str], Any]  # takes one line of text: print, a list's append, or lambda line: None for none


def check_echo(echo: object) -> None:
    """Raises ``TypeError`` for an ``echo`` that is not a function, before a function that prints starts: it failed
    at the first line printed, after an epoch of training or an export's parity check (trials 80, 83)."""
    if not callable(echo):
        raise TypeError(f"echo takes a function of one line of text (print, say), got {type(echo).__name__}")
