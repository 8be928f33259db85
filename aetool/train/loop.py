"""The one training loop shared by every registry model, on one device or under ``torchrun`` (DDP)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from aetool.errors import AetoolError
from aetool.models import PCA, build_model
from aetool.runtime import contract
from aetool.runtime.noise import TEST_NOISE_SEED, add_noise
from aetool.train.config import TrainConfig
from aetool.train.data import load_images, to_float
from aetool.train.run import CHECKPOINT, METRICS, ONNX, load_checkpoint, read_metrics, save_checkpoint, write_atomic

EVAL_BATCH = 256  # conv activations of 1000 images (50 MB) page-fault on every batch: 2.2 s vs 0.86 s per pass
WARMUP_STEPS = 100
FINAL_LR_FRACTION = 0.05


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    is_main: bool = True

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
    """``auto`` means CUDA when available; asking for CUDA without it is a setup error."""
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
    if kind == "bce":
        return F.binary_cross_entropy(output, target)
    return F.mse_loss(output, target)


@torch.no_grad()
def evaluate(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, device: str) -> dict[str, float]:
    """Mean squared error per pixel and mean |code| over a whole split, in batches."""
    model.eval()
    squared, code_abs, codes = 0.0, 0.0, 0
    for start in range(0, len(inputs), EVAL_BATCH):
        x = to_float(inputs[start : start + EVAL_BATCH]).to(device)
        y = to_float(targets[start : start + EVAL_BATCH]).to(device) if targets is not inputs else x
        output, code = model(x)
        squared += float(F.mse_loss(output, y, reduction="sum"))
        code_abs += float(code.abs().sum())
        codes += code.numel()
    return {"mse": squared / targets.numel(), "mean_code": code_abs / codes}


def _noisy(images: torch.Tensor, config: TrainConfig, rng: np.random.Generator | int) -> torch.Tensor:
    """Noisy float copies of uint8 images (kept as float: quantising the noise to 8 bits would change it)."""
    return torch.from_numpy(add_noise(images.numpy() / np.float32(255), config.noise, config.noise_kind, rng))


def _batches(n: int, batch: int, seed: int, epoch: int, place: _Dist) -> list[torch.Tensor]:
    """This rank's shuffled mini-batches for ``epoch``: a pure function of (seed, epoch), so resume is exact.

    Ranks take interleaved shares, so the union of the ranks' i-th batches is the i-th batch of a
    single-process run: DDP trains on the same global batches.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    mine = order[place.rank :: place.world][: n // place.world]
    return list(mine.split(max(1, batch // place.world)))


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def _save_metrics(run_dir: Path, config: TrainConfig, history: list[dict[str, Any]]) -> None:
    text = json.dumps({"config": config.to_dict(), "history": history}, indent=2)
    write_atomic(run_dir / METRICS, lambda tmp: tmp.write_text(text))


def _fit_pca(
    model: PCA,
    train_x: torch.Tensor,
    test_x: torch.Tensor,
    config: TrainConfig,
    run_dir: Path,
    place: _Dist,
    force: bool,
) -> list[dict[str, Any]]:
    model.fit(to_float(train_x))
    test = to_float(test_x)
    with torch.no_grad():
        linear = float(F.mse_loss(model.decode(model.encode(test), clamp=False), test))
    record = {
        "epoch": 0,
        "train_mse": evaluate(model, train_x, train_x, "cpu")["mse"],
        "test_mse": evaluate(model, test_x, test_x, "cpu")["mse"],
        "test_mse_unclamped": linear,
    }
    if place.is_main:
        if force:
            _remove_old_exports(run_dir)
        save_checkpoint(run_dir, model, None, config, 0)
        _save_metrics(run_dir, config, [record])
    return [record]


RESUMED_SETTINGS = (
    "model",
    "epochs",
    "batch_size",
    "lr",
    "loss",
    "l1",
    "noise",
    "noise_kind",
    "components",
    "seed",
    "dataset",
    "limit",
)  # what must match for a resumed run to end at the uninterrupted run's weights


def _check_resumable(run_dir: Path, stored: dict[str, Any], config: TrainConfig) -> None:
    """Refuse to resume a run under other settings: its batches, noise and learning-rate schedule would change."""
    wanted = config.to_dict()
    changed = [
        f"{key} {stored.get(key)!r} (now {wanted[key]!r})" for key in RESUMED_SETTINGS if stored.get(key) != wanted[key]
    ]
    if changed:
        raise AetoolError(
            f"{run_dir} was trained with {', '.join(changed)}; resume it with its own settings, "
            "or start over with --force"
        )


def _remove_old_exports(run_dir: Path) -> None:
    """The exported graphs of the run ``--force`` starts over; its checkpoint and metrics are overwritten."""
    model = run_dir / ONNX
    for path in (model, contract.decoder_path(model), *(contract.variant_path(model, p) for p in contract.PRECISIONS)):
        path.unlink(missing_ok=True)


def train(
    config: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``config.model`` and write checkpoint + metrics.json to ``run_dir`` after every epoch."""
    started = time.perf_counter()
    place = _init_distributed(
        config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    device = pick_device(config.device, place.local_rank)
    run_dir = Path(run_dir) if run_dir else config.run_dir
    if resume and force:
        raise AetoolError("--resume continues the run and --force starts it over: choose one")
    if place.is_main and (run_dir / CHECKPOINT).exists() and not (resume or force):
        raise AetoolError(f"{run_dir} already holds a run; pass --resume to continue it or --force to start over")
    stored = load_checkpoint(run_dir / CHECKPOINT) if resume and (run_dir / CHECKPOINT).exists() else None
    if stored is not None:
        _check_resumable(run_dir, stored["config"], config)

    train_x = load_images(config.dataset, "train", config.data_dir)[: config.limit]
    test_x = load_images(config.dataset, "test", config.data_dir)[: config.limit]
    if place.is_main:
        if run_dir.exists() and not run_dir.is_dir():
            raise AetoolError(f"cannot use {run_dir} as the run folder: it is a file")
        run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = build_model(config.model, **config.arch)
    if isinstance(model, PCA):
        history = _fit_pca(model, train_x, test_x, config, run_dir, place, force)
        _end_distributed(place)
        return TrainResult(run_dir, history, time.perf_counter() - started, place.is_main)

    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start_epoch, history = 0, []
    if stored is not None:
        model.load_state_dict(stored["model"])
        optimizer.load_state_dict(stored["optimizer"])
        start_epoch = int(stored["epoch"])
        history = [r for r in read_metrics(run_dir)["history"] if r["epoch"] <= start_epoch]
        echo(f"resuming {run_dir} after epoch {start_epoch}")
    net = nn.parallel.DistributedDataParallel(model) if place.world > 1 else model

    train_dev = train_x.to(device)
    noisy_test = _noisy(test_x, config, TEST_NOISE_SEED) if config.noise > 0 else None
    steps_per_epoch = len(_batches(len(train_x), config.batch_size, config.seed, 0, place))
    total_steps = steps_per_epoch * config.epochs
    show = progress and place.is_main
    with _progress(show) as bar:
        say = bar.console.print if show else echo
        task = bar.add_task(config.model, total=total_steps, completed=start_epoch * steps_per_epoch, status="")
        for epoch in range(start_epoch, config.epochs):
            net.train()
            noise_rng = np.random.default_rng([config.seed, epoch, place.rank])
            sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, mse, l1; stays on device: no sync
            batches = _batches(len(train_x), config.batch_size, config.seed, epoch, place)
            for i, index in enumerate(batches):
                step = epoch * steps_per_epoch + i
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(step, total_steps, config.lr)
                clean = to_float(train_dev[index.to(device)])
                inputs = _noisy(train_x[index], config, noise_rng).to(device) if config.noise > 0 else clean
                output, code = net(inputs)
                mse = F.mse_loss(output, clean)
                loss = mse if config.loss == "mse" else reconstruction_loss(config.loss, output, clean)
                l1 = code.abs().mean() if config.l1 > 0 else torch.zeros((), device=device)
                loss = loss + config.l1 * l1
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                sums += torch.stack([loss.detach(), mse.detach(), l1.detach()]).double()
                if i % 20 == 0:
                    bar.update(task, status=f"epoch {epoch + 1}/{config.epochs} loss {loss.item():.5f}")
                bar.advance(task)
            if place.world > 1:
                dist.all_reduce(sums)
            sums = sums.cpu() / (len(batches) * place.world)
            record = {"epoch": epoch + 1, "train_loss": float(sums[0]), "train_mse": float(sums[1])}
            if config.l1 > 0:
                record["train_l1"] = float(sums[2])
            if noisy_test is not None:
                scores = evaluate(model, noisy_test, test_x, device)
                record["test_mse_clean"] = evaluate(model, test_x, test_x, device)["mse"]
            else:
                scores = evaluate(model, test_x, test_x, device)
            record.update(
                test_mse=scores["mse"],
                test_mean_code=scores["mean_code"],
                lr=learning_rate(step, total_steps, config.lr),
            )
            history.append(record)
            if place.is_main:
                if force and epoch == start_epoch:  # the old run stays whole until this one has an epoch to keep
                    _remove_old_exports(run_dir)
                save_checkpoint(run_dir, model, optimizer, config, epoch + 1)
                _save_metrics(run_dir, config, history)
                say(f"epoch {epoch + 1:3d}  train_mse {record['train_mse']:.5f}  test_mse {record['test_mse']:.5f}")
    _end_distributed(place)
    return TrainResult(run_dir, history, time.perf_counter() - started, place.is_main)
