"""Where a run folder keeps its checkpoint, told without PyTorch: ``export`` and ``calibrate`` refuse a RUN that
holds none before PyTorch loads (5-9 s later otherwise; trials 102, 103), in the words ``train.RunFolder`` uses."""

from __future__ import annotations

from pathlib import Path

CHECKPOINT = "checkpoint.pt"


def run_folder(path: Path) -> Path:
    """The run folder ``path`` names: itself, or the folder holding it when it names a ``checkpoint.pt``."""
    return path.parent if path.name == CHECKPOINT else path


def checkpoint_problem(folder: Path) -> str | None:
    """Why the run folder ``folder`` has no checkpoint to read, in one line (a file, the hint naming its run folder
    when it sits in one, as ``calibrate RUN/model.onnx`` does; no ``checkpoint.pt`` in it); None when it has one."""
    if folder.is_file():
        hint = f"; its run folder is {folder.parent}" if (folder.parent / CHECKPOINT).is_file() else ""
        return f"cannot use {folder} as a run folder: it is a file{hint}"
    if not (folder / CHECKPOINT).is_file():
        return f"no checkpoint at {folder / CHECKPOINT}"
    return None
