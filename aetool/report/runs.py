"""The report's run folders: reuse the complete ones, train or export what is missing, and time both.

metrics.json does not record wall time, so the report keeps its own small ``timing.json`` beside each run it
trains; runs trained elsewhere (``aetool train``) are reused as they are, with their time unknown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aetool.errors import AetoolError
from aetool.models import REGISTRY, get_spec
from aetool.train import TrainConfig, train
from aetool.train.run import CHECKPOINT, ONNX, read_metrics

TIMING = "timing.json"
QUICK_EPOCHS = 1
QUICK_LIMIT = 2000  # training (and test) images per model in a quick report
# What a run learns (model and objective): a stored run stands in for a wanted one when these are equal and it was
# trained at least as long (epochs) on at least as many images (limit). How it was optimised (lr, batch size, seed)
# may differ, so a run trained by hand with ``aetool train`` serves the report too.
SETTINGS = ("model", "dataset", "loss", "l1", "noise", "noise_kind", "components")


@dataclass
class ReportRun:
    """One model's run folder as the report uses it."""

    name: str
    path: Path
    config: TrainConfig
    history: list[dict]
    onnx: Path | None  # None when no current export exists: inference then falls back to torch
    train_seconds: float | None = None  # None: trained outside the report, time unknown
    export_seconds: float | None = None
    trained_now: bool = False


def wanted_config(name: str, data_dir: str | None, quick: bool, epochs: int | None) -> TrainConfig:
    """The registry's settings for ``name``, shortened for a quick report or to ``epochs`` when asked."""
    overrides: dict = {"data_dir": data_dir}
    if quick:
        overrides.update(epochs=QUICK_EPOCHS, limit=QUICK_LIMIT)
    if epochs is not None:
        overrides["epochs"] = epochs
    if get_spec(name).kind == "pca":
        overrides.pop("epochs", None)  # PCA is fitted in closed form, never trained for epochs
    return TrainConfig.for_model(name, **overrides)


def _shortfalls(stored: dict, wanted: TrainConfig) -> list[str]:
    """Why a finished run with the ``stored`` settings cannot stand in for ``wanted`` (empty when it can)."""
    want = wanted.to_dict()
    reasons = [f"{key} {stored.get(key)!r}, not {want[key]!r}" for key in SETTINGS if stored.get(key) != want[key]]
    if stored.get("epochs", 0) < wanted.epochs:
        reasons.append(f"{stored.get('epochs')} epochs, not {wanted.epochs}")
    if stored.get("limit") is not None and (wanted.limit is None or stored["limit"] < wanted.limit):
        reasons.append(f"{stored['limit']} images, not {wanted.limit or 'all'}")
    return reasons


def _finished(stored: dict) -> bool:
    return bool(stored["history"]) and stored["history"][-1]["epoch"] == stored["config"]["epochs"]


def _plan(run_dir: Path, stored: dict, wanted: TrainConfig) -> tuple[TrainConfig | None, dict, str]:
    """How to get a usable run: the config to train (``None``: reuse the run as it is), ``train``'s options, why."""
    if not (run_dir / CHECKPOINT).is_file():
        return wanted, {}, "no run yet"
    if "config" not in stored:
        return wanted, {"force": True}, "a checkpoint without metrics.json"
    reasons = _shortfalls(stored["config"], wanted)
    if reasons:
        return wanted, {"force": True}, f"trained with other settings ({', '.join(reasons)})"
    if _finished(stored):
        return None, {}, "reusing it"
    last = stored["history"][-1]["epoch"] if stored["history"] else 0
    own = TrainConfig(**{**stored["config"], "data_dir": wanted.data_dir, "device": wanted.device})
    return own, {"resume": True}, f"stopped after epoch {last}; resuming it"


def _current_onnx(run_dir: Path) -> Path | None:
    """model.onnx when it was written after the checkpoint (else it belongs to an older training)."""
    onnx, checkpoint = run_dir / ONNX, run_dir / CHECKPOINT
    if onnx.is_file() and onnx.stat().st_mtime >= checkpoint.stat().st_mtime:
        return onnx
    return None


def _export(run_dir: Path, data_dir: str | None, echo: Callable[[str], None]) -> tuple[Path | None, float]:
    """Export a run; a failed export is reported and leaves the model to torch, the report goes on."""
    from aetool.export import export_run

    started = time.perf_counter()
    try:
        export_run(run_dir, data_dir=data_dir, echo=echo)
    except AetoolError as err:
        echo(f"report: export of {run_dir} failed, its figures use torch: {err}")
        return None, time.perf_counter() - started
    return _current_onnx(run_dir), time.perf_counter() - started


def _read_timing(run_dir: Path) -> dict:
    path = run_dir / TIMING
    return json.loads(path.read_text()) if path.is_file() else {}


def prepare_run(
    name: str, runs: Path, wanted: TrainConfig, *, echo: Callable[[str], None] = print, progress: bool = True
) -> ReportRun:
    """A complete, exported run of ``name`` under ``runs``: reused, resumed, trained or retrained as needed."""
    run_dir = runs / name
    stored = read_metrics(run_dir)
    timing = _read_timing(run_dir)
    trained_now = False
    config, options, why = _plan(run_dir, stored, wanted)
    if config is None:
        echo(f"report: {name}: {why} ({run_dir})")
    else:
        echo(
            f"report: {name}: {why}: training {config.epochs} epochs"
            f"{f' on {config.limit} images' if config.limit else ''}"
        )
        result = train(config, run_dir=run_dir, progress=progress, echo=echo, **options)
        timing, trained_now = {"train_seconds": result.seconds}, True
    onnx = _current_onnx(run_dir)
    if onnx is None:
        onnx, timing["export_seconds"] = _export(run_dir, wanted.data_dir, echo)
    if timing != _read_timing(run_dir):
        (run_dir / TIMING).write_text(json.dumps(timing, indent=2))
    metrics = read_metrics(run_dir)
    return ReportRun(
        name,
        run_dir,
        TrainConfig(**metrics["config"]),
        metrics["history"],
        onnx,
        timing.get("train_seconds"),
        timing.get("export_seconds"),
        trained_now,
    )


def prepare_runs(
    runs: Path,
    data_dir: str | None,
    *,
    quick: bool,
    epochs: int | None,
    retrain: bool = False,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> dict[str, ReportRun]:
    """Every registry model's run, in registry order.

    A run in ``runs`` that was trained with other settings is trained over only with ``retrain``; otherwise the
    report refuses before it trains anything, since that would replace the user's checkpoint.
    """
    wanted = {name: wanted_config(name, data_dir, quick, epochs) for name in REGISTRY}
    if not retrain:
        clashes = []
        for name, config in wanted.items():
            _, options, why = _plan(runs / name, read_metrics(runs / name), config)
            if options.get("force"):
                clashes.append(f"{runs / name}: {why}")
        if clashes:
            raise AetoolError(
                f"the report would train over runs of yours ({'; '.join(clashes)}); pass --retrain to "
                "let it, or --runs to another folder"
            )
    return {name: prepare_run(name, runs, config, echo=echo, progress=progress) for name, config in wanted.items()}
