"""What the Trainer's speed choices buy: a training step with and without them, in alternating rounds.

    .venv/bin/python benchmarks/train_speed.py [--models deep conv-unpool conv-deconv] [--rounds 6] [--steps 20]
        [--options]

Per model, set-ups train side by side on the same random batches of 128 (the default batch size) with the model's
registry loss: ``before`` (weights and images in the default NCHW layout, Adam's for-each kernel, PyTorch's
``binary_cross_entropy``) and ``trainer`` (what :class:`aetool.train.loop.Trainer` does: ``channels_last`` for a
convolutional model, fused Adam, ``losses.BinaryCrossEntropy``); for a BCE model also ``trainer, torch BCE`` (the
trainer's layout and Adam with PyTorch's loss), which parts the loss's share from the rest, and whether the two
end at bit-identical weights after the same steps. Rounds alternate their order, so load from other processes
falls on both alike; the median step of each and the ratios are printed. glibc keeps freed memory for reuse in all
(``keep_freed_memory``, as ``train`` sets it), and all flush denormal floats to zero (``flush_denormals``, as
``train`` does; the random batches here make none, so ``train_all.py --keep-denormals`` measures that choice).
With ``--options``, two choices the trainer does not make, beside it: ``torch.compile`` of the model and bf16
autocast, with the compilation's seconds. Last, the BCE loss alone (forward and backward on a batch's sigmoid
outputs): PyTorch's ``binary_cross_entropy`` against ``losses.BinaryCrossEntropy``, in the same alternating rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import aetool  # noqa: F401  first: it sets OMP_WAIT_POLICY by the load, read when torch loads OpenMP

# isort: split
import torch
import torch.nn.functional as F
from one_line_errors import run_script

from aetool.models import REGISTRY, build_model
from aetool.runtime.cpu import keep_freed_memory
from aetool.train.loop import flush_denormals
from aetool.train.losses import BinaryCrossEntropy, reconstruction_loss

BATCH = 128


class Setup:
    """One model with its optimizer, laid out and stepped one way."""

    def __init__(
        self,
        name: str,
        *,
        channels_last: bool,
        fused: bool,
        torch_loss: bool,
        compiled: bool = False,
        bf16: bool = False,
    ) -> None:
        torch.manual_seed(0)
        self.loss = REGISTRY[name].train.get("loss", "mse")
        self.torch_loss, self.bf16 = torch_loss, bf16
        net = build_model(name)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net.to(memory_format=self.memory_format).train()
        self.forward = torch.compile(self.net) if compiled else self.net
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-3, fused=fused)

    def step(self, images: torch.Tensor) -> None:
        images = images.contiguous(memory_format=self.memory_format)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            output, _ = self.forward(images)
        output = output.float()
        if self.loss == "bce" and self.torch_loss:
            loss = F.binary_cross_entropy(output, images)
        else:
            loss = reconstruction_loss(self.loss, output, images)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def alternating(calls: dict[str, Callable[[], object]], rounds: int, steps: int) -> dict[str, float]:
    """Median seconds a call of each, over ``rounds`` rounds of ``steps`` calls whose order alternates."""
    times: dict[str, list[float]] = {label: [] for label in calls}
    for round_ in range(rounds):
        for label in list(calls) if round_ % 2 == 0 else list(calls)[::-1]:
            for _ in range(steps):
                start = time.perf_counter()
                calls[label]()
                times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


def compare(name: str, rounds: int, steps: int) -> tuple[dict[str, float], bool | None]:
    """Median seconds a step of each set-up, over ``rounds`` alternating rounds of ``steps`` steps, and whether the
    trainer ends at the weights it ends at with PyTorch's BCE (None for an MSE model)."""
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
    medians = alternating({label: partial(setup.step, images) for label, setup in setups.items()}, rounds, steps)
    torch_bce = setups.get("trainer, torch BCE")
    if torch_bce is None:
        return medians, None
    pairs = zip(setups["trainer"].net.state_dict().values(), torch_bce.net.state_dict().values(), strict=True)
    return medians, all(torch.equal(ours, theirs) for ours, theirs in pairs)


def options(name: str, rounds: int, steps: int) -> tuple[dict[str, float], float]:
    """Median seconds a step of the trainer, and of the trainer with ``torch.compile`` (inductor, default mode) or
    with bf16 autocast (oneDNN's bf16 kernels where the CPU has them), over alternating rounds; and the seconds the
    compiled set-up's first step took (the compilation)."""
    conv = build_model(name).multiple_of is not None
    setups = {
        "trainer": Setup(name, channels_last=conv, fused=True, torch_loss=False),
        "compiled": Setup(name, channels_last=conv, fused=True, torch_loss=False, compiled=True),
        "bf16": Setup(name, channels_last=conv, fused=True, torch_loss=False, bf16=True),
    }
    images = torch.rand(BATCH, 1, 28, 28)
    start = time.perf_counter()
    setups["compiled"].step(images)
    compile_seconds = time.perf_counter() - start
    for setup in setups.values():
        for _ in range(3):
            setup.step(images)
    medians = alternating({label: partial(setup.step, images) for label, setup in setups.items()}, rounds, steps)
    return medians, compile_seconds


def bce_alone(rounds: int, steps: int) -> dict[str, float]:
    """Median seconds of the BCE's forward and backward on a batch's sigmoid outputs, PyTorch's and aetool's."""
    logits = torch.randn(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    targets = torch.rand(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(1))

    def call(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        loss(torch.sigmoid(logits.requires_grad_()), targets).backward()

    calls = {"torch": partial(call, F.binary_cross_entropy), "aetool": partial(call, BinaryCrossEntropy.apply)}
    for run in calls.values():
        run()
    return alternating(calls, rounds, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["deep", "conv-unpool", "conv-deconv"], choices=list(REGISTRY))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per set-up and round")
    parser.add_argument("--options", action="store_true", help="also time torch.compile and bf16 autocast")
    args = parser.parse_args()
    flush_denormals()
    keep_freed_memory()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}")
    print(
        "| model | loss | before ms/step | trainer, torch BCE ms/step | trainer ms/step | speed-up | of which the loss |"
        " same weights |\n|---|---|---:|---:|---:|---:|---:|---|"
    )
    for name in args.models:
        medians, same = compare(name, args.rounds, args.steps)
        before, after = medians["before"] * 1e3, medians["trainer"] * 1e3
        torch_bce = medians.get("trainer, torch BCE")
        middle = f"{torch_bce * 1e3:.2f}" if torch_bce else "—"
        of_loss = f"{torch_bce / medians['trainer']:.2f}×" if torch_bce else "—"
        loss = REGISTRY[name].train.get("loss", "mse")
        weights = "—" if same is None else ("bit-identical" if same else "differ")
        print(
            f"| {name} | {loss} | {before:.2f} | {middle} | {after:.2f} | {before / after:.2f}× | {of_loss} | {weights} |",
            flush=True,
        )
    if args.options:
        print(
            "\n| model | trainer ms/step | torch.compile ms/step | compile s | bf16 autocast ms/step |"
            "\n|---|---:|---:|---:|---:|"
        )
        for name in args.models:
            medians, compile_seconds = options(name, args.rounds, args.steps)
            trainer, compiled, bf16 = (medians[label] * 1e3 for label in ("trainer", "compiled", "bf16"))
            print(
                f"| {name} | {trainer:.2f} | {compiled:.2f} ({trainer / compiled:.2f}×) | {compile_seconds:.1f} | "
                f"{bf16:.2f} ({trainer / bf16:.2f}×) |",
                flush=True,
            )
    alone = bce_alone(args.rounds, 10 * args.steps)
    print(
        f"\nBCE alone, forward and backward on {BATCH}×1×28×28 sigmoid outputs: PyTorch's {alone['torch'] * 1e3:.3f} ms, "
        f"aetool's {alone['aetool'] * 1e3:.3f} ms ({alone['torch'] / alone['aetool']:.2f}×)"
    )


if __name__ == "__main__":
    run_script(main)
