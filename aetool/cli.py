"""The ``aetool`` command line: thin commands that parse options, call library functions and print.

Commands import what they need inside their bodies, so ``aetool --help``, ``--version`` and shell completion load
only Typer; torch is imported only by the commands that need it (train, export, report, bench --compare-torch).
Library functions return dataclasses; the rendering of tables and lines for people is here. Exit codes: 0
success, 1 some inputs failed, 2 usage or setup error, 3 a run that did not learn, 124 a model call past --timeout,
130 interrupted, 141 a closed pipe. Messages go to stderr, data to stdout.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import glob
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from enum import Enum
from functools import partial
from itertools import chain
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, NoReturn, TypeVar

import typer

from aetool import __version__
from aetool.console import stderr_console
from aetool.errors import (
    AetoolError,
    ContractError,
    DataError,
    Interrupted,
    NotLearned,
    caused_by_interrupt,
    first_line,
    os_reason,
    out_of_memory,
)
from aetool.names import MODELS, REPORT_MODELS

if TYPE_CHECKING:
    from aetool.bench import BenchSummary
    from aetool.runtime.batch import Corrupt, ImageOptions, Outcome, Step
    from aetool.runtime.detect import Detection, Detector
    from aetool.runtime.evaluate import Evaluation
    from aetool.runtime.files import Failure, Input, Job
    from aetool.runtime.model import Model
    from aetool.runtime.stream import ImageStream

EXIT_CODES = (
    "Exit codes: 0 success, 1 some inputs failed, 2 usage or setup error (a bad option, path or model file), 3 a "
    "training run that did not beat a trivial output, 124 a model call ran past --timeout, 130 interrupted (Ctrl-C), "
    "141 standard output's reader went away (| head), 143 SIGTERM, 129 SIGHUP."
)
NARROW = 80  # columns under which --help is laid out as plain text: rich's tables cut option names there
app = typer.Typer(
    name="aetool",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES,
    rich_markup_mode="rich" if shutil.get_terminal_size().columns >= NARROW else None,
)

T = TypeVar("T")
S = TypeVar("S", bound="Step")  # an image step, as the command that made it knows it
FEW = 4  # up to this many inputs: a note per image and no progress bar
LOW_SCORE = "unusually low"
BUSY_LOAD = 0.5  # a load average before timing from which bench says other work makes its times unreliable
BLANK_FRAMES = (
    "normal by the threshold, but an image unlike the normal ones can score low too, as a blank, flat or blurred "
    "frame is easy to reconstruct; --json: unusually_low"
)


class NoiseKind(str, Enum):
    """The noise kinds of ``aetool.runtime.noise.NOISE_KINDS`` (spelled out so ``--help`` needs no numpy)."""

    gaussian = "gaussian"
    salt_pepper = "salt-pepper"
    mask = "mask"


class Dataset(str, Enum):
    """The datasets of ``aetool.runtime.metadata.DATASETS`` (spelled out so a typo is refused before torch loads)."""

    mnist = "mnist"
    fashion_mnist = "fashion-mnist"
    images = "images"


class Loss(str, Enum):
    """The training losses of ``aetool.train.settings.LOSSES`` (spelled out so a typo is refused before torch loads)."""

    mse = "mse"
    bce = "bce"


class Target(str, Enum):
    """The export targets of ``aetool.runtime.contract.TARGETS`` (spelled out so ``--help`` needs no import)."""

    portable = "portable"
    onnxruntime = "onnxruntime"


# ---- reporting: the one way a command talks to the user ----


_SAID: list[str] = []  # the error lines this process has written


_CONTROLS = re.compile(  # C0, DEL, C1, line and paragraph separators, bidi
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def escape_controls(text: str) -> str:
    """``text`` with control characters written as Python escapes (``\\t``, ``\\n``, ``\\x1b``, ``\\u202e``): a
    file name may hold a newline that would split a line, a tab that would shift a column, or a terminal's escape
    sequence (to retitle the window, clear the screen) or a bidirectional override that would show another name."""
    return _CONTROLS.sub(lambda found: found[0].encode("unicode_escape").decode("ascii"), text)


def _say(line: str) -> None:
    """Write ``line`` to stderr as it is: no markup, no highlighting, not wrapped at the terminal's width (a file
    name cut in two cannot be copied back). A stderr that cannot take it (``2>/dev/full``) loses the line, and the
    command goes on (it stopped a batch half done); one whose reader has gone ends it as a closed pipe does. Ctrl-C
    is held until the line is out: one in the middle left it in the console's buffer, to be written again with the
    next line."""
    try:
        from aetool.runtime.files import interrupts_held
    except ImportError:  # a stop signal broke numpy's first import, and "interrupted" is the line to write
        _say_plainly(line)
        return
    try:
        console = stderr_console()
    except (MemoryError, ImportError, OSError):  # under a memory limit rich may not load: the line matters most
        _say_plainly(line)
        return
    try:
        with interrupts_held():
            console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
    except BrokenPipeError:
        raise
    except OSError:
        pass


def _say_plainly(line: str) -> None:
    """Write ``line`` to stderr without rich or numpy, for when a stop signal left an import half done (the
    "interrupted" line itself failed with numpy's "cannot load module more than once per process": a traceback)."""
    with suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def error(message: str) -> None:
    """One ``aetool: error:`` line on stderr: how every user-facing error is written."""
    _say(f"aetool: error: {escape_controls(message)}")
    _SAID.append(message)


def emit(text: str) -> None:
    """A line of a command's results on standard output. A closed pipe is raised as it is (the command then ends
    quietly with exit 141); any other write error (a full device, ``> /dev/full``) is one line that names standard
    output, exit 1. Written by the stream itself, whose encoding errors go to :func:`_printable` as stderr's do
    (Click's echo wrote a name's undecodable bytes as ``?`` and other text as UTF-8 whatever the encoding)."""
    if sys.stdout is None:  # closed from the start (>&-): the records of the image commands are dropped
        return
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        fail(f"cannot write to standard output: {err.strerror or err}", 1)


def fail(message: str, code: int = 2) -> NoReturn:
    """Report an error that stops the command, and exit with ``code``; never a traceback."""
    error(message)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A line for the user on stderr, which stays free of data."""
    _say(f"aetool: {escape_controls(message)}")


def _show_warning(message: Warning | str, *args: object, **kwargs: object) -> None:
    _say(f"aetool: warning: {escape_controls(str(message))}")


@contextmanager
def reporting(*, results: bool = False) -> Iterator[None]:
    """Run a command body so that AetoolErrors become one line and their exit code, and warnings one line each.
    ``results``: the command's results go to standard output, so one closed from the start (``>&-``, where Python
    has no stream and every line would vanish) is refused first, exit 2."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        try:
            if results and sys.stdout is None:
                raise AetoolError("standard output is closed (>&-), and this command's results go there")
            yield
        except AetoolError as err:
            fail(str(err), err.exit_code)
        except BrokenPipeError:  # the reader of standard output is gone
            _closed_pipe()
        except OSError as err:  # a file or folder the user named cannot be written or read
            fail(os_reason(err))
        except KeyboardInterrupt:
            fail("interrupted", Interrupted.exit_code)


# ---- options shared by the image commands ----

Inputs = Annotated[
    list[str],
    typer.Argument(help="Image files, folders or globs; - reads standard input.", metavar="IMAGES", show_default=False),
]
Output = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output file for one input, else a folder; - writes standard output. Default: beside each input.",
        metavar="PATH",
        show_default=False,
    ),
]


def _complete_model(incomplete: str) -> list[str]:
    """Shell completion (``aetool --install-completion``) of ``-m``: the bundled models' names, then the folders
    and ``.onnx`` files that begin with what was typed."""
    from aetool.runtime.registry import bundled_index

    try:
        names = [name for name in bundled_index() if name.startswith(incomplete)]
    except AetoolError:  # a broken index completes no name; the command says why when it runs
        names = []
    found = glob.glob(glob.escape(incomplete) + "*")
    return names + sorted(
        f"{path}/" if os.path.isdir(path) else path for path in found if path.endswith(".onnx") or os.path.isdir(path)
    )


ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME|FILE",
        help="Model file (.onnx) or bundled model name (see aetool models).",
        autocompletion=_complete_model,
    ),
]
Recursive = Annotated[bool, typer.Option("--recursive", "-r", help="Look for images in subfolders too.")]
Format = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="Output image format: png (default), jpg, bmp, tiff, webp, gif, pgm (grey), ppm, tga.",
        metavar="FORMAT",
        show_default=False,
    ),
]
SideBySide = Annotated[bool, typer.Option("--side-by-side", help="Write input | output as one image.")]
Exif = Annotated[
    bool,
    typer.Option(
        "--exif/--no-exif",
        help="Carry the input's EXIF (camera, date, GPS, description) into the output, less its orientation; "
        "--no-exif writes none.",
    ),
]
Invert = Annotated[
    bool | None,
    typer.Option(
        "--invert/--no-invert",
        help="Treat images as dark on light (inverted to MNIST's white on black and back) or not; only models of "
        "white-on-black images, and add-noise's mask noise (so masking hits the background), invert. Default: "
        "decided per image from its border.",
        show_default=False,
    ),
]
Resize = Annotated[
    bool,
    typer.Option(
        "--resize",
        help="Fit images of another size to a fixed-size (dense) model and resize the result back to the image's "
        "size. Without it such images are refused. Conv models take any size.",
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Allow an output to overwrite an input file.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON to standard output for scripts.")]
Providers = Annotated[
    list[str] | None,
    typer.Option(
        "--provider",
        help="onnxruntime execution provider: cpu (default), cuda, ...; repeat for a fallback order.",
        metavar="NAME",
        show_default=False,
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        metavar="N",
        help="CPU threads for onnxruntime, up to 4 per core this process may use (default: one per core).",
        show_default=False,
    ),
]


def _seconds(value: float | None) -> float | None:
    """A timeout option's seconds, from 0.001 up to ``threading.TIMEOUT_MAX`` (about 292 years, the longest wait
    Python's locks take): checked here, not by a range, since Click before 8.2 let NaN through one and Typer 0.29
    calls NaN too large."""
    if value is not None and not 0.001 <= value <= threading.TIMEOUT_MAX:  # NaN fails the comparison too
        raise typer.BadParameter(f"takes 0.001 to {threading.TIMEOUT_MAX:.0f} seconds, got {value:g}")
    return value


Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        callback=_seconds,
        metavar="SECONDS",
        help="Stop a model call that runs longer (exit 124): 0.001 up to about 292 years. Default: no limit.",
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aetool {__version__}")
        raise typer.Exit()


def _megapixels(value: float | None) -> float | None:
    """``--max-megapixels``: above 0 and at most 100,000 (10**11 pixels); NaN fails the comparison too."""
    if value is not None and not 0 < value <= 100_000:
        raise typer.BadParameter(f"takes a number of megapixels above 0 and at most 100,000, got {value:g}")
    return value


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    max_megapixels: Annotated[
        float | None,
        typer.Option(
            "--max-megapixels",
            callback=_megapixels,
            metavar="MP",
            help="Refuse input images over MP megapixels, as possible decompression bombs (default 89.5, Pillow's "
            "limit); give it before the command: aetool --max-megapixels 120 denoise big.jpg",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Autoencoders for images: train in PyTorch, export to verified ONNX, run without PyTorch."""
    if max_megapixels is not None:
        from aetool.runtime.images import set_pixel_limit

        set_pixel_limit(megapixels=max_megapixels)


# ---- image commands ----


def _model_command(name: str, *, default_model: str, suffix: str, summary: str) -> None:
    """Register an image command that runs a model on images: ``denoise`` and ``reconstruct`` differ only in
    their default model, output suffix and help."""

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
            denoising=name == "denoise",
        )
        _images(inputs, options, suffix=suffix, step=step)

    command.__doc__ = f"{summary} (writes NAME{suffix}.png)."
    app.command(name)(command)


_model_command(
    "denoise",
    default_model="denoise",
    suffix=".denoised",
    summary="Remove noise from images with a denoising autoencoder",
)
_model_command(
    "reconstruct", default_model="deep", suffix=".reconstructed", summary="Pass images through an autoencoder"
)


@app.command("add-noise")
def add_noise(
    inputs: Inputs,
    output: Output = None,
    noise: Annotated[
        float | None,
        typer.Option(help="Noise level: Gaussian std, or the fraction of pixels hit. \\[default: 0.5]"),
    ] = None,
    noise_kind: Annotated[
        NoiseKind | None,
        typer.Option(
            help="Noise kind: gaussian (added, clipped to 0–1), salt-pepper (pixels set to black or white) or mask "
            "(pixels set to the background: black, white on a dark-on-light image). \\[default: gaussian]"
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
    level: Annotated[float | None, typer.Option("--level", hidden=True)] = None,  # round 1's name of --noise
    kind: Annotated[NoiseKind | None, typer.Option("--kind", hidden=True)] = None,  # round 1's name of --noise-kind
) -> None:
    """Corrupt images with the noise aetool trains and evaluates with (writes NAME.noisy.png)."""
    chosen_level = _alias(noise, level, "--noise", "--level", default=0.5)
    chosen_kind = _alias(noise_kind, kind, "--noise-kind", "--kind", default=NoiseKind.gaussian).value
    with reporting():
        from aetool.runtime.noise import Noise, scale_note

        try:
            corruption = Noise.single(chosen_level, kind=chosen_kind)
        except ValueError as err:
            fail(f"--noise: {err}")
        if said := scale_note(corruption):
            note(f"warning: {said}")
        if invert and chosen_kind != "mask":
            raise AetoolError(
                f"--invert: only mask noise inverts (its masked pixels take the page's background); {chosen_kind} "
                "noise is drawn alike either way, so leave --invert out"
            )
    options = _image_options(output, fmt, side_by_side, invert, force, as_json=as_json, recursive=recursive, exif=exif)
    then = _drawn_seed_said if seed is None else None
    _images(inputs, options, suffix=".noisy", step=lambda: _corruption(chosen_level, chosen_kind, seed), after=then)


def _alias(value: T | None, old: T | None, name: str, old_name: str, *, default: T) -> T:
    """An option given under its name or its hidden round-1 alias; both, and different, is a usage error."""
    if value is not None and old is not None and value != old:
        fail(f"{name} and {old_name} (its old name) disagree; give one")
    return value if value is not None else old if old is not None else default


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

    loaded = _load(model, provider, threads, timeout)
    _check_invert(loaded, invert=invert)
    _note_resize(loaded, resize=resize)
    if denoising and contract.NOISE in loaded.metadata and not trained_noise(loaded):
        note(
            f"{loaded.name} was trained on clean images, not noisy ones: it reconstructs them, as aetool reconstruct "
            "does, and removes noise only by chance (the bundled denoise, or a model trained with --noise, does)"
        )
    return Reconstruct(loaded, resize=resize)


def _note_resize(model: Model, *, resize: bool) -> None:
    """Say that ``--resize`` does nothing for a model that takes images of any size (a conv model): the README's
    example ran the bundled conv ``denoise`` with it, and nothing told that no image was resized (trial 85)."""
    if resize and model.input_spec.size is None:
        note(f"--resize: {model.name} takes images of any size, so none is resized (--resize is for dense models)")


def _check_invert(model: Model, *, invert: bool | None) -> None:
    """``--invert`` with a model that takes images as they are is a usage error (``AetoolError``)."""
    from aetool.runtime import contract

    if invert and model.input_spec.polarity == contract.AS_IS:
        raise AetoolError(
            f"--invert: model {model.name} takes images as they are (polarity {contract.AS_IS}), so it never "
            "inverts them; leave --invert out"
        )


def _collected(
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


def _load(model: str, provider: list[str] | None, threads: int | None, timeout: float | None) -> Model:
    """The model (opened once per process), each of its calls bounded by ``timeout`` seconds."""
    from aetool.runtime import load

    loaded = load(model, providers=provider, threads=threads)
    loaded.timeout = timeout
    return loaded


def _corruption(level: float, kind: str, seed: int | None) -> Corrupt:
    """The noise step, seeded by ``seed`` or, without one, by a seed drawn here (:func:`_drawn_seed_said`)."""
    from aetool.runtime.batch import Corrupt

    return Corrupt(level, kind, secrets.randbelow(2**32) if seed is None else seed)


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


def _plan(
    inputs: list[str], options: ImageOptions, *, suffix: str
) -> tuple[Iterable[Job], list[Failure], Callable[[], bool] | None]:
    """Jobs (given as standard input's images arrive, for ``-``), failed inputs and, for ``-``, whether the next
    job is there (:func:`_collected`); usage mistakes raise ``AetoolError`` before any image is read."""
    from aetool.runtime import files

    found, failures, ready = _collected(inputs, recursive=options.recursive, skip=suffix)
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


def _ran(model: Model) -> dict[str, str]:
    """What a ``--json`` record names of the model that made it: its name and the SHA-256 of its file's bytes."""
    return {"model": model.name, "model_sha256": model.sha256}


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
    from aetool.runtime.files import interrupts_deferred

    started = time.perf_counter()
    total = len(jobs) + len(failures) if isinstance(jobs, Sequence) else None  # None: a stream, still arriving
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
    counts: Counter[str] = Counter()
    not_digits = False  # an image that looks like neither digits nor writing went through (a photograph?)
    ran: dict[str, Any] = {}  # what every --json record adds: the model that ran
    seeded: dict[str, Any] = {}  # what the record of an image that got noise adds (its MSE tells it did)
    if isinstance(step, Reconstruct):
        ran = _ran(step.model)
    elif isinstance(step, Corrupt):
        seeded = {"noise_seed": step.seed}
    try:
        for outcome in chain(refused, _progress(outcomes, total, _shows_bar(total, as_json=options.as_json))):
            with interrupts_deferred(stop):
                if options.as_json:
                    emit(json.dumps({**outcome.record(), **ran, **(seeded if outcome.mse is not None else {})}))
                if outcome.error:
                    failed += 1
                    error(f"{outcome.path}: {outcome.error}")
                    continue
                done += 1
                digit = outcome.input_size == (28, 28) and not (outcome.converted or "").startswith("RGB")
                # judged as read, before any --resize; a scanned page is what the bundled denoise is for (trial 77)
                not_digits |= not (digit or outcome.looks_like_writing)
                changes = _changes(outcome, step.channels, forced=options.invert is True)
                counts.update({kind for kind, _ in changes})
                if (total if total is not None else done + failed) <= FEW:
                    for _, text in changes:
                        note(f"{outcome.path}: {text}")
    except KeyboardInterrupt:  # the outcomes settled before it are reported (and their files written) first
        of = f" of {total} image{'s' * (total != 1)}" if total is not None else f" image{'s' * (done + failed != 1)}"
        raise Interrupted(f"interrupted after {done + failed}{of} ({done} written)") from None
    also = "; ".join(f"{n} {kind}" for kind, n in counts.items()) if done + failed > FEW else ""
    note(f"{done} done, {failed} failed in {time.perf_counter() - started:.2f} s" + (f" ({also})" if also else ""))
    if not_digits and isinstance(step, Reconstruct) and _on_digits(step.model):
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


def _on_digits(model: Model) -> bool:
    """Whether ``model`` was trained on an IDX dataset (MNIST or Fashion-MNIST: grey, 28×28)."""
    from aetool.runtime import contract
    from aetool.runtime.idx import IDX_DATASETS

    return model.metadata.get(contract.DATASET) in IDX_DATASETS


def _changes(
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


def _dimension(dim: int | str | None) -> str:
    """A tensor dimension as ``info`` shows it: a number, a name the exporter gave (``N``, ``4*h``), or ``?`` for
    an unnamed one (None, or a symbol PyTorch's exporter made up, such as ``s39``)."""
    if dim is None or (isinstance(dim, str) and re.fullmatch(r"s\d+", dim)):
        return "?"
    return str(dim)


def _bar_terminal() -> bool:
    """Whether stderr is a terminal that can show a progress bar: not a file or pipe, nor a terminal whose TERM is
    ``dumb`` or ``unknown`` (rich's test; a serial console, Emacs' shell), which cannot redraw a line, so a bar's
    last state stayed behind as a line of box characters."""
    return sys.stderr.isatty() and os.environ.get("TERM", "").lower() not in ("dumb", "unknown")


def _bar(quiet: bool) -> bool:
    """Whether training shows its progress bar: not ``--quiet``, and stderr a terminal that can show one (into a
    log file the bar's last state was written as a line of box characters, and the epoch lines lost their
    ``aetool:``)."""
    return not quiet and _bar_terminal()


def _shows_bar(total: int | None, *, as_json: bool) -> bool:
    """Whether a batch of ``total`` images (None: a stream of images still arriving) shows a progress bar: many
    images or a stream, and stderr a terminal that can show one, but not where ``--json`` writes its records to a
    terminal too (they were written onto the bar's line)."""
    return (total is None or total > FEW) and _bar_terminal() and not (as_json and sys.stdout.isatty())


def _progress(outcomes: Iterable, total: int | None, show: bool) -> Iterable:
    """A progress bar on stderr around ``outcomes`` when there are many (``total``; None for a stream, whose bar
    counts without an end) and stderr is a terminal."""
    return _with_bar(outcomes, total) if show else outcomes


def _with_bar(outcomes: Iterable, total: int | None) -> Iterator:
    """``outcomes`` as they come, with the bar up on stderr until the last."""
    from rich.progress import Progress

    # a bar of its own, not rich's track: track takes standard output over while the bar is up, and the --json
    # records went to the terminal, not into the file or pipe standard output was (trial 96)
    with Progress(
        *Progress.get_default_columns(), console=stderr_console(), transient=True, redirect_stdout=False
    ) as bar:
        yield from bar.track(outcomes, total=total, description="images")


# ---- anomaly detection ----

Classes = Annotated[
    str | None,
    typer.Option(
        metavar="LABELS",
        help="The normal classes, separated by commas: digits of IDX data (3 or 3,5) or subfolder names of --data.",
        show_default=False,
    ),
]


_VERDICTS = {True: "anomalous", False: "normal", None: "scored"}


def _detection_record(detection: Detection, detector: Detector) -> str:
    """``detect --json``'s line for one image: its record, the detector's threshold and score named in a failed
    image's too (they were null there), and the model that ran."""
    record = {**detection.record(), "threshold": detector.threshold, "score_name": detector.score_name}
    return json.dumps({**record, **_ran(detector.model)})


def _detection_line(result: Detection) -> str:
    """detect's line for a scored image: path (control characters escaped, and backslashes doubled so that the
    names ``a\\nb`` and ``a<newline>b`` stay apart), score, threshold (- without one) and verdict, tab-separated."""
    limit = "-" if result.threshold is None else f"{result.threshold:.6g}"
    path = escape_controls(result.path.replace("\\", "\\\\"))
    return f"{path}\t{result.score:.6g}\t{limit}\t{_VERDICTS[result.anomalous]}"


@app.command()
def detect(
    inputs: Inputs,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            metavar="NAME|FILE",
            help="A detector (aetool calibrate), or any model file: then scored by MSE, with no threshold.",
            show_default=False,
            autocompletion=_complete_model,
        ),
    ],
    heatmaps: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help="Write NAME.heatmap.png (the anomaly map over the image) and NAME.raw.heatmap.png (the map as 16-bit "
            "grey, value/65535) per image into this folder, mirroring the inputs' folders.",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="Score above which an image is anomalous. Default: the file's.", show_default=False),
    ] = None,
    recursive: Recursive = False,
    invert: Invert = None,
    resize: Resize = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON line per image on standard output, with every number.")
    ] = False,
    provider: Providers = None,
    threads: Threads = None,
    timeout: Timeout = None,
) -> None:
    """Score images for anomalies with onnxruntime alone: per image the score, the threshold and the verdict, and
    heatmaps on request. Exit 0 whatever the verdicts; 1 when some images could not be scored."""
    with reporting(results=True):
        import threading

        from aetool.runtime import contract, files
        from aetool.runtime.detect import HEATMAP, Detection, Detector, detect, plan_detection

        found, failures, ready = _collected(inputs, recursive=recursive, skip=HEATMAP)
        jobs, clashes = plan_detection(found, heatmaps=heatmaps)
        unwritable = {clash.label: clash.error for clash in clashes}  # scored, their heatmaps not written
        loaded = _load(model, provider, threads, timeout)
        _check_invert(loaded, invert=invert)
        _note_resize(loaded, resize=resize)
        detector = Detector(loaded, threshold=threshold)
        started = time.perf_counter()
        verdicts: Counter[str] = Counter()  # per image: its verdict (or "scored"), or "failed" when it has no score
        unwritten = 0  # images scored whose heatmaps could not be written
        for failure in failures:
            error(f"{failure.label}: {failure.error}")
            verdicts["failed"] += 1
            if as_json:
                emit(_detection_record(Detection(failure.label, error=failure.error), detector))
        stop = threading.Event()  # Ctrl-C while a record is printed: the settled ones are printed first
        total = len(jobs) + len(failures) if isinstance(jobs, Sequence) else None  # None: a stream, still arriving
        changes: Counter[str] = Counter()
        not_digits = False  # an image scored that is not a 28×28 grey one, for a detector of digits
        try:
            for result in detect(jobs, detector, invert=invert, resize=resize, stop=stop, ready=ready):
                if result.error is None and result.path in unwritable:
                    result.error = unwritable[result.path]
                with files.interrupts_deferred(stop):
                    if as_json:
                        emit(_detection_record(result, detector))
                    if result.error:
                        error(f"{result.path}: {result.error}")
                        if result.score is None:
                            verdicts["failed"] += 1
                            continue
                        unwritten += 1  # scored, and its verdict counted; its heatmaps could not be written
                    verdict = _VERDICTS[result.anomalous]
                    verdicts[verdict] += 1
                    not_digits |= result.input_size != (28, 28) or (result.converted or "").startswith("RGB")
                    done = _changes(result, loaded.input_spec.channels, forced=invert is True, scored=True)
                    if result.unusually_low:
                        done.append((LOW_SCORE, f"score unusually low for a normal image ({BLANK_FRAMES})"))
                    changes.update(kind for kind, _ in done)
                    for _, text in done if (total if total is not None else sum(verdicts.values())) <= FEW else ():
                        note(f"{result.path}: {text}")
                    if not as_json:
                        emit(_detection_line(result))
        except KeyboardInterrupt:  # the records settled before it are printed (and their heatmaps written) first
            settled = sum(verdicts.values())
            split = (
                f": {verdicts['anomalous']} anomalous, {verdicts['normal']} normal"
                if detector.threshold is not None
                else ""
            )
            of = f" of {total} image{'s' * (total != 1)}" if total is not None else f" image{'s' * (settled != 1)}"
            raise Interrupted(
                f"interrupted after {settled}{of} ({settled - verdicts['failed']} scored{split})"
            ) from None
    kinds = ("anomalous", "normal") if detector.threshold is not None else ("scored",)
    counts = ", ".join(f"{verdicts[kind]} {kind}" for kind in (*kinds, "failed") if kind != "failed" or verdicts[kind])
    counts += f", {unwritten} whose heatmaps could not be written" if unwritten else ""
    rule = (
        f"score {detector.score_name} > {detector.threshold:.6g}"
        if detector.threshold is not None
        else f"score {detector.score_name}, no threshold: the model is not calibrated (aetool calibrate)"
    )
    total = sum(verdicts.values()) - len(failures)  # images; the inputs that gave none are counted apart
    images = f"{total} image{'' if total == 1 else 's'}" + (
        f" and {len(failures)} input{' that' if len(failures) == 1 else 's that'} gave none" if failures else ""
    )
    also = "".join(f"; {n} {kind}" for kind, n in changes.items()) if sum(verdicts.values()) > FEW else ""
    note(f"{images}: {counts} ({rule}{also}) in {time.perf_counter() - started:.2f} s")
    if changes[LOW_SCORE] and sum(verdicts.values()) > FEW:
        fence = f"below {detector.low_fence:.6g}, the calibration scores' Q1 − 1.5 × IQR"
        note(f"{changes[LOW_SCORE]} scored unusually low ({fence}): {BLANK_FRAMES}")
    if not_digits and _on_digits(loaded):
        kind = "detector" if contract.ANOMALY in loaded.metadata else "model"
        note(
            f"this {kind} was trained on grey 28×28 images ({loaded.metadata.get(contract.DATASET)}): on other images "
            "(photographs, pages) its scores say little about defects; train one on images like yours (aetool "
            "train anomaly --data FOLDER; see the README, Anomaly detection)"
        )
    raise typer.Exit(1 if verdicts["failed"] or unwritten else 0)


# ---- model commands ----


@app.command()
def evaluate(
    model: ModelOption = "denoise",
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the four MNIST IDX files (.gz or not), or of mnist/ and fashion-mnist/ "
            "subfolders: scores the test set. Default, when neither --data nor --inputs is given: $AETOOL_DATA_DIR.",
            metavar="FOLDER",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Clean images (a folder, searched recursively, or a glob): noised, reconstructed and scored "
            "against themselves.",
            metavar="FOLDER|GLOB",
            show_default=False,
        ),
    ] = None,
    inputs: Annotated[
        str | None,
        typer.Option(
            help="Input images (a folder or a glob), scored against --targets: pairs match by their path below the "
            "folder without the suffix (noisy/x.png ↔ clean/x.jpg).",
            metavar="FOLDER|GLOB",
            show_default=False,
        ),
    ] = None,
    targets: Annotated[
        str | None,
        typer.Option(
            help="Target images for --inputs (a folder or a glob).", metavar="FOLDER|GLOB", show_default=False
        ),
    ] = None,
    noise: Annotated[
        float | None,
        typer.Option(
            help="Noise level of the inputs. Default: the noise the model was trained with.", show_default=False
        ),
    ] = None,
    noise_kind: Annotated[
        NoiseKind | None, typer.Option(help="Noise kind. Default: the model's, else gaussian.", show_default=False)
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Score only the first N images (or pairs).", show_default=False)
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Seed of the input noise. Default: the seed of the noisy test set training scored on (1234).",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            metavar="mnist|fashion-mnist",
            help="The IDX dataset under --data-dir: mnist or fashion-mnist. Default: the model's.",
            show_default=False,
        ),
    ] = None,
    anomaly: Annotated[
        bool,
        typer.Option(
            "--anomaly",
            help="Score anomaly detection instead: AUROC, AUPR and, at the file's threshold, precision, recall, F1 "
            "and false-positive rate, on IDX digits (--data-dir, --classes normal), a folder of labelled subfolders "
            "(--data, --classes normal) or --normal and --anomalous folders.",
        ),
    ] = False,
    classes: Classes = None,
    normal: Annotated[
        str | None,
        typer.Option(help="With --anomaly: normal images (folder or glob).", metavar="FOLDER|GLOB", show_default=False),
    ] = None,
    anomalous: Annotated[
        str | None,
        typer.Option(
            help="With --anomaly: anomalous images (folder or glob).", metavar="FOLDER|GLOB", show_default=False
        ),
    ] = None,
    resize: Annotated[
        bool,
        typer.Option(
            "--resize",
            help="Fit image files (--data, --inputs/--targets, --normal/--anomalous) of another size to a fixed-size "
            "(dense) model, input and target alike, and score them at the model's size. Without it they are refused.",
        ),
    ] = False,
    as_json: Json = False,
    provider: Providers = None,
    threads: Threads = None,
    timeout: Timeout = None,
) -> None:
    """MSE, PSNR and SSIM of a model with onnxruntime alone (no torch): on MNIST's test set (--data-dir), on clean
    images noised here (--data), or on pairs of input and target images (--inputs, --targets); with --anomaly, how
    well it detects anomalies. Exit 1 when some images could not be scored or had no partner."""
    if dataset is not None and dataset not in ("mnist", "fashion-mnist"):
        fail(f"--dataset takes mnist or fashion-mnist (the IDX datasets under --data-dir); got {dataset!r}")
    if dataset is not None and any((data, inputs, targets, normal, anomalous)):
        fail("--dataset names the IDX dataset under --data-dir; image files (--data, --inputs, --normal) have none")
    if anomaly:
        if inputs or targets or any(v is not None for v in (noise, noise_kind, seed)):
            fail(
                "--anomaly scores images as they are: --inputs, --targets, --noise, --noise-kind and --seed do not apply"
            )
        from aetool.runtime.anomaly import parse_classes

        try:
            normal_classes = parse_classes(classes)
        except ValueError as err:
            fail(str(err))
        _evaluate_anomaly(
            model,
            data_dir=data_dir,
            dataset=dataset,
            data=data,
            classes=normal_classes,
            sides=(normal, anomalous),
            limit=limit,
            resize=resize,
            as_json=as_json,
            session=(provider, threads, timeout),
        )
        return
    if normal or anomalous or classes:
        fail("--normal, --anomalous and --classes go with --anomaly")
    with reporting(results=True):
        from aetool.runtime.evaluate import evaluate as score
        from aetool.runtime.evaluate import evaluate_images, evaluate_pairs
        from aetool.runtime.idx import chosen_data_dir

        kind = noise_kind and noise_kind.value
        if inputs or targets:
            _refuse_with_pairs(data_dir, data, inputs, targets, noised=any(v is not None for v in (noise, kind, seed)))
        elif data and data_dir:
            raise AetoolError("--data-dir reads IDX files and --data image files: give one")
        if resize and not (data or inputs):
            raise AetoolError(
                "--resize fits image files (--data, --inputs/--targets); IDX digits are scored as they are"
            )
        loaded = _load(model, provider, threads, timeout)
        _note_resize(loaded, resize=resize)
        if inputs and targets:
            result = evaluate_pairs(loaded, inputs, targets, limit=limit, resize=resize)
        elif data:
            result = evaluate_images(loaded, data, noise=noise, noise_kind=kind, limit=limit, seed=seed, resize=resize)
        else:
            folder = chosen_data_dir(data_dir)  # its dataset's subfolder and the dataset: evaluate's to check
            if folder is None:
                raise AetoolError("no data: pass --data-dir (or set AETOOL_DATA_DIR), --data or --inputs/--targets")
            result = score(loaded, folder, dataset=dataset, noise=noise, noise_kind=kind, limit=limit, seed=seed)
        for failure in chain(result.failed, result.missing):
            error(f"{failure.label}: {failure.error}")
        for text in result.notes:
            note(text)
        emit(json.dumps(result.to_dict()) if as_json else _evaluation_line(result))
        if result.failed or result.missing:
            without = f", {len(result.missing)} without a partner" if result.missing else ""
            note(f"{result.n} scored, {len(result.failed)} could not be scored{without}")
            raise typer.Exit(1)


def _evaluate_anomaly(
    model: str,
    *,
    data_dir: Path | None,
    dataset: str | None,
    data: str | None,
    classes: tuple[str, ...] | None,
    sides: tuple[str | None, str | None],
    limit: int | None,
    resize: bool,
    as_json: bool,
    session: tuple[list[str] | None, int | None, float | None],
) -> None:
    """``aetool evaluate --anomaly``: one of the three sources, the measures, exit 1 when images failed."""
    with reporting(results=True):
        from aetool.runtime.detect import Detector, evaluate_folders, evaluate_idx, evaluate_labelled
        from aetool.runtime.idx import chosen_data_dir

        normal, anomalous = sides
        given = [name for name, value in (("--data", data), ("--data-dir", data_dir), ("--normal", normal)) if value]
        if len(given) > 1:
            raise AetoolError(f"{' and '.join(given)} name two sets of images: give one")
        if (normal is None) != (anomalous is None):
            raise AetoolError("--normal and --anomalous go together: a folder of each")
        if normal and classes:
            raise AetoolError("--classes picks the normal images of a labelled set; --normal names them already")
        if limit is not None and not data_dir and (normal or data):
            raise AetoolError("--limit applies to IDX data (--data-dir)")
        if resize and not (normal or data):
            raise AetoolError(
                "--resize fits image files (--data, --normal/--anomalous); IDX digits are scored as they are"
            )
        detector = Detector(_load(model, *session))
        _note_resize(detector.model, resize=resize)
        if normal and anomalous:
            result = evaluate_folders(detector, normal, anomalous, resize=resize)
        elif data:
            result = evaluate_labelled(detector, data, classes=classes, resize=resize)
        else:
            folder = chosen_data_dir(data_dir)  # its dataset's subfolder and the dataset: evaluate_idx's to check
            if folder is None:
                raise AetoolError("no data: pass --data-dir (or set AETOOL_DATA_DIR), --data or --normal/--anomalous")
            result = evaluate_idx(detector, folder, dataset=dataset, classes=classes, limit=limit)
    for failure in result.failed:
        error(f"{failure.label}: {failure.error}")
    for text in result.notes:
        note(text)
    if as_json:
        emit(json.dumps(result.to_dict()))
    else:
        at = result.at_threshold
        rates = (
            f"at threshold {result.threshold:.6g}: precision "
            + (f"{at['precision']:.1%}" if at["precision"] is not None else "– (nothing flagged)")
            + f", recall {at['recall']:.1%}, F1 {at['f1']:.1%}, FPR {at['fpr']:.2%}"
            if at is not None and result.threshold is not None
            else "no threshold: the model is not calibrated (aetool calibrate)"
        )
        emit(
            f"AUROC {result.auroc:.2%}, AUPR {result.aupr:.2%} over {result.n_normal} normal ({result.normal}) and "
            f"{result.n_anomalous} anomalous images of {result.data}, score {result.score}; {rates}; model "
            f"{result.model}"
        )
    if result.failed:
        note(f"{result.n_normal + result.n_anomalous} scored, {len(result.failed)} could not be scored")
        raise typer.Exit(1)


def _refuse_with_pairs(
    data_dir: Path | None, data: str | None, inputs: str | None, targets: str | None, *, noised: bool
) -> None:
    """Raise ``AetoolError`` for options that do not go with --inputs and --targets."""
    if not (inputs and targets):
        raise AetoolError("--inputs and --targets go together: input images and the targets they are scored against")
    if data or data_dir:
        raise AetoolError(f"{'--data' if data else '--data-dir'} and --inputs/--targets name two sets: give one")
    if noised:
        raise AetoolError("--noise, --noise-kind and --seed noise clean images; pairs are scored as they are given")


def _evaluation_line(result: Evaluation) -> str:
    """``aetool evaluate`` for people: the three scores, what they were measured on, and the recorded test MSE."""
    psnr = f"{result.psnr:.2f} dB" if result.psnr is not None else "∞ dB"
    ssim = f"{result.ssim:.4f}" if result.ssim is not None else "– (images under 11×11)"
    if 0 < result.ssim_images < result.n:
        counted = f"{result.ssim_images} image{'s' * (result.ssim_images != 1)}"
        ssim += f" (of the {counted} of at least 11×11)"
    scores = f"MSE {result.mse:.6f}, PSNR {psnr}, SSIM {ssim}"
    if result.input_mse is None or result.input_psnr is None:
        return _evaluated(result, scores)
    # and what doing nothing scores: the noisy inputs against the targets
    baseline = f"; the inputs themselves: MSE {result.input_mse:.6f}, PSNR {result.input_psnr:.2f} dB"
    ssim_then = f", SSIM {result.input_ssim:.4f}" if result.input_ssim is not None else ""
    return _evaluated(result, scores) + baseline + ssim_then


def _evaluated(result: Evaluation, scores: str) -> str:
    """The scores with what they were measured on, and the recorded test MSE."""
    noise_text = (
        f"noise {'mix' if ',' in result.noise_mix else 'range'} {result.noise_mix}"
        if result.noise_mix
        else f"{result.noise_kind} noise {result.noise:g}"
        if result.noise
        else "no noise"
    )
    if result.targets is not None:
        pairs = f"{result.n} pair{'s' if result.n > 1 else ''}"
        return f"{scores} over {pairs} {result.data} → {result.targets}, model {result.model}"
    images = f"{result.n} image{'s' if result.n > 1 else ''}"
    if result.split is None:
        seed = f", seed {result.seed}" if result.noise or result.noise_mix else ""
        return f"{scores} over {images} of {result.data} ({noise_text}{seed}), model {result.model}"
    recorded = result.recorded_test_mse
    return f"{result.split} {scores} over {images} ({noise_text}), model {result.model}" + (
        f"; the file records {recorded:.6f}{_under(result.recorded_noise)} (over all test images unless trained with "
        "--limit)"
        if recorded is not None
        else ""
    )


def _under(noise: str | None) -> str:
    """The noise a file's recorded test MSE was scored with, in words, when it is not this evaluation's (None)."""
    if noise is None:
        return ""
    return " without noise" if noise == "none" else f" with its training noise {noise}"


@app.command()
def models(as_json: Json = False) -> None:
    """List the bundled models: what each is for and was measured on, file size, precision and test MSE."""
    with reporting(results=True):
        from aetool.runtime.describe import bundled_models
        from aetool.runtime.registry import INDEX, where_bundled

        records = bundled_models()
        if as_json:
            emit(json.dumps([record.to_dict() for record in records], indent=2))
        elif not records:
            note(f"no bundled models (no {INDEX} in {where_bundled()})")
        else:
            rows = [("name", "file", "size", "precision", "test MSE")] + [
                (r.name, r.file, _size(r.size_bytes), r.precision or "?", _number(r.test_mse)) for r in records
            ]
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
            for row in rows:
                emit("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
            for record in records:
                if record.use:
                    emit(f"{record.name}: {record.use}")
        for record in records:
            if record.problem:
                note(f"warning: {record.name}: {record.problem}")


ModelNamed = Annotated[  # the model of info and check, also as -m as the image commands take it
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME|FILE",
        help="The model, as the image commands name it.",
        show_default=False,
        autocompletion=_complete_model,
    ),
]


def _one_model(given: str | None, option: str | None) -> str:
    """The model named as the argument or with ``-m``; a usage error when neither or two different ones."""
    if given is not None and option is not None and given != option:
        fail(f"two models named: {given} and -m {option}; give one")
    model = given if given is not None else option
    if model is None:
        fail("give a model: a file (.onnx) or a bundled model's name (see aetool models)")
    return model


@app.command()
def info(
    model: Annotated[
        str | None,
        typer.Argument(
            help="Model file (.onnx) or bundled model name.",
            metavar="NAME|FILE",
            show_default=False,
            autocompletion=_complete_model,
        ),
    ] = None,
    model_option: ModelNamed = None,
    as_json: Json = False,
) -> None:
    """Show a model file's inputs, outputs, metadata, parity record and decoder."""
    model = _one_model(model, model_option)
    with reporting(results=True):
        from aetool.runtime.describe import DECODER, describe

        record = describe(model)
        if as_json:
            emit(json.dumps(record.to_dict(), indent=2))
            return
        external = "".join(
            f" (+ {_size(size)} in {name})" if size is not None else f" (+ {name}, missing)"
            for name, size in record.external_data.items()
        )
        emit(
            f"{record.file}  {_size(record.size_bytes)}{external}, {record.precision or 'precision ?'}, "
            f"opset {record.opset or '?'}"
        )
        for title, tensors in (("inputs", record.inputs), ("outputs", record.outputs)):
            for i, tensor in enumerate(tensors):
                shape = "×".join(_dimension(d) for d in tensor.shape)
                emit(f"{title if i == 0 else '':9}{tensor.name:18}{tensor.type:9}{shape}")
        version = f" (version {record.contract_version})" if record.contract_version else ""
        verdicts = {
            "ok": f"✓ follows the aetool ONNX contract{version}",
            DECODER: "✓ a decoder graph (code → reconstruction), which runs beside its model file",
        }
        emit(f"{'contract':9}" + verdicts.get(record.contract, f"✗ {record.contract}"))
        if record.graph_changed:
            emit(
                f"{'graph':9}✗ not the graph aetool exported: another tool rewrote it (its operators differ from the "
                "recorded ones), so the precision, parity, target and runs-in records below are that export's"
            )
        if record.input_spec:
            emit(f"{'images':9}{_image_spec(record.input_spec, record.colour_space)}")
        decoder = record.decoder
        mismatch = " ✗ not the decoder this model was exported with (SHA-256 differs)"
        if decoder is None:
            shown = "none"
        elif decoder.missing:
            shown = f"{decoder.file} ✗ missing: the metadata names it, but it is not beside the model (copy it there)"
        else:
            shown = f"{decoder.file} ({_size(decoder.size_bytes)}){mismatch if decoder.matches is False else ''}"
        emit(f"{'decoder':9}{shown}")
        parity = record.parity
        if parity:
            mark = {True: "✓ passed", False: "✗ FAILED"}.get(parity.passed, "? not recorded")  # type: ignore[arg-type]
            worst = f", worst max-abs {parity.worst_max_abs:.3g}" if parity.worst_max_abs is not None else ""
            emit(f"{'parity':9}{mark}{worst} ({parity.cases if parity.cases is not None else '?'} cases)")
        if record.target or record.operators:  # both from the file's metadata: escaped like every value of it
            operators = f": {_shown(', '.join(map(str, record.operators)), 1000)}" if record.operators else ""
            variant = record.precision not in (None, "fp32")
            of = f", of the fp32 graph this {record.precision} file was made from" if variant else ""
            emit(f"{'target':9}{_shown(record.target or '?')} (opset {record.opset or '?'}{of}){operators}")
        if record.checked_in:
            emit(f"{'runs in':9}{_checked_in(record.checked_in)}")
        if "anomaly" in record.metadata:
            emit(f"{'detector':9}{_detector_line(record.metadata['anomaly'])}")
        emit("metadata")
        for key, value in record.metadata.items():
            if key not in ("parity", "checked_in"):
                shown = json.dumps(value) if isinstance(value, (dict, list)) else value
                emit(f"  {_shown(key):17} {_shown(shown) if shown != '' else '(empty)'}")  # checkpoint_sha256: 17


@app.command()
def check(
    model: Annotated[
        str | None,
        typer.Argument(
            help="Model file (.onnx), its decoder, or a bundled model name.",
            metavar="NAME|FILE",
            show_default=False,
            autocompletion=_complete_model,
        ),
    ] = None,
    model_option: ModelNamed = None,
    atol: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Largest allowed |runtime - onnxruntime|, × max(1, max|output|). Default: 1e-4 for fp32 files, "
            "1e-2 for fp16 and int8 ones.",
            show_default=False,
        ),
    ] = None,
    runtime: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="Check only this runtime: onnx-reference, opencv, opencv-classic, openvino; repeat for more. "
            "Default: every one installed.",
            show_default=False,
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Run a model file in every ONNX runtime installed here (onnxruntime; the ONNX reference evaluator, OpenCV
    DNN and OpenVINO where installed: the check extra) on fixed inputs and compare each with
    onnxruntime. Exit 0 when every one agrees, 1 when some fail or cannot load it."""
    model = _one_model(model, model_option)
    with reporting(results=True):
        from aetool.check import EXTRA, check_file

        try:
            report = check_file(model, atol=atol, only=["onnxruntime", *runtime] if runtime else None)
        except ValueError as err:  # --atol or --runtime, named in the message
            fail(str(err))
    emit(json.dumps(report.to_dict(), indent=2) if as_json else "\n".join(report.lines()))
    absent = [result.runtime for result in report.results if runtime and not result.installed]
    if absent:  # asked for by name, and not run
        fail(f"--runtime {absent[0]} is not installed here ({EXTRA})")
    if not report.passed:
        raise typer.Exit(1)


@app.command()
def web(
    output: Annotated[
        str, typer.Option("--output", "-o", help="Folder for the site (created).", metavar="DIR", show_default=False)
    ],
    ort_web: Annotated[
        Path | None,
        typer.Option(
            "--ort-web",
            metavar="DIR",
            help="Where onnxruntime-web's ort.wasm.min.js, ort-wasm-simd-threaded.mjs and .wasm are: its npm "
            "package's dist/, the package itself, or a node_modules folder (or the folder above it) holding it. "
            "Default: $AETOOL_ORT_WEB, else web/node_modules of a clone (npm ci --prefix web).",
            show_default=False,
        ),
    ] = None,
    serve: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            metavar="PORT",
            help="Then serve the site on PORT of --host, http://127.0.0.1:PORT by default (with the headers that "
            "let it use threads), until Ctrl-C; 0 picks a free port.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            metavar="ADDRESS",
            help="The address --serve listens on: 0.0.0.0 (or :: for IPv6) for every address of this machine, so "
            "that other devices reach it (the page then runs on one thread there: browsers allow threads on "
            "https or localhost only).",
        ),
    ] = "127.0.0.1",
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="NAME",
            help="A bundled model to put on the page (repeat for more, in that order). Default: every one.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a static page that runs the bundled models in the browser with onnxruntime-web: draw or drop a digit,
    see it denoised and reconstructed, all computed in the page. Serve the folder over HTTP (browsers do not load
    WebAssembly modules from file:// pages); --serve on a site already written, where onnxruntime-web's files are
    not at hand to rebuild it, serves it as it is."""
    with reporting():
        from aetool.web import build_site, holds_site, nowhere_to_rebuild, server, site_urls

        if output == "":  # as a Path it was ".", and the site went into the current folder
            raise AetoolError("-o is an empty name; give a folder (. for the current one)")
        folder = Path(output)
        if host != "127.0.0.1" and serve is None:
            raise AetoolError("--host is the address --serve listens on; give --serve PORT too")
        try:  # the port first: a taken one is said before the site is written
            httpd = None if serve is None else server(folder, port=serve, host=host)
        except OSError as err:
            where = f"port {serve}" if host == "127.0.0.1" else f"{host} port {serve}"
            raise AetoolError(f"cannot serve on {where}: {err.strerror or err}") from None
        try:
            if httpd is not None and holds_site(folder) and nowhere_to_rebuild(given=ort_web):
                note(
                    f"serving the site already in {folder} as it was last written (with the models it held then): "
                    "onnxruntime-web's files, to rebuild it, are not under web/node_modules"
                )
            else:
                site = build_site(folder, ort_web=ort_web, models=models or ())
                version = f" {site.ort_web_version}" if site.ort_web_version else ""
                note(
                    f"wrote {site.folder}: {', '.join(site.models)} and onnxruntime-web{version} (wasm), "
                    f"{site.bytes / 1e6:.1f} MB"
                )
                if site.missing:
                    note(f"warning: left off the page, their files missing: {', '.join(site.missing)}")
                for refused in site.refused:
                    note(f"warning: left off the page, {refused}")
                for name in site.detectors:  # put on the page without a word (trial 95)
                    note(
                        f"{name} is an anomaly detector: the page shows its reconstruction only, not its score or "
                        "map (aetool detect --heatmaps DIR draws them)"
                    )
            if httpd is None:
                shown = shlex.quote(output)  # a folder with a space in its name, pasted as it is printed
                note(
                    f"serve it over HTTP, e.g. aetool web -o {shown} --serve 8000, or python3 -m http.server -d {shown}"
                )
                return
            try:  # the line first inside: a Ctrl-C as soon as it is read stops the server too, not an error
                note(f"serving {_served_at(site_urls(httpd))} (Ctrl-C to stop)")
                httpd.serve_forever()
            except KeyboardInterrupt:  # how a server is stopped: not an error
                note("stopped")
        finally:
            if httpd is not None:
                httpd.server_close()


def _served_at(urls: list[str]) -> str:
    """Where the site is served, in words: the first address, then those of other devices (``web.site_urls``)."""
    return urls[0] if len(urls) == 1 else f"{urls[0]}, from other devices {', '.join(urls[1:])}"


def _image_spec(spec: dict[str, Any], colour_space: str | None) -> str:
    """What images a model takes, in words: ``3 channels (srgb), any size (padded to a multiple of 4 by the image
    commands), polarity as-is (…)`` (and ``, 1 a call (…)`` for a file that fixes its batch). Not "any size
    divisible by 4": that is the graph's, and read as the commands' it had users crop their images (trial 89)."""
    channels, size, polarity = spec["channels"], spec["size"], spec["polarity"]
    kind = f"{channels} channel{'s' if channels > 1 else ''} ({colour_space})"
    multiple = spec["multiple_of"]
    sizes = (
        f"{size[1]}×{size[0]} (width×height) only"
        if size
        else f"any size (padded to a multiple of {multiple} by the image commands)"
        if multiple > 1
        else "any size"
    )
    why = "fed as they are" if polarity == "as-is" else "dark-on-light images are inverted for it"
    batch = f", {spec['batch']} a call (the file fixes its batch)" if spec.get("batch") else ""
    return f"{kind}, {sizes}{batch}, polarity {polarity} ({why})"


def _detector_line(record: object) -> str:
    """What ``info`` says of a file's ``anomaly`` metadata: its score and threshold, or why ``detect`` refuses it."""
    from aetool.runtime.anomaly import AnomalySpec

    try:
        spec = AnomalySpec.from_record(record)
    except ValueError as err:
        return f"✗ metadata 'anomaly': {_shown(err)}"
    if spec.threshold is None:
        return f"score {spec.score}; not calibrated"
    rule = ", ".join(f"{key} {value:g}" for key, value in (spec.rule or {}).items())
    images = spec.calibration.get("images")
    source = f" on {_shown(images)} normal images" if images is not None else ""
    return f"score {spec.score}; anomalous above {spec.threshold:.6g} ({rule}{source})"


def _shown(value: object, limit: int = 200) -> str:
    """A metadata value as a line of text: control characters (a terminal's escape sequences) escaped, and cut
    at ``limit`` characters, since a model file may come from anyone."""
    text = escape_controls(str(value))
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


def _checked_in(record: dict[str, Any]) -> str:
    """The runtimes an export ran the file in, as ``✓ openvino 2026.4.1 (2.1e-07), ✗ opencv 5.0.0 (reason)``."""
    runs = record.get("runtimes")
    if not isinstance(runs, dict):
        return "? (unreadable record)"
    cells = []
    for name, run in runs.items():
        if not isinstance(run, dict):
            continue
        mark = "✓" if run.get("ok") else "✗"
        detail = run.get("error") or (f"{run['max_abs']:.1e}" if isinstance(run.get("max_abs"), float) else "")
        detail = "" if name == "onnxruntime" and run.get("ok") else f" ({detail})" if detail else ""
        cells.append(_shown(f"{mark} {name} {run.get('version') or '?'}{detail}"))
    return ", ".join(cells) + " (against onnxruntime, at export)"


def _size(size: int | None) -> str:
    return "missing" if size is None else f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


def _number(value: object) -> str:
    return f"{value:.5f}" if isinstance(value, (int, float)) else "?"


# ---- torch-side commands: they need the train extra and import torch inside their bodies ----

MODEL_NAMES = (
    f"{', '.join(REPORT_MODELS)} (the report's); dncnn (a denoiser for your own images), denoise (the blind "
    "digit denoiser), anomaly (an anomaly detector)"
)
DataDir = Annotated[
    str | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        show_default=False,
        help="Folder of the four MNIST-style IDX files (or of mnist/ and fashion-mnist/ subfolders). "
        "Default: $AETOOL_DATA_DIR, else download with torchvision.",
    ),
]

RunDataDir = Annotated[
    str | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        show_default=False,
        help="Folder of the run's IDX files (or of mnist/ and fashion-mnist/ subfolders), where they have moved. "
        "Default: $AETOOL_DATA_DIR, else the folder the run was trained on, else download with torchvision.",
    ),
]


def _level_or_none(text: str | None) -> float | None:
    """``--noise`` as one level when it is a plain number, else None (a range or mix, or nothing given)."""
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _known_models() -> tuple[str, ...]:
    """The registry's model names: the registry itself once ``aetool.models`` is loaded (code that imported it may
    have added models), else ``MODELS``, its names spelled out, so that a typo is refused before PyTorch loads."""
    loaded = sys.modules.get("aetool.models")
    return tuple(loaded.REGISTRY) if loaded is not None else MODELS


# The train extra's packages (pyproject.toml) by the module each is imported as
TRAIN_EXTRA = {
    "torch": "torch",
    "torchvision": "torchvision",
    "onnx": "onnx",
    "onnxscript": "onnxscript",
    "onnxconverter-common": "onnxconverter_common",
    "matplotlib": "matplotlib",
    "pytorch-msssim": "pytorch_msssim",
}
TRAIN_INSTALL = "pip install 'aetool[train]', or '.[train]' in a clone"


def _need_train_extra(command: str) -> None:
    """Fail with one line when a package of the train extra is missing (torch installed alone, a distro's
    packages), instead of an ImportError traceback; else size torch's pools."""
    import importlib.util

    missing = [package for package, module in TRAIN_EXTRA.items() if importlib.util.find_spec(module) is None]
    if "torch" in missing:  # the base install: the extra installs the rest with it
        fail(f"aetool {command} needs PyTorch: install the train extra, see the README ({TRAIN_INSTALL})")
    if missing:
        fail(
            f"aetool {command} needs the train extra: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            f"not installed; see the README ({TRAIN_INSTALL})"
        )
    size_torch_threads()


def size_torch_threads() -> int:
    """Size PyTorch's thread pools to the CPUs this process may use (affinity and cgroup quota; PyTorch counts the
    host's), unless ``OMP_NUM_THREADS`` says otherwise (torchrun sets it for its ranks); the intra-op count."""
    import torch

    from aetool.runtime.cpu import usable_cores

    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    cores = usable_cores()
    torch.set_num_threads(cores)
    with suppress(RuntimeError):  # once set, or once parallel work has started, it can no longer change
        torch.set_num_interop_threads(cores)
    return cores


DEFAULT_SOURCES = ("DEFAULT", "DEFAULT_MAP")  # a parameter the user left alone
TRAIN_OPTION = {"noise_mix": "noise"}  # a TrainConfig setting → the train option it comes from, where they differ


def _given_options(ctx: typer.Context) -> set[str]:
    """The parameters of a command given on its command line or through the environment, not left at default."""
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}  # click's ParameterSource, or None
    return {name for name, source in sources.items() if source is not None and source.name not in DEFAULT_SOURCES}


def _resumed_settings(settings: dict[str, Any], run_dir: Path, *, model: str, given: set[str]) -> dict[str, Any]:
    """``settings`` with the run's own value for every setting whose option was not ``given``: ``--resume`` alone
    continues a run as it was started (epochs, data, learning rate…), as its checkpoint records them (the settings
    a resumed run is held to; ``metrics.json`` may be gone or damaged). A folder without a run, or whose recorded
    settings do not read, keeps ``settings`` as they are; starting the run then says what is wrong. ``AetoolError``
    for a run of another model than ``model``: its settings are that model's, and checking them against this one
    named options never given (``--size`` for a conv model resumed in a dense model's run)."""
    from aetool.train import RunFolder, TrainConfig

    folder = RunFolder.at(run_dir)
    try:
        stored = folder.read_checkpoint()["config"] if folder.holds_run() else None
        recorded = TrainConfig.from_dict(stored).to_dict() if stored is not None else {}
    except (AetoolError, ValueError, TypeError):
        return settings
    if recorded and recorded["model"] != model:
        raise AetoolError(
            f"{folder.path} was trained with MODEL {recorded['model']} (now {model}); resume it with its own settings, "
            "or start over with --force"
        )
    if str(recorded.get("device", "")).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():  # a run trained on a GPU resumes on a machine without one: --device auto
            recorded.pop("device")
    return {
        key: value if TRAIN_OPTION.get(key, key) in given else recorded.get(key, value)
        for key, value in settings.items()
    }


@app.command()
def train(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(
            help=f"Model to train: {MODEL_NAMES}.",
            metavar="MODEL",
            show_default=False,
            autocompletion=lambda incomplete: [name for name in _known_models() if name.startswith(incomplete)],
        ),
    ],
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs (default: the model's).", show_default=False)
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Global batch size (default: the model's, 128 for most; dncnn 32).", show_default=False
        ),
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate of Adam (default: the model's).", show_default=False)
    ] = None,
    loss: Annotated[Loss | None, typer.Option(help="The loss (default: the model's).", show_default=False)] = None,
    l1: Annotated[
        float | None, typer.Option(help="L1 weight on the code's activations (sparse: 0.01).", show_default=False)
    ] = None,
    noise: Annotated[
        str | None,
        typer.Option(
            metavar="LEVEL|RANGE|MIX",
            help="Train on noisy inputs (the model's default: denoise-dense 0.5, dncnn 0.098 (σ 25 of 255), denoise "
            "a blind mix): a level of --noise-kind (0.5), a range drawn per image (0:0.6), or several kinds, each a "
            "level or range, one drawn per image (gaussian=0:0.6, salt-pepper=0:0.3, mask=0:0.25), @WEIGHT after one "
            "to draw it more or less often (gaussian=0@0.1 adds clean images a tenth as often as a term of weight 1).",
            show_default=False,
        ),
    ] = None,
    noise_kind: Annotated[NoiseKind, typer.Option(help="Kind of training noise.")] = NoiseKind.gaussian,
    components: Annotated[
        int | None, typer.Option(min=1, help="PCA components (default: 30).", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of weights, batch order and noise.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dataset: Annotated[
        Dataset | None,
        typer.Option(
            help="mnist or fashion-mnist (IDX files); images with --data. \\[default: mnist]", show_default=False
        ),
    ] = None,
    data_dir: DataDir = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Train on your own images: a folder (searched recursively; subfolder names are labels) or a glob, "
            "in every format Pillow reads, grey or colour.",
            metavar="FOLDER|GLOB",
            show_default=False,
        ),
    ] = None,
    val: Annotated[
        float | None,
        typer.Option(
            help="Fraction of --data held out for validation, drawn with --seed. "
            "\\[default: 0.1; 0.2 with --classes; at least one image]",
            show_default=False,
        ),
    ] = None,
    val_data: Annotated[
        str | None,
        typer.Option(
            help="Validation images as a folder or glob instead of --val.", metavar="FOLDER|GLOB", show_default=False
        ),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(
            metavar="HxW",
            help="Dense models (one fixed size): resize every image to HxW. Default: the images' size when they all "
            "share one (refused, naming the sizes found, when they differ); 28x28 for IDX data.",
            show_default=False,
        ),
    ] = None,
    patch: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Convolutional models (any size): train on random N×N crops (scored on whole images). Default: "
            "whole images, when they all share a size.",
            show_default=False,
        ),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option(
            help="1 (grey) or 3 (colour). Default: 3 when any training image is in colour, else 1; 3 on grey images "
            "replicates them.",
            show_default=False,
        ),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(
            metavar="LABELS",
            help="One-class training for anomaly detection: only these classes, separated by commas (digits of IDX "
            "data, subfolder names of --data); a --val fraction of them (0.2) is held out, and the run ends with a "
            "detector calibrated on it (see aetool calibrate).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Use only the first N train and N test images.", show_default=False)
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Run folder (default: runs/MODEL).", metavar="DIR", show_default=False),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run in the run folder from its last epoch, with its own settings for every option "
            "left out."
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="Start over even if the run folder holds a run.")] = False,
    export: Annotated[bool, typer.Option(help="Export a verified model.onnx into the run folder at the end.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    augment: Annotated[
        bool | None,
        typer.Option(
            "--augment/--no-augment",
            help="Flip and rotate each training image or patch (--patch) by one of the 8 symmetries of the square "
            "(4 for an oblong one). Default: the model's (dncnn: on).",
            show_default=False,
        ),
    ] = None,
    allow_trivial: Annotated[
        bool,
        typer.Option(
            "--allow-trivial",
            help="Export and exit 0 even when the model does not beat a trivial output (all black, the mean training "
            "image, the noisy input itself) by 10 % (default: say so and exit 3 without exporting).",
        ),
    ] = False,
    out: Annotated[str | None, typer.Option("--out", hidden=True)] = None,  # round 1's name of --output
) -> None:
    """Train a model of the report; the run folder gets metrics.json, checkpoint.pt and model.onnx (a calibrated
    anomaly detector for one-class runs and the anomaly model)."""
    known = _known_models()
    if model not in known:  # refused before torch loads (seconds), as are the options parsed without it below
        fail(f"unknown model {model!r}; known models: {', '.join(known)}")
    with reporting():
        from aetool.runtime.files import check_exists, check_folder, full_path
        from aetool.runtime.images import parse_size
        from aetool.train.settings import check_settings

        settings: dict[str, Any] = {
            "data": data,
            "val": val,
            "val_data": val_data,
            "size": parse_size(size, option="--size"),
            "patch": patch,
            "channels": channels,
            "classes": classes,  # TrainConfig parses 1,7 (runtime.anomaly.parse_classes)
            "augment": augment,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "loss": loss and loss.value,
            "l1": l1,
            "noise": _level_or_none(noise),
            "noise_mix": noise if noise is not None and _level_or_none(noise) is None else None,
            "noise_kind": noise_kind.value,
            "components": components,
            "seed": seed,
            "device": device,
            "dataset": dataset.value if dataset else "",
            "data_dir": data_dir,
            "limit": limit,
        }
        try:  # before PyTorch loads (5-8 s); a resumed run's options are checked with the run's own settings
            if not resume:
                check_settings(settings)
        except ValueError as err:
            fail(str(err))
        run_dir = Path(_alias(output, out, "--output", "--out", default=str(Path("runs") / model)))
        if run_dir.is_dir() or not run_dir.exists():  # a file there: said by the run folder itself
            check_folder(run_dir)  # a read-only place said now, not once the data were decoded (trial 85)
        for option, source in (("--data", data), ("--val-data", val_data)):
            if source and not resume:  # a mistyped path, said in a second, not after PyTorch loaded (trial 85)
                full = full_path(source, named=option)  # as TrainConfig records it
                check_exists(full, named=f"{option} {full}")
    _need_train_extra("train")
    with reporting():
        from aetool.export import ExportOptions, export_run
        from aetool.export.detector import CalibrationOptions, calibrate_run
        from aetool.export.exporter import holds_detector
        from aetool.export.metadata import created
        from aetool.train import RunFolder, TrainConfig
        from aetool.train import train as run_training
        from aetool.train.loop import best_baseline

        if resume:
            settings = _resumed_settings(settings, run_dir, model=model, given=_given_options(ctx))
        try:
            config = TrainConfig(model, **settings)
        except KeyError as err:
            fail(str(err.args[0]) if err.args else str(err))
        except ValueError as err:
            fail(str(err))
        from aetool.runtime.noise import scale_note

        if said := scale_note(config.noise_spec):
            note(f"warning: {said}")
        if export:
            created()  # a $SOURCE_DATE_EPOCH the export cannot take is refused before the training
        resumed = resume and RunFolder(run_dir).holds_run()  # --resume on no run trains a new one, as it says
        result = run_training(config, run_dir=run_dir, resume=resume, force=force, progress=_bar(quiet), echo=note)
        if not result.is_main:
            return
        epochs = result.history[-1]["epoch"]
        recorded = RunFolder(result.run_dir).recorded_seconds() if resumed else None  # not this resume's alone
        spent = f"{recorded:.0f} s (summed over its resumes)" if recorded is not None else f"{result.seconds:.0f} s"
        trivial = best_baseline(result.baselines)
        beside = f" ({trivial})" if trivial else ""
        note(
            f"{model}: test MSE {result.test_mse:.5f}{beside} after {epochs} epoch{'s' * (epochs != 1)} in {spent} "
            f"→ {result.run_dir}"
        )
        detector = config.ends_in_detector
        command = "calibrate" if detector else "export"
        if result.trivial and not allow_trivial:
            kept = f"the run stays in {result.run_dir}"
            raise NotLearned(
                f"{model}: {result.trivial}; "
                + (
                    f"not exported ({kept}; aetool {command} {result.run_dir} exports it anyway)"
                    if export
                    else f"{kept} (--resume --allow-trivial accepts it)"
                )
            )
        folder = RunFolder(result.run_dir)
        current = export and resume and folder.export_is_current()  # a finished run resumed: its files are its own
        if current and (not detector or holds_detector(folder.model_file)):  # a plain export is not a detector's
            note(f"{folder.model_file} was exported from the run's last epoch: nothing to export")
        elif export:
            try:
                if detector:
                    calibrate_run(result.run_dir, options=CalibrationOptions(data_dir=config.data_dir), echo=note)
                else:
                    options = ExportOptions(data_dir=config.data_dir)  # the run's new model replaces any file there
                    export_run(result.run_dir, options=options, over_detector=True, echo=note)
            except KeyboardInterrupt:
                raise Interrupted(
                    f"interrupted while exporting; the run is complete, export it with: aetool {command} {result.run_dir}"
                ) from None
            except ContractError as err:  # the model's code must change: exporting again cannot help
                raise ContractError(f"{err}; the run stays in {result.run_dir}") from None
            except AetoolError as err:  # an option the message names is one of that command's
                raise type(err)(f"{err} (the run is complete; go on with: aetool {command} {result.run_dir})") from None


@app.command("export")
def export_command(
    run: Annotated[Path, typer.Argument(help="Run folder (or its checkpoint.pt).", metavar="RUN", show_default=False)],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="ONNX file (default: RUN/model.onnx).", metavar="FILE", show_default=False),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            help="Also write NAME.int8.onnx (dynamic for dense, static QDQ for conv); without it, one an earlier "
            "export left is removed, as it no longer matches the model."
        ),
    ] = False,
    fp16: Annotated[bool, typer.Option(help="Also write NAME.fp16.onnx (the same removal without it).")] = False,
    data_dir: RunDataDir = None,
    max_mse_rise: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Refuse a variant whose test MSE rises more than this fraction; then nothing is written, the fp32 "
            "file neither.",
        ),
    ] = 0.10,
    atol: Annotated[
        float, typer.Option(min=0.0, help="Largest allowed |torch - onnxruntime| of the fp32 file.")
    ] = 1e-5,
    target: Annotated[
        Target | None,
        typer.Option(
            help="portable: only operators that onnxruntime, onnxruntime-web, OpenVINO, OpenCV DNN and the ONNX "
            "reference all run; onnxruntime: the graph onnxruntime runs fastest (for the unpooling models 1.1-1.3× "
            "faster at batch 256, but not loadable by OpenVINO or OpenCV). \\[default: portable]",
            show_default=False,
        ),
    ] = None,
    anomaly: Annotated[
        bool,
        typer.Option(
            "--anomaly",
            help="Write an anomaly detector, calibrated on the run's held-out images at a false-positive rate of "
            "0.01 (aetool calibrate for other images and rules).",
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Export a trained run to ONNX, verified against PyTorch (and in every runtime installed here); nothing is
    written unless parity holds."""
    _need_train_extra("export")
    with reporting():
        from aetool.export import ExportOptions, export_run
        from aetool.export.detector import CalibrationOptions, calibrate_run
        from aetool.export.exporter import DEFAULT_TARGET

        precisions = tuple(name for name, wanted in (("fp16", fp16), ("int8", int8)) if wanted)
        chosen = {"target": target.value} if target else {}
        if anomaly and precisions:
            raise AetoolError(f"a detector is written in fp32 only; leave out --{' and --'.join(precisions)}")
        if anomaly:
            calibration = CalibrationOptions(data_dir=data_dir, atol=atol, target=chosen.get("target", DEFAULT_TARGET))
            result = calibrate_run(run, out=output, options=calibration, echo=note).export
        else:
            options = ExportOptions(
                atol=atol, precisions=precisions, max_mse_rise=max_mse_rise, data_dir=data_dir, **chosen
            )
            result = export_run(run, out=output, options=options, echo=note)
        if as_json:
            emit(json.dumps(result.to_dict()))


@app.command()
def calibrate(
    run: Annotated[Path, typer.Argument(help="Run folder (or its checkpoint.pt).", metavar="RUN", show_default=False)],
    data: Annotated[
        str | None,
        typer.Option(
            help="Normal images to calibrate on (a folder, searched recursively, or a glob), none of them trained on. "
            "Default: the run's held-out images (20 % of a one-class run's; a folder run's validation images; an "
            "IDX run's test split).",
            metavar="FOLDER|GLOB",
            show_default=False,
        ),
    ] = None,
    fpr: Annotated[
        float | None,
        typer.Option(
            help="False-positive rate the threshold allows on normal images: the ceil((n + 1)(1 - FPR))-th smallest of "
            "the n calibration scores (split conformal), so a new normal image scores above it with probability at "
            "most FPR. \\[default: 0.01]",
            show_default=False,
        ),
    ] = None,
    quantile: Annotated[
        float | None,
        typer.Option(
            help="Or the threshold as this quantile of the normal scores, numpy's linear interpolation (slightly "
            "below the --fpr 0.01 threshold for 0.99).",
            show_default=False,
        ),
    ] = None,
    score: Annotated[
        str | None,
        typer.Option(
            metavar="PARTS",
            help="The score's components, joined by +, each standardised on the normal images: mse, ssim (1 - SSIM), "
            "smax (max of the smoothed error map), wmse (per-pixel weighted MSE). Default: ssim+smax+wmse, or "
            "ssim+smax for models of any size.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="ONNX file (default: RUN/model.onnx).", metavar="FILE", show_default=False),
    ] = None,
    data_dir: RunDataDir = None,
    atol: Annotated[float, typer.Option(min=0, help="Largest allowed |torch - onnxruntime| of the scores.")] = 1e-5,
    target: Annotated[
        Target | None,
        typer.Option(help="The export target, as for aetool export. \\[default: portable]", show_default=False),
    ] = None,
    as_json: Json = False,
) -> None:
    """Make a trained run an anomaly detector: one ONNX file that outputs a score and an anomaly map per image and
    holds the threshold, set on normal images, verified against PyTorch and the numpy runtime."""
    _need_train_extra("calibrate")
    with reporting():
        from aetool.export.detector import CalibrationOptions, calibrate_run
        from aetool.export.exporter import DEFAULT_TARGET
        from aetool.runtime.anomaly import parse_score

        try:
            options = CalibrationOptions(
                fpr=fpr,
                quantile=quantile,
                score=parse_score(score) if score is not None else None,
                data=data,
                data_dir=data_dir,
                atol=atol,
                target=target.value if target else DEFAULT_TARGET,
            )
        except ValueError as err:
            fail(str(err))
        result = calibrate_run(run, out=output, options=options, echo=note)
        if as_json:
            emit(json.dumps(result.to_dict()))


@app.command()
def bench(
    model: ModelOption = "denoise",
    batch_sizes: Annotated[
        str, typer.Option(help="Batch sizes to time, comma-separated: 1 gives latency, 256 throughput.", metavar="N,N")
    ] = "1,256",
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="CPU threads for onnxruntime and PyTorch (default: the cores this process may use).",
            show_default=False,
        ),
    ] = None,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls per backend and batch size.")] = 10,
    repeats: Annotated[int, typer.Option(min=1, help="Timed rounds; the backends alternate within each.")] = 5,
    seconds: Annotated[
        float, typer.Option(min=0, help="Timed seconds per backend and batch size, all rounds together.")
    ] = 1.0,
    size: Annotated[
        str | None, typer.Option(metavar="HxW", help="Image size for conv models (default: 28x28).", show_default=False)
    ] = None,
    compare_torch: Annotated[
        Path | None,
        typer.Option(
            metavar="RUN",
            help="Run folder of the same model: time PyTorch eager beside onnxruntime (train extra).",
            show_default=False,
        ),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            metavar="RUNTIME",
            help="Time the same file in another runtime beside onnxruntime: openvino (check extra).",
            show_default=False,
        ),
    ] = None,
    provider: Providers = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            callback=_seconds,
            metavar="SECONDS",
            help="Stop the first call, made before timing, if it runs longer (exit 124): a model that never finishes "
            "is caught there; the timed calls run unchecked. Default: no limit.",
            show_default=False,
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Latency and throughput of a model in onnxruntime on random images, optionally against PyTorch eager and
    OpenVINO."""
    if compare_torch is not None:
        _need_train_extra("bench --compare-torch")
    with reporting(results=True):
        from aetool import bench as benchmark
        from aetool.runtime.cpu import usable_cores
        from aetool.runtime.images import parse_size

        threads = threads or usable_cores()
        plan = benchmark.Plan(warmup=warmup, repeats=repeats, seconds=seconds)
        sizes, image_size = benchmark.parse_batch_sizes(batch_sizes), parse_size(size)
        loaded = _load(model, provider, threads, timeout)
        eager = benchmark.TorchEager(compare_torch, threads) if compare_torch is not None else None
        peer = benchmark.load_peer(compare, loaded.path, threads) if compare is not None else None
        summary = benchmark.run(
            loaded, threads=threads, batch_sizes=sizes, size=image_size, plan=plan, eager=eager, peer=peer
        )
        if as_json:
            emit(json.dumps(summary.to_dict()))
            return
        for line in _bench_table(summary):
            emit(line)
        if summary.peer_error:
            note(f"{summary.peer} {summary.peer_version} cannot run {Path(summary.file).name}: {summary.peer_error}")
        before, after = summary.load_average
        if before is not None and after is not None:
            line = (
                f"load average {before:.2f} before and {after:.2f} after timing, on {summary.cores} core"
                f"{'s' * (summary.cores != 1)} (this run adds up to {summary.threads})"
            )
            if before >= BUSY_LOAD:  # other work ran as the timing began
                pytorch = ", PyTorch's most," if summary.torch else ""
                line += f"; other work was running, which makes the times{pytorch} unreliable"
            note(line)


def _bench_table(summary: BenchSummary) -> list[str]:
    """``aetool bench`` for people: a line on the setting, then a row per batch size."""
    height, width = summary.size
    versus = f" vs torch {summary.torch} eager" if summary.torch else ""
    peer = summary.peer if summary.peer and not summary.peer_error else None
    versus += f" vs {peer} {summary.peer_version}" if peer else ""
    flags = f" ({' '.join(summary.cpu_flags)})" if summary.cpu_flags else ""
    lines = [
        f"{Path(summary.file).name} ({summary.model}, {summary.precision or '?'}) on onnxruntime "
        f"{summary.onnxruntime} {', '.join(summary.providers)}, {summary.threads} thread{'s' * (summary.threads != 1)}{versus}; "
        f"{height}×{width} (height×width) random images; median (p95) over all timed batches after {summary.warmup} warm-up batch{'es' * (summary.warmup != 1)}, "
        f"{summary.repeats} round{'s' * (summary.repeats != 1)}; images/s and GFLOP/s over the mean batch time; "
        + ("speedup: the other's median over onnxruntime's (above 1: aetool faster); " if summary.torch or peer else "")
        + f"{summary.cpu}{flags}, aetool {summary.aetool}"
    ]
    header = f"{'batch':>6} {'ort ms (p95)':>18} {'images/s':>10}"
    header += f" {'GFLOP/s':>8}" if summary.flops_per_image else ""
    header += f" {'torch ms (p95)':>18} {'speedup':>8}" if summary.torch else ""
    lines.append(header + (f" {peer + ' ms (p95)':>21} {'speedup':>8}" if peer else ""))
    for row in summary.results:
        sustained = row.sustained_images_per_s
        rate = f"{sustained:,.0f}" if sustained >= 100 else f"{sustained:.3g}"
        line = f"{row.batch_size:>6} {_ms(row.ort_ms, row.ort_p95_ms):>18} {rate:>10}"
        line += f" {row.sustained_gflop_per_s:>8.1f}" if row.sustained_gflop_per_s is not None else ""
        if row.torch_ms is not None and row.torch_p95_ms is not None:
            line += f" {_ms(row.torch_ms, row.torch_p95_ms):>18} {row.speedup_vs_torch:>7.2f}×"
        if row.peer_ms is not None and row.peer_p95_ms is not None:
            line += f" {_ms(row.peer_ms, row.peer_p95_ms):>21} {row.speedup_vs_peer:>7.2f}×"
        lines.append(line)
    return lines


def _ms(median: float, p95: float) -> str:
    return f"{median:.3f} ({p95:.3f})"


@app.command()
def report(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Folder for index.html, README.md, figures/ and numbers.json (oneclass.json with --anomaly).",
            metavar="DIR",
        ),
    ] = Path("report"),
    runs: Annotated[
        Path | None,
        typer.Option(
            help="Folder of run folders: complete runs are reused, missing ones "
            "trained (default: runs/, or runs/quick/ with --quick).",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    quick: Annotated[bool, typer.Option(help="A few-minute demo: 20 epochs on 2,000 digits, every section.")] = False,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Epochs for models trained now (default: each model's).", show_default=False),
    ] = None,
    retrain: Annotated[
        bool,
        typer.Option(
            help="Train over runs in --runs that were trained with other settings (default: refuse, naming them)."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    anomaly: Annotated[
        bool,
        typer.Option(
            "--anomaly",
            help="Build the one-class anomaly page instead (into report/anomaly/ by default; runs in runs/oneclass/): "
            "a detector per class of MNIST and Fashion-MNIST, AUROC beside the published numbers, score histograms "
            "and heatmaps. --data-dir holds mnist/ and fashion-mnist/; --quick: classes 0 and 1, 2 epochs.",
        ),
    ] = False,
) -> None:
    """Reproduce every experiment of the report: figures, tables and our numbers beside the report's."""
    _need_train_extra("report")
    if anomaly and output == Path("report"):
        output = output / "anomaly"
    if runs is None:
        runs = Path("runs/quick" if quick else "runs") / ("oneclass" if anomaly else "")
    with reporting():
        from aetool.runtime.files import check_folder

        check_folder(output)  # before the data is fetched and the runs trained, whose page comes last
        check_folder(runs, named="--runs")
    if anomaly:
        with reporting():
            from aetool.report.oneclass import build_oneclass_report

            try:
                index, _ = build_oneclass_report(
                    output,
                    data_dir=data_dir,
                    runs=runs,
                    classes=(0, 1) if quick else tuple(range(10)),
                    epochs=epochs or (2 if quick else None),
                    retrain=retrain,
                    echo=note,
                )
            except DataError as err:
                raise DataError(
                    f"{err} (report --anomaly is the one-class benchmark of MNIST and Fashion-MNIST; for your own "
                    "images: aetool evaluate --anomaly --data or --normal/--anomalous)"
                ) from None
            note(f"open {index}")
        return
    with reporting():
        from aetool.report import build_report

        index = build_report(
            output,
            runs=runs,
            data_dir=data_dir,
            quick=quick,
            epochs=epochs,
            retrain=retrain,
            echo=note,
            progress=_bar(quiet),
        )
        note(f"open {index}")


BROKEN_PIPE = 141  # 128 + SIGPIPE: what the shell reports for a filter stopped by a closed pipe


def _closed_pipe() -> NoReturn:
    """Stop quietly, as a Unix filter does when the reader of its output goes away (``aetool … --json | head``):
    no message, exit 141; what was written stays whole, nothing more is written. Standard output is pointed at
    /dev/null first, so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    sys.exit(BROKEN_PIPE)


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
    as set and leave the thread count to PyTorch's guess (see ``size_torch_threads``)."""
    value = os.environ.get("OMP_NUM_THREADS")
    if value is not None and not re.fullmatch(r"\s*[1-9]\d*(\s*,\s*[1-9]\d*)*\s*", value):
        del os.environ["OMP_NUM_THREADS"]
        _say(f"aetool: warning: OMP_NUM_THREADS={escape_controls(repr(value))} is not a number of threads; ignored")


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
    (caught by :func:`_terminate`, or by aetool while it held or deferred stop signals, ``files.STOPPED_BY``), else
    Ctrl-C's 130."""
    try:
        from aetool.runtime import files
    except ImportError:  # a stop signal broke numpy's first import (see _say): only _terminate's record is left
        held: set[int] = set()
    else:
        held = set(files.STOPPED_BY)
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


def _unwrap_help(commands: list[typer.models.CommandInfo]) -> None:
    """Make each command's docstring, the help Typer shows, one paragraph without the source's line breaks: rich
    kept them, so ``aetool --help`` broke lines early inside sentences ("… and" / "heatmaps on request"; trial 85).
    None of them has a second paragraph."""
    for command in commands:
        if command.callback is not None and command.callback.__doc__:
            command.callback.__doc__ = " ".join(command.callback.__doc__.split())


_unwrap_help(app.registered_commands)


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
    try:
        code = app(standalone_mode=False, prog_name="aetool")  # also under python -m: completion binds to aetool
    except SystemExit as stop:  # Click ends a closed pipe outside a command's body (--help | head) with exit 1
        if isinstance(stop.__context__, BrokenPipeError):
            _closed_pipe()
        raise
    except KeyboardInterrupt:
        error("interrupted")
        sys.exit(_interrupted_code())
    except Exception as err:  # the parser's usage errors carry a message and an exit code
        # Typer's parser is Click (vendored since Typer 0.25): its exceptions are told apart by name and shape, so
        # every Typer the requirement admits is handled alike.
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
            raise
        if type(err).__name__ == "NoArgsIsHelpError":  # plain `aetool`: the help, as Typer shows it
            usage.show()
            sys.exit(usage.exit_code)
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
        error(f"{message}{hint}")
        sys.exit(usage.exit_code)
    if code == Interrupted.exit_code and not _SAID:  # Ctrl-C outside a command's body, which Typer ends silently
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
