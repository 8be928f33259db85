"""The stop signals and how aetool holds them back: Ctrl-C (SIGINT), SIGTERM and SIGHUP, held while a step that
must not be cut in half runs (a set of files renamed into place, a session call handed to its worker thread) and
raised once it ends (:func:`interrupts_held`), or turned into an event that a batch's consumer checks between
chunks (:func:`interrupts_deferred`); ``STOPPED_BY`` records each one received meanwhile, for the CLI's exit
code."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

# The signals that stop a command: Ctrl-C (SIGINT), and SIGTERM (``docker stop``, Kubernetes, a CI cancel, ``timeout``)
# and SIGHUP (a closed terminal or SSH session) once the CLI gives them a Python handler, which raises
# KeyboardInterrupt like Ctrl-C's. Windows has no SIGHUP.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))
STOPPED_BY: set[int] = set()  # the stop signals this process has received while aetool held or deferred them


def _handled_stop_signals() -> dict[int, Any]:
    """The stop signals with a Python handler, and their handlers; none outside the main thread, where handlers
    cannot be changed (and signals never arrive)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    handlers = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    return {number: handler for number, handler in handlers.items() if callable(handler)}


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT), SIGTERM and SIGHUP back for the body, and raise the first that came (call the handler that
    was there) when the body ends.

    Only the main thread receives signals and may change handlers; elsewhere, and for a signal that is ignored or
    has its default action, the body runs as it is. Raises what the held handler raises (``KeyboardInterrupt``).
    """
    caught: list[tuple[int, FrameType | None]] = []

    def held(number: int, frame: FrameType | None) -> None:
        STOPPED_BY.add(number)
        caught.append((number, frame))

    previous = _handled_stop_signals()
    try:
        with _handled_by(held, previous):
            yield
    finally:
        if caught:
            previous[caught[0][0]](*caught[0])


@contextmanager
def interrupts_deferred(stop: threading.Event) -> Iterator[None]:
    """Turn Ctrl-C (SIGINT), SIGTERM or SIGHUP during the body into ``stop.set()`` (the signal noted in ``STOPPED_BY``):
    for the consumer of a batch generator, which checks ``stop`` between chunks and raises ``KeyboardInterrupt``
    once the outcomes it settled are all reported (a signal while the consumer reports one would otherwise leave
    those still held unreported). Only in the main thread and for signals with a Python handler; otherwise the
    body runs as it is."""

    def deferred(number: int, frame: FrameType | None) -> None:
        STOPPED_BY.add(number)
        stop.set()

    with _handled_by(deferred, _handled_stop_signals()):
        yield


@contextmanager
def _handled_by(handler: Any, previous: dict[int, Any]) -> Iterator[None]:
    """The signals of ``previous`` (signal → handler, :func:`_handled_stop_signals`) go to ``handler`` for the body,
    then back to their own handlers."""
    for number in previous:
        signal.signal(number, handler)
    try:
        yield
    finally:
        for number, own in previous.items():
            signal.signal(number, own)
