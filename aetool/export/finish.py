"""The last step of a training run: its model file made current, as a plain export or as a calibrated detector for
a run that ends in one, unless the file there was already written from the run's checkpoint. ``aetool train``, the
report and the one-class page end their runs with it."""

from __future__ import annotations

from pathlib import Path

from aetool.console import Echo
from aetool.errors import AetoolError
from aetool.export.detector import Calibration, CalibrationOptions, calibrate_run
from aetool.export.exporter import ExportOptions, ExportResult, export_run, holds_detector
from aetool.runtime import load
from aetool.runtime.detect import read_spec
from aetool.train.run import RunFolder


def finish_run(
    run_dir: str | Path,
    *,
    calibration: CalibrationOptions | None = None,
    options: ExportOptions | None = None,
    over_detector: bool = False,
    echo: Echo = print,
) -> ExportResult | Calibration | None:
    """Write the run's model file (``RUN/model.onnx``) unless it is current; None when it is, else what
    :func:`calibrate_run` or :func:`export_run` returned.

    With ``calibration`` the run ends in a detector: the file is current when it was exported from the checkpoint
    there now (:meth:`RunFolder.export_is_current`) and is a calibrated detector, by ``calibration``'s rule when it
    asks for one (``fpr`` or ``quantile`` given), else by any (a user's own calibration stays); otherwise
    :func:`calibrate_run` writes it with ``calibration``. Without, any current export stays (a detector too), and
    otherwise :func:`export_run` writes a plain model with ``options`` (default ``ExportOptions()``), over a
    detector of an older checkpoint only with ``over_detector``. Raises what those two raise (``AetoolError`` for a
    run that cannot be read or a file that cannot be written, ``ParityError``…).
    """
    folder = RunFolder.at(run_dir)
    if _is_current(folder, calibration):
        return None
    if calibration is not None:
        return calibrate_run(folder.path, options=calibration, echo=echo)
    options = ExportOptions() if options is None else options
    return export_run(folder.path, options=options, over_detector=over_detector, echo=echo)


def _is_current(folder: RunFolder, calibration: CalibrationOptions | None) -> bool:
    """Whether the run's model file is what :func:`finish_run` would write: see there."""
    if not folder.export_is_current():
        return False
    if calibration is None:
        return True
    if calibration.fpr is None and calibration.quantile is None:  # no rule asked for: any detector
        return holds_detector(folder.model_file)
    try:  # as the runtime reads a detector: its record and its outputs
        spec = read_spec(load(folder.model_file, threads=1))
    except AetoolError:  # a file the runtime cannot take as a model
        return False
    return spec is not None and spec.rule == calibration.rule
