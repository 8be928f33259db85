"""Export trained models to ONNX files that are verified against PyTorch before they are written.

One job per module: ``onnx_export`` converts, ``unpool`` keeps max-unpooling exact and fast in ONNX, ``parity``
verifies, ``metadata`` annotates, ``variants`` makes fp16/int8 files, ``pipeline`` runs them in order and writes
all files or none.
"""

from aetool.export.parity import ParityError, ParityReport
from aetool.export.pipeline import ExportResult, export_model, export_run
from aetool.export.variants import VariantReport

__all__ = ["ExportResult", "ParityError", "ParityReport", "VariantReport", "export_model", "export_run"]
