"""Training (needs the ``train`` extra): configuration, data, the one loop, and the run folder.

The names below are imported on first use, so that ``aetool.train.settings`` loads without PyTorch (``aetool
train`` checks its options there before PyTorch loads)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aetool.train.config import TrainConfig
    from aetool.train.loop import TrainResult, train
    from aetool.train.run import Run, RunFolder, load_run

MODULE_OF = {
    "TrainConfig": "config",
    "TrainResult": "loop",
    "train": "loop",
    "Run": "run",
    "RunFolder": "run",
    "load_run": "run",
}
__all__ = ["Run", "RunFolder", "TrainConfig", "TrainResult", "load_run", "train"]


def __getattr__(name: str) -> Any:
    """``aetool.train.train`` and the rest of ``__all__``, from their modules (PEP 562)."""
    if name not in MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{MODULE_OF[name]}"), name)


def __dir__() -> list[str]:
    """The module's names, ``__all__``'s included though they load on first use (PEP 562)."""
    return sorted({*globals(), *__all__})
