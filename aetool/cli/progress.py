"""Progress bars on stderr, for batches of images and training."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator

from aetool.console import stderr_console

FEW = 4  # up to this many inputs: a note per image and no progress bar


def _bar_terminal() -> bool:
    """Whether stderr is a terminal that can show a progress bar: not a file or pipe, nor a terminal whose TERM is
    ``dumb`` or ``unknown`` (rich's test; a serial console, Emacs' shell), which cannot redraw a line, so a bar's
    last state stayed behind as a line of box characters."""
    return sys.stderr.isatty() and os.environ.get("TERM", "").lower() not in ("dumb", "unknown")


def training_bar(quiet: bool) -> bool:
    """Whether training shows its progress bar: not ``--quiet``, and stderr a terminal that can show one (into a
    log file the bar's last state was written as a line of box characters, and the epoch lines lost their
    ``aetool:``)."""
    return not quiet and _bar_terminal()


def shows_bar(total: int | None, *, as_json: bool) -> bool:
    """Whether a batch of ``total`` images (None: a stream of images still arriving) shows a progress bar: many
    images or a stream, and stderr a terminal that can show one, but not where ``--json`` writes its records to a
    terminal too (they were written onto the bar's line)."""
    return (total is None or total > FEW) and _bar_terminal() and not (as_json and sys.stdout.isatty())


def tracked(outcomes: Iterable, total: int | None, show: bool) -> Iterable:
    """A progress bar on stderr around ``outcomes`` when there are many (``total``; None for a stream, whose bar
    counts without an end) and stderr is a terminal."""
    return _with_bar(outcomes, total) if show else outcomes


def _with_bar(outcomes: Iterable, total: int | None) -> Iterator:
    """``outcomes`` as they come, with the bar up on stderr until the last."""
    from rich.progress import Progress

    # a bar of its own, not rich's track: track takes standard output over while the bar is up, and the --json
    # records went to the terminal, not into the file or pipe standard output was (trial 96)
    with Progress(
        *Progress.get_default_columns(), console=stderr_console(), transient=True, redirect_stdout=False
    ) as bar:
        yield from bar.track(outcomes, total=total, description="images")
