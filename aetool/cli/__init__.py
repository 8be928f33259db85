"""The ``aetool`` command line: thin commands that parse options, call library functions and print.

Commands import what they need inside their bodies, so ``aetool --help``, ``--version`` and shell completion load
only Typer; torch is imported only by the commands that need it (train, export, report, bench --compare-torch).
Library functions return dataclasses; the rendering of tables and lines for people is here. Exit codes: 0
success, 1 some inputs failed, 2 usage or setup error, 3 a run that did not learn, 124 a model call past --timeout,
130 interrupted, 141 a closed pipe, 143 SIGTERM, 129 SIGHUP (``app.EXIT_CODES``). Messages go to stderr, data to
stdout.
"""

from typer.models import CommandInfo

# importing the command modules registers their commands
from aetool.cli import bench, detect, evaluate, images, inspection, report, training, web  # noqa: F401
from aetool.cli.app import app, unwrap_help
from aetool.cli.process import main

# --help lists the commands in this order: the image commands first, then what reads model files, then PyTorch's
COMMANDS = (
    "denoise",
    "reconstruct",
    "add-noise",
    "detect",
    "evaluate",
    "models",
    "info",
    "check",
    "web",
    "train",
    "export",
    "calibrate",
    "bench",
    "report",
)


def _listed_at(command: CommandInfo) -> int:
    """Where ``command`` is listed in ``--help``: its place in ``COMMANDS``, else after them."""
    name = command.name or getattr(command.callback, "__name__", "")
    return COMMANDS.index(name) if name in COMMANDS else len(COMMANDS)


app.registered_commands.sort(key=_listed_at)
unwrap_help(app.registered_commands)

__all__ = ["COMMANDS", "app", "main"]
