"""How fast does an exported conv model run in onnxruntime, against PyTorch eager, at batch 1 and 256?

Times the same random-weight registry model (default ``conv-unpool``) on the same inputs, run as:
- ``torch``: PyTorch eager (``inference_mode``), ``torch.set_num_threads(THREADS)``, glibc keeping freed memory
  as in ``aetool bench`` (``aetool.runtime.cpu.keep_freed_memory``);
- ``plain``: ``torch.onnx.export(dynamo=True)`` with the stock translation (unpooling via index arithmetic and
  ScatterND);
- ``mask``: the first-max-mask idea (unpool = nearest upsample × a mask of each window's first maximum),
  written with dense ops and exported as is;
- ``unpool``: aetool's unpooling alone (pooling indices kept in ONNX's convention: MaxPool → MaxUnpool);
- ``aetool``: what ``aetool export --target onnxruntime`` writes: ``unpool`` for the second pooling stage, the
  first computed per window position without indices and its unpooling folded into the last conv
  (``aetool.export.ort_layers``);
- ``portable``: what ``aetool export --target portable`` (the default) writes: both stages per window position,
  no indices and no ``Max`` (``aetool.export.portable``);
- ``portable-where``: ``portable`` with each window's maximum picked by ``Where`` instead of the arithmetic select
  ``a·c + b·(1 − c)`` (7 fewer elementwise nodes a stage; ``Where`` is not among ``PORTABLE_OPS``);
- ``portable-onehot``: ``portable`` with its ``DepthToSpace`` written as a stride-2 ``ConvTranspose`` whose 2×2
  kernel puts each channel at its window position (weights 0 and 1, so the same values);
- ``convtranspose`` (models with a stride-2 transposed conv, e.g. ``--model conv-deconv``): ``aetool`` with its
  transposed convs left as ``ConvTranspose`` nodes, not rewritten as phase convs (``aetool.export.phases``);
- ``phases-all`` (models whose ``aetool`` graph keeps a stride-2 ``ConvTranspose``, e.g. ``--model denoise``): every
  one rewritten, also those whose kernel is as large as their stride (``split_transposed_convs(…,
  overlapping_only=False)``).
Every graph is checked against PyTorch on an input with ties before it is timed. onnxruntime runs on CPU with
``intra_op_num_threads=THREADS`` at graph optimization level ALL (``--level`` to change); the graph it runs is
printed. Rounds interleave the candidates so that load from other processes hits them alike; the table gives
the median over rounds of each round's median time, the best round, and the speed-up over torch (medians).

    .venv/bin/python benchmarks/export_speed.py [--model conv-unpool] [--threads 2] [--rounds 7]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from one_line_errors import run_script
from torch import nn

from aetool.bench import time_calls
from aetool.export import onnx_export, phases, portable
from aetool.export.onnx_export import model_spec, quiet, to_onnx
from aetool.export.ort_layers import POSITIONS
from aetool.export.parity import tie_images
from aetool.models import REGISTRY, build_model
from aetool.runtime import contract
from aetool.runtime.cpu import keep_freed_memory

LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class FirstMaxMaskAE(nn.Module):
    """A ConvAE (unpooling decoder) whose unpooling is nearest upsampling times each window's first-max mask.

    The first maximum of a 2×2 window (row-major, PyTorch's tie rule) is found by scoring the positions that
    equal the window max 4, 3, 2, 1 and keeping the one whose score equals the max-pooled score.
    """

    def __init__(self, ae: nn.Module) -> None:
        super().__init__()
        self.ae = ae

    @staticmethod
    def _pool(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = F.max_pool2d(x, 2)
        rank = torch.tensor([[4.0, 3.0], [2.0, 1.0]]).repeat(x.shape[2] // 2, x.shape[3] // 2)
        score = (x == _upsample(pooled)).float() * rank
        return pooled, (score == _upsample(F.max_pool2d(score, 2))).float()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ae = self.ae
        h, mask1 = self._pool(F.relu(ae.enc1(x)))
        code, mask2 = self._pool(F.relu(ae.enc2(h)))
        d = F.relu(ae.dec2(_upsample(code) * mask2))
        return torch.sigmoid(ae.dec1(_upsample(d) * mask1)), code


def pool_by_where(x: torch.Tensor, conv: nn.Conv2d) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``portable.pool_by_window`` with the three selects as ``Where`` and the masks from fewer nodes (exact for
    masks of 0 and 1: ``r − r·c0 = r·(1 − c0)``, ``c2 − r·c2 = (1 − r)·c2``, ``(1 − r) − m2 = (1 − r)·(1 − c2)``)."""
    at = [F.relu(F.conv2d(F.pad(x, (1 - b, b, 1 - a, a)), conv.weight, conv.bias, stride=2)) for a, b in POSITIONS]
    first_in_top, first_in_bottom = at[0] >= at[1], at[2] >= at[3]
    top, bottom = torch.where(first_in_top, at[0], at[1]), torch.where(first_in_bottom, at[2], at[3])
    in_top = top >= bottom
    pooled = torch.where(in_top, top, bottom)
    r, c0, c2 = in_top.to(x.dtype), first_in_top.to(x.dtype), first_in_bottom.to(x.dtype)
    m0 = r * c0
    m2 = c2 - r * c2
    return pooled, [m0, r - m0, m2, (1 - r) - m2]


def depth_to_space_by_conv_transpose(x: torch.Tensor) -> torch.Tensor:
    """``portable.depth_to_space`` as a stride-2 ``ConvTranspose`` with a one-hot 2×2 kernel per channel."""
    channels = x.shape[1] // 4
    kernel = np.zeros((4 * channels, channels, 2, 2), np.float32)  # built in numpy: a constant of the graph
    for p, (a, b) in enumerate(POSITIONS):
        kernel[p * channels + np.arange(channels), np.arange(channels), a, b] = 1
    return F.conv_transpose2d(x, torch.from_numpy(kernel), stride=2)


def plain_export(model: nn.Module) -> onnx.ModelProto:
    """The stock dynamo export, as a user would call it."""
    graph = model_spec(model, target="onnxruntime")
    with quiet(), torch.no_grad():
        program = torch.onnx.export(
            model,
            (graph.example,),
            input_names=[contract.INPUT],
            output_names=list(graph.output_names),
            dynamic_shapes=(graph.dynamic,),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    return program.model_proto


def candidates(model: nn.Module) -> dict[str, onnx.ModelProto]:
    graph = model_spec(model, target="onnxruntime")
    found = {"plain": plain_export(model)}
    if getattr(model, "uses_indices", False):
        found["mask"] = to_onnx(dataclasses.replace(graph, module=FirstMaxMaskAE(model)))
        found["unpool"] = to_onnx(dataclasses.replace(graph, module=model))
    found["aetool"] = to_onnx(graph)
    if any(isinstance(layer, nn.ConvTranspose2d) and layer.stride[0] > 1 for layer in model.modules()):
        with mock.patch.object(onnx_export, "split_transposed_convs", lambda proto: proto):
            found["convtranspose"] = to_onnx(graph)
        if any(node.op_type == "ConvTranspose" for node in found["aetool"].graph.node):
            every = functools.partial(phases.split_transposed_convs, overlapping_only=False)
            with mock.patch.object(onnx_export, "split_transposed_convs", every):
                found["phases-all"] = to_onnx(graph)
    if getattr(model, "uses_indices", False):
        found["portable"] = to_onnx(model_spec(model, target="portable"))
        with mock.patch.object(portable, "pool_by_window", pool_by_where):
            found["portable-where"] = to_onnx(model_spec(model, target="portable"))
        with mock.patch.object(portable, "depth_to_space", depth_to_space_by_conv_transpose):
            found["portable-onehot"] = to_onnx(model_spec(model, target="portable"))
    return found


def session(model: onnx.ModelProto, threads: int, level: str, optimized: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = LEVELS[level]
    options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def median_ms(run: Callable[[], object], seconds: float) -> float:
    """Median wall time of ``run`` over about ``seconds``, after one warm-up call."""
    run()
    return statistics.median(time_calls(run, seconds, min_calls=3)) * 1e3


def cpu_ticks() -> tuple[int, int, int]:
    """(busy ticks of the whole machine, all ticks, ticks of this process) from /proc, to see who else ran."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    own = [int(v) for v in Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[11:13]]
    return sum(fields[:8]) - idle, sum(fields[:8]), sum(own)


def op_counts(model: onnx.ModelProto) -> str:
    counts = collections.Counter(node.op_type for node in model.graph.node)
    return ", ".join(f"{op}×{n}" for op, n in sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="conv-unpool", choices=list(REGISTRY))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.4, help="time per measurement")
    parser.add_argument("--level", choices=LEVELS, default="all", help="onnxruntime graph optimization level")
    args = parser.parse_args()

    keep_freed_memory()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = build_model(args.model).eval()
    workdir = Path(tempfile.mkdtemp())
    ties = tie_images()
    with torch.no_grad():
        want = model(torch.from_numpy(ties))[0].numpy()
    sessions = {}
    for name, graph in candidates(model).items():
        sessions[name] = session(graph, args.threads, args.level, workdir / f"{name}.onnx")
        error = float(np.abs(sessions[name].run(None, {contract.INPUT: ties})[0] - want).max())
        print(
            f"{name}: max abs vs torch on ties {error:.1e}\n  graph: {op_counts(graph)}\n"
            f"  run by onnxruntime ({args.level}): {op_counts(onnx.load(workdir / f'{name}.onnx'))}"
        )

    print(
        f"\n{args.model}, {args.threads} threads, onnxruntime {ort.__version__}, torch {torch.__version__}, "
        f"{args.rounds} rounds; ms per batch: median of rounds (best round), speed-up over torch"
    )
    print(f"{'batch':>5} | {'torch':>14} | " + " | ".join(f"{name:>22}" for name in sessions))
    before = cpu_ticks()
    for batch in (1, 256):
        images = torch.rand(batch, 1, 28, 28)
        feed = {contract.INPUT: images.numpy()}
        times: dict[str, list[float]] = {"torch": [], **{name: [] for name in sessions}}
        for _ in range(args.rounds):
            with torch.inference_mode():
                times["torch"].append(median_ms(lambda: model(images), args.seconds))  # noqa: B023 (called at once)
            for name, sess in sessions.items():
                times[name].append(median_ms(lambda: sess.run(None, feed), args.seconds))  # noqa: B023
        eager = statistics.median(times["torch"])
        cells = [f"{eager:7.3f} ({min(times['torch']):.3f})"]
        for name in sessions:
            t = statistics.median(times[name])
            cells.append(f"{t:7.3f} ({min(times[name]):.3f}) {eager / t:4.2f}×")
        print(f"{batch:>5} | {cells[0]:>14} | " + " | ".join(f"{cell:>22}" for cell in cells[1:]))
    busy, total, own = (after - start for after, start in zip(cpu_ticks(), before, strict=True))
    print(
        f"other processes kept {(busy - own) / total:.0%} of this machine's CPU time busy during the runs "
        f"(0% = undisturbed)"
    )


if __name__ == "__main__":
    run_script(main)
