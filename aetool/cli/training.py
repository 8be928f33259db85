"""``train``, ``export`` and ``calibrate``: commands that need the train extra (PyTorch), imported inside their
bodies."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from aetool.cli.app import app
from aetool.cli.extras import need_train_extra
from aetool.cli.options import DataDir, Dataset, Json, Loss, NoiseKind, RunDataDir, Target, alias
from aetool.cli.output import emit, fail, note, reporting
from aetool.cli.progress import training_bar
from aetool.errors import AetoolError, ContractError, Interrupted, NotLearned
from aetool.names import MODELS, REPORT_MODELS
from aetool.runs import checkpoint_problem, run_folder

MODEL_NAMES = (
    f"{', '.join(REPORT_MODELS)} (the report's); dncnn (a denoiser for your own images), denoise (the blind "
    "digit denoiser), anomaly (an anomaly detector)"
)


def _known_models() -> tuple[str, ...]:
    """The registry's model names: the registry itself once ``aetool.models`` is loaded (code that imported it may
    have added models), else ``MODELS``, its names spelled out, so that a typo is refused before PyTorch loads."""
    loaded = sys.modules.get("aetool.models")
    return tuple(loaded.REGISTRY) if loaded is not None else MODELS


DEFAULT_SOURCES = ("DEFAULT", "DEFAULT_MAP")  # a parameter the user left alone


def _given_options(ctx: typer.Context) -> set[str]:
    """The parameters of a command given on its command line or through the environment, not left at default."""
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}  # click's ParameterSource, or None
    return {name for name, source in sources.items() if source is not None and source.name not in DEFAULT_SOURCES}


def _check_before_torch(
    settings: dict[str, Any], *, model: str, output: str | None, out: str | None, resume: bool
) -> Path:
    """The run folder of ``train`` (``--output``, or round 1's ``--out``; default ``runs/MODEL``), once what can be
    refused before PyTorch loads (5-8 s) is: ``settings``' values (``TrainConfig``'s keyword arguments; a resumed
    run's are checked with the run's own settings once it is read), a folder that cannot be written, a mistyped
    ``--data``, ``--val-data`` or ``--data-dir``. Each is said in one line, exit 2 (``fail``, or an ``AetoolError``
    for ``reporting`` to say)."""
    from aetool.runtime.files import check_exists, check_folder, full_path
    from aetool.runtime.idx import chosen_data_dir, existing_folder
    from aetool.train.settings import check_settings

    try:
        if not resume:
            check_settings(settings)
    except ValueError as err:
        fail(str(err))
    run_dir = Path(alias(output, out, "--output", "--out", default=str(Path("runs") / model)))
    if run_dir.is_dir() or not run_dir.exists():  # a file there: said by the run folder itself
        check_folder(run_dir)  # a read-only place said now, not once the data were decoded (trial 85)
    for option, name in (("--data", "data"), ("--val-data", "val_data")):
        if settings[name] and not resume:  # a mistyped path, said in a second, not after PyTorch loaded (trial 85)
            full = full_path(settings[name], named=option)  # as TrainConfig records it
            check_exists(full, named=f"{option} {full}")
    if settings["data"] is None and not resume and (idx_folder := chosen_data_dir(settings["data_dir"])) is not None:
        existing_folder(idx_folder.absolute())  # a mistyped --data-dir, before PyTorch loads (trial 102)
    return run_dir


@app.command()
def train(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(
            help=f"Model to train: {MODEL_NAMES}.",
            metavar="MODEL",
            show_default=False,
            autocompletion=lambda incomplete: [name for name in _known_models() if name.startswith(incomplete)],
        ),
    ],
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs (default: the model's).", show_default=False)
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Global batch size (default: the model's, 128 for most; dncnn 32).", show_default=False
        ),
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate of Adam (default: the model's).", show_default=False)
    ] = None,
    loss: Annotated[Loss | None, typer.Option(help="The loss (default: the model's).", show_default=False)] = None,
    l1: Annotated[
        float | None, typer.Option(help="L1 weight on the code's activations (sparse: 0.01).", show_default=False)
    ] = None,
    noise: Annotated[
        str | None,
        typer.Option(
            metavar="LEVEL|RANGE|MIX",
            help="Train on noisy inputs (the model's default: denoise-dense 0.5, dncnn 0.098 (σ 25 of 255), denoise "
            "a blind mix): a level of --noise-kind (0.5), a range drawn per image (0:0.6), or several kinds, each a "
            "level or range, one drawn per image (gaussian=0:0.6, salt-pepper=0:0.3, mask=0:0.25), @WEIGHT after one "
            "to draw it more or less often (gaussian=0@0.1 adds clean images a tenth as often as a term of weight 1).",
            show_default=False,
        ),
    ] = None,
    noise_kind: Annotated[NoiseKind, typer.Option(help="Kind of training noise.")] = NoiseKind.gaussian,
    components: Annotated[
        int | None, typer.Option(min=1, help="PCA components (default: 30).", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of weights, batch order and noise.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    dataset: Annotated[
        Dataset | None,
        typer.Option(
            help="mnist or fashion-mnist (IDX files); images with --data. \\[default: mnist; images with --data]",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Train on your own images: a folder (searched recursively; subfolder names are labels) or a glob, "
            "in every format Pillow reads, grey or colour.",
            metavar="FOLDER|GLOB",
            show_default=False,
        ),
    ] = None,
    val: Annotated[
        float | None,
        typer.Option(
            help="Fraction of --data held out for validation, drawn with --seed. "
            "\\[default: 0.1; 0.2 with --classes; at least one image]",
            show_default=False,
        ),
    ] = None,
    val_data: Annotated[
        str | None,
        typer.Option(
            help="Validation images as a folder or glob instead of --val.", metavar="FOLDER|GLOB", show_default=False
        ),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(
            metavar="HxW",
            help="Dense models (one fixed size): resize every image to HxW. Default: the images' size when they all "
            "share one (refused, naming the sizes found, when they differ); 28x28 for IDX data.",
            show_default=False,
        ),
    ] = None,
    patch: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Convolutional models (any size): train on random N×N crops (scored on whole images). Default: "
            "whole images, when they all share a size.",
            show_default=False,
        ),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option(
            help="1 (grey) or 3 (colour). Default: 3 when any training image is in colour, else 1; 3 on grey images "
            "replicates them.",
            show_default=False,
        ),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(
            metavar="LABELS",
            help="One-class training for anomaly detection: only these classes, separated by commas (digits of IDX "
            "data, subfolder names of --data); a --val fraction of them (0.2) is held out, and the run ends with a "
            "detector calibrated on it (see aetool calibrate).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Use only the first N train and N test images.", show_default=False)
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Run folder (default: runs/MODEL).", metavar="DIR", show_default=False),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run in the run folder from its last epoch, with its own settings for every option "
            "left out."
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="Start over even if the run folder holds a run.")] = False,
    export: Annotated[bool, typer.Option(help="Export a verified model.onnx into the run folder at the end.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    augment: Annotated[
        bool | None,
        typer.Option(
            "--augment/--no-augment",
            help="Flip and rotate each training image or patch (--patch) by one of the 8 symmetries of the square "
            "(4 for an oblong one). Default: the model's (dncnn: on).",
            show_default=False,
        ),
    ] = None,
    allow_trivial: Annotated[
        bool,
        typer.Option(
            "--allow-trivial",
            help="Export and exit 0 even when the model does not beat a trivial output (all black, the mean training "
            "image, the noisy input itself) by 10 % (default: say so and exit 3 without exporting).",
        ),
    ] = False,
    out: Annotated[str | None, typer.Option("--out", hidden=True)] = None,  # round 1's name of --output
) -> None:
    """Train a model of the report; the run folder gets metrics.json, checkpoint.pt and model.onnx (a calibrated
    anomaly detector for one-class runs and the anomaly model)."""
    known = _known_models()
    if model not in known:  # refused before torch loads (seconds), as are the options parsed without it below
        fail(f"unknown model {model!r}; known models: {', '.join(known)}")
    with reporting():
        from aetool.runtime.images import parse_size

        settings: dict[str, Any] = {
            "data": data,
            "val": val,
            "val_data": val_data,
            "size": parse_size(size, option="--size"),
            "patch": patch,
            "channels": channels,
            "classes": classes,  # TrainConfig parses 1,7 (runtime.anomaly.parse_classes)
            "augment": augment,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "loss": loss and loss.value,
            "l1": l1,
            "noise": noise,  # TrainConfig splits it: a level, or a range or mix (noise_mix)
            "noise_kind": noise_kind.value,
            "components": components,
            "seed": seed,
            "device": device,
            "dataset": dataset.value if dataset else "",
            "data_dir": data_dir,
            "limit": limit,
        }
        run_dir = _check_before_torch(settings, model=model, output=output, out=out, resume=resume)
    need_train_extra("train")
    with reporting():
        from aetool.export import ExportOptions
        from aetool.export.detector import CalibrationOptions
        from aetool.export.finish import finish_run
        from aetool.export.metadata import created
        from aetool.runtime.noise import scale_note
        from aetool.train import RunFolder, TrainConfig
        from aetool.train import train as run_training
        from aetool.train.loop import best_baseline

        try:
            if resume:  # with the run's own settings for the options not given
                config = RunFolder.at(run_dir).resumed_config(model, settings, given=_given_options(ctx))
            else:
                config = TrainConfig(model, **settings)
        except ValueError as err:
            fail(str(err))
        if said := scale_note(config.noise_spec):
            note(f"warning: {said}")
        if export:
            created()  # a $SOURCE_DATE_EPOCH the export cannot take is refused before the training
        resumed = resume and RunFolder(run_dir).holds_run()  # --resume on no run trains a new one, as it says
        result = run_training(
            config, run_dir=run_dir, resume=resume, force=force, progress=training_bar(quiet), echo=note
        )
        if not result.is_main:
            return
        epochs = result.history[-1]["epoch"]
        recorded = RunFolder(result.run_dir).recorded_seconds() if resumed else None  # not this resume's alone
        spent = f"{recorded:.0f} s (summed over its resumes)" if recorded is not None else f"{result.seconds:.0f} s"
        trivial = best_baseline(result.baselines)
        beside = f" ({trivial})" if trivial else ""
        trained = f"after {epochs} epoch{'s' * (epochs != 1)}" if epochs else "fitted in closed form"  # pca: epoch 0
        note(f"{model}: test MSE {result.test_mse:.5f}{beside} {trained} in {spent} → {result.run_dir}")
        detector = config.ends_in_detector
        command = "calibrate" if detector else "export"
        if result.trivial and not allow_trivial:
            kept = f"the run stays in {result.run_dir}"
            raise NotLearned(
                f"{model}: {result.trivial}; "
                + (
                    f"not exported ({kept}; aetool {command} {result.run_dir} exports it anyway)"
                    if export
                    else f"{kept} (--resume --allow-trivial accepts it)"
                )
            )
        if not export:
            return
        calibration = CalibrationOptions(data_dir=config.data_dir) if detector else None
        options = ExportOptions(data_dir=config.data_dir)  # the run's new model replaces any file there
        try:  # a finished run resumed keeps its own files: a plain export, or a detector where it ends in one
            finished = finish_run(
                result.run_dir, calibration=calibration, options=options, over_detector=True, echo=note
            )
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted while exporting; the run is complete, export it with: aetool {command} {result.run_dir}"
            ) from None
        except ContractError as err:  # the model's code must change: exporting again cannot help
            raise ContractError(f"{err}; the run stays in {result.run_dir}") from None
        except AetoolError as err:  # an option the message names is one of that command's
            raise type(err)(f"{err} (the run is complete; go on with: aetool {command} {result.run_dir})") from None
        if finished is None:
            note(f"{RunFolder(result.run_dir).model_file} was exported from the run's last epoch: nothing to export")


def _check_run(run: Path) -> None:
    """``AetoolError`` for a RUN (a run folder or its ``checkpoint.pt``) without a checkpoint to read, said before
    PyTorch loads as ``RunFolder`` says it once it has (``runs.checkpoint_problem``)."""
    if problem := checkpoint_problem(run_folder(run)):
        raise AetoolError(problem)


@app.command("export")
def export_command(
    run: Annotated[Path, typer.Argument(help="Run folder (or its checkpoint.pt).", metavar="RUN", show_default=False)],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="ONNX file (default: RUN/model.onnx); one there is replaced, a detector only by --anomaly.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            help="Also write NAME.int8.onnx (dynamic for dense, static QDQ for conv); without it, one an earlier "
            "export left is removed, as it no longer matches the model."
        ),
    ] = False,
    fp16: Annotated[bool, typer.Option(help="Also write NAME.fp16.onnx (the same removal without it).")] = False,
    data_dir: RunDataDir = None,
    max_mse_rise: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Refuse a variant whose test MSE rises more than this fraction; then nothing is written, the fp32 "
            "file neither.",
        ),
    ] = 0.10,
    atol: Annotated[
        float, typer.Option(min=0.0, help="Largest allowed |torch - onnxruntime| of the fp32 file.")
    ] = 1e-5,
    target: Annotated[
        Target | None,
        typer.Option(
            help="portable: only operators that onnxruntime, onnxruntime-web, OpenVINO, OpenCV DNN and the ONNX "
            "reference all run; onnxruntime: the graph onnxruntime runs fastest (for the unpooling models 1.1-1.3× "
            "faster at batch 256, but not loadable by OpenVINO or OpenCV). \\[default: portable]",
            show_default=False,
        ),
    ] = None,
    anomaly: Annotated[
        bool,
        typer.Option(
            "--anomaly",
            help="Write an anomaly detector, calibrated on the run's held-out images at a false-positive rate of "
            "0.01 (aetool calibrate for other images and rules).",
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Export a trained run to ONNX, verified against PyTorch (and in every runtime installed here); nothing is
    written unless parity holds."""
    with reporting():
        _check_run(run)  # before PyTorch loads (5-9 s; trial 102)
    need_train_extra("export")
    with reporting():
        from aetool.export import ExportOptions, export_run
        from aetool.export.detector import CalibrationOptions, calibrate_run
        from aetool.export.exporter import DEFAULT_TARGET

        precisions = tuple(name for name, wanted in (("fp16", fp16), ("int8", int8)) if wanted)
        chosen = {"target": target.value} if target else {}
        if anomaly and precisions:
            raise AetoolError(f"a detector is written in fp32 only; leave out --{' and --'.join(precisions)}")
        if anomaly:
            calibration = CalibrationOptions(data_dir=data_dir, atol=atol, target=chosen.get("target", DEFAULT_TARGET))
            result = calibrate_run(run, out=output, options=calibration, echo=note).export
        else:
            options = ExportOptions(
                atol=atol, precisions=precisions, max_mse_rise=max_mse_rise, data_dir=data_dir, **chosen
            )
            result = export_run(run, out=output, options=options, echo=note)
        if as_json:
            emit(json.dumps(result.to_dict()))


@app.command()
def calibrate(
    run: Annotated[Path, typer.Argument(help="Run folder (or its checkpoint.pt).", metavar="RUN", show_default=False)],
    data: Annotated[
        str | None,
        typer.Option(
            help="Normal images to calibrate on (a folder, searched recursively, or a glob), none of them trained on. "
            "Default: the run's held-out images (20 % of a one-class run's; a folder run's validation images; an "
            "IDX run's test split).",
            metavar="FOLDER|GLOB",
            show_default=False,
        ),
    ] = None,
    fpr: Annotated[
        float | None,
        typer.Option(
            help="False-positive rate the threshold allows on normal images: the ceil((n + 1)(1 - FPR))-th smallest of "
            "the n calibration scores (split conformal), so a new normal image scores above it with probability at "
            "most FPR. \\[default: 0.01]",
            show_default=False,
        ),
    ] = None,
    quantile: Annotated[
        float | None,
        typer.Option(
            help="Or the threshold as this quantile of the normal scores, numpy's linear interpolation (slightly "
            "below the --fpr 0.01 threshold for 0.99).",
            show_default=False,
        ),
    ] = None,
    score: Annotated[
        str | None,
        typer.Option(
            metavar="PARTS",
            help="The score's components, joined by +, each standardised on the normal images: mse, ssim (1 - SSIM), "
            "smax (max of the smoothed error map), wmse (per-pixel weighted MSE). Default: ssim+smax+wmse, or "
            "ssim+smax for models of any size.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="ONNX file, replaced if there (default: RUN/model.onnx).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    data_dir: RunDataDir = None,
    atol: Annotated[float, typer.Option(min=0, help="Largest allowed |torch - onnxruntime| of the scores.")] = 1e-5,
    target: Annotated[
        Target | None,
        typer.Option(help="The export target, as for aetool export. \\[default: portable]", show_default=False),
    ] = None,
    as_json: Json = False,
) -> None:
    """Make a trained run an anomaly detector: one ONNX file that outputs a score and an anomaly map per image and
    holds the threshold, set on normal images, verified against PyTorch and the numpy runtime."""
    with reporting():  # what cannot work is said before PyTorch loads (5-9 s; trial 102)
        from aetool.runtime.anomaly import parse_score, threshold_rule
        from aetool.runtime.files import check_exists
        from aetool.runtime.idx import chosen_data_dir, existing_folder

        try:
            threshold_rule(fpr=fpr, quantile=quantile)
            components = parse_score(score) if score is not None else None
        except ValueError as err:
            fail(str(err))
        _check_run(run)
        if data is not None:  # a mistyped --data or --data-dir too (trial 103)
            check_exists(data, named=f"--data {data}")
        if data_dir is not None and (idx_folder := chosen_data_dir(data_dir)) is not None:
            existing_folder(idx_folder.absolute())
    need_train_extra("calibrate")
    with reporting():
        from aetool.export.detector import CalibrationOptions, calibrate_run
        from aetool.export.exporter import DEFAULT_TARGET

        try:
            options = CalibrationOptions(
                fpr=fpr,
                quantile=quantile,
                score=components,
                data=data,
                data_dir=data_dir,
                atol=atol,
                target=target.value if target else DEFAULT_TARGET,
            )
        except ValueError as err:
            fail(str(err))
        result = calibrate_run(run, out=output, options=options, echo=note)
        if as_json:
            emit(json.dumps(result.to_dict()))
