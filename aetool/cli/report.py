"""``report``: the course report, or the one-class anomaly page, reproduced."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aetool.cli.app import app
from aetool.cli.extras import need_train_extra
from aetool.cli.options import DataDir
from aetool.cli.output import note, reporting
from aetool.cli.progress import training_bar
from aetool.errors import DataError


@app.command()
def report(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Folder for index.html, README.md, figures/ and numbers.json (oneclass.json with --anomaly).",
            metavar="DIR",
        ),
    ] = Path("report"),
    runs: Annotated[
        Path | None,
        typer.Option(
            help="Folder of run folders: complete runs are reused, missing ones "
            "trained (default: runs/, or runs/quick/ with --quick).",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    quick: Annotated[bool, typer.Option(help="A few-minute demo: 20 epochs on 2,000 digits, every section.")] = False,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Epochs for models trained now (default: each model's).", show_default=False),
    ] = None,
    retrain: Annotated[
        bool,
        typer.Option(
            help="Train over runs in --runs that were trained with other settings (default: refuse, naming them)."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    anomaly: Annotated[
        bool,
        typer.Option(
            "--anomaly",
            help="Build the one-class anomaly page instead (into report/anomaly/ by default; runs in runs/oneclass/): "
            "a detector per class of MNIST and Fashion-MNIST, AUROC beside the published numbers, score histograms "
            "and heatmaps. --data-dir holds mnist/ and fashion-mnist/; --quick: classes 0 and 1, 2 epochs.",
        ),
    ] = False,
) -> None:
    """Reproduce every experiment of the report: figures, tables and our numbers beside the report's."""
    if anomaly and output == Path("report"):
        output = output / "anomaly"
    if runs is None:
        runs = Path("runs/quick" if quick else "runs") / ("oneclass" if anomaly else "")
    with reporting():  # before PyTorch loads, the data is fetched and the runs trained, whose page comes last
        from aetool.runtime.files import check_folder
        from aetool.runtime.idx import chosen_data_dir, existing_folder

        check_folder(output)
        check_folder(runs, named="--runs")
        if (folder := chosen_data_dir(data_dir)) is not None:
            existing_folder(folder.absolute())  # a mistyped one was said once PCA was fitted (trial 102)
    need_train_extra("report")
    if anomaly:
        with reporting():
            from aetool.report.oneclass import build_oneclass_report

            try:
                index, _ = build_oneclass_report(
                    output,
                    data_dir=data_dir,
                    runs=runs,
                    classes=(0, 1) if quick else tuple(range(10)),
                    epochs=epochs or (2 if quick else None),
                    retrain=retrain,
                    echo=note,
                )
            except DataError as err:
                raise DataError(
                    f"{err} (report --anomaly is the one-class benchmark of MNIST and Fashion-MNIST; for your own "
                    "images: aetool evaluate --anomaly --data or --normal/--anomalous)"
                ) from None
            note(f"open {index}")
        return
    with reporting():
        from aetool.report import build_report

        index = build_report(
            output,
            runs=runs,
            data_dir=data_dir,
            quick=quick,
            epochs=epochs,
            retrain=retrain,
            echo=note,
            progress=training_bar(quiet),
        )
        note(f"open {index}")
