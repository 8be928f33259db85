"""The one-class anomaly benchmark and its page: a paper's table reproduced with the detectors a user gets.

The protocol of Ruff et al., "Deep One-Class Classification", ICML 2018: for each class c of MNIST (and of
Fashion-MNIST), train on the training images of class c only, then score the whole test set, class c normal and
the other nine anomalous, and report the AUROC per class and its mean. Each class goes through the user's path:
``aetool train anomaly --classes c`` (its defaults, 20 % of the class held out), the detector it exports
(calibrated on the held-out images at ``--fpr``), and the torch-free runtime scoring the test digits
(``runtime.anomaly_evaluation``), so the numbers are those of the files. The page (``index.html``, ``README.md``,
``figures/``, ``oneclass.json``) puts the published numbers beside ours, shows the score histograms of normal
and anomalous test images, and the ten least and most anomalous test images of each detector with their heatmaps.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure as PlotFigure

from aetool.console import Echo, check_echo
from aetool.errors import AetoolError, checked_switch
from aetool.export.detector import CalibrationOptions
from aetool.export.finish import finish_run
from aetool.report.environment import environment
from aetool.report.figures import DPI
from aetool.report.page import Figure, Section, Table, check_page_folder, staged_page, write_html, write_markdown
from aetool.report.runs import (
    Plan,
    exported_timing,
    plan_run,
    read_timing,
    trained_timing,
    write_timing,
)
from aetool.runtime import load
from aetool.runtime.anomaly import DEFAULT_FPR, auroc, average_precision, rates
from aetool.runtime.anomaly_evaluation import idx_inputs, idx_scores
from aetool.runtime.detect import Detector, overlay
from aetool.runtime.idx import check_dataset, load_split, resolve_data_dir
from aetool.train import RunFolder, TrainConfig, train
from aetool.train.loop import trivial_line

MODEL = "anomaly"
DATASETS = ("mnist", "fashion-mnist")
# As quoted by later papers (the originals were not checked here): AUROC % per class 0–9, and the mean.
PUBLISHED: dict[str, tuple[str, tuple[float, ...], float]] = {
    "mnist": (
        "One-Class Deep SVDD (Ruff et al., ICML 2018)",
        (98.0, 99.7, 91.7, 91.9, 94.9, 88.5, 98.3, 94.6, 93.9, 96.5),
        94.8,
    ),
    "fashion-mnist": (
        "GEOM (Golan & El-Yaniv, NeurIPS 2018)",
        (99.4, 97.6, 91.1, 89.9, 92.1, 93.4, 83.3, 98.9, 90.8, 99.2),
        93.5,
    ),
}
NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}
BARS = {"mnist": 97.0, "fashion-mnist": 92.5}  # mean AUROC % the defaults must reach (the bars)
CLASS_SECONDS, TOTAL_SECONDS = 90.0, 30 * 60.0  # training time bars: each class, all twenty
FPR_TOLERANCE = 0.01  # the false-positive rate on the normal test images within ±1 point of the rule's
SHOWN = 10  # least and most anomalous test images shown per class
FIGURES = "figures"
ONECLASS_NUMBERS = "oneclass.json"  # the page's numbers, which also mark a folder as an earlier page's


@dataclass
class ClassResult:
    """One class of one dataset: its detector's measures on the test set, the times, the tiles for the page."""

    dataset: str
    normal: int
    auroc: float  # %
    aupr: float  # %
    threshold: float
    fpr: float  # % of the normal class's test images above the threshold
    recall: float  # % of the anomalous test images above it
    train_seconds: float | None  # None: a reused run that records no training time (trained before aetool did)
    calibrate_seconds: float | None  # None: a reused detector calibrated outside the report
    score_seconds: float
    trained_now: bool
    epochs: int  # the run's training epochs
    held_out: float  # the fraction of the class's training images held out (they set the threshold)
    normal_scores: np.ndarray = field(repr=False)
    anomalous_scores: np.ndarray = field(repr=False)
    tiles: np.ndarray = field(repr=False)  # 2·SHOWN × 3×H×W: least then most anomalous, heatmaps over the images
    trained_with: list[str] = field(default_factory=list)  # how a reused run was optimised otherwise (--lr 0.002 …)
    learned_nothing: str | None = None  # train's line for a run that beats no trivial output by 10 %

    @property
    def published(self) -> float:
        return PUBLISHED[self.dataset][1][self.normal]

    def to_dict(self) -> dict[str, Any]:
        keys = (
            "dataset",
            "normal",
            "auroc",
            "aupr",
            "threshold",
            "fpr",
            "recall",
            "trained_now",
            "trained_with",
            "learned_nothing",
        )
        record: dict[str, Any] = {key: getattr(self, key) for key in keys}
        record["published"] = self.published
        record["seconds"] = {
            "train": self.train_seconds,
            "calibrate": self.calibrate_seconds,
            "score": self.score_seconds,
        }
        return record


def class_folder(runs: Path, dataset: str, normal: int) -> RunFolder:
    """Where the page's run of one class is: ``RUNS/DATASET/class-N``."""
    return RunFolder(runs / dataset / f"class-{normal}")


def class_config(dataset: str, normal: int, *, data_dir: Path, epochs: int | None) -> TrainConfig:
    """The settings the page trains one class with: the registry's ``anomaly`` model, one normal class."""
    return TrainConfig(MODEL, dataset=dataset, data_dir=str(data_dir), classes=(str(normal),), epochs=epochs)


def _class_plan(folder: RunFolder, config: TrainConfig, *, train_again: bool) -> Plan:
    """The report's plan for the run (:func:`~aetool.report.runs.plan_run`: reuse, resume, or train over), or
    training it anew over a run there when ``train_again``."""
    if train_again and folder.holds_run():
        return Plan(config, force=True, why="trained again (train_again)")
    return plan_run(folder, config)


def run_class(
    dataset: str,
    normal: int,
    *,
    data_dir: Path,
    runs: Path,
    fpr: float = DEFAULT_FPR,
    epochs: int | None = None,
    threads: int | None = None,
    retrain: bool = False,
    train_again: bool = False,
    echo: Echo = print,
) -> ClassResult:
    """Train (or reuse, or resume), calibrate at ``fpr`` and score the test set for one class; ``data_dir`` holds
    the dataset's four IDX files. ``threads`` is onnxruntime's (torch's is the caller's to set). A run there
    trained with other settings is trained over only with ``retrain`` (else ``AetoolError``, as the report's runs);
    ``train_again`` trains every class anew (the benchmark's timing)."""
    config = class_config(dataset, normal, data_dir=data_dir, epochs=epochs)
    folder = class_folder(runs, dataset, normal)
    plan = _class_plan(folder, config, train_again=train_again)
    if plan.force and not retrain and not train_again:
        raise AetoolError(
            f"the one-class report would train over a run of yours ({folder.path}: {plan.why}); "
            "pass --retrain to let it, or --runs to another folder"
        )
    timing = read_timing(folder)
    if plan.config is None:
        echo(f"oneclass: {dataset} class {normal}: {plan.why} ({folder.path})")
    else:
        before = (folder.recorded_seconds() or 0.0) if plan.resume else 0.0  # the epochs trained before a stop
        started = time.perf_counter()
        train(
            plan.config,
            run_dir=folder.path,
            resume=plan.resume,
            force=plan.force,
            progress=False,
            echo=lambda line: None,
        )
        timing = trained_timing(folder, seconds=before + time.perf_counter() - started)  # data loading included
        echo(f"oneclass: {dataset} class {normal}: {plan.why}: trained in {timing['train_seconds']:.1f} s")
    started = time.perf_counter()
    calibration = CalibrationOptions(fpr=fpr, data_dir=data_dir)  # a detector of the run calibrated at fpr stays
    if finish_run(folder.path, calibration=calibration, echo=lambda line: None) is not None:
        timing.update(exported_timing(folder, seconds=time.perf_counter() - started))
        write_timing(folder, timing)
    elif plan.config is not None:
        write_timing(folder, timing)
    train_seconds = timing["train_seconds"] if "train_seconds" in timing else folder.recorded_seconds()
    started = time.perf_counter()
    detector = Detector(load(folder.model_file, threads=threads))
    scores, labels = idx_scores(detector, data_dir)
    score_seconds = time.perf_counter() - started
    is_anomaly = labels != str(normal)
    assert detector.threshold is not None  # the detector was just calibrated
    at = rates(scores, is_anomaly, detector.threshold)
    order = np.argsort(scores, kind="mergesort")
    shown = np.r_[order[:SHOWN], order[-SHOWN:]]
    pixels = idx_inputs(detector.model, load_split(data_dir, "test")[0][shown])
    scored = detector.run(pixels)
    scale = detector.map_scale or float(scored.maps.max())
    tiles = np.stack([overlay(image, amap[0], scale) for image, amap in zip(pixels, scored.maps, strict=True)])
    metrics = folder.read_metrics()
    problem = trivial_line(metrics)
    if problem and plan.config is None:  # training said so as it ended
        echo(f"oneclass: {dataset} class {normal}: {problem}; the page shows what it does all the same")
    return ClassResult(
        dataset,
        normal,
        100 * auroc(scores, is_anomaly),
        100 * average_precision(scores, is_anomaly),
        detector.threshold,
        100 * at.fpr,
        100 * at.recall,
        train_seconds,
        timing.get("export_seconds"),
        score_seconds,
        plan.config is not None,
        int(metrics["config"]["epochs"]),  # a reused run's own, which may be more than asked for
        config.held_out,
        scores[~is_anomaly],
        scores[is_anomaly],
        tiles,
        list(plan.otherwise),
        problem,
    )


# ---- the page ----


def _histograms(path: Path, results: Sequence[ClassResult]) -> Path:
    """One panel per class: the scores of its normal and anomalous test images, and the threshold."""
    columns = min(5, len(results))
    rows = -(-len(results) // columns)
    figure = PlotFigure(figsize=(3.2 * columns, 2.4 * rows + 0.7), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    names = NAMES[results[0].dataset]
    for panel, result in zip(axes, results, strict=False):
        both = np.r_[result.normal_scores, result.anomalous_scores]
        edges = np.linspace(both.min(), np.quantile(both, 0.995), 40)
        for scores, label, colour, hatch in (  # hatched as well as coloured: not told apart by colour alone
            (result.normal_scores, "normal (the panel's class)", "C0", None),
            (result.anomalous_scores, "anomalous (the other nine)", "C3", "////"),
        ):
            panel.hist(
                np.clip(scores, None, edges[-1]),
                bins=edges,
                density=True,
                alpha=0.55,
                color=colour,
                hatch=hatch,
                edgecolor=colour if hatch else None,
                label=label,
            )
        panel.axvline(result.threshold, color="k", linestyle="--", linewidth=1, label="threshold")
        panel.set_title(f"class {names[result.normal]}: AUROC {result.auroc:.1f}", fontsize=9)
        panel.set_xlabel("score", fontsize=7)
        panel.set_ylabel("density", fontsize=7)
        panel.tick_params(labelsize=7)
        panel.set_yticks([])
    # one legend for all panels, at the size of the axis labels: ten of them at 5 points were 3.5 pixels high on
    # the page (trial 95)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=9)
    for panel in axes[len(results) :]:
        panel.set_visible(False)
    figure.suptitle(
        "Score of every test image, normal against anomalous (density; scores above the 99.5th "
        "percentile in the last bin)",
        fontsize=10,
    )
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _heatmaps(path: Path, results: Sequence[ClassResult]) -> Path:
    """A row per class: its detector's ten least anomalous test images, then its ten most, heatmaps laid over."""
    gap, height, width = 2, *results[0].tiles.shape[2:]
    count = 2 * SHOWN
    mosaic = np.ones((len(results) * (height + gap) + gap, (count + 1) * (width + gap) + gap, 3), np.float32)
    for row, result in enumerate(results):
        for column, tile in enumerate(result.tiles):
            left = gap + (column + (column >= SHOWN)) * (width + gap)  # an empty column between the two groups
            top = gap + row * (height + gap)
            mosaic[top : top + height, left : left + width] = tile.transpose(1, 2, 0)
    inches = 0.5  # a digit about 50 pixels across at DPI (25 before: too small to see its map)
    figure = PlotFigure(figsize=(mosaic.shape[1] / width * inches + 2.0, mosaic.shape[0] / height * inches + 0.8))
    axes = figure.subplots()
    axes.imshow(mosaic, interpolation="nearest")
    scale = ScalarMappable(cmap="inferno", norm=Normalize(0, 1))
    figure.colorbar(
        scale,
        ax=axes,
        location="bottom",
        shrink=0.35,
        aspect=30,
        pad=0.12,
        label="anomaly map ÷ the detector's map scale",
    )
    names = NAMES[results[0].dataset]
    axes.set_yticks([gap + row * (height + gap) + height / 2 for row in range(len(results))])
    axes.set_yticklabels([f"normal: {names[result.normal]}" for result in results], fontsize=7)
    middle = (width + gap) * SHOWN / 2
    axes.set_xticks([middle, middle + (SHOWN + 1) * (width + gap)])
    axes.set_xticklabels([f"{SHOWN} least anomalous test images", f"{SHOWN} most anomalous"], fontsize=8)
    axes.tick_params(length=0)
    axes.set_title(
        "Each class's detector on the whole test set: heatmaps (anomaly map, inferno) over the images", fontsize=9
    )
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _table(results: Sequence[ClassResult]) -> Table:
    dataset = results[0].dataset
    method, _, published_mean = PUBLISHED[dataset]
    rows = [
        [
            f"{result.normal} {NAMES[dataset][result.normal]}" if dataset != "mnist" else str(result.normal),
            f"{result.auroc:.1f}",
            f"{result.published:.1f}",
            f"{result.auroc - result.published:+.1f}",
            f"{result.aupr:.1f}",
            f"{result.fpr:.2f}",
            f"{result.recall:.1f}",
            _seconds(result.train_seconds),
            _seconds(_all_seconds(result)),
        ]
        for result in results
    ]
    ours = float(np.mean([result.auroc for result in results]))
    full = len(results) == len(NAMES[dataset])
    published = published_mean if full else float(np.mean([result.published for result in results]))
    rows.append(
        [
            "mean",
            f"{ours:.2f}",
            f"{published:.2f}",
            f"{ours - published:+.2f}",
            f"{np.mean([result.aupr for result in results]):.1f}",
            f"{np.mean([result.fpr for result in results]):.2f}",
            f"{np.mean([result.recall for result in results]):.1f}",
            _seconds(_mean([result.train_seconds for result in results])),
            _seconds(_mean([_all_seconds(result) for result in results])),
        ]
    )
    header = [
        "normal class",
        "AUROC %",
        f"{method}",
        "Δ",
        "AUPR %",
        "FPR % at threshold",
        "recall % at threshold",
        "train s",
        "all s",
    ]
    caption = (
        "AUROC and AUPR over the 10,000 test images (anomalies positive). FPR: the share of the normal class's test "
        "images above the stored threshold; recall: the share of the others above it. train s: aetool train "
        "(data loading included; for a run trained elsewhere, its epochs as metrics.json records them); all s: "
        "training, calibration with the verified export, and scoring the test set; — where not known."
    )
    return Table(header, rows, caption)


def default_epochs() -> int:
    """The epochs ``aetool train anomaly`` takes by default (the registry's)."""
    return TrainConfig(MODEL).epochs or 0


def short_runs(results: Sequence[ClassResult]) -> bool:
    """Whether any class trained for fewer epochs than aetool's default (``--quick``, ``--epochs``): the bars are
    for runs with the defaults, so such a page judges none."""
    default = default_epochs()
    return any(result.epochs < default for result in results)


def summary(results: Sequence[ClassResult], *, fpr: float) -> dict[str, Any]:
    """The means, the bars and whether each holds (None for :func:`short_runs`)."""
    short = short_runs(results)
    record: dict[str, Any] = {"datasets": {}, "fpr_asked": fpr, "short_runs": short}
    for dataset in DATASETS:
        mine = [result for result in results if result.dataset == dataset]
        if not mine:
            continue
        mean = float(np.mean([result.auroc for result in mine]))
        full = len(mine) == len(NAMES[dataset])
        record["datasets"][dataset] = {
            "mean_auroc": mean,
            "published_mean": PUBLISHED[dataset][2] if full else float(np.mean([r.published for r in mine])),
            "bar": BARS[dataset],
            "meets_bar": None if short else mean >= BARS[dataset],
            "classes": len(mine),
        }
    train_seconds = [result.train_seconds for result in results]
    known = [seconds for seconds in train_seconds if seconds is not None]
    unknown = len(known) < len(train_seconds)  # reused runs that record no training time: the bars are not judged
    within = [abs(result.fpr / 100 - fpr) <= FPR_TOLERANCE for result in results]
    record["slowest_class_train_seconds"] = None if unknown else max(known)
    record["all_train_seconds"] = None if unknown else sum(known)
    every = [_all_seconds(result) for result in results]
    record["all_seconds"] = None if None in every else sum(seconds for seconds in every if seconds is not None)
    record["meets_time_bars"] = (
        None if short or unknown else max(known) <= CLASS_SECONDS and sum(known) <= TOTAL_SECONDS
    )
    record["fpr_within_one_point"] = f"{sum(within)}/{len(within)}"
    return record


def _all_seconds(result: ClassResult) -> float | None:
    """A class's training, calibration and scoring time; None when its training or calibration time is unknown."""
    if result.train_seconds is None or result.calibrate_seconds is None:
        return None
    return result.train_seconds + result.calibrate_seconds + result.score_seconds


def _mean(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return float(np.mean(known)) if len(known) == len(values) else None


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _span(values: Iterable[object]) -> str:
    """``15`` when every class used the same value, ``2 to 15`` when they differ."""
    found = sorted(set(values), key=lambda value: float(str(value)))
    return str(found[0]) if len(found) == 1 else f"{found[0]} to {found[-1]}"


def write_page(out: Path, results: Sequence[ClassResult], *, fpr: float, extra: dict[str, Any] | None = None) -> Path:
    """``out/index.html``, ``out/README.md``, ``out/figures/`` and ``out/oneclass.json`` (``ONECLASS_NUMBERS``);
    returns index.html."""
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    totals = summary(results, fpr=fpr)
    sections = []
    for dataset in DATASETS:
        mine = [result for result in results if result.dataset == dataset]
        if not mine:
            continue
        histogram = _histograms(out / FIGURES / f"{dataset}-histograms.png", mine)
        heatmap = _heatmaps(out / FIGURES / f"{dataset}-heatmaps.png", mine)
        method = PUBLISHED[dataset][0]
        facts = totals["datasets"][dataset]
        if totals["short_runs"]:
            verdict = f"The bar of {facts['bar']} % is for runs trained with aetool's defaults, not these short ones."
        elif facts["classes"] == len(NAMES[dataset]):
            verdict = f"It {'meets' if facts['meets_bar'] else 'misses'} the bar of {facts['bar']} %."
        else:
            verdict = f"The bar of {facts['bar']} % is for the mean over all {len(NAMES[dataset])} classes."
        sections.append(
            Section(
                f"One-class {dataset}",
                [
                    f"Mean AUROC {facts['mean_auroc']:.2f} % over {facts['classes']} classes; {method} "
                    f"{facts['published_mean']} % as quoted by later papers (the original table was not checked "
                    f"here). {verdict}",
                    _table(mine),
                    Figure(f"{FIGURES}/{histogram.name}", f"{dataset}: scores of normal and anomalous test images"),
                    Figure(f"{FIGURES}/{heatmap.name}", f"{dataset}: least and most anomalous test images, heatmaps"),
                ],
            )
        )
    env = environment()
    sections.append(Section("Where it ran", [Table(["environment", "value"], [[k, v] for k, v in env.items()])]))
    epochs = _span(result.epochs for result in results)
    how = "aetool's settings but SHORT RUNS" if totals["short_runs"] else "aetool's defaults"
    intro = [
        f"The one-class protocol of Ruff et al. (ICML 2018), run with {how}: aetool train {MODEL} "
        f"--classes c (dense AE 784-256-32-256-784, MSE, {epochs} epoch{'s' * (epochs != '1')}, "
        f"{_span(f'{100 * r.held_out:.0f}' for r in results)} % of the class held out), the detector file "
        f"it exports (score ssim+smax+wmse, each standardised on the held-out images; threshold at --fpr {fpr:g}), "
        "and the torch-free runtime scoring the whole test set with class c normal and the other nine anomalous."
        + (
            f" SHORT RUNS: {epochs} epoch{'s' * (epochs != '1')} where aetool's default is "
            f"{default_epochs()} (--quick or --epochs): the numbers show that every step works, not what "
            "the detector reaches; the bars are not judged. Run without --quick and --epochs for numbers to compare "
            "with the published ones."
            if totals["short_runs"]
            else ""
        ),
        f"Time bars: each class trained in at most {CLASS_SECONDS:.0f} s, all of them in at most "
        f"{TOTAL_SECONDS / 60:.0f} minutes "
        + (
            "(not judged: reused runs that record no training time, shown —). "
            if totals["all_train_seconds"] is None
            else f"(slowest {totals['slowest_class_train_seconds']:.1f} s; took {totals['all_train_seconds']:.0f} s "
            f"to train, {_seconds(totals['all_seconds']) + ' s' * (totals['all_seconds'] is not None)} in all). "
        )
        + "Calibration: "
        f"the FPR on the normal class's test images is within ±1 point of {fpr:.0%} for "
        f"{totals['fpr_within_one_point']} classes.",
    ]
    otherwise = [f"{r.dataset} class {r.normal} ({', '.join(r.trained_with)})" for r in results if r.trained_with]
    if otherwise:
        intro.append(f"Reused runs optimised otherwise than aetool's settings: {'; '.join(otherwise)}.")
    trivial = [f"{r.dataset} class {r.normal} ({r.learned_nothing})" for r in results if r.learned_nothing]
    if trivial:  # the main report's notes column says the same of its runs (trial 95)
        intro.append(f"Runs that beat no trivial output by 10 %: {'; '.join(trivial)}.")
    title = "One-class anomaly detection on MNIST and Fashion-MNIST"
    write_markdown(out / "README.md", title, intro, sections)
    index = write_html(out / "index.html", title, intro, sections)
    document = {
        "summary": totals,
        "classes": [result.to_dict() for result in results],
        "published": {key: {"method": m, "auroc": list(v), "mean": mean} for key, (m, v, mean) in PUBLISHED.items()},
        "environment": env,
        **(extra or {}),
    }
    (out / ONECLASS_NUMBERS).write_text(json.dumps(document, indent=2))
    return index


def build_oneclass_report(
    out: Path,
    *,
    data_dir: str | Path | None,
    runs: Path,
    datasets: Sequence[str] = DATASETS,
    classes: Sequence[int] = tuple(range(10)),
    fpr: float = DEFAULT_FPR,
    epochs: int | None = None,
    threads: int | None = None,
    retrain: bool = False,
    train_again: bool = False,
    echo: Echo = print,
) -> tuple[Path, list[ClassResult]]:
    """Run every class of every dataset (see :func:`run_class`) and write the page; index.html and the results.

    ``data_dir`` holds the datasets' IDX files (itself, or ``mnist/`` and ``fashion-mnist/`` below it), else
    ``$AETOOL_DATA_DIR``. Raises ``AetoolError`` when a dataset's folder cannot be found, or (before training
    anything) when runs in ``runs`` were trained with other settings and neither ``retrain`` nor ``train_again``
    lets the page train over them; ``TypeError`` for an ``echo`` that is not a function and a ``retrain`` or
    ``train_again`` that is not True or False.
    """
    check_echo(echo)
    retrain = checked_switch(retrain, name="retrain")
    train_again = checked_switch(train_again, name="train_again")
    check_page_folder(Path(out), numbers=ONECLASS_NUMBERS)
    if RunFolder(runs).holds_run():  # one class's run, given for the folder of them all
        raise AetoolError(
            f"--runs {runs} is one run's folder (it holds checkpoint.pt); give the folder that holds the one-class "
            f"runs (DATASET/class-N below it), e.g. --runs {Path(runs).parent}"
        )
    folders = {}
    for dataset in datasets:  # every dataset's folder before any training
        folder = resolve_data_dir(data_dir, dataset)
        if folder is None:
            raise AetoolError(f"the one-class report reads {dataset} from --data-dir or $AETOOL_DATA_DIR; give one")
        both = "give --data-dir a folder with mnist/ and fashion-mnist/ subfolders"
        check_dataset(folder, dataset, advice=f"the one-class report reads {' and '.join(datasets)}: {both}")
        folders[dataset] = folder
    if not (retrain or train_again):
        clashes = [
            f"{folder.path}: {plan.why}"
            for dataset, data in folders.items()
            for normal in classes
            for folder in [class_folder(runs, dataset, normal)]
            for plan in [plan_run(folder, class_config(dataset, normal, data_dir=data, epochs=epochs))]
            if plan.force
        ]
        if clashes:
            raise AetoolError(
                f"the one-class report would train over runs of yours ({'; '.join(clashes)}); pass --retrain to "
                "let it, or --runs to another folder"
            )
    results = []
    load_before = os.getloadavg()
    started = time.perf_counter()
    for dataset, folder in folders.items():
        for normal in classes:
            result = run_class(
                dataset,
                normal,
                data_dir=folder,
                runs=runs,
                fpr=fpr,
                epochs=epochs,
                threads=threads,
                retrain=retrain,
                train_again=train_again,
                echo=echo,
            )
            echo(
                f"oneclass: {dataset} class {normal}: AUROC {result.auroc:.2f} % (published {result.published}), "
                f"FPR {result.fpr:.2f} %, "
                + ("training time unknown" if result.train_seconds is None else f"train {result.train_seconds:.1f} s")
            )
            results.append(result)
    extra = {
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "wall_seconds": time.perf_counter() - started,
    }
    with staged_page(Path(out), numbers=ONECLASS_NUMBERS) as stage:  # never half a page in out/
        write_page(stage, results, fpr=fpr, extra=extra)
    return Path(out) / "index.html", results
