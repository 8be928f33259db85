"""``detect``: anomaly scores, verdicts and heatmaps of images."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from aetool.cli.app import app
from aetool.cli.inputs import changes_made, check_invert, collected, like_digits, note_resize, on_digits, ran_by
from aetool.cli.options import (
    Inputs,
    Invert,
    Providers,
    Recursive,
    Resize,
    Threads,
    Timeout,
    complete_model,
    load_model,
)
from aetool.cli.output import emit, error, escape_controls, note, reporting
from aetool.cli.progress import Tally, shows_bar, tracked

if TYPE_CHECKING:
    from aetool.runtime.detect import Detection, Detector


LOW_SCORE = "unusually low"


BLANK_FRAMES = (
    "normal by the threshold, but an image unlike the normal ones can score low too, as a blank, flat or blurred "
    "frame is easy to reconstruct; --json: unusually_low"
)


_VERDICTS = {True: "anomalous", False: "normal", None: "scored"}


def _detection_record(detection: Detection, detector: Detector) -> str:
    """``detect --json``'s line for one image: its record, the detector's threshold and score named in a failed
    image's too (they were null there), and the model that ran."""
    record = {**detection.record(), "threshold": detector.threshold, "score_name": detector.score_name}
    return json.dumps({**record, **ran_by(detector.model)})


def _detection_line(result: Detection) -> str:
    """detect's line for a scored image: path (control characters escaped, and backslashes doubled so that the
    names ``a\\nb`` and ``a<newline>b`` stay apart), score, threshold (- without one) and verdict, tab-separated."""
    limit = "-" if result.threshold is None else f"{result.threshold:.6g}"
    path = escape_controls(result.path.replace("\\", "\\\\"))
    return f"{path}\t{result.score:.6g}\t{limit}\t{_VERDICTS[result.anomalous]}"


@app.command()
def detect(
    inputs: Inputs,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            metavar="NAME|FILE",
            help="A detector (aetool calibrate), or any model file: then scored by MSE, with no threshold.",
            show_default=False,
            autocompletion=complete_model,
        ),
    ],
    heatmaps: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help="Write NAME.heatmap.png (the anomaly map over the image) and NAME.raw.heatmap.png (the map as 16-bit "
            "grey, value/65535) per image into this folder, mirroring the inputs' folders.",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="Score above which an image is anomalous. Default: the file's.", show_default=False),
    ] = None,
    recursive: Recursive = False,
    invert: Invert = None,
    resize: Resize = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON line per image on standard output, with every number.")
    ] = False,
    provider: Providers = None,
    threads: Threads = None,
    timeout: Timeout = None,
) -> None:
    """Score images for anomalies with onnxruntime alone: per image the score, the threshold and the verdict, and
    heatmaps on request. Exit 0 whatever the verdicts; 1 when some images could not be scored."""
    with reporting(results=True):
        import threading

        from aetool.runtime import contract, signals
        from aetool.runtime.detect import HEATMAP, Detection, Detector, detect, plan_detection

        found, failures, ready = collected(inputs, recursive=recursive, skip=HEATMAP)
        jobs, clashes = plan_detection(found, heatmaps=heatmaps)
        unwritable = {clash.label: clash.error for clash in clashes}  # scored, their heatmaps not written
        loaded = load_model(model, provider, threads, timeout)
        check_invert(loaded, invert=invert)
        note_resize(loaded, resize=resize)
        detector = Detector(loaded, threshold=threshold)
        started = time.perf_counter()
        verdicts: Counter[str] = Counter()  # per image: its verdict (or "scored"), or "failed" when it has no score
        unwritten = 0  # images scored whose heatmaps could not be written
        tally = Tally(len(jobs) + len(failures) if isinstance(jobs, Sequence) else None)
        for failure in failures:
            error(f"{failure.label}: {failure.error}")
            verdicts["failed"] += 1
            tally.settle(failure.label)
            if as_json:
                emit(_detection_record(Detection(failure.label, error=failure.error), detector))
        stop = threading.Event()  # Ctrl-C while a record is printed: the settled ones are printed first
        not_digits = False  # an image scored that is not a 28×28 grey one, for a detector of digits
        try:
            results = detect(jobs, detector, invert=invert, resize=resize, stop=stop, ready=ready)
            for result in tracked(results, tally.total, shows_bar(tally.total, records=True)):  # a line each
                if result.error is None and result.path in unwritable:
                    result.error = unwritable[result.path]
                with signals.interrupts_deferred(stop):
                    if as_json:
                        emit(_detection_record(result, detector))
                    if result.error:
                        error(f"{result.path}: {result.error}")
                        if result.score is None:
                            verdicts["failed"] += 1
                            tally.settle(result.path)
                            continue
                        unwritten += 1  # scored, and its verdict counted; its heatmaps could not be written
                    verdict = _VERDICTS[result.anomalous]
                    verdicts[verdict] += 1
                    not_digits |= not like_digits(result)
                    done = changes_made(result, loaded.input_spec.channels, forced=invert is True, scored=True)
                    if result.unusually_low:
                        done.append((LOW_SCORE, f"score unusually low for a normal image ({BLANK_FRAMES})"))
                    tally.settle(result.path, done)
                    if not as_json:
                        emit(_detection_line(result))
        except KeyboardInterrupt:  # the records settled before it are printed (and their heatmaps written) first
            split = (
                f": {verdicts['anomalous']} anomalous, {verdicts['normal']} normal"
                if detector.threshold is not None
                else ""
            )
            raise tally.interrupted(f"{tally.settled - verdicts['failed']} scored{split}") from None
    kinds = ("anomalous", "normal") if detector.threshold is not None else ("scored",)
    counts = ", ".join(f"{verdicts[kind]} {kind}" for kind in (*kinds, "failed") if kind != "failed" or verdicts[kind])
    counts += f", {unwritten} whose heatmaps could not be written" if unwritten else ""
    rule = (
        f"score {detector.score_name} > {detector.threshold:.6g}"
        if detector.threshold is not None
        else f"score {detector.score_name}, no threshold: the model is not calibrated (aetool calibrate)"
    )
    total = sum(verdicts.values()) - len(failures)  # images; the inputs that gave none are counted apart
    images = f"{total} image{'' if total == 1 else 's'}" + (
        f" and {len(failures)} input{' that' if len(failures) == 1 else 's that'} gave none" if failures else ""
    )
    also = "".join(f"; {count}" for count in tally.counted())
    note(f"{images}: {counts} ({rule}{also}) in {time.perf_counter() - started:.2f} s")
    if tally.kinds[LOW_SCORE] and not tally.few:
        fence = f"below {detector.low_fence:.6g}, the calibration scores' Q1 − 1.5 × IQR"
        note(f"{tally.kinds[LOW_SCORE]} scored unusually low ({fence}): {BLANK_FRAMES}")
    if not_digits and on_digits(loaded):
        kind = "detector" if contract.ANOMALY in loaded.metadata else "model"
        note(
            f"this {kind} was trained on grey 28×28 images ({loaded.metadata.get(contract.DATASET)}): on other images "
            "(photographs, pages) its scores say little about defects; train one on images like yours (aetool "
            "train anomaly --data FOLDER; see the README, Anomaly detection)"
        )
    raise typer.Exit(1 if verdicts["failed"] or unwritten else 0)
