"""``bench``: latency and throughput of a model in onnxruntime, beside PyTorch eager and OpenVINO."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aetool.cli.app import app
from aetool.cli.extras import need_train_extra
from aetool.cli.options import Json, ModelOption, Providers, load_model, timeout_option
from aetool.cli.output import emit, note, reporting

if TYPE_CHECKING:
    from aetool.bench import BenchSummary


BUSY_LOAD = 0.5  # a load average before timing from which bench says other work makes its times unreliable


@app.command()
def bench(
    model: ModelOption = "denoise",
    batch_sizes: Annotated[
        str, typer.Option(help="Batch sizes to time, comma-separated: 1 gives latency, 256 throughput.", metavar="N,N")
    ] = "1,256",
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="CPU threads for onnxruntime and PyTorch (default: the cores this process may use).",
            show_default=False,
        ),
    ] = None,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls per backend and batch size.")] = 10,
    repeats: Annotated[int, typer.Option(min=1, help="Timed rounds; the backends alternate within each.")] = 5,
    seconds: Annotated[
        float, typer.Option(min=0, help="Timed seconds per backend and batch size, all rounds together.")
    ] = 1.0,
    size: Annotated[
        str | None, typer.Option(metavar="HxW", help="Image size for conv models (default: 28x28).", show_default=False)
    ] = None,
    compare_torch: Annotated[
        Path | None,
        typer.Option(
            metavar="RUN",
            help="Run folder of the same model: time PyTorch eager beside onnxruntime (train extra).",
            show_default=False,
        ),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            metavar="RUNTIME",
            help="Time the same file in another runtime beside onnxruntime: openvino (check extra).",
            show_default=False,
        ),
    ] = None,
    provider: Providers = None,
    timeout: Annotated[
        float | None,
        timeout_option(
            "Stop the first call, made before timing, if it runs longer (exit 124): a model that never finishes "
            "is caught there; the timed calls run unchecked. Default: no limit."
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Latency and throughput of a model in onnxruntime on random images, optionally against PyTorch eager and
    OpenVINO."""
    if compare_torch is not None:
        need_train_extra("bench --compare-torch")
    with reporting(results=True):
        from aetool import bench as benchmark
        from aetool.runtime.cpu import usable_cores
        from aetool.runtime.images import parse_size

        threads = threads or usable_cores()
        plan = benchmark.Plan(warmup=warmup, repeats=repeats, seconds=seconds)
        sizes, image_size = benchmark.parse_batch_sizes(batch_sizes), parse_size(size)
        loaded = load_model(model, provider, threads, timeout)
        eager = benchmark.TorchEager(compare_torch, threads) if compare_torch is not None else None
        peer = benchmark.load_peer(compare, loaded.path, threads) if compare is not None else None
        summary = benchmark.run(
            loaded, threads=threads, batch_sizes=sizes, size=image_size, plan=plan, eager=eager, peer=peer
        )
        if as_json:
            emit(json.dumps(summary.to_dict()))
            return
        for line in _bench_table(summary):
            emit(line)
        if summary.peer_error:
            note(f"{summary.peer} {summary.peer_version} cannot run {Path(summary.file).name}: {summary.peer_error}")
        before, after = summary.load_average
        if before is not None and after is not None:
            line = (
                f"load average {before:.2f} before and {after:.2f} after timing, on {summary.cores} core"
                f"{'s' * (summary.cores != 1)} (this run adds up to {summary.threads})"
            )
            if before >= BUSY_LOAD:  # other work ran as the timing began
                pytorch = ", PyTorch's most," if summary.torch else ""
                line += f"; other work was running, which makes the times{pytorch} unreliable"
            note(line)


def _bench_table(summary: BenchSummary) -> list[str]:
    """``aetool bench`` for people: a line on the setting, then a row per batch size."""
    height, width = summary.size
    versus = f" vs torch {summary.torch} eager" if summary.torch else ""
    peer = summary.peer if summary.peer and not summary.peer_error else None
    versus += f" vs {peer} {summary.peer_version}" if peer else ""
    flags = f" ({' '.join(summary.cpu_flags)})" if summary.cpu_flags else ""
    lines = [
        f"{Path(summary.file).name} ({summary.model}, {summary.precision or '?'}) on onnxruntime "
        f"{summary.onnxruntime} {', '.join(summary.providers)}, {summary.threads} thread{'s' * (summary.threads != 1)}{versus}; "
        f"{height}×{width} (height×width) random images; median (p95) over all timed batches after {summary.warmup} warm-up batch{'es' * (summary.warmup != 1)}, "
        f"{summary.repeats} round{'s' * (summary.repeats != 1)}; images/s and GFLOP/s over the mean batch time; "
        + ("speedup: the other's median over onnxruntime's (above 1: aetool faster); " if summary.torch or peer else "")
        + f"{summary.cpu}{flags}, aetool {summary.aetool}"
    ]
    header = f"{'batch':>6} {'ort ms (p95)':>18} {'images/s':>10}"
    header += f" {'GFLOP/s':>8}" if summary.flops_per_image else ""
    header += f" {'torch ms (p95)':>18} {'speedup':>8}" if summary.torch else ""
    lines.append(header + (f" {peer + ' ms (p95)':>21} {'speedup':>8}" if peer else ""))
    for row in summary.results:
        sustained = row.sustained_images_per_s
        rate = f"{sustained:,.0f}" if sustained >= 100 else f"{sustained:.3g}"
        line = f"{row.batch_size:>6} {_ms(row.ort_ms, row.ort_p95_ms):>18} {rate:>10}"
        line += f" {row.sustained_gflop_per_s:>8.1f}" if row.sustained_gflop_per_s is not None else ""
        if row.torch_ms is not None and row.torch_p95_ms is not None:
            line += f" {_ms(row.torch_ms, row.torch_p95_ms):>18} {row.speedup_vs_torch:>7.2f}×"
        if row.peer_ms is not None and row.peer_p95_ms is not None:
            line += f" {_ms(row.peer_ms, row.peer_p95_ms):>21} {row.speedup_vs_peer:>7.2f}×"
        lines.append(line)
    return lines


def _ms(median: float, p95: float) -> str:
    return f"{median:.3f} ({p95:.3f})"
