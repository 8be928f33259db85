"""The ONNX contract between export (torch side) and runtime (torch-free side).

Version 2: a model file has one input ``image`` (N×C×H×W float32 in [0, 1], C = 1 grey or 3 sRGB) and the outputs
``reconstruction`` (same shape) and ``code`` (the latent). Everything else the runtime needs travels in the
file's ``metadata_props`` under the keys below (JSON text where the value is structured): the contract version,
the channels and colour space, the input spec (a fixed size, or any size divisible by ``multiple_of``, and the
polarity), and the file's compatibility: the export target it was written for (``portable``: operators every
major runtime implements; ``onnxruntime``: the graph onnxruntime runs fastest), its operator types and the
runtimes the export ran it in, with their differences from onnxruntime. Models whose decoder needs only the code
also get a decoder graph beside them, ``NAME.decoder.onnx`` (input ``code``, output ``reconstruction``). An anomaly
detector (``aetool calibrate``) is a model file with three more outputs, ``score`` (N), ``anomaly_map`` (N×1×H×W)
and ``score_components`` (N×K), and its score, constants, threshold and calibration in the ``anomaly`` key (read by
``runtime.anomaly.AnomalySpec``). Version 1 files (no ``contract_version`` key) are N×1×H×W, white digit on black,
and still load and run unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

INPUT = "image"
RECONSTRUCTION = "reconstruction"
CODE = "code"
SCORE = "score"  # detectors: N anomaly scores, higher is more anomalous
ANOMALY_MAP = "anomaly_map"  # detectors: N×1×H×W, the smoothed squared-error map the heatmaps show
SCORE_COMPONENTS = "score_components"  # detectors: N×K, the raw components the score standardises and sums

# Round 1's registry names that now name other models: a round-1 run folder (its config records no channels) or
# model file (contract version 1) of that name holds the model named here.
ROUND_1_NAMES = {"denoise": "denoise-dense"}

# metadata_props keys
AETOOL_VERSION = "aetool_version"
MODEL_NAME = "model_name"  # registry name, e.g. "denoise"
MODEL_KIND = "model_kind"  # "pca" | "dense" | "conv"
ARCHITECTURE = "architecture"  # JSON: constructor arguments
DATASET = "dataset"  # "mnist" | "fashion-mnist"
NOISE = "noise"  # JSON: {"level": float, "kind": str}; level 0 for models not trained on noise
EPOCHS = "epochs"
TEST_MSE = "test_mse"  # float as text, "" when unknown
INPUT_SPEC = (
    "input_spec"  # JSON: {"shape": [...], "range": [0, 1], "polarity": "white-on-black", "multiple_of": 4|null}
)
PARITY = "parity"  # JSON: the export's parity report
VERSIONS = "versions"  # JSON: torch, onnx, onnxscript, onnxruntime versions
CREATED = "created"  # ISO 8601 UTC
OPSET = "opset"
PRECISION = "precision"  # "fp32" | "fp16" | "int8"
VARIANT = "variant"  # JSON for fp16/int8 files: error against the fp32 model and test-MSE change
DECODER = "decoder"  # file name of the decoder graph beside this file, "" when none
DECODER_SHA256 = "decoder_sha256"  # SHA-256 (hex) of that decoder file's bytes: binds the two files of one export
CHECKPOINT_SHA256 = "checkpoint_sha256"  # SHA-256 (hex) of the run's checkpoint.pt the file was exported from
CONTRACT_VERSION = "contract_version"  # "2"; absent in version-1 files
CHANNELS = "channels"  # "1" | "3"
COLOUR_SPACE = "colour_space"  # "gray" | "srgb"
TARGET = "target"  # "portable" | "onnxruntime": the export target the graph was written for
OPERATORS = "operators"  # JSON: the graph's operator types, sorted ("domain:Op" outside the default domain)
CHECKED_IN = "checked_in"  # JSON: runtime → {"version", "ok", "max_abs", "error"}: the runs the export made
ANOMALY = "anomaly"  # JSON, detectors only: score, constants, threshold, rule, calibration (runtime.anomaly)

VERSION = 2
POLARITY = "white-on-black"  # MNIST's world: dark-on-light inputs are inverted for the model and back
AS_IS = "as-is"  # photographs and other images of your own: fed as they are
POLARITIES = (POLARITY, AS_IS)


def rounded_up(size: tuple[int, int], multiple_of: int | None) -> tuple[int, int]:
    """``size`` (height, width) rounded up to multiples of ``multiple_of`` (unchanged for None or 1): a size that a
    fully convolutional model of that multiple takes (28×28 → 32×32 for a multiple of 8)."""
    step = multiple_of or 1
    return (-(-size[0] // step) * step, -(-size[1] // step) * step)


def polarity_of(dataset: str) -> str:
    """The polarity of a model trained on ``dataset``: MNIST's white-on-black for the IDX datasets (``mnist``,
    ``fashion-mnist``), as-is for ``images`` (a folder or glob of the user's). Images of as-is models are padded
    by mirroring, those of white-on-black ones with black (``images.pad_to``)."""
    return AS_IS if dataset == "images" else POLARITY


COLOUR_SPACES = {1: "gray", 3: "srgb"}


PORTABLE = "portable"  # only operators every major runtime implements
ONNXRUNTIME = "onnxruntime"  # the graph onnxruntime's CPU provider runs fastest
TARGETS = (PORTABLE, ONNXRUNTIME)

PRECISIONS = ("fp16", "int8")  # the reduced-precision variants an export may write beside the fp32 file


def recorded_test_mse(metadata: Mapping[str, Any]) -> float | None:
    """The test MSE a file records of itself (parsed metadata), on the run's test images: ``TEST_MSE`` (the fp32
    model's, which a variant also carries), and for an fp16/int8 file that times the rise over fp32 its ``VARIANT``
    record measured, both scored on the same images there. Export scores variants on centre crops when the test
    images differ in size, so a variant's own MSE there is of other images than the fp32's, and `models` and `web`
    showed a trial's int8 photo denoiser below its fp32 model, though it scored worse (trial 91). The variant's own
    number where no fp32 one is recorded; None when there is no number."""
    fp32 = _number(metadata.get(TEST_MSE))
    variant = metadata.get(VARIANT)
    if not isinstance(variant, dict):
        return fp32
    own, beside = _number(variant.get("test_mse")), _number(variant.get("test_mse_fp32"))
    if own is None:
        return fp32
    if fp32 is None or not beside:  # nothing to scale by: the variant's own figure
        return own
    scaled = _number(fp32 * own / beside)  # None past float64 (a crafted record): the fp32 figure stands
    return scaled if scaled is not None else fp32


def _number(value: Any) -> float | None:
    """A recorded MSE as a float; None for anything else (text, a bool, null, a negative or non-finite number: a
    crafted record's NaN reached the web page's JSON; trial 92)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if number else None


def variant_path(model_path: str | Path, precision: str) -> Path:
    """Where the ``precision`` variant of ``model_path`` lives: ``x.onnx`` → ``x.int8.onnx``."""
    path = Path(model_path)
    return path.with_name(path.name.removesuffix(".onnx") + f".{precision}.onnx")


def decoder_path(model_path: str | Path) -> Path:
    """Where the decoder graph of ``model_path`` lives: ``x.onnx`` → ``x.decoder.onnx``."""
    path = Path(model_path)
    return path.with_name(path.name.removesuffix(".onnx") + ".decoder.onnx")
