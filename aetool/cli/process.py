"""The process around a command: the entry point, exit codes, stop signals, closed streams and encodings."""

from __future__ import annotations

import atexit
import codecs
import contextlib
import os
import re
import signal
import sys
from functools import partial
from types import FrameType
from typing import Any, NoReturn

from aetool.cli.app import app
from aetool.cli.output import SAID, closed_pipe, error, escape_controls, say
from aetool.errors import Interrupted, caused_by_interrupt, first_line, os_reason, out_of_memory


def _stderr_on_devnull() -> None:
    """Open /dev/null as file descriptor 2 and ``sys.stderr``, for a process started with standard error closed:
    C libraries that write there (OpenCV, loading a model for ``check`` and every export) fail on a closed
    descriptor, and a later file would take its number and receive their messages."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    if devnull != 2:
        os.dup2(devnull, 2)
        os.close(devnull)
    sys.stderr = open(2, "w", encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115


def _drop_invalid_omp_threads() -> None:
    """Unset an ``OMP_NUM_THREADS`` that is not a number of threads (``0``, ``abc``, empty), with a warning line:
    PyTorch's OpenMP runtime prints "libgomp: Invalid value" when it loads and ignores it, and aetool would take it
    as set and leave the thread count to PyTorch's guess (see ``train.threads.size_torch_threads``)."""
    value = os.environ.get("OMP_NUM_THREADS")
    if value is not None and not re.fullmatch(r"\s*[1-9]\d*(\s*,\s*[1-9]\d*)*\s*", value):
        del os.environ["OMP_NUM_THREADS"]
        say(f"aetool: warning: OMP_NUM_THREADS={escape_controls(repr(value))} is not a number of threads; ignored")


def _drop_invalid_terminal_size() -> None:
    """Unset a ``COLUMNS`` or ``LINES`` that is not a positive whole number: rich sized its console to 0 columns
    and wrote every message (errors included) as nothing, and ``--help`` as one empty line (trial 52's
    ``COLUMNS=0``, which some CI runners set); without it the terminal's own size, or 80, is used."""
    for name in ("COLUMNS", "LINES"):
        value = os.environ.get(name)
        if value is not None and not re.fullmatch(r"\s*[1-9]\d*\s*", value):
            del os.environ[name]


# Signals that stop a command as Ctrl-C does, with exit 128 + the signal's number, as a shell reports a process it
# killed: SIGTERM 143 (``docker stop``, Kubernetes, a CI cancel, ``timeout``), SIGHUP 129 (a closed terminal or SSH
# session, for a command started without nohup). Windows has no SIGHUP.
TERMINATING = (signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))


_TERMINATED_BY: list[int] = []  # the terminating signals that reached _terminate


def _terminate(number: int, frame: FrameType | None) -> None:
    """SIGTERM or SIGHUP stops a command as Ctrl-C does: the images written so far are kept and reported, no
    temporary is left behind; the exit code is then 128 + ``number`` (:func:`_interrupted_code`)."""
    _TERMINATED_BY.append(number)
    raise KeyboardInterrupt


def _default_terminating_signals_in_child() -> None:
    """In a process forked from aetool's (a library's helper), SIGTERM and SIGHUP kill again: ``_terminate`` raises
    in Python, which a child stuck in C never reaches, so its parent's ``terminate()`` could not end it and the
    parent then waited for it at exit (OpenVINO's telemetry fork, ten minutes, trial 37)."""
    for number in TERMINATING:
        handler = signal.getsignal(number)
        if handler is _terminate or getattr(handler, "func", None) is _stopped_while_exiting:
            signal.signal(number, signal.SIG_DFL)


if hasattr(os, "register_at_fork"):  # POSIX; once per process, not once per main() (the tests call it many times)
    os.register_at_fork(after_in_child=_default_terminating_signals_in_child)


_EXIT_WITHOUT_TEARDOWN: list[int] = []  # the exit code of a command that imported PyTorch, once it has ended


def _end_without_teardown() -> None:
    """Registered when the CLI is imported, so it runs after the atexit callbacks registered since (PyTorch's):
    once a command that imported PyTorch has ended, end the process with its exit code, its output flushed, without
    the interpreter's teardown of the modules, which took 2.7 s after an export (its output was whole by then; a
    Ctrl-C in that time, with Python's handlers already gone, ended it by the signal without a word; trial 86)."""
    if _EXIT_WITHOUT_TEARDOWN:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # as at a normal exit: one that cannot be flushed is left
                if stream is not None:
                    stream.flush()
        os._exit(_EXIT_WITHOUT_TEARDOWN[0])


atexit.register(_end_without_teardown)


def _interrupted_code() -> int:
    """The exit code of a command a stop signal ended: 128 + the number of the SIGTERM or SIGHUP that stopped it
    (caught by :func:`_terminate`, or by aetool while it held or deferred stop signals, ``signals.STOPPED_BY``), else
    Ctrl-C's 130."""
    try:
        from aetool.runtime import signals
    except ImportError:  # a stop signal broke numpy's first import (see say): only _terminate's record is left
        held: set[int] = set()
    else:
        held = set(signals.STOPPED_BY)
    stopped = _TERMINATED_BY or [number for number in TERMINATING if number in held]
    return 128 + int(stopped[0]) if stopped else Interrupted.exit_code


PRINTABLE = "aetool-printable"  # the encoding error handler of standard output (_printable)


def _printable(err: UnicodeError) -> tuple[str | bytes, int]:
    """What standard output writes for characters its encoding lacks: a file name's undecodable bytes (surrogate
    escapes) as those bytes, and any other character as a Python escape (``✓`` → ``\\u2713``) rather than a
    traceback, when the locale or ``PYTHONIOENCODING`` is not UTF-8 (Latin-1; Windows' cp1252 into a pipe)."""
    try:
        return codecs.lookup_error("surrogateescape")(err)
    except UnicodeError:
        return codecs.backslashreplace_errors(err)


def _memory_advice() -> str:
    """What to do when the command in ``sys.argv`` ran out of memory: use fewer --threads where it takes them
    (calibrate told a user to, though it takes none; a trial)."""
    from typer.main import get_command

    commands = getattr(get_command(app), "commands", {})
    name = next((arg for arg in sys.argv[1:] if arg in commands), None)
    threaded = name is not None and any(param.name == "threads" for param in commands[name].params)
    return "raise the memory limit" + (", or use fewer --threads" if threaded else "")


def _stopped_while_exiting(number: int, frame: FrameType | None, *, said: str) -> None:
    """A stop signal once the command has ended, while atexit callbacks run: the line ``said`` (what it wrote is
    whole), then the process ends by the signal (so a shell loop running aetool stops too)."""
    with contextlib.suppress(OSError):  # stderr closed (2>&-)
        os.write(2, said.encode())
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)


def main() -> None:
    """Entry point of the ``aetool`` script and of ``python -m aetool``: a usage error is one line too, exit 2;
    a closed standard output ends the command quietly with 141."""
    _prepare_process()
    try:
        code = app(standalone_mode=False, prog_name="aetool")  # also under python -m: completion binds to aetool
    except SystemExit as stop:  # Click ends a closed pipe outside a command's body (--help | head) with exit 1
        if isinstance(stop.__context__, BrokenPipeError):
            closed_pipe()
        raise
    except KeyboardInterrupt:
        error("interrupted")
        sys.exit(_interrupted_code())
    except Exception as err:  # the parser's usage errors carry a message and an exit code
        _exit_for(err)
        raise  # not one a user can cause: a bug, whose traceback is wanted
    _exit_after_command(code)


def _prepare_process() -> None:
    """Before the command: messages that print any file name, stderr on /dev/null when the shell closed it, the
    environment's broken terminal size and OpenMP thread count dropped, the stop signals handled, and a removed
    current folder or a closed standard output that --help and --version need refused (exit 2)."""
    codecs.register_error(PRINTABLE, _printable)
    for stream in (sys.stdout, sys.stderr):  # stderr's default, backslashreplace, printed such a byte as \udce9
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=PRINTABLE)
    if sys.stderr is None:  # closed by the shell (2>&-): messages are dropped, as they would be in /dev/null
        _stderr_on_devnull()
    _drop_invalid_terminal_size()
    _drop_invalid_omp_threads()
    for number in TERMINATING:
        if signal.getsignal(number) == signal.SIG_DFL:  # not ignored by whoever started us (nohup, a shell's trap)
            signal.signal(number, _terminate)
    try:
        os.getcwd()
    except FileNotFoundError:  # PyTorch's MKL then aborts while loading ("Intel oneMKL FATAL ERROR"), and paths fail
        error("the current folder has been removed; cd to a folder that exists")
        sys.exit(2)
    asked = next(
        (arg for arg in sys.argv[1:] if arg in ("-h", "--help", "--version")), None if sys.argv[1:] else "the help"
    )
    if sys.stdout is None and asked is not None:  # Click would print into nothing and exit 0
        error(f"standard output is closed (>&-), and {asked} writes there")
        sys.exit(2)


def _exit_for(err: Exception) -> None:
    """Exit with one line for an error raised outside a command's body: the parser's usage errors (their own exit
    code), Ctrl-C or a stop signal, no memory, an OSError; return for any other, which the caller re-raises.

    Typer's parser is Click (vendored since Typer 0.25): its exceptions are told apart by name and shape, so every
    Typer the requirement admits is handled alike."""
    usage: Any = err
    if type(err).__name__ == "Abort" or (isinstance(err, ImportError) and caused_by_interrupt(err)):
        error("interrupted")  # Ctrl-C outside a command's body, or one that broke an import
        sys.exit(_interrupted_code())
    if isinstance(err, MemoryError) or (isinstance(err, ImportError | RuntimeError) and out_of_memory(err)):
        # under a memory limit (ulimit -v, a container's) a C extension fails to load (std::bad_alloc, a library
        # the loader cannot map) or a thread to start
        error(f"not enough memory ({first_line(err)}); {_memory_advice()}")
        sys.exit(2)
    if isinstance(err, OSError):  # outside a command's body: --help and --version (> /dev/full), or the shell
        # completion --install-completion writes into the home folder (its ~/.bashrc)
        error(os_reason(err) if err.filename else f"cannot write to standard output: {err.strerror or err}")
        sys.exit(1)
    if not (hasattr(usage, "format_message") and isinstance(getattr(usage, "exit_code", None), int)):
        if _TERMINATED_BY or caused_by_interrupt(err):  # a stop signal left a module half loaded, which failed
            error("interrupted")
            sys.exit(_interrupted_code())
        return
    if type(err).__name__ == "NoArgsIsHelpError":  # plain `aetool`: the help, as Typer shows it
        usage.show()
        sys.exit(usage.exit_code)
    error(_usage_line(usage))
    sys.exit(usage.exit_code)


def _usage_line(usage: Any) -> str:
    """A usage error's line: Click's message, the command's --help to see, and what a glob a shell expanded or a
    global option given after the command needs."""
    context = getattr(usage, "ctx", None)
    hint = f" (see {context.command_path} --help)" if context is not None else ""
    message = usage.format_message()
    extra = re.search(r"unexpected extra arguments?(?:\(s\))? \((.*)\)$", message)
    if extra and any(map(os.path.lexists, extra[1].split())):  # files a shell expanded from a glob
        names = extra[1].split()  # a folder's thousands made one screen-filling line (trial 86)
        shown = " ".join(names[:3]) + (f" … and {len(names) - 3} more" if len(names) > 3 else "")
        message = f"{message[: extra.start(1)]}{shown})"
        hint += "; a glob for an option (--data 'photos/*.jpg') must be quoted, or the shell gives its files"
    if "No such option: --max-megapixels" in message:
        hint = "; it goes before the command: aetool --max-megapixels MP COMMAND …"
    return f"{message}{hint}"


def _exit_after_command(code: Any) -> NoReturn:
    """Exit with the command's ``code`` (Click's return value): Ctrl-C's said and turned into the signal's code,
    plain ``aetool`` (the help) 2, and a stop signal from here on said as one that came once the command had
    ended."""
    if code == Interrupted.exit_code and not SAID:  # Ctrl-C outside a command's body, which Typer ends silently
        error("interrupted")
    if code == Interrupted.exit_code:
        code = _interrupted_code()
    if code in (0, None) and len(sys.argv) == 1:  # plain `aetool` showed the help: Click before 8.2 exits 0 there
        code = 2
    ended = code if isinstance(code, int) else 0
    # The command is over: a stop signal while atexit callbacks run (PyTorch's, after an export) says so and ends the
    # process by the signal, not with "Exception ignored in atexit callback" and exit 0, nor with exit 130 and no word
    # after "wrote …" (trial 86); the interpreter's teardown after them is skipped for PyTorch's commands.
    said = f"aetool: interrupted while exiting; the command had ended (exit {ended}), its files are whole\n"
    for number in (signal.SIGINT, *TERMINATING):
        signal.signal(number, partial(_stopped_while_exiting, said=said))
    if "torch" in sys.modules:
        _EXIT_WITHOUT_TEARDOWN.append(ended)
    sys.exit(ended)
