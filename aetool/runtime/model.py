"""One onnxruntime session per model file, checked against the ONNX contract and reused for every batch.

Like rembg's ``new_session``, :func:`load` keeps a registry of open models, so a server or a batch over thousands
of images pays for the session once and its memory stays flat. Unlike rembg, it says so when the execution
provider asked for (say CUDA) is not the one the session actually runs on.
"""

from __future__ import annotations

import collections
import hashlib
import inspect
import math
import numbers
import os
import queue
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aetool.errors import AetoolError, ModelFileError, OutOfMemory, TimedOut, out_of_memory
from aetool.runtime import contract, tiles
from aetool.runtime.cpu import check_threads, has_vnni, usable_cores
from aetool.runtime.files import interrupts_held, is_utf8
from aetool.runtime.images import check_pixels, outside_unit_range
from aetool.runtime.metadata import (
    MAX_MULTIPLE_OF,
    check_input_spec,
    check_metadata,
    noise_from_record,
    parse_metadata,
)
from aetool.runtime.noise import NOISE_KINDS, Noise
from aetool.runtime.onnxfile import OnnxFacts, outside_folder, read_facts
from aetool.runtime.registry import resolve

if TYPE_CHECKING:
    import onnxruntime

CPU = "CPUExecutionProvider"
IMAGES_PER_CALL = 256  # images per session call: large enough to be fast, small enough to keep memory flat
PIXELS_PER_CALL = IMAGES_PER_CALL * 28 * 28  # values per call; larger images go fewer at a time
# Pixels per call for a model of any size (conv): its feature maps hold 16-64 values a pixel, so 256 digits in one
# call pass 3-13 MB tensors between the unpooling graphs' many elementwise nodes, beyond the CPU's 2 MB of L2 a
# core; 64 keep them nearer: 0.97-1.11× for those graphs and 1.05-1.12× for the blind denoiser at batch 256, level
# for conv-deconv (benchmarks/images_per_call.py, README: Speed and footprint), and a quarter of the activation
# memory. A 1000×1000 page still goes alone; one over 1024×1024 goes in tiles (tiles.TILE).
CONV_PIXELS_PER_CALL = 64 * 28 * 28
MAX_CONV_PIXELS = 4096 * 4096  # the largest page a conv model takes: 230–490 bytes of memory a pixel (README)
# Mirrored rows and columns added around an image of your own for a conv model (InputSpec.border). dncnn's output
# lost 6 dB in its outermost pixels without them (a photo of the trial that found it, README: Sizes).
MIRROR_BORDER = 8
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
# onnxruntime's memory arena keeps the largest call's memory for the session's life: one 1024×1024 page through
# the bundled denoise took a process from 68 to 596 MB for good. A call of at most this many input values after a
# larger one asks onnxruntime to shrink its arena ("memory.enable_memory_arena_shrinkage") once it ends (596 → 68
# MB); shrinking after every call instead made 1024×1024 pages 1.39-1.53× slower (benchmarks/session_costs.py).
ARENA_KEEP_VALUES = 1 << 18
STOP_WAIT = 10.0  # seconds to wait for a terminated session call to return before leaving it to its thread
# onnxruntime folds constant subgraphs when it opens a file: a 459-byte graph of ConstantOfShape makes it allocate
# gigabytes before any image is seen. aetool's exporter folds constants already, so nothing is lost.
DISABLED_OPTIMIZERS = ["ConstantFolding"]
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
# The PyPI package of onnxruntime that brings each execution provider (onnxruntime's install pages).
PROVIDER_PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "DmlExecutionProvider": "onnxruntime-directml",
    "QNNExecutionProvider": "onnxruntime-qnn",
}
# The open models by file, providers and threads, each with its file's status when it was opened (times, size,
# inode): a file replaced since (a detector calibrated again, even copied with its old time kept) is opened anew.
# A model stays open while a caller holds it, and the cache holds the last KEPT_MODELS loaded itself (a service
# that loads one by name for each request reuses it); it held every model ever loaded (40 files: 35 → 455 MB).
KEPT_MODELS = 8
_OPEN: weakref.WeakValueDictionary[tuple, Model] = weakref.WeakValueDictionary()
_KEPT: collections.deque[Model] = collections.deque(maxlen=KEPT_MODELS)
_OPENING = threading.Lock()  # guards _OPEN, _KEPT and _OPENING_KEY
# One lock per file and settings, held while that file opens: threads that load one file at once share one
# session, and a load of another file (opened already, or not) does not wait for it
_OPENING_KEY: dict[tuple, threading.Lock] = {}
_MULTIPLE = re.compile(r"(\d+)\*\w+")  # a symbolic side an exporter wrote as a multiple: "4*h"


class ProviderWarning(UserWarning):
    """The session runs on other execution providers than the ones asked for."""


@dataclass(frozen=True)
class InputSpec:
    """What images a model takes: a fixed size (dense models) or any size divisible by ``multiple_of`` (conv),
    with ``channels`` channels (1 grey, 3 sRGB) and a polarity (``white-on-black``: MNIST's world; ``as-is``);
    ``batch`` when the file fixes how many images one call takes."""

    size: tuple[int, int] | None  # (height, width) when fixed
    multiple_of: int = 1
    polarity: str = contract.POLARITY
    channels: int = 1
    batch: int | None = None  # images per session call when the file fixes it (e.g. 1), else None: any

    @property
    def border(self) -> int:
        """Rows and columns of mirrored image the image commands add on every side for an as-is model of any size
        (``MIRROR_BORDER``, rounded up to ``multiple_of``; 0 for the others): a conv net pads its own edges with
        zeros, which left a 1-pixel frame of noise around photos ``dncnn`` denoised."""
        if not self.mirror_padding or self.size is not None:
            return 0
        return -(-MIRROR_BORDER // self.multiple_of) * self.multiple_of

    @property
    def mirror_padding(self) -> bool:
        """Whether images are padded to ``multiple_of`` by mirroring (as-is models: photographs) rather than with
        black (white-on-black models, whose background black is); see ``images.pad_to``."""
        return self.polarity == contract.AS_IS

    @property
    def colour_space(self) -> str:
        """``gray`` for one channel, ``srgb`` for three."""
        return contract.COLOUR_SPACES[self.channels]

    def images_per_call(self, height: int, width: int, *, limit: int = IMAGES_PER_CALL) -> int:
        """How many images of height × width pixels one session call takes: the ``batch`` the file fixes, else at
        most ``limit``, and at most ``CONV_PIXELS_PER_CALL`` pixels for a model of any size (conv; 64
        digits) or ``PIXELS_PER_CALL`` values for one of a fixed size (dense; 256 digits); at least one, whatever
        ``limit`` says."""
        if self.batch:
            return self.batch
        if self.size is None:
            return max(1, min(limit, CONV_PIXELS_PER_CALL // max(1, height * width)))
        return max(1, min(limit, PIXELS_PER_CALL // max(1, self.channels * height * width)))

    def tiling(self, height: int, width: int) -> tuple[int, int] | None:
        """``(tile, margin)`` in pixels when :meth:`Model.reconstruct` runs images of height × width in tiles
        (:mod:`aetool.runtime.tiles`): through a model of any size (conv), more than ``tiles.TILE``² pixels; both
        rounded up to a multiple of ``multiple_of``. None when the image goes whole."""
        if self.size is not None or height * width <= tiles.TILE * tiles.TILE:
            return None
        tile, margin = (-(-size // self.multiple_of) * self.multiple_of for size in (tiles.TILE, tiles.MARGIN))
        return tile, margin

    def check(self, height: int, width: int) -> None:
        """Raise ``ValueError`` when an image of this size cannot go into the model as it is."""
        if height < 1 or width < 1:
            raise ValueError(f"expected images of at least 1×1 pixels, got {height}×{width}")
        if self.size is not None and (height, width) != self.size:
            raise ValueError(
                f"model takes {self.size[0]}×{self.size[1]} images, got {height}×{width} (height×width, as arrays are)"
            )
        if height % self.multiple_of or width % self.multiple_of:
            raise ValueError(
                f"model takes sizes divisible by {self.multiple_of}, got {height}×{width} (height×width, as arrays are)"
            )

    def padded(self, height: int, width: int, *, border: int = 0, tiled: bool = False) -> tuple[int, int]:
        """The size an image of any size is padded to for a model of any size (the next multiples of
        ``multiple_of``, after ``border`` rows and columns on every side); raises ``ValueError`` when that is over
        ``MAX_CONV_PIXELS``, the largest page whose activations fit in memory in one call (about 230 bytes a pixel
        for ``conv-unpool``, 490 for the bundled ``denoise``), and when a file that fixes its batch at B (each call
        padded to B images) would run B such pages over it, and for a size under 1×1 or a negative ``border`` (-5×3
        gave (-4, 4); trial 100). ``tiled``: no limit, for an image that :meth:`Model.reconstruct` runs in tiles."""
        if height < 1 or width < 1 or border < 0:
            raise ValueError(
                f"expected an image of at least 1×1 pixels and a border ≥ 0, got {height}×{width}, {border}"
            )
        rows, cols = height + 2 * border, width + 2 * border
        padded = contract.rounded_up((rows, cols), self.multiple_of)
        if tiled:
            return padded
        if padded[0] * padded[1] > MAX_CONV_PIXELS:
            raise ValueError(
                f"{width}×{height} (width×height) is over the {MAX_CONV_PIXELS:,}-pixel limit of a conv model for an image run in "
                "one call, as here (230 to 490 bytes of memory per pixel, by model; denoise, reconstruct and evaluate "
                "run larger images in tiles); scale it down first"
            )
        if self.batch and self.batch * padded[0] * padded[1] > MAX_CONV_PIXELS:
            raise ValueError(
                f"the model file fixes its batch at {self.batch} images a call, so this {width}×{height} (width×height) image "
                f"would run as {self.batch} ({self.batch * padded[0] * padded[1]:,} pixels), over the "
                f"{MAX_CONV_PIXELS:,}-pixel limit of a conv model; use a file exported without a fixed batch"
            )
        return padded


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


def pad_batch(images: np.ndarray, batch: int) -> np.ndarray:
    """``images`` (N×…) with black (zero) items appended up to the next multiple of ``batch``: how a file that fixes
    its batch takes a call of fewer images (the padded results are dropped)."""
    short = -len(images) % batch
    return np.concatenate([images, np.zeros((short, *images.shape[1:]), images.dtype)]) if short else images


def check_contract(session: onnxruntime.InferenceSession, path: Path, metadata: dict[str, Any]) -> InputSpec:
    """The model's InputSpec, once its inputs, outputs and metadata are shown to follow aetool's ONNX contract;
    raises ``ModelFileError`` naming what does not (a bad metadata field is named too)."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected = f"one input {contract.INPUT!r} of shape N×C×H×W (C 1 or 3), float32 or float16"
    if [i.name for i in inputs] == [contract.CODE] and path.name.endswith(".decoder.onnx"):
        model = path.with_name(path.name.removesuffix(".decoder.onnx") + ".onnx")
        raise ModelFileError(
            f"{path} is a decoder graph (code → reconstruction), which takes codes, not images: give its model file "
            f"{model} (in Python, Model.decode runs the decoder)"
        )
    if len(inputs) != 1 or inputs[0].name != contract.INPUT:
        got = ", ".join(f"{i.name!r} {i.shape}" for i in inputs) or "none"
        raise ModelFileError(f"{path} does not follow the aetool contract: expected {expected}, got inputs {got}")
    shape, dtype = inputs[0].shape, inputs[0].type
    if len(shape) != 4 or shape[1] not in (1, 3) or dtype not in _DTYPES:
        raise ModelFileError(
            f"{path} does not follow the aetool contract: expected {expected}, got {contract.INPUT!r} {shape} {dtype}"
        )
    if contract.RECONSTRUCTION not in {o.name for o in outputs}:
        raise ModelFileError(f"{path} does not follow the aetool contract: no output {contract.RECONSTRUCTION!r}")
    declared = next(o.shape for o in outputs if o.name == contract.RECONSTRUCTION)
    if declared and (len(declared) != 4 or (isinstance(declared[1], int) and declared[1] != shape[1])):
        raise ModelFileError(
            f"{path} does not follow the aetool contract: its {contract.RECONSTRUCTION!r} is {declared}, where aetool "
            f"reads N×C×H×W images of its input's {shape[1]} channel{'s' * (shape[1] != 1)}"
        )
    check_output_types(session, path)
    check_metadata(path, metadata)
    multiple_of, polarity = check_input_spec(path, metadata.get(contract.INPUT_SPEC), channels=shape[1])
    _check_colour(path, metadata, shape[1])
    height, width = shape[2], shape[3]
    if isinstance(height, int) != isinstance(width, int):
        raise ModelFileError(
            f"{path} fixes one side of its input only ({contract.INPUT!r} {shape}); aetool takes models of one fixed "
            "size or of any size"
        )
    if isinstance(height, int) and not (0 < height * width <= MAX_CONV_PIXELS):
        raise ModelFileError(
            f"{path} declares {width}×{height} (width×height) images, outside 1 to {MAX_CONV_PIXELS:,} pixels"
        )
    fixed = (height, width) if isinstance(height, int) and isinstance(width, int) else None
    spec = metadata.get(contract.INPUT_SPEC)
    if fixed is None and not (isinstance(spec, dict) and spec.get("multiple_of") is not None):
        multiple_of = declared_multiple(height, width)
    return InputSpec(fixed, multiple_of, polarity, shape[1], fixed_batch(session, path))


def declared_multiple(height: Any, width: Any) -> int:
    """The multiple a graph's symbolic input sides declare, for a file whose metadata records none: ``4*h`` and
    ``4*w`` (what torch.onnx.export writes for a net that halves its input twice, aetool's own exports included)
    give 4, sides of different multiples their least common multiple; any other dimension, or a multiple over
    ``metadata.MAX_MULTIPLE_OF`` (the most a recorded one may be), 1."""
    multiples = [int(found[1]) for side in (height, width) if (found := _MULTIPLE.fullmatch(str(side)))]
    multiple = math.lcm(*multiples) if multiples else 1
    return multiple if 1 <= multiple <= MAX_MULTIPLE_OF else 1


def check_output_types(session: onnxruntime.InferenceSession, path: Path) -> None:
    """Raise ``ModelFileError`` for an output of a model or decoder file that is not a float tensor (a string or
    integer output ended a batch in a traceback, trial 38)."""
    for output in session.get_outputs():
        if output.type not in _DTYPES and output.type != "tensor(double)":
            raise ModelFileError(
                f"{path} does not follow the aetool contract: its output {output.name!r} is {output.type}, where "
                "aetool reads float tensors"
            )


def fixed_batch(session: onnxruntime.InferenceSession, path: Path) -> int | None:
    """How many images (or codes) one call of the session takes when its file fixes the first dimension of its
    inputs or outputs (e.g. an export at batch 1), else None; ``ModelFileError`` when they fix different ones."""
    fixed = {
        arg.shape[0]
        for arg in (*session.get_inputs(), *session.get_outputs())
        if arg.shape and isinstance(arg.shape[0], int)
    }
    if len(fixed) > 1 or any(n < 1 or n > IMAGES_PER_CALL for n in fixed):
        raise ModelFileError(
            f"{path} fixes the batch of its inputs and outputs at {', '.join(map(str, sorted(fixed)))}; aetool takes "
            f"one fixed batch of 1 to {IMAGES_PER_CALL}, or any"
        )
    return fixed.pop() if fixed else None


def contract_version(path: Path, metadata: dict[str, Any]) -> int:
    """The contract version a file was written for: 1 when it names none; a ``ModelFileError`` for one that is not
    a version or is newer than this runtime reads."""
    version = metadata.get(contract.CONTRACT_VERSION)
    if version is None:
        return 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(
            f"{path}: metadata {contract.CONTRACT_VERSION!r} must be a version number, got {version!r}"
        )
    if version > contract.VERSION:
        raise ModelFileError(
            f"{path} was written for aetool contract version {version}; this aetool reads versions 1 to "
            f"{contract.VERSION}: upgrade aetool"
        )
    return version


def _check_colour(path: Path, metadata: dict[str, Any], channels: int) -> None:
    """Raise ``ModelFileError`` when the metadata's channels or colour space contradict the graph's input."""
    contract_version(path, metadata)
    declared = metadata.get(contract.CHANNELS)
    if declared is not None and declared != channels:
        raise ModelFileError(
            f"{path}: metadata {contract.CHANNELS!r} says {declared!r} but the input {contract.INPUT!r} has "
            f"{channels} channels"
        )
    space = metadata.get(contract.COLOUR_SPACE)
    if space is not None and space != contract.COLOUR_SPACES[channels]:
        raise ModelFileError(
            f"{path}: metadata {contract.COLOUR_SPACE!r} must be {contract.COLOUR_SPACES[channels]!r} for a "
            f"{channels}-channel input, got {space!r}"
        )


def decoder_file(path: Path, metadata: dict[str, Any]) -> Path:
    """The decoder graph of the model at ``path``: the file its metadata names, else the contract's default."""
    named = metadata.get(contract.DECODER)
    if named and (not isinstance(named, str) or Path(named).name != named or named in (".", "..")):
        raise ModelFileError(f"{path}: metadata {contract.DECODER!r} must name a file beside the model, got {named!r}")
    return path.with_name(named) if named else contract.decoder_path(path)


class Model:
    """An aetool model file ready to run: ``reconstruct``, ``encode``, ``decode``, its metadata and input spec.

    ``timeout`` (seconds, None: no limit) bounds each session call; a call that runs longer is stopped and raises
    ``TimedOut``. Ctrl-C stops a running call too (KeyboardInterrupt), even one that never checks for signals.
    ``providers`` and ``threads`` as :func:`load` takes them. ``sha256`` is the hex digest of the file's bytes as
    loaded (what the ``--json`` records name as ``model_sha256``).
    """

    def __init__(
        self,
        path: Path,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        *,
        timeout: float | None = None,
    ):
        self.path = path
        self._timeout: float | None = None
        self.timeout = timeout
        data = read_model(path)
        self.sha256 = hashlib.sha256(data).hexdigest()  # of the bytes loaded, for the records of what ran
        self.session = open_session(path, providers=providers, threads=threads, data=data)
        self.metadata = parse_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.input_spec = check_contract(self.session, path, self.metadata)
        self.name: str = self.metadata.get(contract.MODEL_NAME) or path.name.removesuffix(".onnx")
        if contract_version(path, self.metadata) == 1:  # round 1's names, some since given to other models
            self.name = contract.ROUND_1_NAMES.get(self.name, self.name)
        self._dtype = _DTYPES[self.session.get_inputs()[0].type]
        self._outputs = {o.name for o in self.session.get_outputs()}
        self._providers, self._threads = providers, threads
        self._decoder: onnxruntime.InferenceSession | None = None
        self._decoder_batch: int | None = None
        self._opened_as: tuple[int, ...] = ()  # its file's status when load opened it
        self._after_large: set[int] = set()  # the sessions (ids) whose last call was over ARENA_KEEP_VALUES

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}, providers={self.providers})"

    def __reduce__(self) -> tuple[Callable[..., Model], tuple]:
        """Pickled as its file's absolute path, settings, timeout and digest (a session cannot be pickled):
        unpickling loads that file (:func:`load`), so a model passes to a process pool of any start method;
        ``ModelFileError`` there when the file is gone or its bytes are no longer the ones pickled."""
        path = os.path.abspath(self.path)
        return _unpickled, (path, self._providers, self._threads, self.timeout, self.sha256)

    def __copy__(self) -> Model:
        """The model itself: it is a handle to one open session (as :func:`load` returns the same one)."""
        return self

    def __deepcopy__(self, memo: dict) -> Model:
        """The model itself, as :meth:`__copy__`: a deep copy holds the same session."""
        return self

    @property
    def timeout(self) -> float | None:
        """Seconds each session call may run before it is stopped with ``TimedOut``; None: no limit. Set it to None
        or a positive number up to ``threading.TIMEOUT_MAX`` (about 292 years, the longest wait Python's locks take;
        ``ValueError`` otherwise: 0 or less, NaN, infinity, more, text, a bool)."""
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float | None) -> None:
        self._timeout = checked_timeout(seconds)

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really runs on, best first."""
        return self.session.get_providers()

    @property
    def kind(self) -> str:
        """``dense``, ``conv`` or ``pca`` from the metadata; guessed from the input size for foreign files."""
        return self.metadata.get(contract.MODEL_KIND) or ("dense" if self.input_spec.size else "conv")

    @property
    def has_code(self) -> bool:
        """Whether the file exposes the latent code, so :meth:`encode` works."""
        return contract.CODE in self._outputs

    @property
    def decoder_path(self) -> Path:
        """Where the decoder graph is (or would be) beside the model file."""
        return decoder_file(self.path, self.metadata)

    @property
    def has_decoder(self) -> bool:
        """Whether a decoder graph sits beside the file, so :meth:`decode` works."""
        return self.decoder_path.is_file()

    def reconstruct(self, images: np.ndarray, *, chunk: int = IMAGES_PER_CALL) -> np.ndarray:
        """Run the autoencoder on N×C×H×W images in [0, 1] (N×H×W for grey models); the same shape back, float32.

        Images must be floats in [0, 1]: integer arrays (8-bit pixels, 0–255) are refused, not guessed at (divide
        them by 255), and so are values outside [0, 1] by more than ``images.PIXEL_TOLERANCE``, NaN and infinities
        (``ValueError``; see :meth:`as_batch`). No images (N = 0) give an empty array of their shape.
        ``ModelFileError`` when the model fails or returns another shape; ``TimedOut`` when a call runs past
        ``timeout``. ``chunk``: at most that many images a call (≥ 1; ``ValueError`` otherwise). Images of more than
        ``tiles.TILE``² pixels through a model of any size (conv) run in overlapping tiles, so that memory follows
        the tile, not the image (:mod:`aetool.runtime.tiles`; the same pixels as one call, up to float rounding).
        """
        batch = self.as_batch(images)
        images = np.asarray(images)
        if len(batch) == 0:
            return np.empty(images.shape, np.float32)

        def run(part: np.ndarray) -> np.ndarray:
            out = self._run(
                self.session, contract.RECONSTRUCTION, contract.INPUT, part, chunk, fixed=self.input_spec.batch
            )
            if out.shape != part.shape:
                hint = ""
                grown = out.shape[:2] == part.shape[:2] and all(
                    got >= given for got, given in zip(out.shape[2:], part.shape[2:], strict=True)
                )
                if grown and self.input_spec.multiple_of == 1 and self.input_spec.size is None:
                    hint = (
                        " (a model that halves its input n times takes sizes divisible by 2^n: record 2^n as its "
                        'metadata input_spec\'s "multiple_of" and aetool pads images to it; README, A model made '
                        "elsewhere)"
                    )
                raise ModelFileError(
                    f"{self.path.name} returned {contract.RECONSTRUCTION} of shape {out.shape} for "
                    f"images of shape {part.shape}; an aetool model returns them at their size{hint}"
                )
            return out

        tiling = self.input_spec.tiling(*batch.shape[-2:])
        if tiling is None:
            return run(batch).reshape(images.shape)
        out = tiles.run_tiled(run, batch, tile=tiling[0], margin=tiling[1])
        # a small edge tile shrank the arena while the large tiles' results were still held: the next call shrinks
        self._after_large.add(id(self.session))
        return out.reshape(images.shape)

    def encode(self, images: np.ndarray, *, chunk: int = IMAGES_PER_CALL) -> np.ndarray:
        """The latent codes, float32, one per image, of N×C×H×W images (N×H×W for grey models), which
        :meth:`reconstruct` checks alike: N×K for a dense model with a K-number code, N×C'×H'×W' for a conv one.

        No images (N = 0) give an empty array, 0×K, when the graph declares the code's shape (dense models), and
        ``ValueError`` when it does not (conv models: the code's size follows the images'). Raises
        ``ModelFileError`` for a file without a ``code`` output, ``ValueError`` for a page over ``MAX_CONV_PIXELS``
        (encoded in one call, unlike :meth:`reconstruct`'s tiles), and what :meth:`reconstruct` raises.
        """
        if not self.has_code:
            raise ModelFileError(f"{self.path} has no {contract.CODE!r} output, so it cannot encode")
        batch = self.as_batch(images, whole=True)
        return self._run(self.session, contract.CODE, contract.INPUT, batch, chunk, fixed=self.input_spec.batch)

    def decode(self, codes: np.ndarray, *, chunk: int = IMAGES_PER_CALL) -> np.ndarray:
        """Images from N latent codes, through the decoder graph beside the model file: N×C×H×W float32, C the
        model's channels (1 grey, 3 sRGB).

        ``codes`` are what :meth:`encode` returns: numbers (integers are taken as floats) in the shape the
        decoder's input declares, N×K for a dense model with a K-number code (a dimension the graph leaves symbolic
        takes any size), finite once float32; ``ValueError`` otherwise, naming the shape expected. No codes (N = 0)
        give an empty array, 0×C×H×W, when the decoder declares its output's size, else ``ValueError``.
        Raises ``ModelFileError`` when there is no decoder graph, when it is not the decoder this model was exported
        with (the model records its SHA-256, so a model and a decoder of two exports never run together), and when
        it fails or returns non-finite values; ``TimedOut`` when a call runs past ``timeout``.
        """
        if self._decoder is None:
            if not self.has_decoder and self.metadata.get(contract.DECODER):
                raise ModelFileError(
                    f"{self.path} has no decoder graph beside it: its metadata names {self.decoder_path.name}, which "
                    f"is not in {self.decoder_path.parent}; copy it there from the model's export"
                )
            if not self.has_decoder:
                raise ModelFileError(
                    f"{self.path} has no decoder graph beside it (expected {self.decoder_path}); the unpooling models, "
                    "dncnn and the blind denoise are exported without one, since their output needs more than the code"
                )
            digest = self.metadata.get(contract.DECODER_SHA256) or None
            decoder = open_session(self.decoder_path, providers=self._providers, threads=self._threads, sha256=digest)
            names = [i.name for i in decoder.get_inputs()]
            if names != [contract.CODE]:
                raise ModelFileError(f"decoder {self.decoder_path} must take one input {contract.CODE!r}, has {names}")
            check_output_types(decoder, self.decoder_path)
            self._decoder_batch = fixed_batch(decoder, self.decoder_path)
            self._decoder = decoder
        codes = self._codes(codes, self._decoder.get_inputs()[0].shape)
        return self._run(self._decoder, contract.RECONSTRUCTION, contract.CODE, codes, chunk, fixed=self._decoder_batch)

    def outputs(
        self, images: np.ndarray, names: Sequence[str], *, chunk: int = IMAGES_PER_CALL
    ) -> dict[str, np.ndarray]:
        """Several outputs of the graph for N×C×H×W images (checked as :meth:`reconstruct` checks them), one session
        call per chunk: a detector's reconstructions, scores and maps together. Each output is float32 with one
        result per image (no images: empty arrays where the graph declares the outputs' shapes, else
        ``ValueError``); ``ModelFileError`` for an output the file lacks, ``ValueError`` for a page over
        ``MAX_CONV_PIXELS`` (run in one call), ``TypeError`` for ``names`` that are not a sequence of strings (one
        string was read letter by letter, as outputs the file lacks; trial 88), and what :meth:`reconstruct` raises."""
        if isinstance(names, str) or not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"outputs takes a list of output names, e.g. ['reconstruction'], got {names!r}")
        missing = [name for name in names if name not in self._outputs]
        if missing:
            raise ModelFileError(f"{self.path.name} has no output {', '.join(map(repr, missing))}")
        batch = self.as_batch(images, whole=True)
        values = self._run_outputs(self.session, names, contract.INPUT, batch, chunk, fixed=self.input_spec.batch)
        return dict(zip(names, values, strict=True))

    def as_batch(self, images: np.ndarray, *, whole: bool = False) -> np.ndarray:
        """``images`` as the model's N×C×H×W batch, N×H×W grey images given their channel axis (no copy), once
        checked: floats in [0, 1] (integer arrays refused: divide 8-bit pixels by 255; NaN, infinities and values
        outside [0, 1] by more than ``images.PIXEL_TOLERANCE`` refused), C the model's channels and H×W a size it takes;
        ``whole``: images that go into a conv model in one call, so none over ``MAX_CONV_PIXELS`` (see
        :meth:`InputSpec.padded`). Raises ``ValueError`` for images it refuses, ``TypeError`` for what holds no
        numbers (None, text, bytes). What :meth:`reconstruct` and the detector's ``run`` check."""
        if isinstance(images, list | tuple) and len({np.shape(image) for image in images}) > 1:
            raise ValueError("expected images of one size, got several; pass each size as a batch of its own")
        given = type(images)
        if not isinstance(images, bytes | bytearray | memoryview | str):  # a file's bytes or name: not pixels
            images = np.asarray(images)
        if not isinstance(images, np.ndarray) or images.dtype.kind not in "biufc":  # None, objects: no numbers
            raise TypeError(
                f"expected a numpy array of float pixels, got {given.__module__}.{given.__qualname__}"
                + (f" of {images.dtype} values" if given is np.ndarray else "")
                + "; images.read_image decodes a file or its bytes"
            )
        channels = self.input_spec.channels
        if not (images.ndim == 4 and images.shape[1] == channels) and not (images.ndim == 3 and channels == 1):
            wanted = "N×H×W or N×1×H×W" if channels == 1 else f"N×{channels}×H×W"
            last = images.ndim == 4 and images.shape[-1] == channels  # Pillow's and OpenCV's layout: N×H×W×C
            hint = "; channels last? pass images.transpose(0, 3, 1, 2)" if last else ""
            raise ValueError(f"expected {wanted} images, got shape {images.shape}{hint}")
        check_pixels(images, scan=True)
        self.input_spec.check(*images.shape[-2:])
        if whole and self.input_spec.size is None:
            self.input_spec.padded(*images.shape[-2:])
        return images.reshape(len(images), channels, *images.shape[-2:])

    @staticmethod
    def _codes(codes: np.ndarray, declared: Sequence[int | str | None]) -> np.ndarray:
        """``codes`` as float32, once checked against the ``declared`` shape of the decoder's input (its symbolic
        dimensions take any size); ``ValueError`` for codes that are not numbers, of another shape, or not finite
        (NaN, infinities, values beyond float32's ±3.4e38)."""
        codes = np.asarray(codes)
        if codes.dtype.kind not in "iuf":
            raise ValueError(f"expected codes of numbers (float32, as encode returns them), got {codes.dtype} values")
        sizes = declared[1:]
        if declared and (
            codes.ndim != len(declared)
            or any(isinstance(size, int) and size != got for size, got in zip(sizes, codes.shape[1:], strict=True))
        ):
            wanted = "×".join(["N", *(str(size) if isinstance(size, int) else "?" for size in sizes)])
            free = "; ? takes any size" if "?" in wanted else ""
            raise ValueError(
                f"expected codes of shape {wanted} (float), got shape {codes.shape}: the decoder takes codes as "
                f"encode returns them{free}"
            )
        with np.errstate(over="ignore"):
            codes = codes.astype(np.float32, copy=False)
        if not np.isfinite(codes).all():
            raise ValueError("expected finite codes, got NaN or infinite values (or values beyond float32's ±3.4e38)")
        return codes

    def _run(
        self,
        session: onnxruntime.InferenceSession,
        output: str,
        feed: str,
        batch: np.ndarray,
        chunk: int,
        *,
        fixed: int | None,
    ) -> np.ndarray:
        """``output`` for ``batch`` (see :meth:`_run_outputs`)."""
        return self._run_outputs(session, [output], feed, batch, chunk, fixed=fixed)[0]

    def _run_outputs(
        self,
        session: onnxruntime.InferenceSession,
        outputs: Sequence[str],
        feed: str,
        batch: np.ndarray,
        chunk: int,
        *,
        fixed: int | None,
    ) -> list[np.ndarray]:
        """``outputs`` for ``batch`` in calls of at most ``chunk`` items (fewer for large images, and images through a
        conv model 64 digits' worth at a time: :meth:`InputSpec.images_per_call`), or of exactly the ``fixed`` batch a
        file declares (the last call padded with zeros, their results dropped); each checked to
        hold one finite result per item. An empty batch gives empty results of the shapes the graph declares
        (:meth:`_declared`)."""
        if isinstance(chunk, bool) or not isinstance(chunk, numbers.Integral) or chunk < 1:
            raise ValueError(f"chunk takes a positive whole number of images a call, got {chunk!r}")
        if len(batch) == 0:
            return [np.empty((0, *self._declared(session, output)), np.float32) for output in outputs]
        batch = batch.astype(self._dtype if feed == contract.INPUT else np.float32, copy=False)
        if feed == contract.INPUT:
            chunk = self.input_spec.images_per_call(*batch.shape[-2:], limit=chunk)
        else:
            chunk = fixed or max(1, min(chunk, PIXELS_PER_CALL // max(1, int(np.prod(batch.shape[1:])))))
        calls = []
        try:
            for start in range(0, len(batch), chunk):
                part = batch[start : start + chunk]
                count = len(part)
                if fixed:
                    part = pad_batch(part, fixed)
                large = part.size > ARENA_KEEP_VALUES
                shrink = not large and id(session) in self._after_large
                (self._after_large.add if large else self._after_large.discard)(id(session))
                calls.append([value[:count] for value in self._call(session, outputs, {feed: part}, shrink=shrink)])
        except ort_errors() as err:
            if out_of_memory(err):
                fewer = "pass fewer or smaller images at a time" if len(batch) > 1 else "use fewer --threads"
                raise OutOfMemory(
                    f"{self.path.name}: not enough memory for a batch of shape {batch.shape} ({ort_message(err)}); "
                    f"raise the memory limit, or {fewer}"
                ) from None
            raise ModelFileError(
                f"{self.path.name} failed on a batch of shape {batch.shape}: {ort_message(err)}"
            ) from None
        results = []
        for index, output in enumerate(outputs):
            parts = [call[index] for call in calls]
            if sum(len(part) for part in parts) != len(batch) or len({part.shape[1:] for part in parts}) > 1:
                raise ModelFileError(
                    f"{self.path.name} returned {output} of shape {parts[0].shape} for a batch of "
                    f"{len(batch)}; an aetool model returns one per image"
                )
            joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
            if not np.isfinite(joined).all():
                raise ModelFileError(
                    f"{self.path.name} returned NaN or infinite {output} values; the model file is broken"
                )
            # a reconstruction is images in [0, 1], as they are read; clipping it would hide a scale
            if output == contract.RECONSTRUCTION and (outside := outside_unit_range(joined)) is not None:
                raise ModelFileError(
                    f"{self.path.name} returned {output} values from {outside[0]:.6g} to {outside[1]:.6g}, outside "
                    "[0, 1]: an aetool model reconstructs pixels in [0, 1] (end its graph in a Sigmoid or a Clip; a "
                    "model of 0-255 pixels divides its output by 255)"
                )
            results.append(joined.astype(np.float32, copy=False))
        return results

    def _declared(self, session: onnxruntime.InferenceSession, output: str) -> tuple[int, ...]:
        """The shape of one item of ``output`` as the graph declares it; ``ValueError`` when a dimension is left
        symbolic, since an empty batch has no result to learn it from."""
        shape = next(arg.shape for arg in session.get_outputs() if arg.name == output)
        if not shape or not all(isinstance(size, int) for size in shape[1:]):
            name = self.decoder_path.name if session is self._decoder else self.path.name
            raise ValueError(
                f"empty batch: {name} declares no fixed shape for its {output!r} output ({shape}), so no result "
                "of 0 items has a known shape; pass at least one"
            )
        return tuple(shape[1:])

    def _call(
        self,
        session: onnxruntime.InferenceSession,
        outputs: Sequence[str],
        feed: dict[str, np.ndarray],
        *,
        shrink: bool = False,
    ) -> list[np.ndarray]:
        """One session call for ``outputs`` that Ctrl-C and the model's ``timeout`` can stop (:func:`run_stoppable`)."""
        return run_stoppable(session, outputs, feed, timeout=self.timeout, name=self.path.name, shrink=shrink)


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
    onnxruntime frees the memory its CPU arena holds beyond this call's once it ends (see ``ARENA_KEEP_VALUES``).

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
    global _OPENING
    _WORKER.clear()
    _OPENING = threading.Lock()  # a lock another thread held at the fork stays held in the child
    _OPENING_KEY.clear()


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


def load(model: str | Path, *, providers: str | Sequence[str] | None = None, threads: int | None = None) -> Model:
    """The model at a path or bundled under a name; opened once and then reused: every ``load`` of one file with
    the same ``providers`` and ``threads`` returns the same :class:`Model` while it is open, so its ``timeout``
    (which bounds each call) holds for all of them. A model stays open while anything holds it; the last
    ``KEPT_MODELS`` loaded stay open anyway, and others are let go with the last reference to them. A file replaced
    since it was opened (another modification or status-change time, size or inode) is opened anew, and the old
    session is let go once nothing else holds it. ``providers``: onnxruntime's execution providers, one name
    (``"cuda"``) or several, best
    first, short or full (``CUDAExecutionProvider``); default CPU; one that is asked for but not available is
    dropped with a ``ProviderWarning``. ``threads``: onnxruntime's intra-op threads, 1 to 4 per core this process
    may use (default: those cores).

    Raises ``ModelFileError`` for a missing or broken file; ``TypeError`` for a ``model`` that is not a name or
    path; ``ValueError`` for ``threads`` that are not a whole number of at least 1;
    ``AetoolError`` for more than 4 threads per usable core (its message names the CLI's ``--threads``) and for an
    unknown provider; ``TypeError`` for a provider that is not a string.
    """
    return _load(model, providers=providers, threads=threads)[0]


def _load(model: str | Path, *, providers: str | Sequence[str] | None, threads: int | None) -> tuple[Model, bool]:
    """:func:`load`'s model, and whether this call opened it (rather than finding it open)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1):
        raise ValueError(f"threads must be a whole number, at least 1, got {threads!r}")
    if isinstance(providers, str):
        providers = [providers]
    if isinstance(providers, np.ndarray):  # np.array(["cpu"]) was taken before trial 88's check
        providers = providers.tolist()
    if providers is not None and not isinstance(providers, Sequence):  # 1 was "'int' object is not iterable"
        raise TypeError(f"execution providers are named by strings (e.g. 'cuda'), got {providers!r}")
    path = resolve(model)
    stat = path.stat()
    key = (str(path.resolve()), tuple(providers or ()), threads)
    version = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
    with _OPENING:
        opening = _OPENING_KEY.setdefault(key, threading.Lock())
    with opening:
        with _OPENING:
            found = _OPEN.get(key)
        opened = found
        if opened is None or opened._opened_as != version:
            opened = Model(path, providers, threads)  # the other files' loads go on meanwhile
            opened._opened_as = version
        with _OPENING:
            _OPEN[key] = opened
            if found is not None and found in _KEPT:
                _KEPT.remove(found)  # kept again below as the latest, or let go as replaced
            _KEPT.append(opened)
    return opened, opened is not found


def _unpickled(
    path: str, providers: Sequence[str] | None, threads: int | None, timeout: float | None, sha256: str
) -> Model:
    """A pickled model in this process: the file at ``path`` as :func:`load` opens it, given the pickled
    ``timeout`` when this opened it (a model open here already keeps its own); ``ModelFileError`` when its bytes
    are not those the pickled model ran (``sha256``)."""
    model, opened = _load(path, providers=providers, threads=threads)
    if model.sha256 != sha256:
        raise ModelFileError(f"{path} is not the file the pickled model was loaded from (its SHA-256 differs)")
    if opened:
        model.timeout = timeout
    return model


def trained_noise(model: Model) -> Noise:
    """The noise the model was trained with, from its metadata: one level of one kind, or a range or mix (the
    ``mix`` text of runtime.noise.Noise); none when the file records none. Raises ``ModelFileError`` for a record
    of another shape."""
    recorded = model.metadata.get(contract.NOISE) or {}
    problem = ModelFileError(
        f'{model.path.name}: metadata {contract.NOISE!r} must be {{"level": a number ≥ 0, "kind": one of '
        f'{", ".join(NOISE_KINDS)}}} or {{"mix": noise text}}, got {str(recorded)[:80]!r}'
    )
    try:
        return noise_from_record(recorded)
    except ValueError:
        raise problem from None


def loaded(model: Model | str | Path) -> Model:
    """``model`` itself when loaded already, else :func:`load` of it (a path or bundled name) with the defaults."""
    return model if isinstance(model, Model) else load(model)
