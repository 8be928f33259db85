"""Progress on stderr: bars for batches of images and for training, and the tally of a batch of images (a note per
image for a few, counts for many)."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from aetool.cli.output import note
from aetool.console import stderr_console
from aetool.errors import Interrupted

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


def shows_bar(total: int | None, *, records: bool) -> bool:
    """Whether a batch of ``total`` images (None: a stream of images still arriving) shows a progress bar: many
    images or a stream, and stderr a terminal that can show one, but not where the command writes ``records`` (a
    line per image: ``--json``'s, ``detect``'s) to a terminal too (they were written onto the bar's line)."""
    return (total is None or total > FEW) and _bar_terminal() and not (records and sys.stdout.isatty())


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


@dataclass
class Tally:
    """Where a batch of images stands, for the notes and the summary of ``denoise``/``reconstruct``/``add-noise`` and
    ``detect``: ``total`` images (None: a stream, still arriving), how many have ``settled`` (done or failed), and
    how many images each kind of change was made to."""

    total: int | None
    settled: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def few(self) -> bool:
        """Whether the batch is a few images (up to ``FEW``; a stream while its first ``FEW``): a note per image."""
        return (self.total if self.total is not None else self.settled) <= FEW

    def settle(self, path: str, changes: Sequence[tuple[str, str]] = ()) -> None:
        """One more image settled, with what was done to it as (kind, line) pairs (``inputs.changes_made``): each
        kind counted once an image, and its lines said while the batch is few."""
        self.settled += 1
        self.kinds.update(dict.fromkeys(kind for kind, _ in changes).keys())  # in order: a set's varied by run
        if self.few:
            for _, text in changes:
                note(f"{path}: {text}")

    def counted(self) -> list[str]:
        """The summary's counts of the kinds (``3 inverted (dark on light) and back``) for a batch of many; none for
        a few, whose images were said one by one."""
        return [] if self.few else [f"{n} {kind}" for kind, n in self.kinds.items()]

    def interrupted(self, detail: str) -> Interrupted:
        """The error for Ctrl-C once the settled images were reported: ``interrupted after 3 of 10 images (…)``."""
        count = self.total if self.total is not None else self.settled
        of = f" of {self.total}" if self.total is not None else ""
        return Interrupted(f"interrupted after {self.settled}{of} image{'s' * (count != 1)} ({detail})")
