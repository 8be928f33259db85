"""``denoise``, ``reconstruct`` and ``add-noise``: one step run over images, each output written beside its input
or into ``-o``."""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import chain
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, NoReturn, TypeVar

import typer

from aetool.cli.app import app
from aetool.cli.inputs import changes_made, check_invert, collected, like_digits, note_resize, on_digits, ran_by
from aetool.cli.options import (
    Exif,
    Force,
    Format,
    Inputs,
    Invert,
    Json,
    ModelOption,
    NoiseKind,
    Output,
    Providers,
    Recursive,
    Resize,
    SideBySide,
    Threads,
    Timeout,
    alias,
    load_model,
)
from aetool.cli.output import emit, error, fail, note, reporting
from aetool.cli.progress import Tally, shows_bar, tracked
from aetool.errors import AetoolError

if TYPE_CHECKING:
    from aetool.runtime.batch import Corrupt, ImageOptions, Step
    from aetool.runtime.files import Failure, Job
    from aetool.runtime.model import Model
    from aetool.runtime.noise import Noise


S = TypeVar("S", bound="Step")  # an image step, as the command that made it knows it


def _model_command(name: str, *, default_model: str, suffix: str, summary: str, denoising: bool) -> None:
    """Register an image command that runs a model on images: ``denoise`` and ``reconstruct`` differ only in
    their default model, output suffix and help, and in whether a model trained on clean images is said to be one
    (``denoising``)."""

    def command(
        inputs: Inputs,
        output: Output = None,
        model: ModelOption = default_model,
        recursive: Recursive = False,
        fmt: Format = None,
        side_by_side: SideBySide = False,
        exif: Exif = True,
        invert: Invert = None,
        resize: Resize = False,
        force: Force = False,
        as_json: Json = False,
        provider: Providers = None,
        threads: Threads = None,
        timeout: Timeout = None,
    ) -> None:
        options = _image_options(
            output, fmt, side_by_side, invert, force, as_json=as_json, recursive=recursive, exif=exif
        )
        step = partial(
            _reconstruction,
            model,
            provider,
            threads,
            resize=resize,
            invert=invert,
            timeout=timeout,
            denoising=denoising,
        )
        _images(inputs, options, suffix=suffix, step=step)

    command.__doc__ = f"{summary} (writes NAME{suffix}.png)."
    app.command(name)(command)


_model_command(
    "denoise",
    default_model="denoise",
    suffix=".denoised",
    summary="Remove noise from images with a denoising autoencoder",
    denoising=True,
)


_model_command(
    "reconstruct",
    default_model="deep",
    suffix=".reconstructed",
    summary="Pass images through an autoencoder",
    denoising=False,
)


@app.command("add-noise")
def add_noise(
    inputs: Inputs,
    output: Output = None,
    noise: Annotated[
        str | None,
        typer.Option(
            metavar="LEVEL|RANGE|MIX",
            help="Noise level: Gaussian std, or the fraction of values hit (each channel of a colour image apart); "
            "or, as train's --noise takes it, a range drawn per image (0:0.5) or several kinds, one drawn per image "
            "(gaussian=0:0.5, salt-pepper=0.1). \\[default: 0.5]",
        ),
    ] = None,
    noise_kind: Annotated[
        NoiseKind | None,
        typer.Option(
            help="Noise kind: gaussian (added, clipped to 0–1), salt-pepper (values set to 0 or 1) or mask (values "
            "set to the background: 0, or 1 on a dark-on-light image); a colour image's channels are hit apart, "
            "so its hit pixels turn coloured. \\[default: gaussian]"
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Random seed, for the same noise every run (default: new noise each run, its seed said).",
            show_default=False,
        ),
    ] = None,
    recursive: Recursive = False,
    fmt: Format = None,
    side_by_side: SideBySide = False,
    exif: Exif = True,
    invert: Invert = None,
    force: Force = False,
    as_json: Json = False,
    level: Annotated[str | None, typer.Option("--level", hidden=True)] = None,  # round 1's name of --noise
    kind: Annotated[NoiseKind | None, typer.Option("--kind", hidden=True)] = None,  # round 1's name of --noise-kind
) -> None:
    """Corrupt images with the noise aetool trains and evaluates with (writes NAME.noisy.png)."""
    chosen = alias(noise, level, "--noise", "--level", default="0.5")
    chosen_kind = alias(noise_kind, kind, "--noise-kind", "--kind", default=NoiseKind.gaussian).value
    with reporting():
        from aetool.runtime.noise import Noise, scale_note

        try:  # a range or mix too, as train takes it: "0:0.5" was not a valid float (trial 102)
            corruption = Noise.parse(chosen, default_kind=chosen_kind)
        except ValueError as err:
            fail(f"--noise: {err}")
        if said := scale_note(corruption):
            note(f"warning: {said}")
        kinds = " and ".join(dict.fromkeys(term.kind for term in corruption.terms)) or chosen_kind
        if invert and not corruption.masks:
            raise AetoolError(
                f"--invert: only mask noise inverts (its masked pixels take the page's background); {kinds} "
                "noise is drawn alike either way, so leave --invert out"
            )
    options = _image_options(output, fmt, side_by_side, invert, force, as_json=as_json, recursive=recursive, exif=exif)
    then = _drawn_seed_said if seed is None else None
    _images(inputs, options, suffix=".noisy", step=lambda: _corruption(corruption, seed), after=then)


def _image_options(
    output: str | None,
    fmt: str | None,
    side_by_side: bool,
    invert: bool | None,
    force: bool,
    *,
    as_json: bool,
    recursive: bool,
    exif: bool,
) -> ImageOptions:
    """The image commands' shared options as one object (imported here: it needs numpy, ``--help`` does not)."""
    from aetool.runtime.batch import ImageOptions

    return ImageOptions(
        output=output,
        fmt=fmt,
        side_by_side=side_by_side,
        invert=invert,
        force=force,
        as_json=as_json,
        recursive=recursive,
        exif=exif,
    )


def _reconstruction(
    model: str,
    provider: list[str] | None,
    threads: int | None,
    *,
    resize: bool,
    invert: bool | None,
    timeout: float | None,
    denoising: bool = False,
) -> Step:
    """The model as a pipeline step; ``--invert`` with a model that takes images as they are is a usage error.
    ``denoising`` (``denoise``): a model whose file records that it was trained on clean images is said to be one."""
    from aetool.runtime import contract
    from aetool.runtime.batch import Reconstruct
    from aetool.runtime.model import trained_noise

    loaded = load_model(model, provider, threads, timeout)
    check_invert(loaded, invert=invert)
    note_resize(loaded, resize=resize)
    if denoising and contract.NOISE in loaded.metadata and not trained_noise(loaded):
        note(
            f"{loaded.name} was trained on clean images, not noisy ones: it reconstructs them, as aetool reconstruct "
            "does, and removes noise only by chance (the bundled denoise, or a model trained with --noise, does)"
        )
    return Reconstruct(loaded, resize=resize)


def _corruption(noise: Noise, seed: int | None) -> Corrupt:
    """The noise step, seeded by ``seed`` or, without one, by a seed drawn here (:func:`_drawn_seed_said`)."""
    from aetool.runtime.batch import Corrupt

    return Corrupt(noise, seed=secrets.randbelow(2**32) if seed is None else seed)


def _images(
    inputs: list[str],
    options: ImageOptions,
    *,
    suffix: str,
    step: Callable[[], S],
    after: Callable[[S], None] | None = None,
) -> NoReturn:
    """Plan the outputs (usage mistakes stop here, before any image is read), make the step, run every image, then
    hand the step to ``after`` (what a command says once its images are done)."""
    with reporting():
        jobs, failures, ready = _plan(inputs, options, suffix=suffix)
        made = step()
        code = _run(jobs, failures, made, options, ready=ready)
        if after is not None:
            after(made)
    raise typer.Exit(code)


def _drawn_seed_said(corrupt: Corrupt) -> None:
    """The seed fresh noise was drawn from, once noise was drawn with it, so that it can be drawn again (a usage
    mistake or inputs that all failed said a seed for noise never drawn)."""
    if corrupt.noised:
        note(f"noise seed {corrupt.seed} (--seed {corrupt.seed} draws this noise again)")


def _plan(
    inputs: list[str], options: ImageOptions, *, suffix: str
) -> tuple[Iterable[Job], list[Failure], Callable[[], bool] | None]:
    """Jobs (given as standard input's images arrive, for ``-``), failed inputs and, for ``-``, whether the next
    job is there (:func:`collected`); usage mistakes raise ``AetoolError`` before any image is read."""
    from aetool.runtime import files

    found, failures, ready = collected(inputs, recursive=options.recursive, skip=suffix)
    jobs, refused = files.plan(found, output=options.output, suffix=suffix, fmt=options.fmt, force=options.force)
    if options.output == files.STDIN or (options.output is None and files.STDIN in inputs):  # images to stdout
        if options.as_json:
            raise AetoolError("--json prints records to standard output; write the images to files with -o")
        stdout = _binary_stdout()
        if stdout is None:
            raise AetoolError("standard output is closed; write the images to files with -o")
        if stdout.isatty():
            raise AetoolError("refusing to write image data to a terminal; redirect standard output or use -o")
    return jobs, failures + refused, ready


def _binary_stdout() -> BinaryIO | None:
    """Standard output for image data, or None when the process started with it closed (``>&-``)."""
    return None if sys.stdout is None else typer.get_binary_stream("stdout")


def _run(
    jobs: Iterable[Job],
    failures: list[Failure],
    step: Step,
    options: ImageOptions,
    *,
    ready: Callable[[], bool] | None = None,
) -> int:
    """Process the jobs, report each failure, what was done to each image (a few: up to ``FEW``, the first ``FEW``
    of a stream whose length is not known yet) or how often (many), and a summary; the exit code. ``ready`` as
    :func:`aetool.runtime.batch.process` takes it."""
    import threading

    from aetool.runtime.batch import Corrupt, Outcome, Reconstruct, process
    from aetool.runtime.signals import interrupts_deferred

    started = time.perf_counter()
    tally = Tally(len(jobs) + len(failures) if isinstance(jobs, Sequence) else None)
    refused = [Outcome(failure.label, error=failure.error) for failure in failures]
    stop = threading.Event()  # Ctrl-C while an outcome is reported: the ones already settled are reported first
    outcomes = process(
        jobs,
        step,
        invert=options.invert,
        side_by_side=options.side_by_side,
        stdout=_binary_stdout(),
        stop=stop,
        exif=options.exif,
        ready=ready,
    )
    done = failed = 0
    not_digits = False  # an image that looks like neither digits nor writing went through (a photograph?)
    ran: dict[str, Any] = {}  # what every --json record adds: the model that ran
    seeded: dict[str, Any] = {}  # what add-noise's records add: the seed, null for an image that got no noise
    if isinstance(step, Reconstruct):
        ran = ran_by(step.model)
    elif isinstance(step, Corrupt):
        seeded = {"noise_seed": step.seed if step.noise.terms else None}  # --noise 0 draws none (trial 103)
    try:
        for outcome in chain(refused, tracked(outcomes, tally.total, shows_bar(tally.total, records=options.as_json))):
            with interrupts_deferred(stop):
                if options.as_json:
                    drawn = {key: value if outcome.mse is not None else None for key, value in seeded.items()}
                    emit(json.dumps({**outcome.record(), **ran, **drawn}))  # one set of keys (trial 102)
                if outcome.error:
                    failed += 1
                    error(f"{outcome.path}: {outcome.error}")
                    tally.settle(outcome.path)
                    continue
                done += 1
                # a scanned page is what the bundled denoise is for (trial 77)
                not_digits |= not (like_digits(outcome) or outcome.looks_like_writing)
                tally.settle(outcome.path, changes_made(outcome, step.channels, forced=options.invert is True))
    except KeyboardInterrupt:  # the outcomes settled before it are reported (and their files written) first
        raise tally.interrupted(f"{done} written") from None
    also = "; ".join(tally.counted())
    note(f"{done} done, {failed} failed in {time.perf_counter() - started:.2f} s" + (f" ({also})" if also else ""))
    if not_digits and isinstance(step, Reconstruct) and on_digits(step.model):
        note(_digits_model_on_photos(step.model))
    return 1 if failed else 0


def _digits_model_on_photos(model: Model) -> str:
    """The note for photographs through a model trained on grey 28×28 digits: the bundled blind ``denoise``'s
    measured loss on a photo (README, Your own images) for that model only."""
    from aetool.runtime import contract

    if model.name == "denoise":
        trained = "grey MNIST digits and pages of them, and makes photographs worse (a noisy grey photo at 20.4 dB "
        trained += "PSNR came out at 15.0 dB)"
    else:
        trained = f"grey 28×28 images ({model.metadata.get(contract.DATASET)}), not photographs"
    return (
        f"this model was trained on {trained}: if these images are photographs, train one on your own (aetool train "
        "dncnn --data photos/ for a denoiser, aetool train conv-unpool --data photos/ for an autoencoder; see the "
        "README, Your own images)"
    )
