"""Options and arguments shared by several commands, with the parsing they share."""

from __future__ import annotations

import glob
import os
import threading
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from aetool.cli.output import fail
from aetool.errors import AetoolError

if TYPE_CHECKING:
    from aetool.runtime.model import Model


T = TypeVar("T")


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


Inputs = Annotated[
    list[str],
    typer.Argument(help="Image files, folders or globs; - reads standard input.", metavar="IMAGES", show_default=False),
]


Output = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output file for one input (a name with an image format's extension, else a folder is made), else a "
        "folder; an existing output is replaced; - writes standard output. Default: beside each input.",
        metavar="PATH",
        show_default=False,
    ),
]


def complete_model(incomplete: str) -> list[str]:
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
        autocompletion=complete_model,
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


Force = Annotated[
    bool,
    typer.Option("--force", help="Allow an output to overwrite an input file (other existing files are replaced)."),
]


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


def checked_seconds(value: float | None) -> float | None:
    """A timeout option's seconds, from 0.001 up to ``threading.TIMEOUT_MAX`` (about 292 years, the longest wait
    Python's locks take): checked here, not by a range, since Click before 8.2 let NaN through one and Typer 0.29
    calls NaN too large."""
    if value is not None and not 0.001 <= value <= threading.TIMEOUT_MAX:  # NaN fails the comparison too
        raise typer.BadParameter(f"takes 0.001 to {threading.TIMEOUT_MAX:.0f} seconds (about 292 years), got {value:g}")
    return value


def timeout_option(help_text: str) -> Any:
    """A ``--timeout SECONDS`` option (:func:`checked_seconds`) whose help says what it bounds."""
    return typer.Option("--timeout", callback=checked_seconds, metavar="SECONDS", help=help_text, show_default=False)


Timeout = Annotated[
    float | None,
    timeout_option("Stop a model call that runs longer (exit 124): 0.001 up to about 292 years. Default: no limit."),
]


def alias(value: T | None, old: T | None, name: str, old_name: str, *, default: T) -> T:
    """An option given under its name or its hidden round-1 alias; both, and different, is a usage error."""
    if value is not None and old is not None and value != old:
        fail(f"{name} and {old_name} (its old name) disagree; give one")
    return value if value is not None else old if old is not None else default


def load_model(model: str, provider: list[str] | None, threads: int | None, timeout: float | None) -> Model:
    """The model (opened once per process), each of its calls bounded by ``timeout`` seconds."""
    from aetool.runtime import load

    loaded = load(model, providers=provider, threads=threads)
    loaded.timeout = timeout
    return loaded


Classes = Annotated[
    str | None,
    typer.Option(
        metavar="LABELS",
        help="The normal classes, separated by commas: digits of IDX data (3 or 3,5) or subfolder names of --data.",
        show_default=False,
    ),
]


ModelNamed = Annotated[  # the model of info and check, also as -m as the image commands take it
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME|FILE",
        help="The model, as the image commands name it.",
        show_default=False,
        autocompletion=complete_model,
    ),
]


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
