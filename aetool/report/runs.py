"""The report's run folders: reuse the complete ones, train or export what is missing, and time both.

The rules (reuse, resume, retrain, is the export current) are :class:`~aetool.train.run.RunFolder`'s; the one-class
page (``oneclass.py``) follows them too. The report keeps a small ``timing.json`` beside each run it trains or
exports, with the SHA-256 of the checkpoint and model file each wall time is for; runs trained or exported elsewhere
(``aetool train``, ``aetool export``, also over a run the report timed) are reused as they are, with their time
unknown.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aetool.errors import AetoolError
from aetool.models import REPORT_MODELS, get_spec
from aetool.runtime import contract
from aetool.runtime.files import atomic_write
from aetool.train import RunFolder, TrainConfig, train
from aetool.train.loop import trivial_line
from aetool.train.run import is_seconds

TIMING = "timing.json"
# A quick report trains each model for 20 epochs on 2,000 digits (320 optimizer steps): every model then beats the
# mean training image, which the shallow dense AEs did not after 1 epoch (16 steps), 5, or their default 10 epochs.
QUICK_EPOCHS = 20
QUICK_LIMIT = 2000  # training (and test) images per model in a quick report


@dataclass
class ReportRun:
    """One model's run folder as the report uses it."""

    name: str
    path: Path
    config: TrainConfig
    history: list[dict[str, Any]] = field(default_factory=list)
    onnx: Path | None = None  # None when no current export exists: inference then falls back to torch
    train_seconds: float | None = None  # None: trained outside the report, time unknown
    export_seconds: float | None = None
    trained_now: bool = False
    notes: list[str] = field(default_factory=list)  # a reused run's other optimisation; a run that learned nothing


def wanted_config(name: str, data_dir: str | None, *, quick: bool, epochs: int | None) -> TrainConfig:
    """The registry's settings for ``name``, shortened for a quick report or to ``epochs`` when asked."""
    pca = get_spec(name).kind == "pca"  # fitted in closed form, never trained for epochs
    return TrainConfig(
        name,
        data_dir=data_dir,
        epochs=None if pca else epochs or (QUICK_EPOCHS if quick else None),
        limit=QUICK_LIMIT if quick else None,
    )


@dataclass(frozen=True)
class Plan:
    """How to get a usable run: the config to train (``None``: reuse the run as it is), how, and why."""

    config: TrainConfig | None
    resume: bool = False
    force: bool = False
    why: str = ""
    otherwise: tuple[str, ...] = ()  # how a run reused as it is was optimised otherwise (RunFolder.optimised_otherwise)


def plan_run(folder: RunFolder, wanted: TrainConfig) -> Plan:
    """Reuse a finished run that stands in for ``wanted``, resume a stopped one, else train (over) it: a run whose
    checkpoint and metrics.json record other settings is trained over, as is one trained with other settings.
    Raises ``AetoolError`` for a checkpoint that cannot be read."""
    if not folder.holds_run():
        left = folder.metrics.is_file()  # a checkpoint deleted by hand: its metrics.json is trained over
        return Plan(wanted, why="a metrics.json without its checkpoint.pt" if left else "no run yet")
    try:
        stored = folder.stored_config()
    except AetoolError as err:  # a metrics.json cut short (a full disk): it stopped the report, --retrain too
        return Plan(wanted, force=True, why=f"its metrics.json cannot be read ({err})")
    if stored is None:
        told = "whose metrics.json records no settings" if folder.metrics.is_file() else "without metrics.json"
        return Plan(wanted, force=True, why=f"a checkpoint {told}")
    if json.loads(json.dumps(folder.read_checkpoint()["config"])) != stored:  # a checkpoint copied from another run
        return Plan(wanted, force=True, why="its checkpoint.pt is another run's than its metrics.json")
    reasons = RunFolder.reuse_shortfalls(stored, wanted)
    if reasons:
        return Plan(wanted, force=True, why=f"trained with other settings ({', '.join(reasons)})")
    if folder.is_finished():
        otherwise = tuple(RunFolder.optimised_otherwise(stored, wanted))
        why = "reusing it" + (f" (trained with {', '.join(otherwise)})" if otherwise else "")
        return Plan(None, why=why, otherwise=otherwise)
    last = folder.read_metrics()["history"][-1]["epoch"] if folder.read_metrics()["history"] else 0
    here = {"data_dir": wanted.data_dir, "device": wanted.device}  # where this report finds the data, and runs
    own = folder.resumed_config(wanted.model, here, given=here.keys())
    return Plan(own, resume=True, why=f"stopped after epoch {last}; resuming it")


def _finish(folder: RunFolder, data_dir: str | None, echo: Callable[[str], None]) -> tuple[bool, float]:
    """Export a run unless its model file is current (``export.finish.finish_run``): whether it tried, and how long
    that took. A failed export is reported and leaves the model to torch; the report goes on."""
    from aetool.export import ExportOptions
    from aetool.export.finish import finish_run

    started = time.perf_counter()
    try:
        exported = finish_run(folder.path, options=ExportOptions(data_dir=data_dir), echo=echo) is not None
    except AetoolError as err:
        echo(f"report: export of {folder.path} failed, its figures use torch: {err}")
        exported = True
    return exported, time.perf_counter() - started


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def read_timing(folder: RunFolder) -> dict[str, Any]:
    """The wall times ``timing.json`` holds for the checkpoint and model file there now: a time recorded for
    other files (trained over with ``aetool train --force``, exported again) is unknown, not theirs. A missing or
    unreadable file (cut short by a kill) holds none, and a time that is not a number ≥ 0 is unknown."""
    path = folder.path / TIMING
    try:
        stored = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict):
        return {}
    timing: dict[str, Any] = {}
    trained = folder.checkpoint_digest() if folder.holds_run() else None
    if is_seconds(stored.get("train_seconds")) and stored.get("checkpoint_sha256") == trained:
        timing.update(train_seconds=stored["train_seconds"], checkpoint_sha256=stored["checkpoint_sha256"])
    if is_seconds(stored.get("export_seconds")) and stored.get("model_sha256") == _digest(folder.model_file):
        timing.update(export_seconds=stored["export_seconds"], model_sha256=stored["model_sha256"])
    return timing


def trained_timing(folder: RunFolder, *, seconds: float) -> dict[str, Any]:
    """The training time (``seconds``) of the run just trained in ``folder``, tied to its checkpoint's digest, for
    :func:`write_timing`."""
    return {"train_seconds": seconds, "checkpoint_sha256": folder.checkpoint_digest()}


def exported_timing(folder: RunFolder, *, seconds: float) -> dict[str, Any]:
    """The time of the export (or calibration) just written to the run's model file, tied to its digest."""
    return {"export_seconds": seconds, "model_sha256": _digest(folder.model_file)}


def write_timing(folder: RunFolder, timing: dict[str, Any]) -> None:
    """Write ``timing.json`` whole or not at all; raises ``AetoolError`` when it cannot be written."""
    atomic_write(folder.path / TIMING, json.dumps(timing, indent=2).encode())


def recorded_data_dir(runs: Path) -> str | None:
    """The MNIST folder that the report's runs under ``runs`` were trained on (``data_dir`` in their
    metrics.json), the first in registry order that is still a folder; None when no run records one."""
    for name in REPORT_MODELS:
        stored = RunFolder(runs / name).stored_config() or {}
        folder = stored.get("data_dir")
        if stored.get("dataset", "mnist") == "mnist" and folder and Path(folder).is_dir():
            return str(folder)
    return None


def run_folder(runs: Path, name: str, wanted: TrainConfig) -> tuple[RunFolder, Plan]:
    """The folder of ``name``'s run under ``runs`` and what to do with it: ``runs/NAME``; or, when that is not
    there, a round-1 run of the model under its old name (``runs/denoise`` holding round 1's dense denoiser, now
    ``denoise-dense``: ``contract.ROUND_1_NAMES``) that can be reused or resumed, never trained over."""
    folder = RunFolder(runs / name)
    if not folder.path.exists():
        for old, new in contract.ROUND_1_NAMES.items():
            legacy = RunFolder(runs / old)
            stored = legacy.stored_config() if new == name and legacy.holds_run() else None
            if stored is not None and stored.get("model") == old and "channels" not in stored:
                plan = plan_run(legacy, wanted)
                if not plan.force:
                    return legacy, plan
    return folder, plan_run(folder, wanted)


def prepare_run(
    name: str, runs: Path, wanted: TrainConfig, *, echo: Callable[[str], None] = print, progress: bool = True
) -> ReportRun:
    """A complete, exported run of ``name`` under ``runs`` (:func:`run_folder`): reused, resumed, trained or
    retrained as needed."""
    folder, plan = run_folder(runs, name, wanted)
    timing = read_timing(folder)
    trained_now = False
    if plan.config is None:
        echo(f"report: {name}: {plan.why} ({folder.path})")
    else:
        limit = f" on {plan.config.limit} images" if plan.config.limit else ""
        epochs = plan.config.epochs
        work = f"training {epochs} epoch{'s' * (epochs != 1)}" if epochs else "fitting it (closed form)"
        echo(f"report: {name}: {plan.why}: {work}{limit}")
        result = train(
            plan.config,
            run_dir=folder.path,
            resume=plan.resume,
            force=plan.force,
            progress=progress,
            echo=echo,
            go_on="run the same aetool report again to go on from there",
        )
        timing = trained_timing(folder, seconds=folder.recorded_seconds() or result.seconds)  # summed over resumes
        trained_now = True
    exported, seconds = _finish(folder, wanted.data_dir, echo)
    if exported:
        timing.update(exported_timing(folder, seconds=seconds))
    if trained_now or exported:  # else timing.json holds these times already
        write_timing(folder, timing)
    onnx = folder.model_file if folder.export_is_current() else None  # None: inference falls back to torch
    metrics = folder.read_metrics()
    notes = list(plan.otherwise)
    history = metrics["history"]
    problem = trivial_line(metrics)
    if problem:
        if not trained_now:  # training said so as it ended
            echo(f"report: {name}: {problem}; its figures show what it does all the same")
        notes.append(problem)
    return ReportRun(
        name,
        folder.path,
        TrainConfig.from_dict(metrics["config"]),
        history,
        onnx,
        timing.get("train_seconds"),
        timing.get("export_seconds"),
        trained_now,
        notes,
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
    report refuses (``AetoolError``) before it trains anything, since that would replace the user's checkpoint.
    """
    given = RunFolder(runs)
    if given.holds_run():  # one model's run, given for the folder of them all
        raise AetoolError(
            f"--runs {runs} is one run's folder (it holds {given.checkpoint.name}); give the folder that "
            f"holds a folder per model, e.g. --runs {runs.parent}"
        )
    wanted = {name: wanted_config(name, data_dir, quick=quick, epochs=epochs) for name in REPORT_MODELS}
    if not retrain:
        clashes = [
            f"{folder.path}: {plan.why}"
            for name, config in wanted.items()
            for folder, plan in [run_folder(runs, name, config)]
            if plan.force
        ]
        if clashes:
            raise AetoolError(
                f"the report would train over runs of yours ({'; '.join(clashes)}); pass --retrain to "
                "let it, or --runs to another folder"
            )
    return {name: prepare_run(name, runs, config, echo=echo, progress=progress) for name, config in wanted.items()}
