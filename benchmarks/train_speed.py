"""What the Trainer's speed choices buy: a training step with and without them, in alternating rounds.

    .venv/bin/python benchmarks/train_speed.py [--models deep conv-unpool conv-deconv] [--rounds 6] [--steps 20]

Per model, set-ups train side by side on the same random batches of 128 (the default batch size) with the model's
registry loss: ``before`` (weights and images in the default NCHW layout, Adam's for-each kernel, PyTorch's
``binary_cross_entropy``) and ``trainer`` (what :class:`aetool.train.loop.Trainer` does: ``channels_last`` for a
convolutional model, fused Adam, ``losses.BinaryCrossEntropy``); for a BCE model also ``trainer, torch BCE`` (the
trainer's layout and Adam with PyTorch's loss), which parts the loss's share from the rest. Rounds alternate
their order, so load from other processes falls on both alike; the median step of each and the ratios are
printed. glibc keeps freed memory for reuse in all (``keep_freed_memory``, as ``train`` sets it).
"""

from __future__ import annotations

import argparse
import statistics
import time

import aetool  # noqa: F401  first: it sets OMP_WAIT_POLICY by the load, read when torch loads OpenMP

# isort: split
import torch
import torch.nn.functional as F

from aetool.models import REGISTRY, build_model
from aetool.runtime.cpu import keep_freed_memory
from aetool.train.losses import reconstruction_loss

BATCH = 128


class Setup:
    """One model with its optimizer, laid out and stepped one way."""

    def __init__(self, name: str, *, channels_last: bool, fused: bool, torch_loss: bool) -> None:
        torch.manual_seed(0)
        self.loss = REGISTRY[name].train.get("loss", "mse")
        self.torch_loss = torch_loss
        net = build_model(name)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net.to(memory_format=self.memory_format).train()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-3, fused=fused)

    def step(self, images: torch.Tensor) -> None:
        images = images.contiguous(memory_format=self.memory_format)
        output, _ = self.net(images)
        if self.loss == "bce" and self.torch_loss:
            loss = F.binary_cross_entropy(output, images)
        else:
            loss = reconstruction_loss(self.loss, output, images)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def compare(name: str, rounds: int, steps: int) -> dict[str, float]:
    """Median seconds a step of each set-up, over ``rounds`` alternating rounds of ``steps`` steps."""
    conv = build_model(name).multiple_of is not None
    setups = {
        "before": Setup(name, channels_last=False, fused=False, torch_loss=True),
        "trainer": Setup(name, channels_last=conv, fused=True, torch_loss=False),
    }
    if REGISTRY[name].train.get("loss") == "bce":
        setups["trainer, torch BCE"] = Setup(name, channels_last=conv, fused=True, torch_loss=True)
    images = torch.rand(BATCH, 1, 28, 28)
    for setup in setups.values():  # warm-up: first calls allocate and pick kernels
        for _ in range(3):
            setup.step(images)
    times: dict[str, list[float]] = {label: [] for label in setups}
    for round_ in range(rounds):
        for label in list(setups) if round_ % 2 == 0 else list(setups)[::-1]:
            for _ in range(steps):
                start = time.perf_counter()
                setups[label].step(images)
                times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["deep", "conv-unpool", "conv-deconv"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per set-up and round")
    args = parser.parse_args()
    keep_freed_memory()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}")
    print(
        "| model | loss | before ms/step | trainer, torch BCE ms/step | trainer ms/step | speed-up | of which the loss |"
        "\n|---|---|---:|---:|---:|---:|---:|"
    )
    for name in args.models:
        medians = compare(name, args.rounds, args.steps)
        before, after = medians["before"] * 1e3, medians["trainer"] * 1e3
        torch_bce = medians.get("trainer, torch BCE")
        middle = f"{torch_bce * 1e3:.2f}" if torch_bce else "—"
        of_loss = f"{torch_bce / medians['trainer']:.2f}×" if torch_bce else "—"
        loss = REGISTRY[name].train.get("loss", "mse")
        print(
            f"| {name} | {loss} | {before:.2f} | {middle} | {after:.2f} | {before / after:.2f}× | {of_loss} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
