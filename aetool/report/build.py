"""``build_report``: train what is missing, run every experiment, draw the figures, write the two pages."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from aetool.errors import checked_switch
from aetool.report import experiments as ex
from aetool.report import sections
from aetool.report.environment import environment
from aetool.report.inference import Engine
from aetool.report.page import check_page_folder, staged_page, write_html, write_markdown
from aetool.report.runs import ReportRun, prepare_runs, recorded_data_dir
from aetool.runtime.idx import resolve_data_dir
from aetool.runtime.metrics import SetScores
from aetool.train import TrainConfig

NUMBERS = "numbers.json"
TITLE = "Autoencoders on MNIST: the EE6132 report, reproduced"


def _intro(quick: bool, data_dir: str | None, runs: Path, prepared: dict[str, ReportRun]) -> list[str]:
    intro = [
        f"Every experiment of the report (EE6132 assignment 3, Akash Reddy A, 2019), run again with aetool on "
        f"{data_dir or 'MNIST as torchvision downloads it'}; runs in {runs}. Each number stands next to the "
        "report's. Images go through the exported ONNX models and aetool's torch-free runtime wherever a model "
        "was exported, so every figure also checks the runtime; weights, filters and training come from torch. "
        f"Built {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC."
    ]
    trained = [run.config for run in prepared.values() if run.config.epochs]  # not PCA, fitted in closed form
    short = [config for config in trained if (config.epochs or 0) < (TrainConfig(config.model).epochs or 0)]
    if quick or short or any(config.limit for config in trained):
        counts = sorted({config.epochs or 0 for config in trained})
        epochs = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
        epochs += " epoch" + "s" * (counts[-1] != 1)
        limits = {config.limit for config in trained}
        images = (
            "all training images"
            if limits == {None}
            else f"at most {max(limit for limit in limits if limit):,} training images"
            + ("" if None not in limits else " (all for some)")
        )
        intro.append(
            f"{'QUICK DEMO' if quick else 'SHORT RUNS'}: models trained for {epochs} on {images} "
            f"({len(short)} of the {len(trained)} trained models for fewer epochs than aetool's defaults)"
            f"{', fewer samples' * quick}. The "
            "numbers show that every step works, not what the models can do: the ratios to the report's numbers "
            "compare with models trained less; run the report without --quick and --epochs for numbers to compare "
            "with the report's."
        )
    return intro


def _numbers(
    *,
    quick: bool,
    scores: dict,
    quality: dict[str, SetScores],
    pca: ex.PcaResult,
    hidden: ex.HiddenResult,
    sparse: ex.SparseResult,
    noise: ex.DenoiseResult,
    walks: ex.ManifoldResult,
    engines: dict[str, Engine],
    env: dict[str, str],
    seconds: dict[str, float],
) -> dict:
    """Every number of the pages in one JSON document, for scripts and for comparing two reports."""
    return {
        "quick": quick,
        "test_mse": scores,
        "test_psnr": {name: result.psnr for name, result in quality.items()},
        "test_ssim": {name: result.ssim for name, result in quality.items()},
        "pca": pca.mse,
        "noise_output_centre_vs_border": hidden.noise_brightness,
        "mean_activation": sparse.mean_activation,
        "denoising": {
            "levels": list(ex.NOISE_LEVELS),
            "mse": {name: [row[level] for level in ex.NOISE_LEVELS] for name, row in noise.mse.items()},
            "noisy_input_mse": [noise.input_mse[level] for level in ex.NOISE_LEVELS],
        },
        "manifold": {
            row: {"moved": moved, "nearest_training_digit": nearest}
            for row, (moved, nearest) in walks.distances.items()
        },
        "runs": {
            name: {
                "path": str(e.run.path),
                "epochs": e.run.config.epochs,
                "limit": e.run.config.limit,
                "train_seconds": e.run.train_seconds,
                "export_seconds": e.run.export_seconds,
                "trained_now": e.run.trained_now,
                "inference": e.backend,
                "notes": e.run.notes,
            }
            for name, e in engines.items()
        },
        "seconds": seconds,
        "environment": env,
    }


def build_report(
    out: Path,
    *,
    runs: Path | None = None,
    data_dir: str | None = None,
    quick: bool = False,
    epochs: int | None = None,
    retrain: bool = False,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> Path:
    """Write ``out/index.html``, ``out/README.md``, ``out/figures/`` and ``out/numbers.json``; returns index.html.

    Runs come from ``runs`` (default ``runs/``, or ``runs/quick/`` for a quick report so a demo never replaces
    full runs): complete ones are reused, missing ones trained and exported, so a second report is fast; runs
    trained with other settings are trained over only with ``retrain``. Raises ``TypeError`` for a ``quick`` or
    ``retrain`` that is not True or False.
    """
    started = time.perf_counter()
    quick = checked_switch(quick, name="quick")
    retrain = checked_switch(retrain, name="retrain")
    out = Path(out)
    check_page_folder(out, numbers=NUMBERS)  # before the training, whose page comes last
    runs = Path(runs) if runs is not None else Path("runs/quick" if quick else "runs")
    budget = ex.QUICK if quick else ex.FULL
    seconds: dict[str, float] = {}

    def lap(step: str, since: float) -> float:
        now = time.perf_counter()
        seconds[step] = now - since
        return now

    if resolve_data_dir(data_dir, "mnist") is None and (recorded := recorded_data_dir(runs)):
        echo(f"report: reading MNIST from {recorded}, where the runs in {runs} were trained (--data-dir for another)")
        data_dir = recorded
    prepared = prepare_runs(runs, data_dir, quick=quick, epochs=epochs, retrain=retrain, echo=echo, progress=progress)
    mark = lap("training and export (what was missing)", started)
    data = ex.load_data(prepared["deep"].config.dataset, data_dir, budget)  # a missing folder fails before out/
    with staged_page(out, numbers=NUMBERS) as stage:  # never half a report in out/
        (stage / sections.FIGURES).mkdir()
        echo("report: running the experiments")
        engines = {name: Engine(run) for name, run in prepared.items()}
        quality = ex.clean_scores(engines, data)
        scores = {name: result.mse for name, result in quality.items()}
        pca = ex.pca_vs_autoencoder(engines, data, scores, budget)
        hidden = ex.hidden_sizes(engines, data, scores, budget)
        sparse = ex.sparsity(engines, data, budget)
        noise = ex.denoising(engines, data, budget)
        walks = ex.manifold(engines["deep"], data, budget)
        conv = ex.convolutional(engines, data, scores, budget)
        mark = lap("experiments", mark)
        echo("report: drawing the figures")
        body = [
            sections.pca_section(pca, stage),
            sections.hidden_section(hidden, stage),
            sections.sparse_section(sparse, engines, stage),
            sections.denoise_section(noise, engines, stage),
            sections.manifold_section(walks, stage),
            sections.conv_section(conv, stage),
        ]
        lap("figures", mark)
        seconds["total"] = time.perf_counter() - started
        env = environment()
        body.append(
            sections.summary_section(
                quality, pca.mse["pca_linear"], sparse.mean_activation, engines=engines, env=env, seconds=seconds
            )
        )
        numbers = _numbers(
            quick=quick,
            scores=scores,
            quality=quality,
            pca=pca,
            hidden=hidden,
            sparse=sparse,
            noise=noise,
            walks=walks,
            engines=engines,
            env=env,
            seconds=seconds,
        )
        (stage / NUMBERS).write_text(json.dumps(numbers, indent=2))
        intro = _intro(quick, data_dir, runs, prepared)
        write_markdown(stage / "README.md", TITLE, intro, body)
        write_html(stage / "index.html", TITLE, intro, body)
    index = out / "index.html"
    echo(f"report: wrote {index} in {time.perf_counter() - started:.0f} s")
    return index
