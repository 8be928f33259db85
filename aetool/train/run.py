"""The run folder: ``checkpoint.pt`` (weights, config, epoch, optimizer), ``metrics.json`` and ``model.onnx``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aetool.errors import AetoolError, os_reason
from aetool.models import build_model
from aetool.runtime.model import first_line
from aetool.train.config import TrainConfig

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
ONNX = "model.onnx"


def write_atomic(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``, so a reader never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise AetoolError(f"cannot write {path}: {os_reason(err)}") from None
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(
    run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, config: TrainConfig, epoch: int
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "config": config.to_dict(),
        "epoch": epoch,
    }
    write_atomic(run_dir / CHECKPOINT, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``); anything foreign is a one-line error."""
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise AetoolError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many kinds on foreign bytes (KeyError on a text file)
        raise AetoolError(f"{path} is not a readable checkpoint: {first_line(err)[:160]}") from None
    if not isinstance(state, dict) or not {"model", "config", "epoch"} <= state.keys():
        raise AetoolError(f"{path} is not an aetool checkpoint (it lacks model, config and epoch)")
    return state


@dataclass
class Run:
    """A trained model read back from its run folder."""

    path: Path
    model: nn.Module
    config: TrainConfig
    epoch: int
    history: list[dict[str, Any]]

    @property
    def test_mse(self) -> float | None:
        return self.history[-1]["test_mse"] if self.history else None


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / METRICS
    if not path.is_file():
        return {"history": []}
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, OSError) as err:
        raise AetoolError(f"{path} is not readable JSON: {err}") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("history", []), list):
        raise AetoolError(f'{path} is not an aetool metrics file (it needs a "history" list)')
    return metrics


def load_run(run_dir: str | Path) -> Run:
    """Model (eval mode, CPU), config and history of a run folder or a checkpoint file."""
    path = Path(run_dir)
    state = load_checkpoint(path)
    run_dir = path if path.is_dir() else path.parent
    try:
        config = TrainConfig(**state["config"])
        model = build_model(config.model, **config.arch)
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise AetoolError(f"{path}: checkpoint does not match an aetool model: {str(err).splitlines()[0]}") from None
    history = read_metrics(run_dir).get("history", [])
    return Run(run_dir, model.eval(), config, int(state["epoch"]), history)
