"""The one training loop shared by every registry model, on one device or under ``torchrun`` (DDP).

:func:`train` prepares a run (device, data, run folder, model) and hands the epochs to :class:`Trainer`, whose
:meth:`Trainer.run` is the loop itself, in the manner of minGPT's ``Trainer.run``. PCA is fitted in closed form by
:func:`fit_pca` instead.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from pytorch_msssim import ssim
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from torch import nn

from aetool.console import Echo, check_echo, stderr_console
from aetool.errors import AetoolError, DataError, Interrupted, checked_switch, first_line
from aetool.models import PCA, Autoencoder, build_model, get_spec
from aetool.models.base import shaped_reconstruction
from aetool.runtime import contract
from aetool.runtime.cpu import keep_freed_memory
from aetool.runtime.images import pad_to
from aetool.runtime.metrics import psnr
from aetool.runtime.noise import TEST_NOISE_SEED, Noise
from aetool.runtime.signals import STOP_SIGNALS
from aetool.runtime.spec import InputSpec
from aetool.train.config import TrainConfig
from aetool.train.data import Batches, ImageSet, TrainingData, check_pca_components, load_training_data, to_float
from aetool.train.losses import reconstruction_loss
from aetool.train.run import RunFolder, checked_run_dir

EVAL_BATCH = 256  # images scored at once: conv activations of larger batches page-fault on every batch
WARMUP_STEPS = 100
FINAL_LR_FRACTION = 0.05
# Fewer optimizer steps than this on a folder of your own images gets a warning. Measured: the anomaly model on 150
# 64×64 micrograph tiles (benchmarks/photo_defects.py's), batch 128, test MSE 0.032 after 30 steps (its 15 epochs),
# 0.015 after 100, 0.012 after 300, 0.012 after 1,000; the mean training image scores 0.047.
MIN_STEPS = 300


@dataclass
class TrainResult:
    """What a training run did: where it wrote, its per-epoch records and its wall time."""

    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    is_main: bool = True  # False on the other ranks of a torchrun job, which write nothing
    baselines: dict[str, float] = field(default_factory=dict)  # test MSE of trivial outputs, by name
    few_steps: tuple[int, int] | None = None  # (steps, epochs suggested) of a run too short (too_few_steps)

    @property
    def test_mse(self) -> float | None:
        return self.history[-1]["test_mse"] if self.history else None

    @property
    def trivial(self) -> str | None:
        """Why the run learned nothing useful (its last test MSE does not beat a trivial output by a clear margin),
        with the epochs to try when it took too few optimizer steps, else None; see :func:`beaten`."""
        problem = beaten(self.test_mse, self.baselines) if self.test_mse is not None else None
        if problem is not None and min(self.baselines.values()) == 0:  # a lone image: more epochs cannot help
            return f"{problem}; a trivial output scores 0 on the validation images, so no model can beat it: add images or give --val-data"
        if problem is None or self.few_steps is None:
            return problem
        steps, epochs = self.few_steps
        return f"{problem} in {steps} optimizer step{'s' * (steps != 1)} (train again with its options and --force --epochs {epochs})"


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


@contextmanager
def _signals_kill() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP end the process at once while it waits for its peers to join: that wait (up to 30
    minutes) retries on every interrupted system call inside torch, so a Python handler would never run (SIGTERM
    did not stop a rank whose peers never came). Nothing has been written yet."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    handlers = {number: handler for number, handler in handlers.items() if handler not in (None, signal.SIG_IGN)}
    for number in handlers:
        signal.signal(number, signal.SIG_DFL)
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


def _init_distributed(device: str) -> _Dist:
    """This process's place among the ranks torchrun started (its ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``…
    variables); one rank alone without them. Raises ``AetoolError`` when they are set but unusable (left over
    in a shell, say)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return _Dist()
        owns_group = not dist.is_initialized()
        if owns_group:
            with _signals_kill():
                dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns_group)
    except ValueError as err:  # torch's errors for missing variables are ValueErrors too
        raise AetoolError(
            f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} asks for distributed training, which failed to start: "
            f"{first_line(err)}; run it with torchrun, or unset WORLD_SIZE"
        ) from None


def _check_shares(config: TrainConfig, train: ImageSet, *, world: int, resumed: bool) -> None:
    """Refuse a torchrun job whose ranks cannot take equal shares of every batch: a ``--batch-size`` that is no
    multiple of the ranks (each took batch // ranks images, a smaller global batch than asked; a ``resumed`` run
    keeps its own, so the ranks must change), or fewer training images than ranks. Raises ``DataError``, on every
    rank alike."""
    batch = config.batch_size
    if config.epochs and batch is not None and batch % world:
        fewer = max(n for n in range(1, world) if batch % n == 0)
        advice = (
            f"resume it with a number of ranks that divides {batch} ({fewer}, say), or start over with --force and "
            f"a --batch-size that is a multiple of {world}"
            if resumed
            else f"pass a multiple of {world}"
        )
        told = f"the run's batch size {batch}" if resumed else f"--batch-size {batch}"
        raise DataError(
            f"{told} does not split over the {world} ranks of this torchrun job, which take equal shares of every "
            f"batch: {advice}"
        )
    if len(train) < world:
        raise DataError(f"{len(train)} training image{'s' * (len(train) != 1)} for {world} ranks: each needs one")


def _ranks(count: Any) -> str:
    """How many processes trained a run, in words (``count`` as a checkpoint records it)."""
    return "1 process" if count == 1 else f"{count} torchrun ranks"


def _peer_gone(err: RuntimeError) -> bool:
    """Whether a collective failed because another rank left: torch's distributed errors, and gloo's own
    RuntimeErrors (``Connection closed by peer``), which DistributedDataParallel's setup passes on as they are."""
    return isinstance(err, dist.DistError) or "gloo/transport" in str(err)


def _end_distributed(place: _Dist, *, completed: bool) -> None:
    """Wait for every rank of a ``completed`` run, then close the group: a rank exiting early can abort its peers
    mid-teardown. After a failure no rank waits: the others may be inside a step, never reaching the barrier (a
    rank stopped alone hung its job until gloo's 30-minute timeout); closing the group ends their step with an
    error instead."""
    if place.world > 1:
        if completed:
            dist.barrier()
        if place.owns_group:
            dist.destroy_process_group()


def pick_device(requested: str, *, local_rank: int = 0) -> str:
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


def _noisy(images: torch.Tensor, noise: Noise, rng: np.random.Generator) -> torch.Tensor:
    """Noisy float copies of uint8 images (kept as float: quantising the noise to 8 bits would change it)."""
    return torch.from_numpy(noise.apply(images.numpy() / np.float32(255), rng))


@dataclass(frozen=True)
class Scoring:
    """A test set as the loop scores it: groups of (inputs, targets) of one shape, and each image's real size.

    Inputs are float32 in [0, 1] (noisy for a denoiser), targets uint8; both B×C×H×W, padded (with black, or by
    mirroring for as-is images) to the model's ``multiple_of`` for images of other sizes, which are scored at their
    real size (``sizes``).
    """

    groups: list[tuple[torch.Tensor, torch.Tensor]]
    sizes: list[list[tuple[int, int]]]  # per group, per image: (height, width) before padding


def scoring(
    test: ImageSet,
    *,
    noise: Noise,
    multiple_of: int | None,
    per_image_noise: bool = False,
    mirror: bool = False,
    batch: int = EVAL_BATCH,
) -> Scoring:
    """The test images grouped for scoring: batches of ``batch`` when they share a size, else one at a time, each
    padded to ``multiple_of`` as the runtime pads it: with black, or by mirroring (``mirror``: an as-is model's
    images; ``images.pad_to``). Raises ``AetoolError`` naming an image over the pixels one call takes
    (``InputSpec.padded``).

    The noise comes from one generator seeded ``TEST_NOISE_SEED``, so every epoch, resume and export scores the same
    noisy inputs, and ``aetool evaluate`` draws the same: in one draw over an IDX split (as round 1 did), image by
    image in order (``per_image_noise``) for a folder of images, before any padding.
    """
    rng = np.random.default_rng(TEST_NOISE_SEED)
    if isinstance(test.images, np.ndarray) and not (per_image_noise and noise):
        clean = test.images
        inputs = noise.apply(clean / np.float32(255), rng)
        size = (int(clean.shape[2]), int(clean.shape[3]))
        try:
            padded_size = InputSpec(None, multiple_of or 1).padded(*size)
        except ValueError as err:
            raise AetoolError(f"images of {test.names[0]}'s size: {err}, or leave them out") from None
        if padded_size != size:  # test images of one size the model cannot take (a model trained with --patch)
            inputs, clean = pad_to(inputs, padded_size, mirror=mirror), pad_to(clean, padded_size, mirror=mirror)
        groups = [
            (torch.from_numpy(inputs[i : i + batch]), torch.from_numpy(clean[i : i + batch]))
            for i in range(0, len(clean), batch)
        ]
        return Scoring(groups, [[size] * len(target) for _, target in groups])
    groups, sizes = [], []
    for image, name in zip(test.images, test.names, strict=True):
        height, width = image.shape[1:]
        try:
            padded_size = InputSpec(None, multiple_of or 1).padded(height, width)
        except ValueError as err:  # a page too large for one call (a traceback after an epoch of training)
            raise AetoolError(f"image {name}: {err}, or leave it out") from None
        noisy = noise.apply(image[None] / np.float32(255), rng)[0]
        inputs = pad_to(noisy, padded_size, mirror=mirror)
        targets = pad_to(np.asarray(image), padded_size, mirror=mirror)
        groups.append((torch.from_numpy(inputs[None]), torch.from_numpy(targets[None])))
        sizes.append([(int(height), int(width))])
    return Scoring(groups, sizes)


@torch.no_grad()
def evaluate(
    net: nn.Module,
    test: Scoring,
    device: str,
    *,
    memory_format: torch.memory_format = torch.contiguous_format,
    with_ssim: bool = True,
) -> dict[str, float]:
    """MSE (over all pixels), PSNR (dB, peak 1, of that MSE, as ``aetool evaluate`` reports it), SSIM (mean over
    images; Wang et al. 2004 by pytorch-msssim, 11×11 Gaussian window, σ 1.5; only ``with_ssim``, and for images of
    at least 11×11) and mean |code| of ``net``, whose inputs are laid out in ``memory_format`` (``channels_last``
    for a conv net trained so, see :class:`Trainer`)."""
    net.eval()
    squared = pixels = 0.0
    ssims: list[float] = []
    code_abs, codes = 0.0, 0
    for (inputs, targets), sizes in zip(test.groups, test.sizes, strict=True):
        output, code = net(inputs.to(device).contiguous(memory_format=memory_format))
        target = to_float(targets).to(device)
        code_abs += float(code.abs().sum())
        codes += code.numel()
        height, width = sizes[0]
        if output.shape[-2:] != (height, width):  # a padded image: scored at its real size
            output, target = output[..., :height, :width], target[..., :height, :width]
        per_image = (output - target).pow(2).flatten(1).mean(1).double()
        squared += float(per_image.sum()) * output[0].numel()
        pixels += output.numel()
        if with_ssim and min(height, width) >= 11:
            ssims += ssim(output, target, data_range=1.0, size_average=False).tolist()
    scores = {"mse": squared / pixels, "psnr": psnr(squared / pixels), "mean_code": code_abs / max(1, codes)}
    if ssims:
        scores["ssim"] = float(np.mean(ssims))
    return scores


TRIVIAL_MARGIN = 0.9  # a run must score at most 90 % of the best trivial output's test MSE


def run_record(data: TrainingData, *, device: str, ranks: int) -> dict[str, Any]:
    """What a run trained on, for ``metrics.json``'s ``run``: the aetool and PyTorch versions, the device and
    PyTorch's threads (results depend on both), the torchrun ranks, and the training and test images (after
    ``--limit`` and ``--val``) with the SHA-256 of each set's file names (``images_sha256``: a resume or a
    calibration refuses a folder that has changed since); the loop adds ``seconds``, the wall time of its epochs
    (with their test scoring), summed over resumes."""
    from aetool import __version__

    return {
        "aetool": __version__,
        "torch": torch.__version__,
        "device": device,
        "threads": torch.get_num_threads(),
        "ranks": ranks,
        "train_images": len(data.train),
        "test_images": len(data.test),
        "images_sha256": {"train": data.train.names_sha256(), "test": data.test.names_sha256()},
    }


BASELINE_NAMES = {"zeros": "the all-black output", "mean_image": "the mean training image", "input": "the input itself"}


@torch.no_grad()
def baselines(test: Scoring, train: ImageSet, *, denoising: bool) -> dict[str, float]:
    """Test MSE of outputs that need no learning: all black, the mean training image (its mean colour where the
    test images have other sizes) and, for a denoiser (whose inputs differ from its targets), the input itself.
    A model that does not beat them has learned nothing."""
    if isinstance(train.images, np.ndarray):
        mean = train.images.mean(0) / 255  # C×H×W, float64
        mean_image = torch.from_numpy(mean).float()
        mean_colour = torch.from_numpy(mean.mean((1, 2))).float()[:, None, None]
    else:
        per_image = [image.reshape(image.shape[0], -1).mean(1, dtype=np.float64) for image in train.images]
        mean_colour, mean_image = torch.from_numpy(np.mean(per_image, axis=0) / 255).float()[:, None, None], None
    totals = dict.fromkeys(("zeros", "mean_image", *(("input",) if denoising else ())), 0.0)
    pixels = 0
    for (inputs, targets), sizes in zip(test.groups, test.sizes, strict=True):
        height, width = sizes[0]
        target, noisy = to_float(targets)[..., :height, :width].double(), inputs[..., :height, :width].double()
        same_size = mean_image is not None and mean_image.shape[1:] == target.shape[2:]
        mean = mean_image if same_size and mean_image is not None else mean_colour
        totals["zeros"] += float(target.pow(2).sum())
        totals["mean_image"] += float((target - mean.double()).pow(2).sum())
        if denoising:
            totals["input"] += float((noisy - target).pow(2).sum())
        pixels += target.numel()
    return {name: total / pixels for name, total in totals.items()}


def best_baseline(scores: dict[str, float]) -> str | None:
    """The best trivial output of :func:`baselines`' ``scores`` and its test MSE, as the line that ends a run shows
    it beside the model's (``the input itself: 0.00606``); None without scores (a run from before aetool scored
    them). A denoiser whose MSE is barely below its input's removes little noise (trial 85's passed the 10 % check
    on a dark validation photo and left the others almost as noisy)."""
    if not scores:
        return None
    name = min(scores, key=lambda key: scores[key])
    return f"{BASELINE_NAMES[name]}: {scores[name]:.5f}"


def beaten(test_mse: float, scores: dict[str, float]) -> str | None:
    """None when ``test_mse`` beats every trivial output by ``TRIVIAL_MARGIN``, else a line naming the best one (a
    denoiser's, whose ``scores`` hold ``input``, says its test MSE is on noisy inputs)."""
    if not scores:
        return None
    name = min(scores, key=lambda key: scores[key])
    if test_mse <= TRIVIAL_MARGIN * scores[name]:
        return None
    inputs = " on noisy inputs" if "input" in scores else ""  # a denoiser's: its test MSE on clean ones is another
    return (
        f"test MSE{inputs} {test_mse:.5f} does not beat {BASELINE_NAMES[name]} ({scores[name]:.5f}) by "
        f"{1 - TRIVIAL_MARGIN:.0%}: the model has learned nothing useful"
    )


def trivial_line(metrics: dict[str, Any]) -> str | None:
    """:func:`beaten` of a run's ``metrics.json``: its last test MSE against its baselines; None when it beats them,
    or records no test MSE (null: not scored)."""
    last = metrics["history"][-1].get("test_mse") if metrics["history"] else None
    return beaten(last, metrics.get("baselines") or {}) if last is not None else None


def fit_pca(pca: PCA, data: TrainingData) -> dict[str, Any]:
    """Fit PCA on the training images; its one record: train and test MSE (clamped, as exported), the pure linear
    projection's test MSE, and the test PSNR and SSIM."""
    train, test = data.train.tensor(), data.test.tensor()
    pca.fit(to_float(train))
    with torch.no_grad():
        linear = float(F.mse_loss(pca.decode(pca.encode(to_float(test)), clamp=False), to_float(test)))
    scores = evaluate(pca, scoring(data.test, noise=Noise(), multiple_of=None), "cpu")
    train_scoring = scoring(data.train, noise=Noise(), multiple_of=None)
    return {
        "epoch": 0,
        "train_mse": evaluate(pca, train_scoring, "cpu", with_ssim=False)["mse"],
        "test_mse": scores["mse"],
        "test_psnr": scores["psnr"],
        **({"test_ssim": scores["ssim"]} if "ssim" in scores else {}),
        "test_mse_unclamped": linear,
    }


class Trainer:
    """The epochs of one run: mini-batch steps, a test-set score and an atomic save after every epoch.

    Two choices are for speed (benchmarks/train_speed.py measures them): convolutional models run with their
    weights and images in ``channels_last`` layout, which oneDNN's convolutions and PyTorch's pooling run faster in,
    and Adam is the fused kernel (one pass over the parameters, not one per tensor and operation). Both change the
    float rounding of a run, not what it computes; a run resumes exactly, since it resumes with the same choices.
    """

    def __init__(
        self,
        config: TrainConfig,
        net: Autoencoder,
        *,
        data: TrainingData,
        folder: RunFolder,
        place: _Dist,
        device: str,
    ) -> None:
        if config.epochs is None or config.lr is None or config.batch_size is None or config.loss is None:
            raise ValueError(f"{config.model} is fitted in closed form, not trained for epochs")
        self.config, self.folder, self.place, self.device = config, folder, place, device
        self.epochs, self.lr, self.loss = config.epochs, config.lr, config.loss
        conv = net.multiple_of is not None  # fully convolutional: images of any size (a multiple)
        self.memory_format = torch.channels_last if conv else torch.contiguous_format
        self.net = net.to(device).to(memory_format=self.memory_format)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, fused=True)
        self.batches = Batches(
            data.train,
            config.batch_size,
            config.seed,
            patch=config.patch,
            augment=bool(config.augment),
            rank=place.rank,
            world=place.world,
        )
        self.noise = config.noise_spec
        per_image = config.dataset == "images"
        mirror = contract.polarity_of(config.dataset) == contract.AS_IS
        self.test = scoring(
            data.test, noise=self.noise, multiple_of=net.multiple_of, per_image_noise=per_image, mirror=mirror
        )
        self.clean_test = (
            scoring(data.test, noise=Noise(), multiple_of=net.multiple_of, mirror=mirror) if self.noise else None
        )
        sample = self.test.groups[0][0][:1].to(device, memory_format=self.memory_format)  # refused before epoch 1
        what = f"model {type(net).__name__}: its reconstruction of a {'×'.join(map(str, sample.shape))} image"
        shaped_reconstruction(self.net, sample, what=what)
        self.baselines = baselines(self.test, data.train, denoising=bool(self.noise))
        self.run_facts = run_record(data, device=device, ranks=place.world)
        self.seconds_before = 0.0  # training time of the epochs a resumed run had done
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.steps_per_epoch = self.batches.steps_per_epoch()
        self.saved_epoch: int | None = None  # the last epoch this run saved

    def _check_same_images(self, recorded: dict[str, Any]) -> None:
        """Refuse to resume on a folder whose files were added, removed or renamed since the run started (its
        ``images_sha256``), naming the folder that changed: the batches, or the validation split and scores,
        would differ from an uninterrupted run's."""
        now = self.run_facts["images_sha256"]
        changed = [name for name in ("train", "test") if recorded.get(name) not in (None, now[name])]
        if not changed:
            return
        config = self.config
        if config.val_data and changed == ["test"]:
            folder, what = f"--val-data {config.val_data}", "its validation scores"
        else:
            folder, what = f"--data {config.data or config.data_dir}", "its validation split and batches"
        raise AetoolError(
            f"the images of {folder} are not the ones this run started on (files added, removed or renamed "
            f"since): {what} would differ from an uninterrupted run's; put them back as they were, or start over "
            "with --force"
        )

    def resume_from(self, state: dict[str, Any]) -> None:
        """Continue after the checkpoint's epoch: weights, optimizer state and history up to it (the checkpoint's
        own; ``metrics.json``'s for a checkpoint written before it held one). Raises ``AetoolError`` when that
        history does not reach the checkpoint's epoch (``metrics.json`` removed, or a run stopped between the two
        files' renames): the resumed run's history would have a gap."""
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch = state["epoch"]
        metrics = self.folder.read_metrics()
        recorded = metrics["history"]  # read when there, to refuse one of another shape
        history = state.get("history", recorded)
        run = metrics.get("run")
        digests = run.get("images_sha256") if isinstance(run, dict) else None
        if isinstance(digests, dict):
            self._check_same_images(digests)
        seconds = run.get("seconds") if isinstance(run, dict) else None
        self.seconds_before = float(seconds) if isinstance(seconds, int | float) and seconds >= 0 else 0.0
        self.history = [r for r in history if r["epoch"] <= self.start_epoch]
        if [r["epoch"] for r in self.history] != list(range(1, self.start_epoch + 1)):
            reached = f"epochs up to {self.history[-1]['epoch']}" if self.history else "no epoch"
            if "history" in state:
                told = f"{self.folder.checkpoint}'s history records {reached}"
            elif self.folder.metrics.is_file():
                told = f"{self.folder.metrics} records {reached}"
            else:
                told = f"{self.folder.metrics} is gone and {self.folder.checkpoint} holds no history"
            raise AetoolError(
                f"{told}, the checkpoint epoch {self.start_epoch}: the run's history cannot go on from it; start "
                "over with --force"
            )

    def run(self, *, progress: bool, echo: Echo, replace_old_run: bool = False) -> list[dict[str, Any]]:
        """Train the remaining epochs; ``replace_old_run`` removes an older run's exports once the first is saved."""
        total_steps = self.steps_per_epoch * self.epochs
        ddp = nn.parallel.DistributedDataParallel(self.net) if self.place.world > 1 else self.net
        show = progress and self.place.is_main
        with _progress_bar(show) as bar:
            task = bar.add_task(
                self.config.model, total=total_steps, completed=self.start_epoch * self.steps_per_epoch, status=""
            )
            warned = False  # the trivial-output line, said at the first epoch that does not beat one
            started = time.perf_counter()
            for epoch in range(self.start_epoch, self.epochs):
                record = self._epoch(epoch, ddp, bar=bar, task=task)
                record.update(self._test_scores(last=epoch + 1 == self.epochs))
                record["lr"] = learning_rate((epoch + 1) * self.steps_per_epoch - 1, total_steps, self.lr)
                self.history.append(record)
                if self.place.is_main:
                    self.folder.save(
                        net=self.net,
                        optimizer=self.optimizer,
                        config=self.config,
                        epoch=epoch + 1,
                        history=self.history,
                        baselines=self.baselines,
                        replace_exports=replace_old_run and epoch == self.start_epoch,  # the old run whole till now
                        ranks=self.place.world,
                        run={**self.run_facts, "seconds": self.seconds_before + time.perf_counter() - started},
                    )
                    self.saved_epoch = epoch + 1
                    echo(
                        f"epoch {epoch + 1:3d}  train_mse {record['train_mse']:.5f}  test_mse {record['test_mse']:.5f}"
                        f"  test_psnr {record['test_psnr']:.2f} dB"
                    )
                    problem = beaten(record["test_mse"], self.baselines)
                    if problem and not warned and epoch + 1 < self.epochs:  # once; the last epoch's is the verdict
                        echo(f"epoch {epoch + 1:3d}: {problem} (yet; the last epoch decides)")
                        warned = True
        return self.history

    def _epoch(self, epoch: int, net: nn.Module, *, bar: Progress, task: TaskID) -> dict[str, Any]:
        """One pass over the training set; the epoch's mean loss, MSE (and L1 for a sparse AE)."""
        config = self.config
        net.train()
        noise_rng = np.random.default_rng([config.seed, epoch, self.place.rank])
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss, mse, l1; stays on device: no sync
        batches = self.batches.epoch(epoch)
        total_steps = self.steps_per_epoch * self.epochs
        for i, index in enumerate(batches):
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(epoch * self.steps_per_epoch + i, total_steps, self.lr)
            pixels = self.batches.take(index, epoch=epoch, step=i)
            clean = to_float(pixels.to(self.device)).contiguous(memory_format=self.memory_format)
            noisy = _noisy(pixels, self.noise, noise_rng) if self.noise else None
            inputs = clean if noisy is None else noisy.to(self.device).contiguous(memory_format=self.memory_format)
            output, code = net(inputs)
            mse = F.mse_loss(output, clean)
            loss = mse if self.loss == "mse" else reconstruction_loss(self.loss, output, clean)
            l1 = code.abs().mean() if config.l1 else torch.zeros((), device=self.device)
            loss = loss + (config.l1 or 0.0) * l1
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            sums += torch.stack([loss.detach(), mse.detach(), l1.detach()]).double()
            if i % 20 == 0 and not bar.disable:  # reading the loss waits for the device: only when it is shown
                bar.update(task, status=f"epoch {epoch + 1}/{self.epochs} loss {loss.item():.5f}")
            bar.advance(task)
        if self.place.world > 1:
            dist.all_reduce(sums)
        means = sums.cpu() / (len(batches) * self.place.world)
        record = {"epoch": epoch + 1, "train_loss": float(means[0]), "train_mse": float(means[1])}
        if config.l1:
            record["train_l1"] = float(means[2])
        return record

    def _test_scores(self, *, last: bool) -> dict[str, float]:
        """Test MSE, PSNR (of noisy inputs against clean targets for a denoiser, which also gets its clean-input MSE),
        mean |code|, and at the ``last`` epoch SSIM (about a tenth of a ``deep`` epoch; README, Training)."""
        scores = evaluate(self.net, self.test, self.device, memory_format=self.memory_format, with_ssim=last)
        record = {"test_mse": scores["mse"], "test_psnr": scores["psnr"], "test_mean_code": scores["mean_code"]}
        if "ssim" in scores:
            record["test_ssim"] = scores["ssim"]
        if self.clean_test is not None:
            clean = evaluate(self.net, self.clean_test, self.device, memory_format=self.memory_format, with_ssim=False)
            record = {"test_mse_clean": clean["mse"], **record}
        return record


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Progress]:
    """The training bar, on standard error like every message (standard output stays free for data)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=stderr_console(),  # the CLI's messages print above the bar
        disable=not enabled,
        transient=False,
    ) as bar:
        yield bar


def flush_denormals() -> bool:
    """Flush denormal floats (magnitude below 1.18e-38) to zero in the calling thread and in every thread it starts
    later: PyTorch's OpenMP pool among them, which starts at the first parallel operation and copies the starting
    thread's floating-point flags (x86 FTZ and DAZ, ARM's FZ; set by ``torch.set_flush_denormal``, which only
    reaches the thread that calls it). Returns False on a CPU without them.

    An autoencoder trained on MNIST drives the logits of pixels that are always black (the border) far down, so
    their sigmoid outputs, their gradients and the Adam state of their weights turn denormal, and the CPU takes a
    slow path on each such operand: ``deep``'s 40 epochs took 193 s with them and 93–115 s flushed
    (``python benchmarks/train_all.py``, with ``--keep-denormals`` for the runs without). Flushed values were at most
    1.18e-38 from zero. The flags stay set for the process; a thread that already exists keeps its own.
    """
    return torch.set_flush_denormal(True)


RESUME_ADVICE = "continue with --resume"  # what an interrupted run says to do next (train's go_on)


def train(
    config: TrainConfig,
    *,
    run_dir: str | Path,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    echo: Echo = print,
    go_on: str = RESUME_ADVICE,
) -> TrainResult:
    """Train ``config.model`` into ``run_dir``, saving checkpoint and metrics.json after every epoch.

    The data are loaded and the config settled against them (channels, size) first. ``resume`` continues the run
    there with its own settings; ``force`` starts over a run there (its files go once the new run has an epoch).
    Raises ``AetoolError`` for a run that may not be started, resumed or read, and ``DataError`` for data that
    cannot train the model (before the folder is made); Ctrl-C raises :class:`~aetool.errors.Interrupted` saying
    whether an epoch was saved (and then ``go_on``, how to continue it: the report says to run it again), and removes
    the run folder when this run made it and wrote nothing; ``TypeError`` for a ``config`` that is not a
    :class:`TrainConfig`, an ``echo`` that is not a function, and a ``resume``, ``force`` or ``progress`` that is
    not True or False (``force="no"`` would replace the run).
    """
    if not isinstance(config, TrainConfig):  # a model's name, say: it failed later on a missing attribute
        raise TypeError(f"train takes a TrainConfig, e.g. TrainConfig({config!r}), got {type(config).__name__}")
    check_echo(echo)  # it failed after the first epoch, leaving the run folder
    resume = checked_switch(resume, name="resume")
    force = checked_switch(force, name="force")
    progress = checked_switch(progress, name="progress")
    started = time.perf_counter()
    flush_denormals()  # before any parallel operation starts the thread pool, which inherits the flags
    keep_freed_memory()  # else big activations page-fault anew at every step
    folder = RunFolder(Path(checked_run_dir(run_dir)))
    place = _init_distributed(
        config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    device = pick_device(config.device, local_rank=place.local_rank)
    stored = folder.check_start(resume=resume, force=force)  # on every rank: each resumes the same state
    if resume and stored is None and place.is_main:
        echo(f"{folder.path} holds no run to resume: training a new one")
    new_folder = not folder.path.exists()
    made_folder = False  # whether this run made the folder (another started into it at once may have)
    trainer = None
    completed = False
    try:
        data, config = load_training_data(config)
        if get_spec(config.model).kind == "pca":
            check_pca_components(config.arch["components"], data.train)
        if stored is not None:
            folder.check_resumable(stored, config)
        if place.world > 1:
            _check_shares(config, data.train, world=place.world, resumed=stored is not None)
        if place.is_main:
            folder.create(new=new_folder)
            made_folder = new_folder
        torch.manual_seed(config.seed)
        net = build_model(config.model, **config.arch)
        if isinstance(net, PCA) and stored is not None:  # a saved fit is complete
            echo(f"{folder.path} has finished its fit (PCA, in closed form): nothing left to train")
            metrics = folder.read_metrics()
            history, trivial = metrics["history"], metrics.get("baselines") or {}
        elif isinstance(net, PCA):
            if config.dataset == "images" and place.is_main and (held := held_out_line(config, data)):
                echo(held)  # as a trained run says it (trial 94)
            fit_started = time.perf_counter()
            history = [fit_pca(net, data)]
            seconds = time.perf_counter() - fit_started
            facts = {**run_record(data, device=device, ranks=place.world), "seconds": seconds}
            trivial = baselines(scoring(data.test, noise=Noise(), multiple_of=None), data.train, denoising=False)
            if place.is_main:
                folder.save(
                    net=net,
                    optimizer=None,
                    config=config,
                    epoch=0,
                    history=history,
                    baselines=trivial,
                    replace_exports=force,
                    run=facts,
                )
        else:
            trainer = Trainer(config, net, data=data, folder=folder, place=place, device=device)
            if stored is None and place.is_main:  # a new run: what it trains on, and whether that is enough
                if config.dataset == "images" and (held := held_out_line(config, data)):
                    echo(held)
                if few := few_steps(config, trainer.steps_per_epoch, len(data.train)):
                    echo(f"warning: {few}")
                if config.ends_in_detector and len(data.test) < 2:
                    echo(  # said before training: calibration failed after it, and so did the commands it named
                        f"warning: the run holds out {len(data.test)} normal image{'s' * (len(data.test) != 1)} "
                        "for validation, and calibrating its detector needs at least 2: give --val-data FOLDER or "
                        "a larger --val, or calibrate it later on other normal images (aetool calibrate RUN --data "
                        "FOLDER)"
                    )
            left = True  # epochs left to train (not so for a finished run resumed: no bar, nothing to save)
            if stored is not None:
                trainer.resume_from(stored)
                left = trainer.start_epoch < trainer.epochs
                if place.is_main and not left:
                    done = f"{trainer.epochs} epoch{'s' * (trainer.epochs != 1)}"
                    echo(f"{folder.path} has finished its {done}: nothing left to train")
                elif place.is_main:
                    echo(f"resuming {folder.path} after epoch {trainer.start_epoch}")
                    ranks = stored.get("ranks", 1)
                    if ranks != place.world:
                        echo(
                            f"warning: {folder.path} was trained by {_ranks(ranks)}, resumed by {_ranks(place.world)}: "
                            "the batches are the same, but the noise (drawn per rank) and the gradients' summation "
                            "order differ from an uninterrupted run"
                        )
            history = trainer.run(progress=progress, echo=echo, replace_old_run=force) if left else trainer.history
            trivial = trainer.baselines
        completed = True
    except KeyboardInterrupt:
        raise _interrupted(folder, trainer, made_folder=made_folder, rank=place.rank, go_on=go_on) from None
    except AetoolError as err:  # a checkpoint that cannot be written (a full disk), say
        _remove_if_empty(folder, made_folder=made_folder)
        if trainer is not None and trainer.saved_epoch is not None and place.is_main:  # and epochs before it saved
            raise type(err)(f"{err}{_left_behind(folder, trainer, made_folder=made_folder, go_on=go_on)}") from None
        raise
    except RuntimeError as err:
        if place.world == 1 or not _peer_gone(err):
            raise
        raise _stopped_by_peer(folder, trainer, made_folder=made_folder, rank=place.rank, go_on=go_on) from None
    finally:
        folder.unlock()
        if not completed:  # also a closed pipe (exit 141) or out of memory: an empty folder was left (trial 94)
            _remove_if_empty(folder, made_folder=made_folder)
        _end_distributed(place, completed=completed)
    short = too_few_steps(config, trainer.steps_per_epoch) if trainer is not None else None
    return TrainResult(folder.path, history, time.perf_counter() - started, place.is_main, trivial, short)


def held_out_line(config: TrainConfig, data: TrainingData, *, shown: int = 5) -> str | None:
    """Which images of ``--data`` a run holds out for validation: how many of how many, what ``--limit`` keeps of
    them, and their names, the first ``shown`` of them. None when none were split off (a lone image both trains
    and validates, as a warning says)."""
    if data.split is None:
        return None
    held, total = data.split
    root = Path(config.data) if config.data is not None and Path(config.data).is_dir() else None
    names = [_shown_name(Path(name), root) for name in data.test.names]
    listed = ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
    kept = f", of which --limit {config.limit} keeps {len(names)}" if len(names) < held else ""
    return f"held out {held} of {total} images for validation (--val {config.held_out:g}){kept}: {listed}"


def _shown_name(path: Path, root: Path | None) -> str:
    """``path`` inside the ``--data`` folder ``root`` (``dog/0.png``: "0.png" did not say whose; trial 94), else
    its name."""
    if root is not None and path.is_relative_to(root):
        return str(path.relative_to(root))
    return path.name


def too_few_steps(config: TrainConfig, steps_per_epoch: int) -> tuple[int, int] | None:
    """(optimizer steps, epochs that would make ``MIN_STEPS``) when a run of your own images takes fewer than
    ``MIN_STEPS`` steps (the registry's epochs suit MNIST's 60,000 digits, not a folder of 150 photos), else None."""
    steps = steps_per_epoch * (config.epochs or 0)
    if config.dataset != "images" or steps >= MIN_STEPS:
        return None
    return steps, math.ceil(MIN_STEPS / steps_per_epoch)


def few_steps(config: TrainConfig, steps_per_epoch: int, images: int) -> str | None:
    """What to say before a run of your own images that takes too few optimizer steps (:func:`too_few_steps`),
    else None."""
    few = too_few_steps(config, steps_per_epoch)
    if few is None:
        return None
    steps, epochs = few
    return (
        f"{images} training image{' makes' if images == 1 else 's make'} {steps_per_epoch} "
        f"step{'s' * (steps_per_epoch != 1)} "
        f"an epoch, so {config.epochs} epoch{'s are' if config.epochs != 1 else ' is'} {steps} optimizer "
        f"step{'s' * (steps != 1)}, and models learn little in fewer than about {MIN_STEPS} (see the README, Your "
        f"own images): pass --epochs {epochs}"
    )


def _remove_if_empty(folder: RunFolder, *, made_folder: bool) -> None:
    """Remove the run folder when this run made it and it holds nothing (a run that ended before any file)."""
    if made_folder and folder.path.is_dir() and not any(folder.path.iterdir()):
        folder.path.rmdir()


def _interrupted(
    folder: RunFolder, trainer: Trainer | None, *, made_folder: bool, rank: int, go_on: str
) -> Interrupted:
    """The one line for Ctrl-C during training; a folder this run made and never wrote to is removed. Rank 0
    writes the files, so only its line says what is saved."""
    if rank:
        return Interrupted(f"rank {rank}: interrupted (rank 0 says what is saved)")
    return Interrupted(f"interrupted{_left_behind(folder, trainer, made_folder=made_folder, go_on=go_on)}")


def _stopped_by_peer(
    folder: RunFolder, trainer: Trainer | None, *, made_folder: bool, rank: int, go_on: str
) -> AetoolError:
    """The one line of a rank whose collective failed because another rank stopped; rank 0's says what is saved."""
    stopped = f"rank {rank}: another rank of this job stopped, so this one stops too"
    if rank:
        return AetoolError(f"{stopped} (rank 0 says what is saved)")
    return AetoolError(stopped + _left_behind(folder, trainer, made_folder=made_folder, go_on=go_on))


def _left_behind(folder: RunFolder, trainer: Trainer | None, *, made_folder: bool, go_on: str) -> str:
    """What a run stopped early leaves, as the end of its line: the last complete epoch and where it is saved, or
    that nothing was (a folder this run made and never wrote to is removed)."""
    saved = trainer.saved_epoch if trainer is not None else None
    if saved is None and trainer is not None and trainer.start_epoch:
        saved = trainer.start_epoch  # a resumed run that had not finished a new epoch
    if saved is not None:
        return f"; the last complete epoch ({saved}) is saved in {folder.path}; {go_on}"
    _remove_if_empty(folder, made_folder=made_folder)
    kept = f"; the run that was in {folder.path} is kept as it was" if folder.holds_run() else ""
    again = "" if kept else " (run the same command again; --resume has nothing to go on from)"  # trial 94
    return f" before the first epoch ended; nothing was saved{kept}{again}"
