"""Images through a model in batches: read, carry into the model's world (its channels, polarity and size), run
same-shaped images together, carry back, write. One bad file fails alone; memory stays flat because only one chunk
(at most ``IMAGES_IN_FLIGHT`` images and about ``VALUES_IN_FLIGHT`` pixel values) is held at a time."""

from __future__ import annotations

import collections
import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import numpy as np

from aetool.errors import (
    AetoolError,
    ImageError,
    ModelFileError,
    TimedOut,
    checked_switch,
    no_memory_line,
    os_reason,
)
from aetool.runtime import contract, images
from aetool.runtime.files import STDIN, Job, atomic_write
from aetool.runtime.metrics import mse, psnr
from aetool.runtime.model import Model, loaded, trained_noise
from aetool.runtime.noise import Noise, level_note
from aetool.runtime.signals import interrupts_deferred, interrupts_held

IMAGES_IN_FLIGHT = 64  # images read and held at once ...
VALUES_IN_FLIGHT = 1 << 25  # ... or fewer, once they hold this many pixel values (128 MB of float32)

T = TypeVar("T")
R = TypeVar("R")  # what a caller's run makes of a group


@dataclass(frozen=True)
class Prepared:
    """An image carried into a step's world: ``pixels`` (C×H×W float32) as the step runs them; ``region`` (height,
    width) at ``offset`` (top and left), the part of them that is the image (the rest is padding); ``restore``,
    which carries a result of that region back to the image's own size when preparing resized the image (``None``
    when it did not)."""

    pixels: np.ndarray
    region: tuple[int, int]
    restore: Callable[[np.ndarray], np.ndarray] | None = None
    offset: int = 0  # where the region starts, in rows and columns: the border added on top and left
    notes: tuple[str, ...] = ()  # what the step has to say of the image (noise.level_note)
    fitted: images.Fitted | None = None  # the MNIST-way fit that placed it, where one did (``images.fit``)


class Step(Protocol):
    """What the pipeline does to C×H×W images in [0, 1], and the world it does it in."""

    channels: int | None  # the channels images are converted to (None: each keeps its own)
    inverts: bool  # whether dark-on-light images are inverted for it and back (MNIST's white-on-black world)

    def prepare(self, pixels: np.ndarray) -> Prepared:
        """One image (C×H×W, converted and inverted already) carried to the step's size; raises ``ImageError``."""

    def run(self, batch: np.ndarray) -> np.ndarray:
        """N×C×H×W prepared images of one shape in, N×C×H×W out."""


class Reconstruct:
    """Run an autoencoder. Conv models take any size (padded to their multiple, cropped back; with black, or by
    mirroring for an as-is model: ``InputSpec.mirror_padding``). Dense models take their own size; another size is
    refused unless ``resize``: then the image is fitted to the model's size and the result resized back to the
    image's (the MNIST fit and its inverse for white-on-black models, a plain Lanczos resize both ways for as-is
    ones)."""

    def __init__(
        self, model: Model, *, resize: bool = False, border: bool = True, tiled: bool = True, noted: bool = True
    ) -> None:
        """``border``: a mirrored border around images of an as-is conv model (``InputSpec.border``), as the image
        commands add for the best output; ``detect`` does without, as calibration did. ``tiled``: pages of any size,
        since :meth:`run` reconstructs a large one in tiles; ``detect``, which scores a page in one call, takes
        pages up to ``MAX_CONV_PIXELS`` (``InputSpec.padded``). ``noted``: :meth:`prepare` says how an image's noise
        compares with the model's training noise (``noise.level_note``, an estimate over the whole image);
        ``evaluate``, which adds the noise itself, does without."""
        self.model, self.tiled = model, tiled
        self.resize = checked_switch(resize, name="resize")
        self.border = model.input_spec.border if border else 0
        self.channels: int | None = model.input_spec.channels
        self.inverts = model.input_spec.polarity == contract.POLARITY
        self.trained = trained_noise(model) if noted and model.input_spec.polarity == contract.AS_IS else Noise()

    def prepare(self, pixels: np.ndarray, *, like: images.Fitted | None = None) -> Prepared:
        """One C×H×W image (see :class:`Step`) padded to the model's multiple (plus the tiles' border), or at the
        model's fixed size: as it is, or fitted (MNIST-style) or resized to it with ``resize``; raises
        ``ImageError`` when it cannot be. ``like``: fit it as that fit placed another image of its size (a pair's
        target, so ``aetool evaluate`` scores an input and its target aligned: ``images.fit``)."""
        spec = self.model.input_spec
        height, width = pixels.shape[1:]
        said = level_note(pixels, self.trained)
        notes = (said,) if said else ()
        if spec.size is None:
            try:
                padded = spec.padded(height, width, border=self.border, tiled=self.tiled)
            except ValueError as err:
                raise ImageError(str(err)) from None
            fed = images.pad_to(pixels, padded, mirror=spec.mirror_padding, border=self.border)
            return Prepared(fed, (height, width), offset=self.border, notes=notes)
        if (height, width) == spec.size:
            return Prepared(pixels, spec.size, notes=notes)
        if not self.resize:
            raise ImageError(
                f"the model takes {spec.size[1]}×{spec.size[0]} images (width×height), this one is {width}×{height}; "
                "pass --resize to fit it to the model's size"
            )
        if spec.polarity == contract.POLARITY:
            fitted = images.fit(pixels, spec.size, like=like)
            return Prepared(fitted.pixels, spec.size, partial(images.unfit, fitted=fitted), fitted=fitted)
        restore = partial(images.resize, size=(height, width))
        return Prepared(images.resize(pixels, spec.size), spec.size, restore, notes=notes)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's reconstructions, N×C×H×W float32 in [0, 1] (the runtime's errors as ``Model.reconstruct``)."""
        return self.model.reconstruct(batch)


class Corrupt:
    """Add noise with the one noise function, to every channel of an image at its own size: ``noise``, a
    :class:`~aetool.runtime.noise.Noise` (``Noise.single(0.1)``; a range or mix draws its kind and level per image,
    as training does). With a ``seed``, each image's noise comes from a generator seeded by it and the image's
    own pixels (:func:`image_generator`), so an image gets the same noise in every run, alone or in any batch;
    without, fresh noise. For masking noise, dark-on-light images are inverted first, so that masked pixels take
    the page's background; Gaussian and salt-and-pepper noise are drawn alike either way (symmetric about the
    page's polarity), so a mix with masking inverts for all its kinds. Raises ``TypeError`` for a ``noise`` that is
    not a ``Noise``."""

    channels: int | None = None

    def __init__(self, noise: Noise, *, seed: int | None = None):
        if not isinstance(noise, Noise):
            raise TypeError(f"Corrupt takes a Noise (Noise.single(0.1), Noise.parse('0:0.5')), got {noise!r}")
        self.noise, self.seed, self.inverts = noise, seed, noise.masks
        self.rng = np.random.default_rng()  # fresh noise, for a run without a seed
        self.noised = 0  # images noise was added to

    def prepare(self, pixels: np.ndarray) -> Prepared:
        """The image as it is: noise takes any size."""
        return Prepared(pixels, (pixels.shape[1], pixels.shape[2]))

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The batch (N×C×H×W float32 in [0, 1]) with noise added: float32 in [0, 1]."""
        self.noised += len(batch) if self.noise.terms else 0  # --noise 0 draws none: no seed to say (trial 103)
        if self.seed is None:
            return self.noise.apply(batch, self.rng)
        return np.stack([self.noise.apply(image[None], image_generator(self.seed, image))[0] for image in batch])


def image_generator(seed: int, pixels: np.ndarray) -> np.random.Generator:
    """A generator seeded by ``seed`` (≥ 0) and a BLAKE2b digest of the C×H×W float32 ``pixels`` and their shape:
    the same image under the same seed draws the same numbers, whatever was drawn before it."""
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    digest = hashlib.blake2b(np.array(pixels.shape, np.int64).tobytes() + pixels.tobytes(), digest_size=16).digest()
    return np.random.default_rng([seed, *np.frombuffer(digest, np.uint32).tolist()])


@dataclass
class Outcome:
    """What became of one input; ``record()`` is the JSON line scripts read."""

    path: str
    output: str | None = None  # "-" for standard output
    size: tuple[int, int] | None = None  # (width, height) of the written image
    input_size: tuple[int, int] | None = None  # (width, height) of the input image
    fitted_size: tuple[int, int] | None = None  # (width, height) the model ran it at, when it was resized to fit
    ms: float = 0.0
    resized: bool = False
    inverted: bool = False
    converted: str | None = None  # how its channels were converted for the model, e.g. "grey → RGB (replicated)"
    notes: list[str] = field(default_factory=list)  # what reading did: EXIF orientation, ICC profile, alpha
    mse: float | None = None  # the step's output against its input, where the step ran (its size and polarity)
    psnr: float | None = None  # of that MSE in dB, peak 1; None when infinite (the output equals the input)
    error: str | None = None
    looks_like_writing: bool = False  # images.looks_like_writing of the input as read; not in the record

    def record(self) -> dict:
        """The JSON line: every field but ``looks_like_writing`` (a guess, for the command's notes only)."""
        record = asdict(self)
        del record["looks_like_writing"]
        return record


@dataclass(frozen=True)
class Ready:
    """An image read and carried into a step's world, waiting for its batch."""

    job: Job
    image: np.ndarray  # C×H×W at the input's size, in the step's channels and polarity
    prepared: Prepared
    notes: tuple[str, ...]
    converted: str | None
    inverted: bool
    seconds: float
    exif: bytes = b""  # the input's, for the output (images.Decoded.exif)
    looks_like_writing: bool = False  # images.looks_like_writing of the input as read


@dataclass(frozen=True)
class ImageOptions:
    """The options every image command shares (``denoise``, ``reconstruct``, ``add-noise``).

    ``output``: a file for one input, else a folder, ``-`` for standard output, None beside each input; ``fmt``: the
    output image format; ``side_by_side``: write input | output; ``invert``: treat images as dark on light (None:
    decide per image from its border); ``force``: let an output overwrite an input; ``as_json``: a JSON record per
    image on standard output; ``recursive``: look in subfolders of input folders; ``exif``: carry the input's EXIF
    into the output (False: none, for outputs that must not hold a camera's, a person's or a place's details).
    """

    output: str | None = None
    fmt: str | None = None
    side_by_side: bool = False
    invert: bool | None = None
    force: bool = False
    as_json: bool = False
    recursive: bool = False
    exif: bool = True


def process(
    jobs: Iterable[Job],
    step: Step,
    *,
    invert: bool | None = None,
    side_by_side: bool = False,
    stdout: BinaryIO | None = None,
    in_flight: int = IMAGES_IN_FLIGHT,
    stop: threading.Event | None = None,
    exif: bool = True,
    ready: Callable[[], bool] | None = None,
) -> Iterator[Outcome]:
    """Outcomes of ``jobs`` in order, a chunk of at most ``in_flight`` images read and held at a time.

    Each image is converted to the step's channels and, for a step that inverts, inverted when it is dark on light
    (``invert`` None decides per image from its border; True/False forces it). ``side_by_side`` writes input |
    output. Results without a target file go to ``stdout``. An image that cannot be read, prepared, run or written
    is an outcome with ``error`` set; the others are still done. Once ``stop`` is set (``signals.interrupts_deferred``:
    Ctrl-C while the caller reported an outcome), raises ``KeyboardInterrupt`` after the chunk's outcomes.
    ``exif``: outputs carry their input's EXIF (its Orientation left out: ``images.read_image``); False: none.
    ``ready``: for jobs that arrive over time (a pipe's images), whether the next one is there; a chunk is cut
    where it is not, so each image is done without waiting for later ones (:func:`chunks`). Raises ``TypeError``
    for an ``invert`` that is not True, False or None, before reading.
    """
    for chunk in read_chunks(jobs, step, invert=invert, in_flight=in_flight, stop=stop, ready=ready):
        yield from _run(chunk, step, side_by_side=side_by_side, stdout=stdout, stop=stop, exif=exif)


def checked_invert(invert: object, step: Step) -> bool | None:
    """``invert`` once checked for ``step``: True, False or None (``TypeError`` otherwise, as
    ``errors.checked_switch`` says), and not True for a step that never inverts, a model that takes images as they
    are or noise other than masking: ``ValueError`` (ignored without a word, where the commands refuse --invert;
    trial 86; detect_image and evaluate_folders still took it, trial 104)."""
    invert = checked_switch(invert, name="invert", unset=True)
    if invert and not step.inverts:
        what = (
            f"model {step.model.name} takes images as they are (polarity {contract.AS_IS})"
            if isinstance(step, Reconstruct)
            else "noise other than masking is drawn alike either way"
        )
        raise ValueError(f"invert=True: {what}, so it never inverts them; leave invert out")
    return invert


def read_chunks(
    jobs: Iterable[Job],
    step: Step,
    *,
    invert: bool | None = None,
    in_flight: int = IMAGES_IN_FLIGHT,
    stop: threading.Event | None = None,
    ready: Callable[[], bool] | None = None,
) -> Iterator[list[Ready | Outcome]]:
    """``jobs`` read and carried into the step's world (see :func:`process`), in chunks of at most ``in_flight``
    images and about ``VALUES_IN_FLIGHT`` pixel values, read only as the chunks are asked for; an image that cannot
    be read or prepared is an ``Outcome`` with its error. Asked for a chunk once ``stop`` is set, raises
    ``KeyboardInterrupt``: the caller has reported the chunks before. ``ready`` as :func:`process` takes it. Raises
    what :func:`checked_invert` raises, before reading."""
    invert = checked_invert(invert, step)
    read = (_read(job, step, invert) for job in jobs)
    for chunk in chunks(read, _values, count=in_flight, ready=ready):
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt
        yield chunk
    if stop is not None and stop.is_set():
        raise KeyboardInterrupt


def chunks(
    items: Iterable[T],
    values: Callable[[T], int],
    *,
    count: int = IMAGES_IN_FLIGHT,
    ready: Callable[[], bool] | None = None,
) -> Iterator[list[T]]:
    """Consecutive ``items`` in lists of at most ``count``, cut early once they hold ``VALUES_IN_FLIGHT`` pixel
    values (``values`` counts an item's), or where ``ready`` (when given) says the next item is not there yet;
    items are taken from ``items`` only as the lists are asked for."""
    chunk: list[T] = []
    held = 0
    for item in items:
        chunk.append(item)
        held += values(item)
        if len(chunk) >= count or held >= VALUES_IN_FLIGHT or (ready is not None and not ready()):
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk


def _values(item: Ready | Outcome) -> int:
    return item.image.size + item.prepared.pixels.size if isinstance(item, Ready) else 0


def _read(job: Job, step: Step, invert: bool | None) -> Ready | Outcome:
    """One image read and carried into the step's world, or the outcome that says why it could not be."""
    started = time.perf_counter()
    try:
        decoded = images.read_image(job.source)
        image, converted, flip = carry_in(decoded.pixels, step, invert=invert, stored_colour=decoded.stored_colour)
        colour_out = image.shape[0] == 3 and converted != images.GREY_TO_RGB  # a grey input's output is grey
        if job.target is not None and job.target.suffix.lower() == ".pgm" and colour_out:  # refused before it runs
            raise ImageError(
                f"cannot write {job.target}: a .pgm file holds grey images and this output is RGB; use .ppm or .png"
            )
        too_large = images.size_problem(job.fmt, width=image.shape[2], height=image.shape[1])
        if too_large:  # refused before the model runs; a side-by-side image twice as wide is refused as it is encoded
            raise ImageError(f"cannot write {job.target or 'standard output'}: {too_large}")
        prepared = step.prepare(image)
    except AetoolError as err:
        return Outcome(job.label, error=str(err), ms=_ms(started))
    except MemoryError as err:  # decoding a large image under a memory limit: it alone fails (it ended the batch)
        return Outcome(job.label, error=no_memory_line(err), ms=_ms(started))
    notes = decoded.notes + prepared.notes
    writing = isinstance(step, Reconstruct) and images.looks_like_writing(decoded.pixels)  # for its note only
    seconds = time.perf_counter() - started
    return Ready(job, image, prepared, notes, converted, flip, seconds, decoded.exif, looks_like_writing=writing)


def carry_in(
    pixels: np.ndarray, step: Step, *, invert: bool | None = None, stored_colour: bool = False
) -> tuple[np.ndarray, str | None, bool]:
    """C×H×W float32 ``pixels`` in [0, 1] in the step's channels and polarity: the image, how its channels were
    converted (``images.to_channels``; None: not), and whether it was inverted (for a step that inverts: when it
    is dark on light, judged by its border, or as ``invert`` says). ``stored_colour``: the file stores colour, so
    grey pixels of it go through a colour step as colour. Raises ``ValueError`` for pixels that are not that."""
    converted = None
    if step.channels != 1 and stored_colour and pixels.shape[0] == 1:
        # a colour file of grey pixels (a black or grey frame among colour ones) through a colour model or
        # add-noise: colour in, colour out; it came out grey, which broke a sequence of frames (trials 60, 61)
        pixels = np.repeat(pixels, 3, axis=0)
    elif step.channels is not None:
        pixels, converted = images.to_channels(pixels, step.channels)
    flip = step.inverts and (images.is_dark_on_light(pixels) if invert is None else invert)
    return (1 - pixels if flip else pixels), converted, flip


def cropped(result: np.ndarray, prepared: Prepared) -> np.ndarray:
    """The region of a step's C×H×W result that is the image (``Prepared.region``), its padding cut off."""
    (height, width), top = prepared.region, prepared.offset
    return result[:, top : top + height, top : top + width]


def carry_back(
    pixels: np.ndarray,
    prepared: Prepared,
    *,
    converted: str | None,
    inverted: bool,
    beside: np.ndarray | None = None,
) -> np.ndarray:
    """A result's region (:func:`cropped`) back in the image's world, as :func:`carry_in` reported it: resized back
    where preparing resized it, put to the right of ``beside`` (the input, for side by side), inverted back, and
    grey again for a grey image that a colour step took as RGB (the luma of its result)."""
    if prepared.restore is not None:
        pixels = prepared.restore(pixels)
    if beside is not None:
        pixels = images.side_by_side(beside, pixels)
    if inverted:
        pixels = 1 - pixels
    if converted == images.GREY_TO_RGB:
        pixels = images.to_channels(pixels, 1)[0]
    return pixels


def reconstruct_image(
    model: Model | str | Path, image: images.Decoded | np.ndarray, *, invert: bool | None = None, resize: bool = False
) -> np.ndarray:
    """One image as ``aetool reconstruct`` and ``denoise`` write it: what ``images.read_image`` decodes (a
    ``Decoded``, which also tells a colour file of grey pixels, as the commands take it), or its C×H×W float32
    pixels in [0, 1], grey or RGB, of any size a conv model takes, through ``model`` (a loaded :class:`Model`, a
    path or a bundled name): converted to its channels, inverted when dark on light for a white-on-black model
    (``invert``: True/False forces it), padded to its multiple with a mirrored border for an as-is conv model, run
    (in tiles when large), cropped, and carried back; a dense model's other sizes are fitted to it and back with
    ``resize``. Returns float32 in [0, 1] of the image's height and width: 1×H×W from a grey model (a colour image
    too: its colour is gone, as the commands write it); from a colour model 3×H×W, or 1×H×W for grey pixels
    (3×H×W for those of a ``Decoded`` colour file).

    Raises ``ImageError`` for an image the model cannot take (another size for a dense model without ``resize``,
    a page over its limit), ``TypeError`` for an image that is neither or an ``invert`` or ``resize`` that is not
    True or False (or None, for ``invert``), ``ValueError`` for pixels that are not
    C×H×W floats in [0, 1] of 1 or 3 channels and for ``invert=True`` with a model of images as they are (as the
    commands refuse ``--invert``), and what :meth:`Model.reconstruct` raises."""
    stored_colour = isinstance(image, images.Decoded) and image.stored_colour
    pixels = image.pixels if isinstance(image, images.Decoded) else image
    if not isinstance(pixels, np.ndarray):
        kind = type(pixels)
        raise TypeError(
            f"reconstruct_image takes images.read_image's result or its pixels (a numpy array), got "
            f"{kind.__module__}.{kind.__qualname__}"
        )
    if pixels.ndim != 3 or pixels.shape[0] not in (1, 3):
        last = pixels.ndim == 3 and pixels.shape[-1] in (1, 3)  # Pillow's and OpenCV's layout: H×W×C
        hint = "; channels last? pass pixels.transpose(2, 0, 1)" if last else ""
        raise ValueError(f"expected C×H×W pixels of 1 or 3 channels, got shape {pixels.shape}{hint}")
    images.check_pixels(pixels, name="pixels", scan=True)  # before inverting, which would turn the range over
    step = Reconstruct(loaded(model), resize=resize)
    invert = checked_invert(invert, step)
    carried, converted, inverted = carry_in(pixels, step, invert=invert, stored_colour=stored_colour)
    prepared = step.prepare(carried)
    result = cropped(step.run(prepared.pixels[None])[0], prepared)
    return carry_back(result, prepared, converted=converted, inverted=inverted)


def _batches(chunk: Sequence[Ready | Outcome]) -> list[list[tuple[int, Ready]]]:
    """The images of a chunk that run in one batch, each with its index in the chunk: those of one shape, except
    that images written to standard output (a stream of them) are batched with their neighbours only, so that
    they come out in their order."""
    groups: list[list[tuple[int, Ready]]] = []
    by_shape: dict[tuple[int, ...], list[tuple[int, Ready]]] = {}
    for index, item in enumerate(chunk):
        if not isinstance(item, Ready):
            continue
        shape = item.prepared.pixels.shape
        if item.job.target is None:
            last = groups[-1][-1][1] if groups else None
            if last is not None and last.job.target is None and last.prepared.pixels.shape == shape:
                groups[-1].append((index, item))
            else:
                groups.append([(index, item)])
        elif shape in by_shape:
            by_shape[shape].append((index, item))
        else:
            by_shape[shape] = [(index, item)]
            groups.append(by_shape[shape])
    return groups


def _run(
    chunk: list[Ready | Outcome],
    step: Step,
    *,
    side_by_side: bool,
    stdout: BinaryIO | None,
    stop: threading.Event | None = None,
    exif: bool = True,
) -> Iterator[Outcome]:
    """Run the images of a chunk, those of one shape in one batch; their outcomes in the chunk's order. When a batch
    runs past the model's timeout, or Ctrl-C comes, the outcomes already settled (images written, images that
    failed) come first, in the chunk's order, and then ``TimedOut`` or ``KeyboardInterrupt``: every file written
    has its outcome. Ctrl-C waits while one image is written and its outcome made. Once all are written, a stop
    signal while their outcomes are handed out sets ``stop`` (``signals.interrupts_deferred``), which
    :func:`read_chunks` raises on after them (it had dropped the rest of a chunk whose files were written: a
    trial's 128 files had 74 records)."""
    outcomes = {index: item for index, item in enumerate(chunk) if isinstance(item, Outcome)}

    def failed(group: list[tuple[int, Ready]], reason: str) -> None:
        outcomes.update((index, Outcome(item.job.label, error=reason)) for index, item in group)

    def run(group: list[tuple[int, Ready]]) -> np.ndarray:
        return step.run(_batch([item.prepared.pixels for _, item in group]))

    try:
        for group, results, share in run_groups(_batches(chunk), run, failed=failed):
            for (index, item), result in zip(group, results, strict=True):
                with interrupts_held():
                    try:
                        outcomes[index] = _finish(item, result, share, side_by_side, stdout, exif=exif)
                    except MemoryError as err:  # scoring or encoding it, before anything is written
                        outcomes[index] = Outcome(item.job.label, error=no_memory_line(err))
    except (TimedOut, KeyboardInterrupt):
        yield from (outcomes[index] for index in sorted(outcomes))
        raise
    settled = [outcomes[index] for index in range(len(chunk))]
    with interrupts_deferred(stop) if stop is not None else nullcontext():
        yield from settled


Member = tuple[int, Ready]  # an image of a group: its place in its chunk, and the image


def run_groups(
    groups: Iterable[list[Member]], run: Callable[[list[Member]], R], *, failed: Callable[[list[Member], str], None]
) -> Iterator[tuple[list[Member], R, float]]:
    """Each group of images (those that run in one batch) with what ``run`` makes of it and the seconds it took
    per image, in order. A group that runs out of memory (the model's ``OutOfMemory`` or numpy's ``MemoryError``)
    or whose model call fails (``ModelFileError``: values out of range or NaN in one image's reconstruction failed
    the images beside it) runs again one image at a time (three 1024×1024 pages failed together where each fits);
    an image alone that still fails, or a group whose run raises another ``AetoolError``, goes to ``failed`` with
    the one-line reason and is not yielded. ``TimedOut`` is raised, naming the group's images (it named only the
    model file, and which image of a batch ran too long was said nowhere; trial 89): a model past ``--timeout``
    would stop on every image alike."""
    pending = collections.deque(groups)
    while pending:
        group = pending.popleft()
        started = time.perf_counter()
        try:
            result = run(group)
        except TimedOut as err:
            label = group[0][1].job.label
            first = "standard input" if label == STDIN else label
            others = f" and {len(group) - 1} more image{'s' * (len(group) > 2)}" if len(group) > 1 else ""
            raise TimedOut(f"{err}, on {first}{others}") from None
        except (MemoryError, ModelFileError) as err:
            if len(group) > 1:
                pending.extendleft([member] for member in reversed(group))
                continue
            failed(group, str(err) if isinstance(err, AetoolError) else no_memory_line(err))
            continue
        except AetoolError as err:
            failed(group, str(err))
            continue
        yield group, result, (time.perf_counter() - started) / len(group)


def _batch(pixels: list[np.ndarray]) -> np.ndarray:
    """N×C×H×W of images of one shape: a view of a lone image (a large photo is not copied whole), else stacked."""
    return pixels[0][None] if len(pixels) == 1 else np.stack(pixels)


def write_all(stream: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` to ``stream`` and flush it. Standard output is an unbuffered raw file under
    ``PYTHONUNBUFFERED`` (``python -u``), whose ``write`` may take only part of the bytes (what a pipe has room
    for) and reports how many rather than raising; the rest is written in further calls, the next of which raises
    ``BrokenPipeError`` when the reader has gone. Raises ``OSError`` as the stream's ``write`` does."""
    view = memoryview(data)
    while view:
        written = stream.write(view)
        view = view[written or 0 :]  # None: a non-blocking stream took nothing this time
    stream.flush()


def _finish(
    item: Ready, result: np.ndarray, share: float, side_by_side: bool, stdout: BinaryIO | None, *, exif: bool
) -> Outcome:
    """Score, crop, resize back, restore the polarity and the grey of a grey input, encode and write one result
    (with the input's EXIF when ``exif``)."""
    started = time.perf_counter()
    (height, width), restore = item.prepared.region, item.prepared.restore
    region = cropped(result, item.prepared)
    error = mse(region, cropped(item.prepared.pixels, item.prepared))
    decibels = psnr(error)
    beside = item.image if side_by_side else None
    pixels = carry_back(region, item.prepared, converted=item.converted, inverted=item.inverted, beside=beside)
    outcome = Outcome(
        item.job.label,
        size=(pixels.shape[2], pixels.shape[1]),
        input_size=(item.image.shape[2], item.image.shape[1]),
        fitted_size=(width, height) if restore is not None else None,
        resized=restore is not None,
        inverted=item.inverted,
        converted=item.converted,
        notes=list(item.notes),
        mse=error,
        psnr=decibels if math.isfinite(decibels) else None,
        looks_like_writing=item.looks_like_writing,
    )
    try:
        data = images.encode(pixels, item.job.fmt, exif=item.exif if exif else b"")
        if item.job.target is None:
            if stdout is None:
                raise ValueError("no standard output to write to")
            write_all(stdout, data)
        else:
            atomic_write(item.job.target, data)
    except AetoolError as err:  # the file could not be written
        outcome.size, outcome.error = None, str(err)
    except BrokenPipeError:  # the reader of standard output is gone: the command stops (see the CLI's main)
        raise
    except (OSError, ValueError, KeyError) as err:  # the image could not be encoded, or standard output is closed
        reason = os_reason(err) if isinstance(err, OSError) else str(err)
        outcome.size, outcome.error = None, f"cannot write {item.job.target or 'standard output'}: {reason}"
    else:
        outcome.output = "-" if item.job.target is None else str(item.job.target)
    outcome.ms = round((item.seconds + share + time.perf_counter() - started) * 1000, 3)
    return outcome


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
