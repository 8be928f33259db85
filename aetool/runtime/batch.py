"""Images through a model in batches: read, carry into the model's world, run same-shaped images together,
carry back, write. One bad file fails alone; memory stays flat because only one chunk is held at a time."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import BinaryIO, Protocol

import numpy as np

from aetool.errors import AetoolError, ImageError, os_reason
from aetool.runtime import images
from aetool.runtime.files import Job, atomic_write
from aetool.runtime.model import Model
from aetool.runtime.noise import add_noise

IMAGES_IN_FLIGHT = 64  # images read and held at once


class Step(Protocol):
    """What the pipeline does to images in the model's world (white on black, in [0, 1])."""

    def prepare(self, pixels: np.ndarray) -> tuple[np.ndarray, bool]:
        """The pixels shaped for :meth:`run`, and whether that meant resizing them."""

    def run(self, batch: np.ndarray) -> np.ndarray:
        """N×H×W in, N×H×W out."""


class Reconstruct:
    """Run an autoencoder: dense models get the image fitted to their size, conv models get it padded."""

    def __init__(self, model: Model):
        self.model = model

    def prepare(self, pixels: np.ndarray) -> tuple[np.ndarray, bool]:
        spec = self.model.input_spec
        if spec.size is not None:
            resized = pixels.shape != spec.size
            return (images.fit(pixels, spec.size) if resized else pixels), resized
        try:
            height, width = spec.padded(*pixels.shape)
        except ValueError as err:
            raise ImageError(str(err)) from None
        return images.pad_to(pixels, (height, width)), False

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.model.reconstruct(batch)


class Corrupt:
    """Add noise with the one noise function; one generator for the whole run, so a seed fixes every image."""

    def __init__(self, level: float, kind: str = "gaussian", seed: int | None = None):
        self.level, self.kind, self.rng = level, kind, np.random.default_rng(seed)

    def prepare(self, pixels: np.ndarray) -> tuple[np.ndarray, bool]:
        return pixels, False

    def run(self, batch: np.ndarray) -> np.ndarray:
        return add_noise(batch, self.level, self.kind, self.rng)


@dataclass
class Outcome:
    """What became of one input; ``record()`` is the JSON line scripts read."""

    path: str
    output: str | None = None  # "-" for standard output
    size: tuple[int, int] | None = None  # (width, height) of the written image
    input_size: tuple[int, int] | None = None  # (width, height) of the input image
    fitted_size: tuple[int, int] | None = None  # (width, height) the input was resized to, when it was
    ms: float = 0.0
    resized: bool = False
    inverted: bool = False
    error: str | None = None

    def record(self) -> dict:
        return asdict(self)


@dataclass
class _Ready:
    index: int
    job: Job
    pixels: np.ndarray  # model-space input as prepared
    shape: tuple[int, int]  # the size to crop the result back to
    input_shape: tuple[int, int]
    inverted: bool
    resized: bool
    seconds: float


@dataclass(frozen=True)
class ImageOptions:
    """The options every image command shares (``denoise``, ``reconstruct``, ``add-noise``).

    ``output``: a file for one input, else a folder, ``-`` for standard output, None beside each input; ``fmt``: the
    output image format; ``side_by_side``: write input | output; ``invert``: treat images as dark on light (None:
    decide per image from its border); ``force``: let an output overwrite an input; ``as_json``: a JSON record per
    image on standard output; ``recursive``: look in subfolders of input folders.
    """

    output: str | None = None
    fmt: str | None = None
    side_by_side: bool = False
    invert: bool | None = None
    force: bool = False
    as_json: bool = False
    recursive: bool = False


def process(
    jobs: Sequence[Job],
    step: Step,
    *,
    invert: bool | None = None,
    side_by_side: bool = False,
    stdout: BinaryIO | None = None,
    in_flight: int = IMAGES_IN_FLIGHT,
) -> Iterator[Outcome]:
    """Outcomes of ``jobs`` in order, ``in_flight`` images read and held at a time so memory stays flat.

    ``invert`` None decides per image from its border; True/False forces it. ``side_by_side`` writes input | output.
    Results without a target file go to ``stdout``. An image that cannot be read, run or written is an outcome with
    ``error`` set; the others are still done.
    """
    for start in range(0, len(jobs), in_flight):
        yield from _chunk(
            jobs[start : start + in_flight], step, invert=invert, side_by_side=side_by_side, stdout=stdout
        )


def _chunk(
    jobs: Sequence[Job], step: Step, *, invert: bool | None, side_by_side: bool, stdout: BinaryIO | None
) -> Iterator[Outcome]:
    outcomes: dict[int, Outcome] = {}
    ready: list[_Ready] = []
    for index, job in enumerate(jobs):
        started = time.perf_counter()
        try:
            pixels = images.read_gray(job.source)
            flip = images.is_dark_on_light(pixels) if invert is None else invert
            prepared, resized = step.prepare(1 - pixels if flip else pixels)
        except AetoolError as err:
            outcomes[index] = Outcome(job.label, error=str(err), ms=_ms(started))
            continue
        shape = prepared.shape if resized else pixels.shape
        ready.append(_Ready(index, job, prepared, shape, pixels.shape, flip, resized, time.perf_counter() - started))
    for group in _same_shape(ready):
        started = time.perf_counter()
        try:
            results = step.run(np.stack([item.pixels for item in group]))
        except AetoolError as err:
            outcomes.update((item.index, Outcome(item.job.label, error=str(err))) for item in group)
            continue
        share = (time.perf_counter() - started) / len(group)
        for item, result in zip(group, results, strict=True):
            outcomes[item.index] = _finish(item, result, share, side_by_side, stdout)
    yield from (outcomes[index] for index in sorted(outcomes))


def _same_shape(ready: Iterable[_Ready]) -> list[list[_Ready]]:
    groups: dict[tuple[int, ...], list[_Ready]] = {}
    for item in ready:
        groups.setdefault(item.pixels.shape, []).append(item)
    return list(groups.values())


def _finish(item: _Ready, result: np.ndarray, share: float, side_by_side: bool, stdout: BinaryIO | None) -> Outcome:
    """Crop, restore the polarity, encode and write one result."""
    started = time.perf_counter()
    height, width = item.shape
    pixels = result[:height, :width]
    if side_by_side:
        pixels = images.side_by_side(item.pixels[:height, :width], pixels)
    if item.inverted:
        pixels = 1 - pixels
    outcome = Outcome(
        item.job.label,
        resized=item.resized,
        inverted=item.inverted,
        size=(pixels.shape[1], pixels.shape[0]),
        input_size=item.input_shape[::-1],
        fitted_size=(width, height) if item.resized else None,
    )
    try:
        data = images.encode(pixels, item.job.fmt)
        if item.job.target is None:
            if stdout is None:
                raise ValueError("no standard output to write to")
            stdout.write(data)
            stdout.flush()
        else:
            atomic_write(item.job.target, data)
    except AetoolError as err:  # the file could not be written
        outcome.size, outcome.error = None, str(err)
    except (OSError, ValueError, KeyError) as err:  # the image could not be encoded, or standard output is gone
        reason = os_reason(err) if isinstance(err, OSError) else str(err)
        outcome.size, outcome.error = None, f"cannot write {item.job.target or 'standard output'}: {reason}"
    else:
        outcome.output = "-" if item.job.target is None else str(item.job.target)
    outcome.ms = round((item.seconds + share + time.perf_counter() - started) * 1000, 3)
    return outcome


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
