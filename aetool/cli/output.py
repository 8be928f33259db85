"""Messages and results: the one way a command talks to the user (errors, notes, warnings, records), and a closed
pipe."""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import NoReturn

import typer

from aetool.console import stderr_console
from aetool.errors import AetoolError, Interrupted, os_reason

SAID: list[str] = []  # the error lines this process has written


_CONTROLS = re.compile(  # C0, DEL, C1, line and paragraph separators, bidi
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def escape_controls(text: str) -> str:
    """``text`` with control characters written as Python escapes (``\\t``, ``\\n``, ``\\x1b``, ``\\u202e``): a
    file name may hold a newline that would split a line, a tab that would shift a column, or a terminal's escape
    sequence (to retitle the window, clear the screen) or a bidirectional override that would show another name."""
    return _CONTROLS.sub(lambda found: found[0].encode("unicode_escape").decode("ascii"), text)


def say(line: str) -> None:
    """Write ``line`` to stderr as it is: no markup, no highlighting, not wrapped at the terminal's width (a file
    name cut in two cannot be copied back). A stderr that cannot take it (``2>/dev/full``) loses the line, and the
    command goes on (it stopped a batch half done); one whose reader has gone ends it as a closed pipe does. Ctrl-C
    is held until the line is out: one in the middle left it in the console's buffer, to be written again with the
    next line."""
    try:
        from aetool.runtime.signals import interrupts_held
    except ImportError:  # a stop signal broke numpy's first import, and "interrupted" is the line to write
        _say_plainly(line)
        return
    try:
        console = stderr_console()
    except (MemoryError, ImportError, OSError):  # under a memory limit rich may not load: the line matters most
        _say_plainly(line)
        return
    try:
        with interrupts_held():
            console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
    except BrokenPipeError:
        raise
    except OSError:
        pass


def _say_plainly(line: str) -> None:
    """Write ``line`` to stderr without rich or numpy, for when a stop signal left an import half done (the
    "interrupted" line itself failed with numpy's "cannot load module more than once per process": a traceback)."""
    with suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def error(message: str) -> None:
    """One ``aetool: error:`` line on stderr: how every user-facing error is written."""
    say(f"aetool: error: {escape_controls(message)}")
    SAID.append(message)


def emit(text: str) -> None:
    """A line of a command's results on standard output. A closed pipe is raised as it is (the command then ends
    quietly with exit 141); any other write error (a full device, ``> /dev/full``) is one line that names standard
    output, exit 1. Written by the stream itself, whose encoding errors go to :func:`_printable` as stderr's do
    (Click's echo wrote a name's undecodable bytes as ``?`` and other text as UTF-8 whatever the encoding)."""
    if sys.stdout is None:  # closed from the start (>&-): the records of the image commands are dropped
        return
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        fail(f"cannot write to standard output: {err.strerror or err}", 1)


def fail(message: str, code: int = 2) -> NoReturn:
    """Report an error that stops the command, and exit with ``code``; never a traceback."""
    error(message)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A line for the user on stderr, which stays free of data."""
    say(f"aetool: {escape_controls(message)}")


def _show_warning(message: Warning | str, *args: object, **kwargs: object) -> None:
    say(f"aetool: warning: {escape_controls(str(message))}")


@contextmanager
def reporting(*, results: bool = False) -> Iterator[None]:
    """Run a command body so that AetoolErrors become one line and their exit code, and warnings one line each.
    ``results``: the command's results go to standard output, so one closed from the start (``>&-``, where Python
    has no stream and every line would vanish) is refused first, exit 2."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        try:
            if results and sys.stdout is None:
                raise AetoolError("standard output is closed (>&-), and this command's results go there")
            yield
        except AetoolError as err:
            fail(str(err), err.exit_code)
        except BrokenPipeError:  # the reader of standard output is gone
            closed_pipe()
        except OSError as err:  # a file or folder the user named cannot be written or read
            fail(os_reason(err))
        except KeyboardInterrupt:
            fail("interrupted", Interrupted.exit_code)


BROKEN_PIPE = 141  # 128 + SIGPIPE: what the shell reports for a filter stopped by a closed pipe


def closed_pipe() -> NoReturn:
    """Stop quietly, as a Unix filter does when the reader of its output goes away (``aetool … --json | head``):
    no message, exit 141; what was written stays whole, nothing more is written. Standard output is pointed at
    /dev/null first, so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    sys.exit(BROKEN_PIPE)
