"""The run folder: ``checkpoint.pt`` (weights, config, epoch, optimizer), ``metrics.json`` and the exported files.

:class:`RunFolder` is the one owner of a run's files: their paths, reading them back safely, whether the run is
finished and its export current, and the rules for starting over, resuming and reusing a run, side by side. The
training loop, the CLI, the exporter, the report, ``scripts/build_bundled.py`` and the benchmarks all go through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aetool.errors import AetoolError, first_line
from aetool.models import Autoencoder, build_model
from aetool.runtime import contract
from aetool.runtime.files import write_files
from aetool.train.config import TrainConfig

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
ONNX = "model.onnx"
# What must match for a resumed run to end at the uninterrupted run's weights: batches, noise and the learning-rate
# schedule are functions of these.
RESUMED_SETTINGS = (
    "model",
    "data",
    "val",
    "val_data",
    "size",
    "patch",
    "channels",
    "epochs",
    "batch_size",
    "lr",
    "loss",
    "l1",
    "noise",
    "noise_kind",
    "noise_mix",
    "components",
    "seed",
    "dataset",
    "limit",
    "classes",
)
# What a run learns (model and objective): a stored run stands in for a wanted one when these are equal and it was
# trained at least as long on at least as many images. How it was optimised (lr, batch size, seed) may differ.
REUSED_SETTINGS = (
    "model",
    "dataset",
    "data",
    "size",
    "channels",
    "loss",
    "l1",
    "noise",
    "noise_kind",
    "noise_mix",
    "components",
    "classes",
)


@dataclass
class Run:
    """A trained model read back from its run folder: the network (eval mode, CPU), its config and history."""

    folder: RunFolder
    net: Autoencoder
    config: TrainConfig
    epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def test_mse(self) -> float | None:
        """The test MSE after the last epoch (``None`` before the first)."""
        return self.history[-1]["test_mse"] if self.history else None


@dataclass(frozen=True)
class RunFolder:
    """The folder of one training run, and every rule about its files."""

    path: Path

    @classmethod
    def at(cls, path: str | Path) -> RunFolder:
        """The run folder ``path`` names, or the one holding it when it names the folder's ``checkpoint.pt``."""
        path = Path(path)
        return cls(path.parent if path.name == CHECKPOINT else path)

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def model_file(self) -> Path:
        """Where ``aetool train`` and ``aetool export`` write the verified ONNX file by default."""
        return self.path / ONNX

    def holds_run(self) -> bool:
        """Whether a checkpoint is there, i.e. at least one epoch (or the PCA fit) was saved."""
        return self.checkpoint.is_file()

    # ---- reading back ----

    def read_checkpoint(self) -> dict[str, Any]:
        """The checkpoint, read safely (``weights_only=True``); raises ``AetoolError`` for a missing or foreign file."""
        path = self.checkpoint
        if self.path.is_file():
            raise AetoolError(f"cannot use {self.path} as a run folder: it is a file")
        if not path.is_file():
            raise AetoolError(f"no checkpoint at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch.load raises many kinds on foreign bytes (KeyError on a text file)
            raise AetoolError(f"{path} is not a readable checkpoint: {first_line(err)[:160]}") from None
        if not isinstance(state, dict) or not {"model", "config", "epoch"} <= state.keys():
            raise AetoolError(f"{path} is not an aetool checkpoint (it lacks model, config and epoch)")
        if not isinstance(state["model"], dict) or not isinstance(state.get("optimizer"), dict | None):
            raise AetoolError(f"{path} is not an aetool checkpoint (its weights or optimizer state are not dicts)")
        if not isinstance(state["epoch"], int) or isinstance(state["epoch"], bool) or state["epoch"] < 0:
            raise AetoolError(f"{path} is not an aetool checkpoint (its epoch is {state['epoch']!r})")
        return state

    def read_metrics(self) -> dict[str, Any]:
        """``metrics.json`` (``{"config": …, "history": [...]}``); an empty history when there is none yet.

        Raises ``AetoolError`` when the file is not JSON of that shape.
        """
        path = self.metrics
        if not path.is_file():
            return {"history": []}
        try:
            metrics = json.loads(path.read_text())
        except (ValueError, OSError) as err:
            raise AetoolError(f"{path} is not readable JSON: {err}") from None
        history = metrics.get("history", []) if isinstance(metrics, dict) else None
        if not isinstance(history, list) or not all(
            isinstance(r, dict) and isinstance(r.get("epoch"), int) for r in history
        ):
            raise AetoolError(f'{path} is not an aetool metrics file (it needs a "history" list of epoch records)')
        return metrics

    def stored_config(self) -> dict[str, Any] | None:
        """The settings ``metrics.json`` records, or ``None`` when it records none."""
        config = self.read_metrics().get("config")
        return config if isinstance(config, dict) else None

    def load(self) -> Run:
        """The trained network (eval mode, CPU), config and history; raises ``AetoolError`` for foreign files."""
        state = self.read_checkpoint()
        try:
            config = TrainConfig.from_dict(state["config"])
            net = build_model(config.model, **config.arch)
            net.load_state_dict(state["model"])
        except (TypeError, ValueError, KeyError, RuntimeError) as err:
            raise AetoolError(
                f"{self.checkpoint}: checkpoint does not match an aetool model: {first_line(err)}"
            ) from None
        return Run(self, net.eval(), config, state["epoch"], self.read_metrics()["history"])

    def is_finished(self) -> bool:
        """Whether the last recorded epoch is the last the run's config asks for."""
        metrics = self.read_metrics()
        config, history = metrics.get("config"), metrics["history"]
        return isinstance(config, dict) and bool(history) and history[-1]["epoch"] == config.get("epochs")

    # ---- exports ----

    def exported_files(self, model_file: Path | None = None) -> list[Path]:
        """Every file an export of this run may write: the model, its decoder and its variants."""
        model_file = model_file or self.model_file
        variants = [contract.variant_path(model_file, precision) for precision in contract.PRECISIONS]
        return [model_file, contract.decoder_path(model_file), *variants]

    def export_is_current(self, model_file: Path | None = None, precisions: tuple[str, ...] = ()) -> bool:
        """Whether the model file (and the ``precisions`` variants) exist and were written after the checkpoint."""
        model_file = model_file or self.model_file
        wanted = [model_file, *(contract.variant_path(model_file, p) for p in precisions)]
        if not self.holds_run():
            return False
        trained = self.checkpoint.stat().st_mtime
        return all(path.is_file() and path.stat().st_mtime >= trained for path in wanted)

    def remove_exports(self) -> None:
        """Delete the exported files of an older training (the run ``--force`` starts over)."""
        for path in self.exported_files():
            path.unlink(missing_ok=True)

    # ---- writing ----

    def save(
        self,
        *,
        net: nn.Module,
        optimizer: torch.optim.Optimizer | None,
        config: TrainConfig,
        epoch: int,
        history: list[dict[str, Any]],
        baselines: dict[str, float] | None = None,
    ) -> None:
        """Write checkpoint and metrics together, atomically (a reader sees the old pair or the new one).

        ``baselines`` (the test MSE of trivial outputs, see the training loop) are recorded in metrics.json.
        """
        state = {
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "config": config.to_dict(),
            "epoch": epoch,
        }
        record: dict[str, Any] = {"config": config.to_dict(), "history": history}
        if baselines is not None:
            record["baselines"] = baselines
        metrics = json.dumps(record, indent=2)
        write_files({self.checkpoint: lambda tmp: torch.save(state, tmp), self.metrics: metrics.encode()})

    def create(self) -> None:
        """Make the folder; raises ``AetoolError`` when a file is in the way."""
        if self.path.exists() and not self.path.is_dir():
            raise AetoolError(f"cannot use {self.path} as the run folder: it is a file")
        self.path.mkdir(parents=True, exist_ok=True)

    # ---- the rules: starting over, resuming, reusing ----

    def check_start(self, *, resume: bool, force: bool) -> dict[str, Any] | None:
        """The checkpoint to resume from (``None``: start afresh), once starting a run here is allowed.

        A run in the folder is kept unless ``force`` (start over) or ``resume`` (continue it) is given; both at
        once are refused. Raises ``AetoolError``. A resumed run must also pass :meth:`check_resumable`.
        """
        if resume and force:
            raise AetoolError("--resume continues the run and --force starts it over: choose one")
        if not self.holds_run():
            return None
        if not (resume or force):
            raise AetoolError(f"{self.path} already holds a run; pass --resume to continue it or --force to start over")
        return None if force else self.read_checkpoint()

    def check_resumable(self, state: dict[str, Any], config: TrainConfig) -> None:
        """Refuse (``AetoolError``) to resume the checkpoint ``state`` under settings other than its own."""
        conflicts = self.resume_conflicts(state["config"], config)
        if conflicts:
            raise AetoolError(
                f"{self.path} was trained with {', '.join(conflicts)}; resume it with its own settings, "
                "or start over with --force"
            )

    @staticmethod
    def resume_conflicts(stored: dict[str, Any], config: TrainConfig) -> list[str]:
        """The settings in which ``config`` differs from a stored run's: a resumed run must keep them all."""
        stored, wanted = _normalised(stored), config.to_dict()
        return [
            f"{key} {stored.get(key)!r} (now {wanted[key]!r})"
            for key in RESUMED_SETTINGS
            if stored.get(key) != wanted[key]
        ]

    @staticmethod
    def reuse_shortfalls(stored: dict[str, Any], wanted: TrainConfig) -> list[str]:
        """Why a finished run with the ``stored`` settings cannot stand in for ``wanted`` (empty when it can)."""
        stored, want = _normalised(stored), wanted.to_dict()
        settled_by_data = {key for key in ("size", "channels") if want[key] is None}  # None: whatever the data gives
        reasons = [
            f"{key} {stored.get(key)!r}, not {want[key]!r}"
            for key in REUSED_SETTINGS
            if key not in settled_by_data and stored.get(key) != want[key]
        ]
        if (stored.get("epochs") or 0) < (wanted.epochs or 0):
            reasons.append(f"{stored.get('epochs')} epochs, not {wanted.epochs}")
        if stored.get("limit") is not None and (wanted.limit is None or stored["limit"] < wanted.limit):
            reasons.append(f"{stored['limit']} images, not {wanted.limit or 'all'}")
        return reasons


def _normalised(stored: dict[str, Any]) -> dict[str, Any]:
    """Stored settings as this version's config would hold them (defaults resolved), when they still validate."""
    try:
        return TrainConfig.from_dict(stored).to_dict()
    except (ValueError, TypeError):
        return stored


def load_run(path: str | Path) -> Run:
    """The run in a run folder, or the one a checkpoint file belongs to (see :meth:`RunFolder.load`)."""
    return RunFolder.at(path).load()
