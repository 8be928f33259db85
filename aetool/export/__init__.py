"""Export trained models to ONNX files that are verified against PyTorch before they are written.

One job per module: ``onnx_export`` converts, ``unpool`` and ``ort_layers`` keep max-unpooling exact and fast in
ONNX (the ``onnxruntime`` target), ``portable`` writes the graphs every major runtime runs (the default target),
``phases`` turns stride-2 transposed convolutions into one convolution per output phase, ``parity`` verifies,
``metadata`` annotates, ``variants`` makes fp16/int8 files, and ``exporter`` runs them in order and writes all the
files or none. ``scores`` puts an anomaly score on a model (the detector graph) and
``detector`` calibrates it (``aetool calibrate``); ``finish`` ends a training run with one or the other, unless its
model file is current already.
"""

from aetool.export.exporter import ExportOptions, ExportResult, export_model, export_run
from aetool.export.parity import ParityError, ParityReport
from aetool.export.variants import VariantReport

__all__ = [
    "ExportOptions",
    "ExportResult",
    "ParityError",
    "ParityReport",
    "VariantReport",
    "export_model",
    "export_run",
]
