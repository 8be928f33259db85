"""The one training loop shared by every registry model, on one device or under ``torchrun`` (DDP).

:func:`train` prepares a run (device, data, run folder, model) and hands the epochs to :class:`Trainer`, whose
:meth:`Trainer.run` is the loop itself, in the manner of minGPT's ``Trainer.run``. PCA is fitted in closed form by
:func:`fit_pca` instead.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from torch import nn

from aetool.errors import AetoolError, Interrupted
from aetool.models import PCA, build_model
from aetool.runtime.noise import TEST_NOISE_SEED, add_noise
from aetool.train.config import TrainConfig
from aetool.train.data import load_images, to_float
from aetool.train.run import RunFolder

EVAL_BATCH = 256  # images scored at once: conv activations of larger batches page-fault on every batch
WARMUP_STEPS = 100
FINAL_LR_FRACTION = 0.05
Echo = Callable[[str], Any]


@dataclass
class TrainResult:
    """What a training run did: where it wrote, its per-epoch records and its wall time."""

    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    is_main: bool = True  # False on the other ranks of a torchrun job, which write nothing

    @property
    def test_mse(self) -> float | None:
        return self.history[-1]["test_mse"] if self.history else None


@dataclass
class _Dist:
    """Where this process stands in a ``torchrun`` job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process group was started by train(), so train() ends it

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return _Dist()
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns_group)


def _end_distributed(place: _Dist) -> None:
    """Wait for every rank, then close the group: a rank exiting early can abort its peers mid-teardown."""
    if place.world > 1:
        dist.barrier()
        if place.owns_group:
            dist.destroy_process_group()


def pick_device(requested: str, local_rank: int = 0) -> str:
    """``auto`` means CUDA when available; asking for CUDA without it raises ``AetoolError``."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AetoolError("--device cuda was asked for, but this PyTorch sees no CUDA device")
        return f"cuda:{local_rank}" if requested == "cuda" else requested
    return requested


def learning_rate(step: int, total_steps: int, base_lr: float) -> float:
    """Linear warm-up (at most a tenth of the run), then cosine decay to ``FINAL_LR_FRACTION`` of the base rate."""
    warmup = min(WARMUP_STEPS, total_steps // 10)
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return base_lr * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def reconstruction_loss(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mse`` or ``bce`` between an output and its target, both in [0, 1]."""
    if kind == "bce":
        return F.binary_cross_entropy(output, target)
    return F.mse_loss(output, target)


@torch.no_grad()
def evaluate(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, device: str) -> dict[str, float]:
    """Mean squared error per pixel and mean |code| over a whole split, ``EVAL_BATCH`` images at a time.

    ``inputs`` and ``targets`` are N×1×H×W, uint8 or float in [0, 1]; pass the same tensor twice for a plain AE.
    """
    net.eval()
    squared, code_abs, codes = 0.0, 0.0, 0
    for start in range(0, len(inputs), EVAL_BATCH):
        x = to_float(inputs[start : start + EVAL_BATCH]).to(device)
        y = to_float(targets[start : start + EVAL_BATCH]).to(device) if targets is not inputs else x
        output, code = net(x)
        squared += float(F.mse_loss(output, y, reduction="sum"))
        code_abs += float(code.abs().sum())
        codes += code.numel()
    return {"mse": squared / targets.numel(), "mean_code": code_abs / codes}


def _noisy(images: torch.Tensor, config: TrainConfig, rng: np.random.Generator | int) -> torch.Tensor:
    """Noisy float copies of uint8 images (kept as float: quantising the noise to 8 bits would change it)."""
    return torch.from_numpy(add_noise(images.numpy() / np.float32(255), config.noise or 0.0, config.noise_kind, rng))


def _batches(n: int, batch: int, seed: int, epoch: int, place: _Dist) -> list[torch.Tensor]:
    """This rank's shuffled mini-batches for ``epoch``: a pure function of (seed, epoch), so resume is exact.

    Ranks take interleaved shares, so the union of the ranks' i-th batches is the i-th batch of a
    single-process run: DDP trains on the same global batches.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    mine = order[place.rank :: place.world][: n // place.world]
    return list(mine.split(max(1, batch // place.world)))


def fit_pca(pca: PCA, train_x: torch.Tensor, test_x: torch.Tensor) -> dict[str, Any]:
    """Fit PCA on the training images; its one record: train and test MSE (clamped, as exported) and the pure
    linear projection's test MSE."""
    pca.fit(to_float(train_x))
    test = to_float(test_x)
    with torch.no_grad():
        linear = float(F.mse_loss(pca.decode(pca.encode(test), clamp=False), test))
    return {
        "epoch": 0,
        "train_mse": evaluate(pca, train_x, train_x, "cpu")["mse"],
        "test_mse": evaluate(pca, test_x, test_x, "cpu")["mse"],
        "test_mse_unclamped": linear,
    }


class Trainer:
    """The epochs of one run: mini-batch steps, a test-set score and an atomic save after every epoch."""

    def __init__(
        self,
        config: TrainConfig,
        net: nn.Module,
        *,
        images: tuple[torch.Tensor, torch.Tensor],
        folder: RunFolder,
        place: _Dist,
        device: str,
    ) -> None:
        if config.epochs is None or config.lr is None or config.batch_size is None or config.loss is None:
            raise ValueError(f"{config.model} is fitted in closed form, not trained for epochs")
        self.config, self.folder, self.place, self.device = config, folder, place, device
        self.epochs, self.lr, self.batch_size, self.loss = config.epochs, config.lr, config.batch_size, config.loss
        self.net = net.to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.train_x, self.test_x = images
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.steps_per_epoch = len(_batches(len(self.train_x), self.batch_size, config.seed, 0, place))
        self.saved_epoch: int | None = None  # the last epoch this run saved

    def resume_from(self, state: dict[str, Any]) -> None:
        """Continue after the checkpoint's epoch: weights, optimizer state and history up to it."""
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch = state["epoch"]
        self.history = [r for r in self.folder.read_metrics()["history"] if r["epoch"] <= self.start_epoch]

    def run(self, *, progress: bool, echo: Echo, replace_old_run: bool = False) -> list[dict[str, Any]]:
        """Train the remaining epochs; ``replace_old_run`` removes an older run's exports once the first is saved."""
        total_steps = self.steps_per_epoch * self.epochs
        ddp = nn.parallel.DistributedDataParallel(self.net) if self.place.world > 1 else self.net
        train_on_device = self.train_x.to(self.device)
        noisy_test = _noisy(self.test_x, self.config, TEST_NOISE_SEED) if self.config.noise else None
        show = progress and self.place.is_main
        with _progress_bar(show) as bar:
            say = bar.console.print if show else echo
            task = bar.add_task(
                self.config.model, total=total_steps, completed=self.start_epoch * self.steps_per_epoch, status=""
            )
            for epoch in range(self.start_epoch, self.epochs):
                record = self._epoch(epoch, ddp, train_on_device, bar=bar, task=task)
                record.update(self._test_scores(noisy_test))
                record["lr"] = learning_rate((epoch + 1) * self.steps_per_epoch - 1, total_steps, self.lr)
                self.history.append(record)
                if self.place.is_main:
                    if replace_old_run and epoch == self.start_epoch:  # the old run stays whole until now
                        self.folder.remove_exports()
                    self.folder.save(
                        net=self.net,
                        optimizer=self.optimizer,
                        config=self.config,
                        epoch=epoch + 1,
                        history=self.history,
                    )
                    self.saved_epoch = epoch + 1
                    say(f"epoch {epoch + 1:3d}  train_mse {record['train_mse']:.5f}  test_mse {record['test_mse']:.5f}")
        return self.history

    def _epoch(
        self, epoch: int, net: nn.Module, train_on_device: torch.Tensor, *, bar: Progress, task: TaskID
    ) -> dict[str, Any]:
        """One pass over the training set; the epoch's mean loss, MSE (and L1 for a sparse AE)."""
        config = self.config
        net.train()
        noise_rng = np.random.default_rng([config.seed, epoch, self.place.rank])
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss, mse, l1; stays on device: no sync
        batches = _batches(len(self.train_x), self.batch_size, config.seed, epoch, self.place)
        total_steps = self.steps_per_epoch * self.epochs
        for i, index in enumerate(batches):
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(epoch * self.steps_per_epoch + i, total_steps, self.lr)
            clean = to_float(train_on_device[index.to(self.device)])
            inputs = _noisy(self.train_x[index], config, noise_rng).to(self.device) if config.noise else clean
            output, code = net(inputs)
            mse = F.mse_loss(output, clean)
            loss = mse if self.loss == "mse" else reconstruction_loss(self.loss, output, clean)
            l1 = code.abs().mean() if config.l1 else torch.zeros((), device=self.device)
            loss = loss + (config.l1 or 0.0) * l1
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            sums += torch.stack([loss.detach(), mse.detach(), l1.detach()]).double()
            if i % 20 == 0:
                bar.update(task, status=f"epoch {epoch + 1}/{self.epochs} loss {loss.item():.5f}")
            bar.advance(task)
        if self.place.world > 1:
            dist.all_reduce(sums)
        means = sums.cpu() / (len(batches) * self.place.world)
        record = {"epoch": epoch + 1, "train_loss": float(means[0]), "train_mse": float(means[1])}
        if config.l1:
            record["train_l1"] = float(means[2])
        return record

    def _test_scores(self, noisy_test: torch.Tensor | None) -> dict[str, float]:
        """Test MSE (of noisy inputs against clean targets for a denoiser, plus its clean-input MSE) and mean |code|."""
        if noisy_test is None:
            scores = evaluate(self.net, self.test_x, self.test_x, self.device)
            return {"test_mse": scores["mse"], "test_mean_code": scores["mean_code"]}
        scores = evaluate(self.net, noisy_test, self.test_x, self.device)
        clean = evaluate(self.net, self.test_x, self.test_x, self.device)["mse"]
        return {"test_mse_clean": clean, "test_mse": scores["mse"], "test_mean_code": scores["mean_code"]}


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Progress]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    ) as bar:
        yield bar


def train(
    config: TrainConfig,
    *,
    run_dir: str | Path,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    echo: Echo = print,
) -> TrainResult:
    """Train ``config.model`` into ``run_dir``, saving checkpoint and metrics.json after every epoch.

    ``resume`` continues the run there with its own settings; ``force`` starts over a run there (its files go once
    the new run has an epoch). Raises ``AetoolError`` for a run that may not be started, resumed or read, and
    ``DataError`` for missing data (before the folder is made); Ctrl-C raises :class:`~aetool.errors.Interrupted`
    saying whether an epoch was saved, and removes the run folder when this run made it and wrote nothing.
    """
    started = time.perf_counter()
    folder = RunFolder(Path(run_dir))
    place = _init_distributed(
        config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    device = pick_device(config.device, place.local_rank)
    stored = folder.check_start(config, resume=resume, force=force)  # on every rank: each resumes the same state
    made_folder = not folder.path.exists()
    trainer = None
    try:
        train_x = load_images(config.dataset, "train", config.data_dir)[: config.limit]
        test_x = load_images(config.dataset, "test", config.data_dir)[: config.limit]
        if place.is_main:
            folder.create()
        torch.manual_seed(config.seed)
        net = build_model(config.model, **config.arch)
        if isinstance(net, PCA):
            history = [fit_pca(net, train_x, test_x)]
            if place.is_main:
                if force:
                    folder.remove_exports()
                folder.save(net=net, optimizer=None, config=config, epoch=0, history=history)
        else:
            trainer = Trainer(config, net, images=(train_x, test_x), folder=folder, place=place, device=device)
            if stored is not None:
                trainer.resume_from(stored)
                echo(f"resuming {folder.path} after epoch {trainer.start_epoch}")
            history = trainer.run(progress=progress, echo=echo, replace_old_run=force)
    except KeyboardInterrupt:
        raise _interrupted(folder, trainer, made_folder=made_folder) from None
    finally:
        _end_distributed(place)
    return TrainResult(folder.path, history, time.perf_counter() - started, place.is_main)


def _interrupted(folder: RunFolder, trainer: Trainer | None, *, made_folder: bool) -> Interrupted:
    """The one line for Ctrl-C during training; a folder this run made and never wrote to is removed."""
    saved = trainer.saved_epoch if trainer is not None else None
    if saved is None and trainer is not None and trainer.start_epoch:
        saved = trainer.start_epoch  # a resumed run that had not finished a new epoch
    if saved is not None:
        return Interrupted(
            f"interrupted; the last complete epoch ({saved}) is saved in {folder.path}; continue with --resume"
        )
    if made_folder and folder.path.is_dir() and not any(folder.path.iterdir()):
        folder.path.rmdir()
    kept = f"; the run that was in {folder.path} is kept as it was" if folder.holds_run() else ""
    return Interrupted(f"interrupted before the first epoch ended; nothing was saved{kept}")
