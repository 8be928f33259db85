"""Opening onnxruntime sessions and running their calls: a model file's bytes read and checked before onnxruntime
sees them, the session options every aetool session shares, execution providers by short name (with a
``ProviderWarning`` when the session runs on others than the ones asked for: rembg's users found their GPU silently
unused), onnxruntime's errors as one line, and the session call that Ctrl-C and a timeout can stop, run in a worker
thread (:func:`run_stoppable`)."""

from __future__ import annotations

import hashlib
import inspect
import numbers
import os
import queue
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aetool.errors import AetoolError, ModelFileError, OutOfMemory, TimedOut, out_of_memory
from aetool.runtime.cpu import check_threads, has_vnni, usable_cores
from aetool.runtime.files import is_utf8
from aetool.runtime.onnxfile import OnnxFacts, outside_folder, read_facts
from aetool.runtime.signals import interrupts_held

if TYPE_CHECKING:
    import onnxruntime

CPU = "CPUExecutionProvider"
# The first bytes of the image files most often given where a model goes, and their format's name.
IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}
ZIP_SIGNATURE = b"PK\x03\x04"  # a zip archive's first bytes: what torch.save writes
MAX_MODEL_BYTES = (2 << 30) - 1  # protobuf's own limit: no ONNX file is larger
STOP_WAIT = 10.0  # seconds to wait for a terminated session call to return before leaving it to its thread
# onnxruntime folds constant subgraphs when it opens a file: a 459-byte graph of ConstantOfShape makes it allocate
# gigabytes before any image is seen. aetool's exporter folds constants already, so nothing is lost.
DISABLED_OPTIMIZERS = ["ConstantFolding"]
# The PyPI package of onnxruntime that brings each execution provider (onnxruntime's install pages).
PROVIDER_PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "DmlExecutionProvider": "onnxruntime-directml",
    "QNNExecutionProvider": "onnxruntime-qnn",
}


class ProviderWarning(UserWarning):
    """The session runs on other execution providers than the ones asked for."""


def ort_errors() -> tuple[type[Exception], ...]:
    """The exceptions onnxruntime raises for bad files and failed runs (they do not share a base class)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = (
        "Fail",
        "InvalidArgument",
        "NoSuchFile",
        "NoModel",
        "InvalidProtobuf",
        "InvalidGraph",
        "RuntimeException",
        "NotImplemented",
        "EPFail",
    )
    return (RuntimeError, *(getattr(state, name) for name in names if hasattr(state, name)))


def ort_message(err: BaseException, *, limit: int = 400) -> str:
    """onnxruntime's message as one line: without its ``[ONNXRuntimeError] : 2 : INVALID_ARGUMENT :`` prefix, its
    source location and C++ signature, its lines joined (the useful part of a shape error is on the second), and
    cut at ``limit`` characters."""
    text = " ".join(str(err).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    located = re.search(r"\S+\.(?:cc|h|cpp):\d+ ", text)
    if located:
        text = text[: located.start()] + _after_signature(text[located.end() :])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _after_signature(text: str) -> str:
    """``text`` without a leading C++ signature (``ns::f(args) const ``), the parentheses balanced."""
    if "::" not in text.split("(", 1)[0]:
        return text
    depth = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                rest = text[index + 1 :].lstrip()
                return rest.removeprefix("const ").lstrip() or text
    return text


def provider_names(requested: str | Sequence[str] | None) -> list[str]:
    """Full provider names for ``requested``, one name or several, best first (``cuda`` → ``CUDAExecutionProvider``);
    CPU when none asked for. Raises ``AetoolError`` for a name onnxruntime does not know, ``TypeError`` for one that
    is not a string."""
    import onnxruntime as ort

    if not requested:
        return [CPU]
    if isinstance(requested, str):
        requested = [requested]
    if not isinstance(requested, Sequence) or not all(isinstance(name, str) for name in requested):
        raise TypeError(f"execution providers are named by strings (e.g. 'cuda'), got {requested!r}")
    known = {name.lower().removesuffix("executionprovider"): name for name in ort.get_all_providers()}
    names = []
    for name in requested:
        full = known.get(name.lower().removesuffix("executionprovider"))
        if full is None:
            raise AetoolError(f"unknown execution provider {name!r}; known: {', '.join(sorted(known))}")
        names.append(full)
    return names


def _converted_format(path: Path, data: bytes) -> str | None:
    """What a file made of an ONNX model by another toolchain is (OpenVINO's IR, ONNX Runtime's ORT format), from
    its first bytes or, for the IR's weights, its name beside the IR's XML; None for anything else."""
    if data.lstrip()[:5] in (b"<?xml", b"<net "):
        return "an OpenVINO IR (its XML)"
    if data[4:8] == b"ORTM":  # the flatbuffer identifier of ONNX Runtime's .ort files
        return "an ONNX Runtime format (.ort) file"
    if path.suffix == ".bin" and path.with_suffix(".xml").is_file():
        return "an OpenVINO IR's weights (its .bin)"
    return None


def read_model(path: Path) -> bytes:
    """The bytes of a model file, read once: onnxruntime gets these rather than the path, so a path of any bytes
    (not UTF-8) loads too. Raises ``ModelFileError`` for a file that cannot be read or is larger than any ONNX
    file can be."""
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ModelFileError(f"{path} is {size:,} bytes, more than an ONNX file can hold (2 GiB)")
        return path.read_bytes()
    except OSError as err:
        raise ModelFileError(f"cannot read model file {path}: {err.strerror or err}") from None


def inspect_model(path: Path, data: bytes) -> OnnxFacts:
    """What the file declares, read from its bytes; raises ``ModelFileError`` for bytes that are not an ONNX model
    and for external data outside the model's folder (refused before onnxruntime sees the file, whatever its
    version: onnxruntime 1.17–1.23 would read any file the model names into its weights)."""
    try:
        facts = read_facts(data)
    except ValueError as err:
        image = next((kind for magic, kind in IMAGE_SIGNATURES.items() if data.startswith(magic)), None)
        if image:  # a common slip: the image where the model goes
            raise ModelFileError(f"{path} is a {image} image, not an ONNX model") from None
        if data.startswith(ZIP_SIGNATURE):  # another: the run's checkpoint.pt (torch.save writes a zip archive)
            raise ModelFileError(
                f"{path} is a zip archive, as a PyTorch checkpoint is, not an ONNX model: export a run's checkpoint "
                f"with aetool export {path.parent} (its model.onnx)"
            ) from None
        converted = _converted_format(path, data)
        if converted:  # a file another toolchain made of an ONNX model
            raise ModelFileError(
                f"{path} is {converted}, not ONNX: give aetool the .onnx file it was made from"
            ) from None
        raise ModelFileError(f"{path} is not a loadable ONNX model: {err}") from None
    for location in facts.external_data:
        if outside_folder(path, location):
            raise ModelFileError(
                f"{path} is refused: a tensor's external data {location!r} lies outside the model's folder "
                "(an absolute path, a .. step, a link out or an in-memory address); aetool loads external data only "
                "from beside the model"
            )
    if facts.external_data and not is_utf8(str(path)):
        raise ModelFileError(
            f"{path}: a model with external data must have a UTF-8 path (onnxruntime finds the data by the path)"
        )
    return facts


def session_options(threads: int | None) -> Any:
    """onnxruntime's options for every aetool session: its log quiet (its errors still raise), thread pools sized to
    the CPUs this process may use, memory planned per call, not kept from the first call's shape, and int8 products
    without 16-bit saturation on CPUs that lack VNNI. Raises
    ``AetoolError`` for a thread count outside 1 to 4 per usable core."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # onnxruntime's own log lines would bury ours; its errors still raise
    options.intra_op_num_threads = check_threads(threads) if threads else usable_cores()
    options.inter_op_num_threads = 1  # nodes run one after another (sequential execution): no second pool
    # The memory pattern plans a call's buffers from an earlier call of the same shape and keeps the plan's arena
    # block; for pages of many sizes it held a 4096×4096 page's memory twice (see the README's Safety section).
    options.enable_mem_pattern = False
    # On x86 CPUs without VNNI (AVX2, and AVX-512 before VNNI), onnxruntime's u8×s8 integer products add pairs of
    # products in 16 bits, which saturate: an int8 `deep` file on an AVX2 CPU came out 0.06 off the exact integer
    # result (the ONNX reference evaluator's; 0.27 in its code). This option has onnxruntime compute those products
    # as u8×u8 there, exactly (1e-7 off). VNNI's products are exact already, and there the option made a file of
    # 8-bit weights 1.6-2.2× slower (benchmarks/session_costs.py), so it is set only without VNNI.
    if not has_vnni():
        options.add_session_config_entry("session.x64quantprecision", "1")
    return options


def _callers_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside aetool (the user's call of ``load``,
    ``decode``…), however deep inside aetool it is raised: counted from the caller of this function."""
    package = str(Path(__file__).resolve().parent.parent) + os.sep
    frame, level = inspect.currentframe(), 0  # this function's frame counts for the warn call's own
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    return max(1, level)


def open_session(
    path: Path,
    *,
    providers: str | Sequence[str] | None = None,
    threads: int | None = None,
    sha256: str | None = None,
    data: bytes | None = None,
) -> onnxruntime.InferenceSession:
    """An onnxruntime session for ``path``, opened from the file's bytes (``data`` when the caller read them
    already) once they are checked (see :func:`inspect_model`); with ``sha256``, the file's bytes must have that
    digest. ``providers``: one name or several, best first (see :func:`provider_names`).

    Raises ``ModelFileError`` for a file that is not ONNX, will not load (an IR version or opset newer than this
    onnxruntime reads is said so, with both versions) or has another digest; ``AetoolError`` for a bad provider or
    thread count.
    """
    import onnxruntime as ort

    data = read_model(path) if data is None else data
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ModelFileError(
            f"{path} is not the file its model was exported with (its SHA-256 differs from the one the model "
            "records): the two come from different exports; export the model again"
        )
    facts = inspect_model(path, data)
    wanted = provider_names(providers)
    available = ort.get_available_providers()
    options = session_options(threads)
    source: str | bytes = str(path) if facts.external_data else data
    asked = [p for p in wanted if p in available] or [CPU]
    # onnxruntime retries a failed session, or call, on the CPU provider after printing an "EP Error" banner to
    # standard output, where images and JSON lines go; on the CPU provider alone there is nothing to fall back to
    # (the retry fails alike). enable_fallback is read by newer onnxruntimes (1.32 here; 1.18 ignores it, and prints
    # the banner), disable_fallback covers the calls in every version.
    cpu_only = {"enable_fallback": 0} if asked == [CPU] else {}
    try:
        session = ort.InferenceSession(
            source, options, providers=asked, disabled_optimizers=DISABLED_OPTIMIZERS, **cpu_only
        )
    except ort_errors() as err:
        if out_of_memory(err):  # the file is fine: its session's memory or threads are not to be had
            raise OutOfMemory(
                f"not enough memory to open {path} ({ort_message(err)}); raise the memory limit, or use fewer --threads"
            ) from None
        too_new = _too_new(path, " ".join(str(err).split()), facts)
        raise ModelFileError(too_new or f"{path} is not a loadable ONNX model: {ort_message(err)}") from None
    if cpu_only:
        session.disable_fallback()
    unused = [p for p in wanted if p not in session.get_providers()]
    if unused and not set(wanted) & set(session.get_providers()):  # a fallback asked for (cuda, then cpu) is no news
        missing = [p for p in unused if p not in available]
        packages = sorted({PROVIDER_PACKAGES.get(p, "an onnxruntime built with it") for p in missing})
        why = (
            f" (this onnxruntime offers only {', '.join(available)}; for {', '.join(missing)} install "
            f"{' or '.join(packages)} instead of onnxruntime)"
            if missing
            else ""
        )
        warnings.warn(
            f"{path.name}: asked for {', '.join(unused)} but the session runs on "
            f"{', '.join(session.get_providers())}{why}",
            ProviderWarning,
            stacklevel=_callers_level(),
        )
    return session


_IR_TOO_NEW = re.compile(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)")
_OPSET_TOO_NEW = re.compile(r"Opset (\d+) is under development.*?domain (\S+) is till opset (\d+)")


def _too_new(path: Path, message: str, facts: OnnxFacts) -> str | None:
    """The line for a file newer than the installed onnxruntime reads, naming both versions and the fix."""
    import onnxruntime as ort

    upgrade = "upgrade onnxruntime (pip install -U onnxruntime)"
    found = _IR_TOO_NEW.search(message)
    if found:
        return (
            f"{path} is ONNX IR version {found[1]} (opset {facts.opset}), but onnxruntime {ort.__version__} reads IR "
            f"versions up to {found[2]}: {upgrade}, or re-export the model with an older onnx and a lower opset"
        )
    found = _OPSET_TOO_NEW.search(message)
    if found:
        return (
            f"{path} needs opset {found[1]}, but onnxruntime {ort.__version__} supports {found[2]} up to opset "
            f"{found[3]}: {upgrade}, or re-export the model with opset {found[3]} or lower"
        )
    return None


def checked_timeout(seconds: Any) -> float | None:
    """``seconds`` as a model call's limit: None (no limit) or a number above 0 up to ``threading.TIMEOUT_MAX``
    (about 292 years, the longest wait Python's locks take), as a float; ``ValueError`` otherwise (0 or less, NaN,
    infinity, more, text, a bool)."""
    if seconds is None:
        return None
    real = isinstance(seconds, numbers.Real) and not isinstance(seconds, bool)
    if not real or not 0 < float(seconds) <= threading.TIMEOUT_MAX:
        raise ValueError(
            f"timeout takes None (no limit) or a positive number of seconds up to {threading.TIMEOUT_MAX:.0f}, "
            f"got {seconds!r}"
        )
    return float(seconds)


def run_stoppable(
    session: onnxruntime.InferenceSession,
    outputs: Sequence[str],
    feed: dict[str, np.ndarray],
    *,
    name: str,
    timeout: float | None = None,
    shrink: bool = False,
) -> list[np.ndarray]:
    """One session call for ``outputs`` that Ctrl-C and ``timeout`` (seconds; None: no limit; ``ValueError`` as
    :func:`checked_timeout` says) can stop; ``name`` names the file in the ``TimedOut`` message; ``shrink``:
    onnxruntime frees the memory its CPU arena holds beyond this call's once it ends (see ``model.ARENA_KEEP_VALUES``).

    A running onnxruntime call holds the main thread in C++, where Python's Ctrl-C handler never runs. So the
    call runs in a worker thread while the main thread waits, interruptibly; on Ctrl-C or the timeout,
    onnxruntime's ``RunOptions.terminate`` ends the call at its next node (a Loop's next iteration included).
    Raises ``KeyboardInterrupt`` (Ctrl-C), ``TimedOut``, or what ``session.run`` raised; any exception raised
    while the main thread waits (a program's own SIGTERM handler calling ``sys.exit``) stops the call first.
    """
    import onnxruntime as ort

    timeout = checked_timeout(timeout)  # 0, -1 and NaN timed out at once (trial 104)
    options = ort.RunOptions()
    options.log_severity_level = 4  # a terminated call is reported by the exception, not a log line
    if shrink:
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    if timeout is None and threading.current_thread() is not threading.main_thread():
        return session.run(list(outputs), feed, options)  # no signal reaches this thread and no limit is set
    done: list[list[np.ndarray]] = []
    failed: list[BaseException] = []
    ended = threading.Event()  # not Thread.join: an interrupted join can report a running thread as ended

    def call() -> None:
        try:
            done.append(session.run(list(outputs), feed, options))
        except BaseException as err:  # handed to the waiting thread, which raises it
            failed.append(err)
        finally:
            ended.set()

    started = False
    try:
        with interrupts_held():  # a Ctrl-C while the call is handed over comes once it runs, and stops it
            _start(call)
            started = True
        finished = ended.wait(timeout)
    except BaseException:  # Ctrl-C, or what a signal handler of the program raised (SystemExit on SIGTERM)
        if started:
            _stop(ended, options)
        raise
    if not finished:
        _stop(ended, options)
        raise TimedOut(
            f"{name}: a call of the model ran longer than the {timeout:g} s of its timeout (--timeout) and was stopped"
        )
    if failed:
        raise failed[0]
    return done[0]


def _stop(ended: threading.Event, options: Any) -> None:
    """Ask onnxruntime to end a running call, and wait (a while) for it to end: a process must not exit while
    onnxruntime still runs in another of its threads (the call, returning while the interpreter shuts down, aborts
    it: "terminate called without an active exception"). A second Ctrl-C does not cut the wait short; it is raised
    after it. A call that does not end is left to its thread, and the main thread's next call gets a new one."""
    options.terminate = True
    with interrupts_held():
        if not ended.wait(STOP_WAIT):
            _WORKER.clear()


_WORKER: list[queue.SimpleQueue] = []  # the jobs of the one thread that runs the main thread's calls, once started


# A child of fork() has none of its parent's threads: its main thread's first call starts a worker of its own
# (gunicorn --preload, multiprocessing's fork start method), where it would otherwise wait on the parent's forever.
def _after_fork_in_child() -> None:
    _WORKER.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _start(call: Callable[[], None]) -> None:
    """Run ``call`` in another thread: the main thread's calls in one lasting worker thread (starting a thread per
    call cost 0.05–0.2 ms, as much as a small model's call), other threads' (with a timeout) in a thread each."""
    if threading.current_thread() is not threading.main_thread():
        threading.Thread(target=call, name="aetool-model-call", daemon=True).start()
        return
    if not _WORKER:
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=_serve, args=(jobs,), name="aetool-model-calls", daemon=True).start()
        _WORKER.append(jobs)
    _WORKER[0].put(call)


def _serve(jobs: queue.SimpleQueue) -> None:
    """The worker thread: run each call handed to it (a call reports its own outcome and never raises)."""
    while True:
        jobs.get()()
