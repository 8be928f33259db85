"""Errors a user can cause. The CLI turns them into one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import re
from typing import Literal, overload

# How the process running out of memory reads when the failure is not Python's MemoryError, as measured under
# ``ulimit -v``: onnxruntime's allocator and C++'s std::bad_alloc, glibc's ENOMEM ("pthread_create failed, error
# code: 12 error msg: Cannot allocate memory" from onnxruntime's thread pool), the dynamic loader mapping a
# C extension's library ("failed to map segment from shared object"), and Python's own threads.
_NO_MEMORY = re.compile(
    r"Failed to allocate memory|bad_alloc|bad allocation|Cannot allocate memory|failed to map segment"
    r"|can't start new thread"
)


class AetoolError(Exception):
    """A problem with the user's input or setup (bad path, broken file, wrong option)."""

    exit_code = 2


class Interrupted(AetoolError):
    """The user pressed Ctrl-C; the message says what was kept."""

    exit_code = 130


class NotLearned(AetoolError):
    """A training run that does not beat a trivial output (all black, the mean image, the input) by a clear margin."""

    exit_code = 3


class DataError(AetoolError):
    """A data folder is missing or does not hold readable IDX files."""


class ModelFileError(AetoolError):
    """A model file is missing, not ONNX, or does not follow aetool's input/output contract."""


class OutOfMemory(AetoolError, MemoryError):
    """A model call needed more memory than the process could get (too many or too large images at once); a
    ``MemoryError`` too, for code that catches that."""


class RegistryError(AetoolError, TypeError):
    """A model registry entry that cannot work (a model of one's own, README "Adding a model"): a setting or keyword
    its class does not take, a class of no known kind, a convolutional one without ``multiple_of``; a ``TypeError``
    too, as these were."""


class ContractError(AetoolError):
    """A network that breaks what every exported file promises (a reconstruction of another shape, outside [0, 1],
    or random): its code must change, so exporting it again cannot help."""


class TimedOut(AetoolError):
    """A model call ran past ``--timeout`` and was stopped (``timeout``'s exit code)."""

    exit_code = 124


class ImageError(AetoolError):
    """An input image cannot be read."""

    exit_code = 1


def caused_by_interrupt(err: BaseException) -> bool:
    """Whether a ``KeyboardInterrupt`` (Ctrl-C, or a stop signal raised as one) is in ``err``'s chain of causes
    and contexts: what failed, failed because a stop signal broke it (a C extension whose initialisation it
    interrupted fails to import with pybind11's "initialization failed"; a module it left half loaded fails where
    it is used)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says the process could not get the memory it needed (``MemoryError``, or a C library's or
    the loader's words for it: ``_NO_MEMORY``), so that it is reported as a memory limit, not a broken file."""
    return isinstance(err, MemoryError) or bool(_NO_MEMORY.search(str(err)))


def no_memory_line(err: MemoryError) -> str:
    """An image's error when numpy could not get the memory to run, score or encode it (``ulimit -v``): the other
    images of its batch are still done."""
    return f"not enough memory ({first_line(err)}); raise the memory limit, or pass fewer or smaller images at a time"


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): errors reach users as one line."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def os_reason(err: OSError) -> str:
    """Why a file operation failed, with the path in the way; for aetool's own temporary files (hidden, beside
    their target: ``.NAME.XXXXXXXX.part``) the target they stand for, since the user never named them."""
    path = str(err.filename or "")
    reason = err.strerror or str(err)
    folder, _, name = path.replace("\\", "/").rpartition("/")
    if name.startswith(".") and name.endswith(".part"):
        target = name[1:].removesuffix(".part").rpartition(".")[0]
        path = f"{folder}/{target}" if folder and target else target
    if reason.startswith("No usable temporary directory"):  # tempfile's, where no folder it tries takes files
        reason += "; set TMPDIR to a folder this user can write (PyTorch and the exporter need one)"
    return f"{reason}: {path}" if path else reason


@overload
def checked_switch(value: object, *, name: str, unset: Literal[False] = False) -> bool: ...
@overload
def checked_switch(value: object, *, name: str, unset: bool) -> bool | None: ...
def checked_switch(value: object, *, name: str, unset: bool = False) -> bool | None:
    """``value`` once checked to be True or False (a numpy bool too), or None where ``unset`` (decide per image);
    raises ``TypeError`` naming ``name`` for anything else: a string such as "no" is truthy and switched the option
    on, ``force="no"`` replaced a run (trial 83)."""
    if isinstance(value, bool):
        return value
    if value is None and unset:
        return None
    import numpy as np  # here: the error helpers load before numpy is needed

    if isinstance(value, np.bool_):
        return bool(value)
    taken = "True, False or None (decide per image)" if unset else "True or False"
    raise TypeError(f"{name} takes {taken}, got {value!r}")
