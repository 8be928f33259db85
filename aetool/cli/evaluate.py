"""``evaluate``: MSE, PSNR and SSIM of a model, or with ``--anomaly`` how well it detects anomalies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aetool.cli.app import app
from aetool.cli.inputs import check_invert, note_resize
from aetool.cli.options import Classes, Invert, Json, ModelOption, NoiseKind, Providers, Threads, Timeout, load_model
from aetool.cli.output import emit, error, note, reporting
from aetool.errors import AetoolError

if TYPE_CHECKING:
    from aetool.runtime.evaluate import Evaluation
    from aetool.runtime.model import Model


@app.command()
def evaluate(
    model: ModelOption = "denoise",
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the four MNIST IDX files (.gz or not), or of mnist/ and fashion-mnist/ "
            "subfolders: scores the test set. Default, when neither --data nor --inputs is given: $AETOOL_DATA_DIR.",
            metavar="FOLDER",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Clean images (a folder, searched recursively, or a glob): noised, reconstructed and scored "
            "against themselves.",
            metavar="FOLDER|GLOB",
            show_default=False,
        ),
    ] = None,
    inputs: Annotated[
        str | None,
        typer.Option(
            help="Input images (a folder or a glob), scored against --targets: pairs match by their path below the "
            "folder without the suffix (noisy/x.png ↔ clean/x.jpg).",
            metavar="FOLDER|GLOB",
            show_default=False,
        ),
    ] = None,
    targets: Annotated[
        str | None,
        typer.Option(
            help="Target images for --inputs (a folder or a glob).", metavar="FOLDER|GLOB", show_default=False
        ),
    ] = None,
    noise: Annotated[
        str | None,
        typer.Option(
            metavar="LEVEL|RANGE|MIX",
            help="Noise of the inputs: a level, or as train's --noise takes it, a range drawn per image (0:0.6) or "
            "several kinds (gaussian=0:0.6, mask=0.2). Default: the noise the model was trained with.",
            show_default=False,
        ),
    ] = None,
    noise_kind: Annotated[
        NoiseKind | None, typer.Option(help="Noise kind. Default: the model's, else gaussian.", show_default=False)
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Score only the first N images (or pairs).", show_default=False)
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Seed of the input noise. Default: the seed of the noisy test set training scored on (1234).",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            metavar="mnist|fashion-mnist",
            help="The IDX dataset under --data-dir: mnist or fashion-mnist. Default: the model's.",
            show_default=False,
        ),
    ] = None,
    anomaly: Annotated[
        bool,
        typer.Option(
            "--anomaly",
            help="Score anomaly detection instead: AUROC, AUPR and, at the file's threshold, precision, recall, F1 "
            "and false-positive rate, on IDX digits (--data-dir, --classes normal), a folder of labelled subfolders "
            "(--data, --classes normal) or --normal and --anomalous folders.",
        ),
    ] = False,
    classes: Classes = None,
    normal: Annotated[
        str | None,
        typer.Option(help="With --anomaly: normal images (folder or glob).", metavar="FOLDER|GLOB", show_default=False),
    ] = None,
    anomalous: Annotated[
        str | None,
        typer.Option(
            help="With --anomaly: anomalous images (folder or glob).", metavar="FOLDER|GLOB", show_default=False
        ),
    ] = None,
    resize: Annotated[
        bool,
        typer.Option(
            "--resize",
            help="Fit image files (--data, --inputs/--targets, --normal/--anomalous) of another size to a fixed-size "
            "(dense) model, input and target alike, and score them at the model's size. Without it they are refused.",
        ),
    ] = False,
    invert: Invert = None,
    as_json: Json = False,
    provider: Providers = None,
    threads: Threads = None,
    timeout: Timeout = None,
) -> None:
    """MSE, PSNR and SSIM of a model with onnxruntime alone (no torch): on MNIST's test set (--data-dir), on clean
    images noised here (--data), or on pairs of input and target images (--inputs, --targets); with --anomaly, how
    well it detects anomalies. Exit 1 when some images could not be scored or had no partner."""
    source = Sources(data_dir, dataset, data, inputs, targets, normal, anomalous, anomaly=anomaly)
    noised = any(v is not None for v in (noise, noise_kind, seed))
    with reporting(results=True):
        normal_classes = source.check(resize=resize, invert=invert, noised=noised, limit=limit, classes=classes)
        loaded = load_model(model, provider, threads, timeout)
        note_resize(loaded, resize=resize)
        check_invert(loaded, invert=invert)
        if anomaly:
            _evaluate_anomaly(
                loaded, source, classes=normal_classes, limit=limit, resize=resize, invert=invert, as_json=as_json
            )
            return
        from aetool.runtime.evaluate import evaluate as score
        from aetool.runtime.evaluate import evaluate_images, evaluate_pairs

        kind = noise_kind and noise_kind.value
        if inputs and targets:
            result = evaluate_pairs(loaded, inputs, targets, limit=limit, resize=resize, invert=invert)
        elif data:
            result = evaluate_images(
                loaded, data, noise=noise, noise_kind=kind, seed=seed, limit=limit, resize=resize, invert=invert
            )
        else:
            result = score(
                loaded, source.idx_folder(), dataset=dataset, noise=noise, noise_kind=kind, limit=limit, seed=seed
            )
        for failure in chain(result.failed, result.missing):
            error(f"{failure.label}: {failure.error}")
        for text in result.notes:
            note(text)
        emit(json.dumps(result.to_dict()) if as_json else _evaluation_line(result))
        if result.failed or result.missing:
            without = f", {len(result.missing)} without a partner" if result.missing else ""
            note(f"{result.n} scored, {len(result.failed)} could not be scored{without}")
            raise typer.Exit(1)


@dataclass(frozen=True)
class Sources:
    """What ``evaluate`` scores, as its options name it: IDX files (``data_dir``, ``dataset``), clean images
    (``data``), pairs of input and target images (``inputs``, ``targets``), or with ``anomaly`` normal and
    anomalous images (``normal``, ``anomalous``, or ``data``'s labelled subfolders). :meth:`check` holds every
    rule of which options go together, for both modes."""

    data_dir: Path | None
    dataset: str | None
    data: str | None
    inputs: str | None
    targets: str | None
    normal: str | None
    anomalous: str | None
    anomaly: bool = False

    @property
    def pairs(self) -> str:
        """The options that name two folders in this mode."""
        return "--normal/--anomalous" if self.anomaly else "--inputs/--targets"

    def check(
        self, *, resize: bool, invert: bool | None, noised: bool, limit: int | None, classes: str | None
    ) -> tuple[str, ...] | None:
        """The normal classes ``classes`` (--classes) names (``anomaly.parse_classes``; None without), once the
        options are checked to go together (``noised``: --noise, --noise-kind or --seed was given); raises
        ``AetoolError`` for the first that does not."""
        from aetool.runtime.anomaly import parse_classes
        from aetool.runtime.idx import IDX_DATASETS

        if self.dataset is not None and self.dataset not in IDX_DATASETS:
            raise AetoolError(
                f"--dataset takes mnist or fashion-mnist (the IDX datasets under --data-dir); got {self.dataset!r}"
            )
        if self.dataset is not None and any((self.data, self.inputs, self.targets, self.normal, self.anomalous)):
            raise AetoolError(
                "--dataset names the IDX dataset under --data-dir; image files (--data, --inputs, --normal) have none"
            )
        if self.anomaly and (self.inputs or self.targets or noised):
            raise AetoolError(
                "--anomaly scores images as they are: --inputs, --targets, --noise, --noise-kind and --seed do not apply"
            )
        if not self.anomaly and (self.normal or self.anomalous or classes):
            raise AetoolError("--normal, --anomalous and --classes go with --anomaly")
        try:
            normal_classes = parse_classes(classes)
        except ValueError as err:
            raise AetoolError(str(err)) from None
        if self.anomaly:
            self._check_anomaly(limit=limit, classes=classes)
        elif self.inputs or self.targets:
            self._check_pairs(noised=noised)
        elif self.data and self.data_dir:
            raise AetoolError("--data-dir reads IDX files and --data image files: give one")
        for given, option in ((resize, "--resize fits"), (invert is not None, "--invert and --no-invert apply to")):
            if given and not (self.data or self.inputs or self.normal):
                raise AetoolError(f"{option} image files (--data, {self.pairs}); IDX digits are scored as they are")
        return normal_classes

    def _check_anomaly(self, *, limit: int | None, classes: str | None) -> None:
        given = [
            name
            for name, value in (("--data", self.data), ("--data-dir", self.data_dir), ("--normal", self.normal))
            if value
        ]
        if len(given) > 1:
            raise AetoolError(f"{' and '.join(given)} name two sets of images: give one")
        if (self.normal is None) != (self.anomalous is None):
            raise AetoolError("--normal and --anomalous go together: a folder of each")
        if self.normal and classes:
            raise AetoolError("--classes picks the normal images of a labelled set; --normal names them already")
        if limit is not None and not self.data_dir and (self.normal or self.data):
            raise AetoolError("--limit applies to IDX data (--data-dir)")

    def _check_pairs(self, *, noised: bool) -> None:
        if not (self.inputs and self.targets):
            raise AetoolError(
                "--inputs and --targets go together: input images and the targets they are scored against"
            )
        if self.data or self.data_dir:
            raise AetoolError(
                f"{'--data' if self.data else '--data-dir'} and --inputs/--targets name two sets: give one"
            )
        if noised:
            raise AetoolError("--noise, --noise-kind and --seed noise clean images; pairs are scored as they are given")

    def idx_folder(self) -> Path:
        """The IDX folder: --data-dir, else $AETOOL_DATA_DIR (``idx.chosen_data_dir``); ``AetoolError`` without
        either."""
        from aetool.runtime.idx import chosen_data_dir

        folder = chosen_data_dir(self.data_dir)  # its dataset's subfolder and the dataset: the evaluation's to check
        if folder is None:
            raise AetoolError(f"no data: pass --data-dir (or set AETOOL_DATA_DIR), --data or {self.pairs}")
        return folder


def _evaluate_anomaly(
    loaded: Model,
    source: Sources,
    *,
    classes: tuple[str, ...] | None,
    limit: int | None,
    resize: bool,
    invert: bool | None,
    as_json: bool,
) -> None:
    """``aetool evaluate --anomaly`` of a checked ``source``: the measures; exit 1 when images failed."""
    from aetool.runtime.anomaly_evaluation import evaluate_folders, evaluate_idx, evaluate_labelled
    from aetool.runtime.detect import Detector

    detector = Detector(loaded)
    if source.normal and source.anomalous:
        result = evaluate_folders(detector, source.normal, source.anomalous, resize=resize, invert=invert)
    elif source.data:
        result = evaluate_labelled(detector, source.data, classes=classes, resize=resize, invert=invert)
    else:
        result = evaluate_idx(detector, source.idx_folder(), dataset=source.dataset, classes=classes, limit=limit)
    for failure in result.failed:
        error(f"{failure.label}: {failure.error}")
    for text in result.notes:
        note(text)
    if as_json:
        emit(json.dumps(result.to_dict()))
    else:
        at = result.at_threshold
        rates = (
            f"at threshold {result.threshold:.6g}: precision "
            + (f"{at['precision']:.1%}" if at["precision"] is not None else "– (nothing flagged)")
            + f", recall {at['recall']:.1%}, F1 {at['f1']:.1%}, FPR {at['fpr']:.2%}"
            if at is not None and result.threshold is not None
            else "no threshold: the model is not calibrated (aetool calibrate)"
        )
        emit(
            f"AUROC {result.auroc:.2%}, AUPR {result.aupr:.2%} over {result.n_normal} normal ({result.normal}) and "
            f"{result.n_anomalous} anomalous images of {result.data}, score {result.score}; {rates}; model "
            f"{result.model}"
        )
    if result.failed:
        note(f"{result.n_normal + result.n_anomalous} scored, {len(result.failed)} could not be scored")
        raise typer.Exit(1)


def _evaluation_line(result: Evaluation) -> str:
    """``aetool evaluate`` for people: the three scores, what they were measured on, and the recorded test MSE."""
    psnr = f"{result.psnr:.2f} dB" if result.psnr is not None else "∞ dB"
    ssim = f"{result.ssim:.4f}" if result.ssim is not None else "– (images under 11×11)"
    if 0 < result.ssim_images < result.n:
        counted = f"{result.ssim_images} image{'s' * (result.ssim_images != 1)}"
        ssim += f" (of the {counted} of at least 11×11)"
    scores = f"MSE {result.mse:.6f}, PSNR {psnr}, SSIM {ssim}"
    if result.input_mse is None or result.input_psnr is None:
        return _evaluated(result, scores)
    # and what doing nothing scores: the noisy inputs against the targets
    baseline = f"; the inputs themselves: MSE {result.input_mse:.6f}, PSNR {result.input_psnr:.2f} dB"
    ssim_then = f", SSIM {result.input_ssim:.4f}" if result.input_ssim is not None else ""
    return _evaluated(result, scores) + baseline + ssim_then


def _evaluated(result: Evaluation, scores: str) -> str:
    """The scores with what they were measured on, and the recorded test MSE."""
    noise_text = (
        f"noise {'mix' if ',' in result.noise_mix else 'range'} {result.noise_mix}"
        if result.noise_mix
        else f"{result.noise_kind} noise {result.noise:g}"
        if result.noise
        else "no noise"
    )
    if result.targets is not None:
        pairs = f"{result.n} pair{'s' if result.n > 1 else ''}"
        return f"{scores} over {pairs} {result.data} → {result.targets}, model {result.model}"
    images = f"{result.n} image{'s' if result.n > 1 else ''}"
    if result.split is None:
        seed = f", seed {result.seed}" if result.noise or result.noise_mix else ""
        return f"{scores} over {images} of {result.data} ({noise_text}{seed}), model {result.model}"
    recorded = result.recorded_test_mse
    return f"{result.split} {scores} over {images} ({noise_text}), model {result.model}" + (
        f"; the file records {recorded:.6f}{_under(result.recorded_noise)} (over all test images unless trained with "
        "--limit)"
        if recorded is not None
        else ""
    )


def _under(noise: str | None) -> str:
    """The noise a file's recorded test MSE was scored with, in words, when it is not this evaluation's (None)."""
    if noise is None:
        return ""
    return " without noise" if noise == "none" else f" with its training noise {noise}"
