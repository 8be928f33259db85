"""What the image commands (``denoise``, ``reconstruct``, ``add-noise``, ``detect``, ``evaluate``) share: collecting
their inputs (files, folders, standard input), checking a model against ``--invert`` and ``--resize``, and saying
what was done to an image and which model made a record."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import typer

from aetool.cli.output import note
from aetool.errors import AetoolError

if TYPE_CHECKING:
    from aetool.runtime.batch import Outcome
    from aetool.runtime.detect import Detection
    from aetool.runtime.files import Failure, Input
    from aetool.runtime.model import Model
    from aetool.runtime.stream import ImageStream


def note_resize(model: Model, *, resize: bool) -> None:
    """Say that ``--resize`` does nothing for a model that takes images of any size (a conv model): the README's
    example ran the bundled conv ``denoise`` with it, and nothing told that no image was resized (trial 85)."""
    if resize and model.input_spec.size is None:
        note(f"--resize: {model.name} takes images of any size, so none is resized (--resize is for dense models)")


def check_invert(model: Model, *, invert: bool | None) -> None:
    """``--invert`` with a model that takes images as they are is a usage error (``AetoolError``)."""
    from aetool.runtime import contract

    if invert and model.input_spec.polarity == contract.AS_IS:
        raise AetoolError(
            f"--invert: model {model.name} takes images as they are (polarity {contract.AS_IS}), so it never "
            "inverts them; leave --invert out"
        )


def collected(
    inputs: list[str], *, recursive: bool, skip: str
) -> tuple[Iterable[Input], list[Failure], Callable[[], bool] | None]:
    """The inputs the arguments name (:func:`aetool.runtime.files.collect`), or standard input's images alone for
    ``-``, given as they arrive (:func:`aetool.runtime.files.standard_input`), and then a function that tells
    whether the next one is there (``ImageStream.ready``; None for the arguments' inputs); ``AetoolError`` when
    ``-`` is mixed with other inputs."""
    from aetool.runtime import files

    if files.STDIN not in inputs:
        return (*files.collect(inputs, recursive=recursive, skip=skip), None)
    if len(inputs) > 1:
        raise AetoolError("- (standard input) cannot be mixed with other inputs")
    images = _standard_input()
    return files.standard_input(images), [], images.ready


def _standard_input() -> ImageStream:
    """Standard input's images as they arrive, for the input ``-``. Raises ``AetoolError`` when the shell closed
    it (``<&-``), where Python has no stream to read, or when it is a terminal (the command waited for image bytes
    typed there, with no word)."""
    from aetool.runtime.stream import ImageStream

    if sys.stdin is None:
        raise AetoolError("- reads standard input, which is closed (<&-); give a file, or pipe the image in")
    stream = typer.get_binary_stream("stdin")
    if stream.isatty():
        raise AetoolError(
            "- reads image data from standard input, which is a terminal; give a file, or pipe the image in"
        )
    return ImageStream(stream)


def ran_by(model: Model) -> dict[str, str]:
    """What a ``--json`` record names of the model that made it: its name and the SHA-256 of its file's bytes."""
    return {"model": model.name, "model_sha256": model.sha256}


def on_digits(model: Model) -> bool:
    """Whether ``model`` was trained on an IDX dataset (MNIST or Fashion-MNIST: grey, 28×28)."""
    from aetool.runtime import contract
    from aetool.runtime.idx import IDX_DATASETS

    return model.metadata.get(contract.DATASET) in IDX_DATASETS


def like_digits(outcome: Outcome | Detection) -> bool:
    """Whether an image was, as read (before any ``--resize``), what a model of MNIST digits takes: grey (or
    converted from grey) and 28×28."""
    return outcome.input_size == (28, 28) and not (outcome.converted or "").startswith("RGB")


def changes_made(
    outcome: Outcome | Detection, channels: int | None, *, forced: bool = False, scored: bool = False
) -> list[tuple[str, str]]:
    """What was done to an image on its way through, as (what a summary counts, the line for this image): the way
    there and the output's way back for ``denoise``/``reconstruct``, the way to the score when ``scored``
    (``detect``). ``forced``: --invert was given, so an inversion is not the image's polarity but the option's."""
    from aetool.runtime.images import GREY_TO_RGB

    back = not scored  # an output image goes back to the input's polarity and size
    changes = [("with notes, in --json", text) for text in outcome.notes]
    if outcome.converted and channels:
        kind = "grey" if channels == 1 else "RGB"
        written = "grey (the luma of its RGB)" if outcome.converted == GREY_TO_RGB else kind
        changes.append(
            (
                f"converted {outcome.converted}",
                f"{outcome.converted} for the model, which takes {kind} images"
                + (f"; the output is {written}" if back else ""),
            )
        )
    and_back = " and back" if back else ""
    if outcome.inverted and forced:
        changes.append((f"inverted (--invert){and_back}", "inverted (--invert)" + " and the output back" * back))
    elif outcome.inverted:
        changes.append(
            (
                f"inverted (dark on light){and_back}",
                "dark on light: inverted to MNIST's white on black"
                + " and the output back" * back
                + " (--no-invert: not)",
            )
        )
    if outcome.input_size and outcome.fitted_size:
        (width, height), (fit_width, fit_height) = outcome.input_size, outcome.fitted_size
        changes.append(
            (
                f"resized to the model's size{and_back}",
                f"resized {width}×{height} (width×height) to the model's {fit_width}×{fit_height} and the "
                + ("result" if back else "anomaly map")
                + f" back to {width}×{height}",
            )
        )
    return changes
