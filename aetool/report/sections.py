"""The report's sections: each experiment's figures drawn and its numbers written up beside the report's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aetool.report import figures
from aetool.report.experiments import (
    CODE_STEP,
    CONV,
    NOISE_LEVELS,
    SHALLOW,
    ConvResult,
    DenoiseResult,
    HiddenResult,
    ManifoldResult,
    PcaResult,
    SparseResult,
)
from aetool.report.inference import Engine
from aetool.report.page import Figure, Section, Table
from aetool.report.runs import ReportRun
from aetool.runtime.metrics import SetScores

FIGURES = "figures"  # folder beside the pages
# The numbers of the report being reproduced (EE6132 assignment 3): test MSE and mean hidden activation.
REPORTED_MSE = {
    "pca": 0.0593,
    "deep": 0.00723,
    "conv-unpool": 0.00355,
    "conv-unpool-deconv": 0.00467,
    "conv-deconv": 0.0802,
}
# mean hidden activations, to 4 significant digits (the report prints 16)
REPORTED_ACTIVATION = {"sparse": 0.03659, "ae64": 1.162, "ae128": 0.8244, "ae256": 0.6132}
LABELS = {
    "pca": "PCA-30",
    "deep": "deep AE",
    "ae64": "AE-64",
    "ae128": "AE-128",
    "ae256": "AE-256",
    "sparse": "sparse AE",
    "denoise-dense": "denoising AE",
    "conv-unpool": "unpool",
    "conv-unpool-deconv": "unpool+deconv",
    "conv-deconv": "deconv",
}


def label(name: str) -> str:
    """A model's name as the pages print it: the report's own for its ten models, else the registry name."""
    return LABELS.get(name, name)


def number(value: float | None) -> str:
    """A number as the pages print it (4 significant digits; an em dash for none)."""
    return "—" if value is None else f"{value:.4g}"


def times(ours: float, other: float) -> str:
    """``ours`` against ``other`` in words: "3.1× lower than" or "1.5× higher than"."""
    return f"{other / ours:.1f}× lower than" if ours <= other else f"{ours / other:.1f}× higher than"


def _columns(count: int) -> list[str]:
    return [f"test #{i}" for i in range(count)]


def _grid(
    out: Path, name: str, rows: dict[str, np.ndarray], columns: list[str], title: str, *, scale: str = "fixed"
) -> Figure:
    """Draw one grid figure (a row per entry of ``rows``) and the page block that shows it."""
    figures.image_grid(out / FIGURES / name, np.stack(list(rows.values())), list(rows), columns, title, scale=scale)
    return Figure(f"{FIGURES}/{name}", title)


def pca_section(result: PcaResult, out: Path) -> Section:
    """§1 as a page section, its figure written into ``out``."""
    m = result.mse
    grid = _grid(
        out,
        "1-pca-vs-deep-ae.png",
        {"original": result.originals, "PCA-30": result.pca, "deep AE": result.deep},
        _columns(len(result.originals)),
        "Test digits (columns): originals, PCA-30 and deep-AE reconstructions (the report's Figures 1–2)",
    )
    table = Table(
        ["reconstruction", "test MSE", "report"],
        [
            ["PCA-30, output clamped to [0, 1] (model.onnx)", number(m["pca"]), number(REPORTED_MSE["pca"])],
            ["PCA-30, pure linear: the PCA optimum", number(m["pca_linear"]), "—"],
            ["torch.svd's V, first 30 columns (correct PCA, recomputed here)", number(m["svd_columns"]), "—"],
            ["torch.svd's V, first 30 rows (a likely mistake)", number(m["svd_rows"]), "—"],
            ["the mean training image alone", number(m["mean_image"]), "—"],
            ["deep AE 784-512-128-30", number(m["deep"]), number(REPORTED_MSE["deep"])],
        ],
        "Mean squared error per pixel on the test set.",
    )
    return Section(
        "1. PCA vs autoencoder",
        [
            "The same test digits through PCA with 30 components and through the deep autoencoder with a 30-unit code.",
            grid,
            table,
            f"The deep AE's error is {times(m['deep'], m['pca_linear'])} the best linear projection's. The report's "
            "PCA error, 0.0593, is not the PCA optimum: the pure linear PCA on this test set gives "
            f"{number(m['pca_linear'])} (Hinton & Salakhutdinov's 13.87 per image is 0.0177 per pixel), and clamping "
            f"the output to the valid pixel range can only lower it ({number(m['pca'])}). Our measurement shows a likely "
            "cause: torch.svd returns V with the principal directions as its columns; projecting on the first 30 rows of "
            f"V instead gives {number(m['svd_rows'])}, next to the error of the mean image alone "
            f"({number(m['mean_image'])}): like the report's 0.0593, several times the optimum. Rows of V are orthonormal "
            "directions unrelated to the data, so such a projection keeps little more than the mean image, which fits "
            "the grey backgrounds of the report's PCA images.",
        ],
    )


def hidden_section(result: HiddenResult, out: Path) -> Section:
    """§2 as a page section, its figures written into ``out``."""
    columns = _columns(len(result.originals))
    recon = _grid(
        out,
        "2-hidden-sizes.png",
        {"original": result.originals, **{label(n): result.outputs[n] for n in SHALLOW}},
        columns,
        "Test digits through shallow AEs with 64, 128 and 256 hidden units (the report's Figure 3)",
    )
    noise = _grid(
        out,
        "2-hidden-sizes-noise.png",
        {"uniform noise": result.noise, **{label(n): result.noise_outputs[n] for n in SHALLOW}},
        [f"noise #{i}" for i in range(len(result.noise))],
        "Uniform random noise (top row) through the same AEs (the report's Figure 4)",
    )
    best = min(SHALLOW, key=lambda name: result.mse[name])
    table = Table(
        ["model", "test MSE", "mean output on noise: central 14×14", "mean output on noise: border"],
        [
            [
                label(n),
                number(result.mse[n]),
                number(result.noise_brightness[n][0]),
                number(result.noise_brightness[n][1]),
            ]
            for n in SHALLOW
        ],
    )
    return Section(
        "2. Hidden sizes",
        [
            "Shallow autoencoders with one ReLU hidden layer of 64, 128 or 256 units, on test digits and on inputs of "
            "uniform random noise.",
            recon,
            noise,
            table,
            f"{label(best)} reconstructs best (test MSE {number(result.mse[best])}). The report saw bright pixels towards "
            "the centre when noise goes in; measured here as the mean output in the central 14×14 square, where digits "
            "have their ink, against the border, where MNIST digits have almost none: "
            + "; ".join(
                f"{label(n)} {result.noise_brightness[n][0]:.3f} vs {result.noise_brightness[n][1]:.3f}"
                for n in SHALLOW
            )
            + ".",
        ],
    )


def sparse_section(result: SparseResult, engines: dict[str, Engine], out: Path) -> Section:
    """§3 as a page section, its figures written into ``out``."""
    recon = _grid(
        out,
        "3-sparse.png",
        {"original": result.originals, "sparse AE": result.sparse},
        _columns(len(result.originals)),
        "Test digits through the sparse AE (the report's Figure 5)",
    )
    models = list(result.filters)
    count = len(result.filters[models[0]])
    filters = _grid(
        out,
        "3-encoder-filters.png",
        {label(n): result.filters[n] for n in models},
        [f"#{i + 1}" for i in range(count)],
        f"Encoder filters (input weights) of the {count} most active hidden units per model, most active first "
        "(the report's Figure 6 shows 3)",
        scale="each",
    )
    table = Table(
        ["model", "hidden units", "mean activation (ours)", "report", "ours / report"],
        [
            [
                label(n),
                str(engines[n].run.config.arch["code"]),
                number(result.mean_activation[n]),
                number(REPORTED_ACTIVATION[n]),
                f"{result.mean_activation[n] / REPORTED_ACTIVATION[n]:.2f}",
            ]
            for n in models
        ],
        "Mean |activation| of the hidden layer over the test set.",
    )
    least = min(result.mean_activation[n] for n in SHALLOW)
    return Section(
        "3. Sparse AE",
        [
            "An overcomplete AE (1024 ReLU units) trained with an L1 penalty on its hidden activations.",
            recon,
            table,
            f"With the L1 penalty, the sparse AE's mean activation is {times(result.mean_activation['sparse'], least)} "
            "the least active shallow AE's. "
            "Each filter is stretched to its own grey range; the most active units are shown because many of a sparse "
            "layer's units hardly ever fire.",
            filters,
        ],
    )


def denoise_section(result: DenoiseResult, engines: dict[str, Engine], out: Path) -> Section:
    """§4 as a page section, its figures written into ``out``."""
    models = list(result.mse)
    columns = _columns(len(result.originals))
    blocks: list = [
        "Test digits with Gaussian noise (std = level, clipped to [0, 1], seeded) through the shallow "
        f"AEs and the denoising AE (trained at noise {engines['denoise-dense'].run.config.noise})."
    ]
    for index, level in enumerate(NOISE_LEVELS):
        rows = {
            "clean": result.originals,
            f"noisy ({level})": result.noisy[level],
            **{label(n): result.outputs[level][n] for n in models},
        }
        title = f"Noise level {level}: inputs and outputs (the report's Figures {7 + index} and {11 + index})"
        blocks.append(_grid(out, f"4-noise-{level}.png", rows, columns, title))
    blocks.append(
        Table(
            ["model", *(f"noise {level}" for level in NOISE_LEVELS)],
            [[label(n), *(number(result.mse[n][level]) for level in NOISE_LEVELS)] for n in models]
            + [["noisy input itself", *(number(result.input_mse[level]) for level in NOISE_LEVELS)]],
            "Test MSE against the clean digits (the report gave no such numbers).",
        )
    )
    winners = [
        level for level in NOISE_LEVELS if min(result.mse, key=lambda n: result.mse[n][level]) == "denoise-dense"
    ]
    worse = [level for level in NOISE_LEVELS if min(result.mse[n][level] for n in models) >= result.input_mse[level]]
    blocks.append(
        f"The denoising AE has the lowest error of these models at noise levels "
        f"{', '.join(map(str, winners)) or '(none)'}."
        + (
            f" At noise {', '.join(map(str, worse))} no model beats the noisy input itself: their outputs are further "
            "from the clean digits than their inputs."
            if worse
            else ""
        )
    )
    blocks.append(
        _grid(
            out,
            "4-denoise-filters.png",
            {label(n): f for n, f in result.filters.items()},
            [f"#{i + 1}" for i in range(len(result.filters["denoise-dense"]))],
            "Encoder filters of the most active units: denoising AE vs the shallow AEs (the report's Figure 15)",
            scale="each",
        )
    )
    return Section("4. Denoising", blocks)


def manifold_section(result: ManifoldResult, out: Path) -> Section:
    """§5 as a page section, its figure written into ``out``."""
    shown = min(3, len(result.pixel_walks))
    steps = result.pixel_walks.shape[1] - 1
    rows = {}
    for i in range(shown):
        rows[f"test #{i}, pixel space"] = result.pixel_walks[i]
        rows[f"test #{i}, code space"] = result.code_walks[i]
    grid = _grid(
        out,
        "5-manifold.png",
        rows,
        ["start", *(f"step {k}" for k in range(1, steps + 1))],
        "Random walks from test digits: in pixel space, and in the deep AE's code space, decoded (the report's "
        "Figures 16–17)",
    )
    pixel, code = (result.distances[k] for k in result.distances if "walk" in k)
    decoder = "model.decoder.onnx" if result.decoder_backend == "onnxruntime" else "the torch decoder"
    table = Table(
        ["images", "mean distance moved", "mean distance to the nearest training digit"],
        [[row, number(moved), number(nearest)] for row, (moved, nearest) in result.distances.items()],
        f"Euclidean distances in pixel space (pixels in [0, 1]); nearest among {result.neighbours} training digits.",
    )
    return Section(
        "5. Manifold",
        [
            f"From each test digit, {steps} random steps: in pixel space, Gaussian steps of std {result.pixel_sigma:.3f} "
            f"per pixel (clipped to [0, 1]); in the deep AE's 30-unit code, Gaussian steps of {CODE_STEP} times each code "
            f"unit's spread, decoded to pixels through {decoder} ({result.decoder_backend}). The pixel step is sized so "
            "that both walks travel about as far in pixel space.",
            grid,
            table,
            f"The pixel walk moves the image by {number(pixel[0])} and ends {number(pixel[1])} from the nearest "
            f"training digit; the code walk moves it by {number(code[0])} and ends {number(code[1])} from it. "
            + (
                "Moving in the code moves along the digits' manifold, so the result still looks like a digit (often "
                "another one), while a random move in the 784 pixel dimensions leaves the digits for noise."
                if code[1] < pixel[1]
                else "Here the code walk does not end nearer the training digits: the deep AE has not learnt a useful code "
                "(too little training)."
            ),
        ],
    )


def conv_section(result: ConvResult, out: Path) -> Section:
    """§6 as a page section, its figures written into ``out``."""
    recon = _grid(
        out,
        "6-conv.png",
        {"original": result.originals, **{label(n): result.outputs[n] for n in CONV}},
        _columns(len(result.originals)),
        "Test digits through the convolutional AEs (the report's Figures 18–20)",
    )
    table = Table(
        ["decoder upsampling", "channels", "test MSE", "report", "ours / report"],
        [
            [
                label(n),
                "/".join(map(str, result.channels[n])),
                number(result.mse[n]),
                number(REPORTED_MSE[n]),
                f"{result.mse[n] / REPORTED_MSE[n]:.2f}",
            ]
            for n in CONV
        ],
    )
    plot = f"{FIGURES}/6-conv-curves.png"
    figures.curves(
        out / plot,
        {label(n): result.histories[n] for n in CONV},
        {"train_mse": "train", "test_mse": "test"},
        "Convolutional AEs: MSE per epoch",
    )
    blocks: list = [
        "Three convolutional AEs (two conv + max-pool stages down) that differ in how the decoder "
        "upsamples: max-unpooling with the encoder's indices + conv, unpooling + transposed conv, and "
        "stride-2 transposed convs alone.",
        recon,
        table,
        Figure(plot, "Train (solid) and test (dashed) MSE per epoch, log scale (the report's Figure 21)"),
    ]
    for name in CONV:
        for index, (layer, kernels) in enumerate(result.kernels[name]):
            blocks.append(
                _grid(
                    out,
                    f"6-filters-{name}-{index + 1}.png",
                    {f"out {o}": k for o, k in enumerate(kernels)},
                    [f"in {i}" for i in range(kernels.shape[1])],
                    f"{label(name)} decoder, layer {layer}: kernels by output (rows) and input channel (columns) "
                    f"(the report's Figure {22 + CONV.index(name)}, one kernel a layer)",
                    scale="symmetric",
                )
            )
    return Section("6. Convolutional AEs", blocks)


def summary_section(
    quality: dict[str, SetScores],
    pca_linear: float,
    activation: dict[str, float],
    *,
    engines: dict[str, Engine],
    env: dict[str, str],
    seconds: dict[str, float],
) -> Section:
    """The summary: every number beside the report's, each run's training and inference facts, timings, environment."""
    scores = {name: result.mse for name, result in quality.items()}
    tested = f"scores the first {next(iter(quality.values())).images:,}" if quality else "scores none"
    rows = [
        [f"test MSE, {label(n)}", number(scores[n]), number(r), f"{scores[n] / r:.2f}"] for n, r in REPORTED_MSE.items()
    ]
    rows.insert(
        1,
        [
            "test MSE, PCA-30 pure linear (the optimum)",
            number(pca_linear),
            number(REPORTED_MSE["pca"]),
            f"{pca_linear / REPORTED_MSE['pca']:.2f}",
        ],
    )
    rows += [
        [f"mean activation, {label(n)}", number(activation[n]), number(r), f"{activation[n] / r:.2f}"]
        for n, r in REPORTED_ACTIVATION.items()
    ]

    def training_mse(run: ReportRun) -> float | None:
        last = run.history[-1] if run.history else {}
        return last.get("test_mse_clean", last.get("test_mse"))

    def wall(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f}"

    training = []
    for name, engine in engines.items():
        run = engine.run
        training.append(
            [
                label(name),
                "yes" if run.trained_now else "no, reused",
                str(run.config.epochs),
                f"≤ {run.config.limit}" if run.config.limit else "all",
                wall(run.train_seconds),
                wall(run.export_seconds),
                number(training_mse(run)),
                number(scores[name]),
                f"{quality[name].psnr:.2f}",
                number(quality[name].ssim),
                engine.backend,
                "; ".join(run.notes) or "—",
            ]
        )
    return Section(
        "7. Summary",
        [
            Table(["quantity", "ours", "report", "ours / report"], rows),
            Table(
                [
                    "model",
                    "trained by this report",
                    "epochs",
                    "training images",
                    "training wall s",
                    "export wall s",
                    "test MSE at training (torch, clean inputs)",
                    "test MSE in this report",
                    "test PSNR dB",
                    "test SSIM",
                    "inference",
                    "notes",
                ],
                training,
                "Wall times are the report's own measurements (timing.json beside each run); '—' where a run was "
                "trained or exported elsewhere. The two MSE columns agree when the ONNX export is faithful and both "
                f"score the same test digits: this report {tested}; the training column the first --limit of them "
                "for a run trained with one, else all. Notes name how a reused run was optimised otherwise (the "
                "report reuses a run that learned the same model on at least as much data, whatever its --lr, "
                "--batch-size or --seed) and a run that beats no trivial output. PSNR "
                "(peak 1) of the MSE over all test pixels and SSIM (Wang et al. 2004, 11×11 Gaussian window, σ 1.5, "
                "mean over digits) of clean test digits, through the runtime.",
            ),
            Table(["report step", "wall s"], [[step, f"{s:.1f}"] for step, s in seconds.items()]),
            Table(["environment", "value"], [[key, value] for key, value in env.items()]),
        ],
    )
