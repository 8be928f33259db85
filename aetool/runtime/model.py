"""One onnxruntime session per model file, checked against the ONNX contract and reused for every batch.

Like rembg's ``new_session``, :func:`load` keeps a registry of open models, so a server or a batch over thousands
of images pays for the session once and its memory stays flat. Unlike rembg, it says so when the execution
provider asked for (say CUDA) is not the one the session actually runs on.
"""

from __future__ import annotations

import collections
import hashlib
import numbers
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aetool.errors import ModelFileError, OutOfMemory, out_of_memory
from aetool.runtime import contract, tiles
from aetool.runtime.images import check_pixels, outside_unit_range
from aetool.runtime.metadata import noise_from_record, parse_metadata
from aetool.runtime.noise import NOISE_KINDS, Noise
from aetool.runtime.registry import resolve
from aetool.runtime.session import checked_timeout, open_session, ort_errors, ort_message, read_model, run_stoppable
from aetool.runtime.spec import (
    DTYPES,
    IMAGES_PER_CALL,
    PIXELS_PER_CALL,
    check_contract,
    check_output_types,
    contract_version,
    decoder_file,
    fixed_batch,
)

if TYPE_CHECKING:
    import onnxruntime

# onnxruntime's memory arena keeps the largest call's memory for the session's life: one 1024×1024 page through
# the bundled denoise took a process from 68 to 596 MB for good. A call of at most this many input values after a
# larger one asks onnxruntime to shrink its arena ("memory.enable_memory_arena_shrinkage") once it ends (596 → 68
# MB); shrinking after every call instead made 1024×1024 pages 1.39-1.53× slower (benchmarks/session_costs.py).
ARENA_KEEP_VALUES = 1 << 18
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


def pad_batch(images: np.ndarray, batch: int) -> np.ndarray:
    """``images`` (N×…) with black (zero) items appended up to the next multiple of ``batch``: how a file that fixes
    its batch takes a call of fewer images (the padded results are dropped)."""
    short = -len(images) % batch
    return np.concatenate([images, np.zeros((short, *images.shape[1:]), images.dtype)]) if short else images


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
        self._dtype = DTYPES[self.session.get_inputs()[0].type]
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


# A child of fork() has none of its parent's threads: a lock another thread held at the fork stays held in the
# child, where no thread would ever release it.
def _after_fork_in_child() -> None:
    global _OPENING
    _OPENING = threading.Lock()
    _OPENING_KEY.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


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
