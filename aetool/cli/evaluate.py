"""``evaluate``: MSE, PSNR and SSIM of a model, or with ``--anomaly`` how well it detects anomalies."""

from __future__ import annotations

import json
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aetool.cli.app import app
from aetool.cli.inputs import check_invert, note_resize
from aetool.cli.options import Classes, Invert, Json, ModelOption, NoiseKind, Providers, Threads, Timeout, load_model
from aetool.cli.output import emit, error, fail, note, reporting
from aetool.errors import AetoolError

if TYPE_CHECKING:
    from aetool.runtime.evaluate import Evaluation


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
    if dataset is not None and dataset not in ("mnist", "fashion-mnist"):
        fail(f"--dataset takes mnist or fashion-mnist (the IDX datasets under --data-dir); got {dataset!r}")
    if dataset is not None and any((data, inputs, targets, normal, anomalous)):
        fail("--dataset names the IDX dataset under --data-dir; image files (--data, --inputs, --normal) have none")
    if anomaly:
        if inputs or targets or any(v is not None for v in (noise, noise_kind, seed)):
            fail(
                "--anomaly scores images as they are: --inputs, --targets, --noise, --noise-kind and --seed do not apply"
            )
        from aetool.runtime.anomaly import parse_classes

        try:
            normal_classes = parse_classes(classes)
        except ValueError as err:
            fail(str(err))
        _evaluate_anomaly(
            model,
            data_dir=data_dir,
            dataset=dataset,
            data=data,
            classes=normal_classes,
            sides=(normal, anomalous),
            limit=limit,
            fit=(resize, invert),
            as_json=as_json,
            session=(provider, threads, timeout),
        )
        return
    if normal or anomalous or classes:
        fail("--normal, --anomalous and --classes go with --anomaly")
    with reporting(results=True):
        from aetool.runtime.evaluate import evaluate as score
        from aetool.runtime.evaluate import evaluate_images, evaluate_pairs
        from aetool.runtime.idx import chosen_data_dir

        kind = noise_kind and noise_kind.value
        if inputs or targets:
            _refuse_with_pairs(data_dir, data, inputs, targets, noised=any(v is not None for v in (noise, kind, seed)))
        elif data and data_dir:
            raise AetoolError("--data-dir reads IDX files and --data image files: give one")
        for given, option in ((resize, "--resize fits"), (invert is not None, "--invert and --no-invert apply to")):
            if given and not (data or inputs):
                raise AetoolError(
                    f"{option} image files (--data, --inputs/--targets); IDX digits are scored as they are"
                )
        loaded = load_model(model, provider, threads, timeout)
        note_resize(loaded, resize=resize)
        check_invert(loaded, invert=invert)
        if inputs and targets:
            result = evaluate_pairs(loaded, inputs, targets, limit=limit, resize=resize, invert=invert)
        elif data:
            result = evaluate_images(
                loaded, data, noise=noise, noise_kind=kind, seed=seed, limit=limit, resize=resize, invert=invert
            )
        else:
            folder = chosen_data_dir(data_dir)  # its dataset's subfolder and the dataset: evaluate's to check
            if folder is None:
                raise AetoolError("no data: pass --data-dir (or set AETOOL_DATA_DIR), --data or --inputs/--targets")
            result = score(loaded, folder, dataset=dataset, noise=noise, noise_kind=kind, limit=limit, seed=seed)
        for failure in chain(result.failed, result.missing):
            error(f"{failure.label}: {failure.error}")
        for text in result.notes:
            note(text)
        emit(json.dumps(result.to_dict()) if as_json else _evaluation_line(result))
        if result.failed or result.missing:
            without = f", {len(result.missing)} without a partner" if result.missing else ""
            note(f"{result.n} scored, {len(result.failed)} could not be scored{without}")
            raise typer.Exit(1)


def _evaluate_anomaly(
    model: str,
    *,
    data_dir: Path | None,
    dataset: str | None,
    data: str | None,
    classes: tuple[str, ...] | None,
    sides: tuple[str | None, str | None],
    limit: int | None,
    fit: tuple[bool, bool | None],
    as_json: bool,
    session: tuple[list[str] | None, int | None, float | None],
) -> None:
    """``aetool evaluate --anomaly``: one of the three sources, the measures, exit 1 when images failed; ``fit``:
    ``--resize`` and ``--invert``/``--no-invert`` (None: neither)."""
    with reporting(results=True):
        from aetool.runtime.detect import Detector, evaluate_folders, evaluate_idx, evaluate_labelled
        from aetool.runtime.idx import chosen_data_dir

        normal, anomalous = sides
        given = [name for name, value in (("--data", data), ("--data-dir", data_dir), ("--normal", normal)) if value]
        if len(given) > 1:
            raise AetoolError(f"{' and '.join(given)} name two sets of images: give one")
        if (normal is None) != (anomalous is None):
            raise AetoolError("--normal and --anomalous go together: a folder of each")
        if normal and classes:
            raise AetoolError("--classes picks the normal images of a labelled set; --normal names them already")
        if limit is not None and not data_dir and (normal or data):
            raise AetoolError("--limit applies to IDX data (--data-dir)")
        resize, invert = fit
        for asked, option in ((resize, "--resize fits"), (invert is not None, "--invert and --no-invert apply to")):
            if asked and not (normal or data):
                raise AetoolError(
                    f"{option} image files (--data, --normal/--anomalous); IDX digits are scored as they are"
                )
        detector = Detector(load_model(model, *session))
        note_resize(detector.model, resize=resize)
        check_invert(detector.model, invert=invert)
        if normal and anomalous:
            result = evaluate_folders(detector, normal, anomalous, resize=resize, invert=invert)
        elif data:
            result = evaluate_labelled(detector, data, classes=classes, resize=resize, invert=invert)
        else:
            folder = chosen_data_dir(data_dir)  # its dataset's subfolder and the dataset: evaluate_idx's to check
            if folder is None:
                raise AetoolError("no data: pass --data-dir (or set AETOOL_DATA_DIR), --data or --normal/--anomalous")
            result = evaluate_idx(detector, folder, dataset=dataset, classes=classes, limit=limit)
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


def _refuse_with_pairs(
    data_dir: Path | None, data: str | None, inputs: str | None, targets: str | None, *, noised: bool
) -> None:
    """Raise ``AetoolError`` for options that do not go with --inputs and --targets."""
    if not (inputs and targets):
        raise AetoolError("--inputs and --targets go together: input images and the targets they are scored against")
    if data or data_dir:
        raise AetoolError(f"{'--data' if data else '--data-dir'} and --inputs/--targets name two sets: give one")
    if noised:
        raise AetoolError("--noise, --noise-kind and --seed noise clean images; pairs are scored as they are given")


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
