"""The Typer application and its global options (``--version``, ``--max-megapixels``)."""

from __future__ import annotations

import shutil
from typing import Annotated

import typer

from aetool import __version__

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


def unwrap_help(commands: list[typer.models.CommandInfo]) -> None:
    """Make each command's docstring, the help Typer shows, one paragraph without the source's line breaks: rich
    kept them, so ``aetool --help`` broke lines early inside sentences ("… and" / "heatmaps on request"; trial 85).
    None of them has a second paragraph."""
    for command in commands:
        if command.callback is not None and command.callback.__doc__:
            command.callback.__doc__ = " ".join(command.callback.__doc__.split())
