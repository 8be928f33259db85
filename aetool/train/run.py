"""The run folder: ``checkpoint.pt`` (weights, config, epoch, optimizer), ``metrics.json`` and the exported files.

:class:`RunFolder` is the one owner of a run's files: their paths, reading them back safely, whether the run is
finished and its export current, and the rules for starting over, resuming and reusing a run, side by side. The
training loop, the CLI, the exporter, the report, ``scripts/build_bundled.py`` and the benchmarks all go through it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import re
import zipfile
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import onnx
import torch
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from torch import nn

from aetool.errors import AetoolError, first_line
from aetool.models import Autoencoder, build_model, get_spec
from aetool.runs import CHECKPOINT, checkpoint_problem, run_folder
from aetool.runtime import contract
from aetool.runtime.files import check_folder, is_path, make_folder, write_files
from aetool.train.config import TrainConfig, option_of

try:
    import fcntl
except ImportError:  # Windows: no advisory locks on folders, so two runs into one folder are not told apart
    fcntl = None  # type: ignore[assignment]

_LOCKS: dict[Path, int] = {}  # run folder → the open descriptor this process holds its lock through

UNPACKED_SLACK = 16 << 20  # torch.save stores a checkpoint's members uncompressed: they unpack to its own size
METRICS = "metrics.json"
ONNX = "model.onnx"
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
NOISE_SETTINGS = ("noise", "noise_kind", "noise_mix")  # one --noise on the command line
OPTIMISATION_SETTINGS = ("lr", "batch_size", "seed")  # may differ in a run reused, and are then named
# What must match for a resumed run to end at the uninterrupted run's weights: batches, noise and the learning-rate
# schedule are functions of these too.
RESUMED_SETTINGS = (
    *REUSED_SETTINGS,
    "val",
    "val_data",
    "patch",
    "augment",
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "limit",
)


def is_seconds(value: Any) -> TypeGuard[int | float]:
    """Whether ``value`` (read from JSON) is a time in seconds: a finite number ≥ 0, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


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
        """The test MSE after the last epoch (``None`` before the first, or when it was not recorded)."""
        return self.history[-1].get("test_mse") if self.history else None


@dataclass(frozen=True)
class RunFolder:
    """The folder of one training run, and every rule about its files."""

    path: Path

    @classmethod
    def at(cls, path: str | Path) -> RunFolder:
        """The run folder ``path`` names, or the one holding it when it names the folder's ``checkpoint.pt``; a
        ``TypeError`` for one that is no path (None was pathlib's "expected str, bytes or os.PathLike")."""
        return cls(run_folder(Path(checked_run_dir(path))))

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

    def runs_inside(self) -> list[Path]:
        """The folders directly inside this one that hold a run (:meth:`holds_run`), sorted by name."""
        if not self.path.is_dir():
            return []
        try:
            return sorted(child for child in self.path.iterdir() if RunFolder(child).holds_run())
        except OSError:
            return []

    # ---- reading back ----

    def read_checkpoint(self) -> dict[str, Any]:
        """The checkpoint, read safely (``weights_only=True``) once its zip archive is shown to unpack to about
        its own size; raises ``AetoolError`` for a missing, foreign, untrustworthy or malformed file."""
        path = self.checkpoint
        if problem := checkpoint_problem(self.path):
            raise AetoolError(problem)
        _check_archive(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:  # what weights_only raises for anything but tensors and plain values
            # "Unsupported global: GLOBAL x.Payload", or for a module PyTorch blocks (os, posix, subprocess…)
            # "unsupported GLOBAL posix.system whose module posix is blocked"
            found = re.search(r"unsupported (?:global: )?GLOBAL (\S+)", str(err), re.IGNORECASE)
            what = f" ({found[1]})" if found else ""
            raise AetoolError(
                f"{path} is not a trustworthy aetool checkpoint: it holds Python objects{what} that loading would "
                "run, and aetool loads only tensors and plain values"
            ) from None
        except Exception as err:  # torch.load raises many kinds on foreign bytes (KeyError on a text file)
            raise AetoolError(f"{path} is not a readable checkpoint: {first_line(err)[:200]}") from None
        if not isinstance(state, dict) or not {"model", "config", "epoch"} <= state.keys():
            raise AetoolError(f"{path} is not an aetool checkpoint (it lacks model, config and epoch)")
        if not isinstance(state["model"], dict) or not isinstance(state.get("optimizer"), dict | None):
            raise AetoolError(f"{path} is not an aetool checkpoint (its weights or optimizer state are not dicts)")
        if not isinstance(state["epoch"], int) or isinstance(state["epoch"], bool) or state["epoch"] < 0:
            raise AetoolError(f"{path} is not an aetool checkpoint (its epoch is {_shown(state['epoch'])})")
        if not isinstance(state["config"], dict):
            raise AetoolError(f"{path} is not an aetool checkpoint (its config is {_shown(state['config'])})")
        history = state.get("history", [])  # absent from checkpoints written before it was kept there
        if not isinstance(history, list) or not all(map(_epoch_record, history)):
            raise AetoolError(f"{path} is not an aetool checkpoint (its history is not a list of epoch records)")
        return state

    def read_metrics(self) -> dict[str, Any]:
        """``metrics.json`` (``{"config": …, "history": [...]}``); an empty history when there is none yet.

        Raises ``AetoolError`` when the file is not JSON of that shape: a config object, and a history of records
        each with an integer ``epoch`` and, where present, a finite number or null as ``test_mse``.
        """
        path = self.metrics
        if not path.is_file():
            return {"history": []}
        try:
            metrics = json.loads(path.read_text())
        except (ValueError, OSError, RecursionError) as err:
            raise AetoolError(f"{path} is not readable JSON: {first_line(err)}") from None
        history = metrics.get("history") if isinstance(metrics, dict) else None  # none: a KeyError later (trial 97)
        config = metrics.get("config", {}) if isinstance(metrics, dict) else None
        if not isinstance(history, list) or not isinstance(config, dict) or not all(map(_epoch_record, history)):
            raise AetoolError(
                f'{path} is not an aetool metrics file (it needs a "config" object and a "history" list of epoch '
                'records, each with an integer "epoch" and a number "test_mse")'
            )
        return metrics

    def recorded_seconds(self) -> float | None:
        """The wall time of the run's epochs, summed over its resumes, that metrics.json records (``run.seconds``);
        None for runs from before aetool recorded it."""
        run = self.read_metrics().get("run")
        seconds = run.get("seconds") if isinstance(run, dict) else None
        return float(seconds) if is_seconds(seconds) else None

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

    def exported_files(self, *, model_file: Path | None = None) -> list[Path]:
        """Every file an export of this run may write: the model, its decoder and its variants."""
        model_file = model_file or self.model_file
        variants = [contract.variant_path(model_file, precision) for precision in contract.PRECISIONS]
        return [model_file, contract.decoder_path(model_file), *variants]

    def checkpoint_digest(self) -> str:
        """SHA-256 (hex) of the checkpoint file's bytes, which exports record (``contract.CHECKPOINT_SHA256``).
        Raises ``OSError`` when it cannot be read."""
        return hashlib.sha256(self.checkpoint.read_bytes()).hexdigest()

    def export_is_current(self, *, model_file: Path | None = None, precisions: tuple[str, ...] = ()) -> bool:
        """Whether the model file (and the ``precisions`` variants) exist and were exported from the checkpoint now
        here: by the checkpoint digest each file records, so a copied run folder (``cp -r`` gives new times in any
        order) keeps its exports; a file without one (exported before aetool recorded it) by being written after
        the checkpoint. An unreadable file is not current."""
        model_file = model_file or self.model_file
        wanted = [model_file, *(contract.variant_path(model_file, p) for p in precisions)]
        if not self.holds_run():
            return False
        try:
            digest, trained = self.checkpoint_digest(), self.checkpoint.stat().st_mtime
            recorded = [_recorded_checkpoint(path) for path in wanted]
            return all(
                record == digest if record else path.stat().st_mtime >= trained
                for path, record in zip(wanted, recorded, strict=True)
            )
        except (OSError, DecodeError):
            return False

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
        replace_exports: bool = False,
        ranks: int = 1,
        run: dict[str, Any] | None = None,
    ) -> None:
        """Write checkpoint and metrics together, atomically (a reader sees the old pair or the new one).
        ``ranks``: the processes of the torchrun job that trained it (1 alone), which a resume compares.

        ``baselines`` (the test MSE of trivial outputs, see the training loop) and ``run`` (what it ran on, see
        ``loop.run_record``) are recorded in metrics.json.
        ``replace_exports``: the exported files of an older training (the run ``--force`` starts over) are removed
        once the new pair is written, as it goes into place; if it cannot be written, the older run stays whole.
        """
        state = {
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "config": config.to_dict(),
            "epoch": epoch,
            "history": history,  # also here: a resume needs it, and the two files are renamed one after the other
            "ranks": ranks,
        }
        record: dict[str, Any] = {"config": config.to_dict(), "history": history}
        if baselines is not None:
            record["baselines"] = baselines
        if run is not None:
            record["run"] = run
        metrics = json.dumps(record, indent=2)
        checkpoint = io.BytesIO()  # serialized first, so that a full disk is the OS's error, naming the file
        torch.save(state, checkpoint)
        write_files(
            {self.checkpoint: checkpoint.getvalue(), self.metrics: metrics.encode()},
            replacing=self.exported_files() if replace_exports else (),
        )

    def create(self, *, new: bool) -> None:
        """Make the folder, and try writing there (a run over an earlier one on a read-only file system failed
        only once trained). ``new``: the folder did not exist when this run started, so one there now was made by
        another run started into it at the same time (both trained, and the later files won). Holds the folder's
        lock (:meth:`_lock`) until :meth:`unlock`. Raises ``AetoolError`` when a file is in the way, another run
        made the folder or trains in it, or it cannot be written."""
        if self.path.exists() and not self.path.is_dir():
            raise AetoolError(f"cannot use {self.path} as the run folder: it is a file")
        try:
            make_folder(self.path, exist_ok=not new)
        except FileExistsError:
            raise AetoolError(
                f"{self.path} was made by another run while this one loaded its data; give this one another folder "
                "(train's -o, report's --runs)"
            ) from None
        except NotADirectoryError as err:  # it said "Not a directory: a/file/run", of a folder not there
            raise AetoolError(f"cannot use {self.path} as the run folder: {err.filename} is a file") from None
        except OSError:  # a read-only file system, no permission: said as check_folder says it, with where
            check_folder(self.path)
            raise
        check_folder(self.path)
        self._lock()

    def _lock(self) -> None:
        """Hold an advisory lock (flock) on the folder until :meth:`unlock`: a second run into it, started over
        (--force) or resumed while this one trains, is refused (both trained, and their files replaced each
        other's), as is an export or calibration of it meanwhile (:meth:`in_use`). Raises ``AetoolError``."""
        self._take(shared=False)

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Hold the folder's lock shared while its run is read and its model written (``export``, ``calibrate``):
        a run trained into it meanwhile (--force, --resume) is refused, and so is this while one trains (an export
        beside a ``train --force`` wrote the old run's model over the new one's). Nothing more where this process
        holds the lock already (training's own export) or the folder is not there. Raises ``AetoolError``."""
        took = self._take(shared=True) if self.path.is_dir() else False
        try:
            yield
        finally:
            if took:
                self.unlock()

    def _take(self, *, shared: bool) -> bool:
        """Take the folder's flock, shared or exclusive, without waiting; whether it was taken (False: this process
        holds it already, or the system has no flock). Raises ``AetoolError`` when another process holds it."""
        key = self.path.resolve()
        if fcntl is None or key in _LOCKS:
            return False
        try:
            handle = os.open(self.path, os.O_RDONLY)
        except OSError:  # a folder this user may not list: what reads or writes it says why
            return False
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as err:
            os.close(handle)
            if not isinstance(err, BlockingIOError):  # a file system without locks (some network mounts): none
                return False
            if shared:
                raise AetoolError(
                    f"{self.path} is being trained by another aetool run; run this again when that run ends"
                ) from None
            raise AetoolError(
                f"{self.path} is in use by another aetool run (training it, or exporting or calibrating its model); "
                "wait for it to end, or give this one another folder (train's -o, report's --runs)"
            ) from None
        _LOCKS[key] = handle
        return True

    def unlock(self) -> None:
        """Let go of the lock :meth:`create` or :meth:`in_use` took (closing the descriptor releases it)."""
        handle = _LOCKS.pop(self.path.resolve(), None)
        if handle is not None:
            os.close(handle)

    # ---- the rules: starting over, resuming, reusing ----

    def check_start(self, *, resume: bool, force: bool) -> dict[str, Any] | None:
        """The checkpoint to resume from (``None``: start afresh), once starting a run here is allowed.

        A run in the folder is kept unless ``force`` (start over) or ``resume`` (continue it) is given; both at
        once are refused. Raises ``AetoolError``. A resumed run must also pass :meth:`check_resumable`.
        """
        if resume and force:
            raise AetoolError("--resume continues the run and --force starts it over: choose one")
        if not self.holds_run():
            runs = self.runs_inside()
            if runs:  # a folder of runs (the report's runs/, say): this run's files would sit beside theirs
                shown = ", ".join(run.name for run in runs[:3]) + (" …" if len(runs) > 3 else "")
                raise AetoolError(
                    f"{self.path} holds runs of its own ({shown}): a run goes into a folder of its own, e.g. "
                    f"{self.path / 'NAME'}"
                )
            return None
        if not (resume or force):
            raise AetoolError(f"{self.path} already holds a run; pass --resume to continue it or --force to start over")
        return None if force else self.read_checkpoint()

    def check_resumable(self, state: dict[str, Any], config: TrainConfig) -> None:
        """Refuse (``AetoolError``) to resume the checkpoint ``state`` under settings other than its own, or one
        whose weights or optimizer state are not those of the model ``config`` builds."""
        conflicts = self.resume_conflicts(state["config"], config)
        if conflicts:
            raise AetoolError(
                f"{self.path} was trained with {', '.join(conflicts)}; resume it with its own settings, "
                "or start over with --force"
            )
        net = build_model(config.model, **config.arch)
        fitted = get_spec(config.model).kind == "pca"  # in closed form, without an optimizer
        problem = _weights_problem(state["model"], net.state_dict()) or (
            None if fitted else _optimizer_problem(state["optimizer"], len(list(net.parameters())))
        )
        if problem:
            raise AetoolError(f"{self.checkpoint} cannot be resumed: {problem}; start over with --force")

    def resumed_config(self, model: str, settings: Mapping[str, Any], *, given: Collection[str]) -> TrainConfig:
        """The config that continues this folder's run: ``--resume`` alone continues a run as it was started
        (epochs, data, learning rate…), with the settings its checkpoint records (the ones a resumed run is held to;
        ``metrics.json`` may be gone or damaged).

        ``settings`` holds ``TrainConfig``'s keyword arguments but ``model``; each whose option is in ``given``
        (setting names; ``noise`` stands for ``noise_mix`` too, as ``--noise`` sets both) replaces the run's own,
        and the others count only for what the run does not record. A run recorded on a CUDA device resumes on
        ``settings``' device on a machine without one. A folder without a run, or whose recorded settings do not
        read, gives ``TrainConfig(model, **settings)``: starting the run then says what is wrong. Raises
        ``AetoolError`` for a run of another model than ``model`` (its settings are that model's, and checking them
        against this one named options never given: ``--size`` for a conv model resumed in a dense model's run), and
        ``ValueError`` as ``TrainConfig`` does.
        """
        try:
            stored = self.read_checkpoint()["config"] if self.holds_run() else None
            recorded = TrainConfig.from_dict(stored).to_dict() if stored is not None else {}
        except (AetoolError, ValueError, TypeError):
            recorded = {}
        if recorded and recorded["model"] != model:
            raise AetoolError(
                f"{self.path} was trained with MODEL {recorded['model']} (now {model}); resume it with its own "
                "settings, or start over with --force"
            )
        if str(recorded.get("device", "")).startswith("cuda") and not torch.cuda.is_available():
            recorded.pop("device")  # a run trained on a GPU resumes on a machine without one: settings' device
        options = {option_of(name) for name in given}
        kept = {key: value for key, value in recorded.items() if option_of(key) not in options and key != "model"}
        return TrainConfig(model, **{**settings, **kept})

    @staticmethod
    def resume_conflicts(stored: dict[str, Any], config: TrainConfig) -> list[str]:
        """The settings in which ``config`` differs from a stored run's: a resumed run must keep them all. A round-1
        run records no ``size`` or ``channels`` (it trained on MNIST's digits, which settle both): not a conflict."""
        unrecorded = {key for key in ("size", "channels") if key not in stored}
        stored, wanted = _normalised(stored), config.to_dict()
        noise = _noise_given(stored), _noise_given(wanted)
        conflicts = []
        for key in RESUMED_SETTINGS:
            if key in NOISE_SETTINGS and noise[0] is not None:  # one --noise, as given: mask=0.25 (a review)
                if key == "noise" and noise[0] != noise[1]:
                    conflicts.append(f"--noise {noise[0]} (now {noise[1]})")
            elif key not in unrecorded and stored.get(key) != wanted[key]:
                conflicts.append(f"{_as_given(key, stored.get(key))} (now {_as_given(key, wanted[key], flag=False)})")
        return conflicts

    @staticmethod
    def optimised_otherwise(stored: dict[str, Any], wanted: TrainConfig) -> list[str]:
        """How a run that stands in for ``wanted`` was optimised otherwise (``OPTIMISATION_SETTINGS``), as options:
        ``--lr 1e-05 (not 0.001)``; empty when alike."""
        stored, want = _normalised(stored), wanted.to_dict()
        return [
            f"{_as_given(key, stored.get(key))} (not {_as_given(key, want[key], flag=False)})"
            for key in OPTIMISATION_SETTINGS
            if stored.get(key) != want[key]
        ]

    @staticmethod
    def reuse_shortfalls(stored: dict[str, Any], wanted: TrainConfig) -> list[str]:
        """Why a finished run with the ``stored`` settings cannot stand in for ``wanted`` (empty when it can)."""
        stored, want = _normalised(stored), wanted.to_dict()
        settled_by_data = {key for key in ("size", "channels") if want[key] is None}  # None: whatever the data gives
        reasons = [
            f"{key} {_setting(key, stored.get(key))}, not {_setting(key, want[key])}"
            for key in REUSED_SETTINGS
            if key not in settled_by_data and stored.get(key) != want[key]
        ]
        if (stored.get("epochs") or 0) < (wanted.epochs or 0):
            reasons.append(f"{stored.get('epochs')} epoch{'s' * (stored.get('epochs') != 1)}, not {wanted.epochs}")
        if stored.get("limit") is not None and (wanted.limit is None or stored["limit"] < wanted.limit):
            reasons.append(f"{stored['limit']} images, not {wanted.limit or 'all'}")
        return reasons


def _check_archive(path: Path) -> None:
    """Raise ``AetoolError`` unless ``path`` is a zip archive (what torch.save writes) whose members unpack to about
    its own size: a zip bomb (a megabyte that declares gigabytes) is refused before torch reads a byte of it."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
        raise AetoolError(
            f"{path} is not a readable checkpoint: not a zip archive as torch.save writes ({first_line(err)})"
        ) from None
    size = path.stat().st_size
    if declared > 2 * size + UNPACKED_SLACK:
        raise AetoolError(
            f"{path} is not an aetool checkpoint: its {size:,} bytes declare {declared:,} bytes unpacked (torch.save "
            "stores them uncompressed); refused before loading"
        )


def _epoch_record(record: Any) -> bool:
    """Whether a history record has what the runtime and the training loop read: an integer epoch, a test MSE."""
    if not isinstance(record, dict):
        return False
    epoch, mse = record.get("epoch"), record.get("test_mse")
    finite = mse is None or (isinstance(mse, int | float) and not isinstance(mse, bool) and math.isfinite(mse))
    return isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 and finite


def _weights_problem(stored: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """Why stored weights are not a state dict of the expected model (names and shapes), or None."""
    if stored.keys() != expected.keys():
        missing, extra = sorted(expected.keys() - stored.keys()), sorted(stored.keys() - expected.keys())
        return f"its weights are another model's (missing {missing[:3]}, unexpected {extra[:3]})"
    for name, tensor in expected.items():
        value = stored[name]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            return f"its weight {name} is {shape}, the model's is {tuple(tensor.shape)}"
    return None


def _optimizer_problem(stored: dict[str, Any] | None, parameters: int) -> str | None:
    """Why a stored optimizer state cannot continue training a model of ``parameters`` tensors, or None."""
    if stored is None:
        return "it holds no optimizer state, so training cannot continue exactly"
    groups = stored.get("param_groups")
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups
    ):
        return "its optimizer state has no parameter groups"
    counted = sum(len(group["params"]) for group in groups)
    if counted != parameters or not isinstance(stored.get("state"), dict):
        return f"its optimizer state is for {counted} parameter tensors, the model has {parameters}"
    return None


def _noise_given(settings: dict[str, Any]) -> str | None:
    """A run's training noise as ``--noise`` takes it (``mask=0.25``, ``gaussian=0:0.6``, ``none``) from its three
    settings (``NOISE_SETTINGS``); None when the settings do not read."""
    try:
        noise = TrainConfig.from_dict(settings).noise_spec
    except (ValueError, TypeError, KeyError):
        return None
    return str(noise) if noise else "none"


def _as_given(key: str, value: Any, *, flag: bool = True) -> str:
    """A setting as it is given: ``--epochs 3``, ``--no-augment``, ``--val-data none``; the value alone (``3``)
    without ``flag``, which a switch always keeps."""
    option = option_of(key)
    if isinstance(value, bool):
        return option if value else option.replace("--", "--no-", 1)
    return f"{option} {_setting(key, value)}" if flag else _setting(key, value)


def _setting(key: str, value: Any) -> str:
    """A training setting as the command line spells it: ``28x28`` for a size, ``1,7`` for classes, ``none``."""
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return ("x" if key == "size" else ",").join(str(item) for item in value)
    return _shown(value) if isinstance(value, dict) else str(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _normalised(stored: dict[str, Any]) -> dict[str, Any]:
    """Stored settings as this version's config would hold them (defaults resolved), when they still validate."""
    try:
        return TrainConfig.from_dict(stored).to_dict()
    except (ValueError, TypeError):
        return stored


def checked_run_dir(run_dir: object) -> str | os.PathLike[str]:
    """``run_dir`` when it is a path (text or a Path, not empty); raises ``TypeError`` naming it otherwise."""
    if not is_path(run_dir):
        raise TypeError(f"run_dir takes a run folder's path (text or a Path), got {run_dir!r}")
    return run_dir


def load_run(path: str | Path) -> Run:
    """The run in a run folder, or the one a checkpoint file belongs to (see :meth:`RunFolder.load`)."""
    return RunFolder.at(path).load()


def _recorded_checkpoint(path: Path) -> str:
    """The checkpoint digest an exported file records, "" when it records none. Raises ``OSError`` when the file
    cannot be read and ``DecodeError`` when it is not an ONNX file."""
    proto = onnx.load(path, load_external_data=False)
    return next((prop.value for prop in proto.metadata_props if prop.key == contract.CHECKPOINT_SHA256), "")
