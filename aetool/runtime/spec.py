"""What images a model takes, read from its file: :class:`InputSpec` (size or multiple, channels, polarity, a fixed
batch; how many images go in one call, and when a large one goes in tiles) and the checks that a session's inputs,
outputs and metadata follow aetool's ONNX contract (:func:`check_contract`), with the contract version, the fixed
batch and the decoder file a model's metadata names."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aetool.errors import ModelFileError
from aetool.runtime import contract, tiles
from aetool.runtime.metadata import MAX_MULTIPLE_OF, check_input_spec, check_metadata

if TYPE_CHECKING:
    import onnxruntime

IMAGES_PER_CALL = 256  # images per session call: large enough to be fast, small enough to keep memory flat
PIXELS_PER_CALL = IMAGES_PER_CALL * 28 * 28  # values per call; larger images go fewer at a time
# Pixels per call for a model of any size (conv): its feature maps hold 16-64 values a pixel, so 256 digits in one
# call pass 3-13 MB tensors between the unpooling graphs' many elementwise nodes, beyond the CPU's 2 MB of L2 a
# core; 64 keep them nearer: 0.97-1.11× for those graphs and 1.05-1.12× for the blind denoiser at batch 256, level
# for conv-deconv (benchmarks/images_per_call.py, README: Speed and footprint), and a quarter of the activation
# memory. A 1000×1000 page still goes alone; one over 1024×1024 goes in tiles (tiles.TILE).
CONV_PIXELS_PER_CALL = 64 * 28 * 28
MAX_CONV_PIXELS = 4096 * 4096  # the largest page a conv model takes: 230–490 bytes of memory a pixel (README)
# Mirrored rows and columns added around an image of your own for a conv model (InputSpec.border). dncnn's output
# lost 6 dB in its outermost pixels without them (a photo of the trial that found it, README: Sizes).
MIRROR_BORDER = 8
# The element types a model's input may have (its float outputs too, and float64), and their numpy types
DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_MULTIPLE = re.compile(r"(\d+)\*\w+")  # a symbolic side an exporter wrote as a multiple: "4*h"


@dataclass(frozen=True)
class InputSpec:
    """What images a model takes: a fixed size (dense models) or any size divisible by ``multiple_of`` (conv),
    with ``channels`` channels (1 grey, 3 sRGB) and a polarity (``white-on-black``: MNIST's world; ``as-is``);
    ``batch`` when the file fixes how many images one call takes."""

    size: tuple[int, int] | None  # (height, width) when fixed
    multiple_of: int = 1
    polarity: str = contract.POLARITY
    channels: int = 1
    batch: int | None = None  # images per session call when the file fixes it (e.g. 1), else None: any

    @property
    def border(self) -> int:
        """Rows and columns of mirrored image the image commands add on every side for an as-is model of any size
        (``MIRROR_BORDER``, rounded up to ``multiple_of``; 0 for the others): a conv net pads its own edges with
        zeros, which left a 1-pixel frame of noise around photos ``dncnn`` denoised."""
        if not self.mirror_padding or self.size is not None:
            return 0
        return -(-MIRROR_BORDER // self.multiple_of) * self.multiple_of

    @property
    def mirror_padding(self) -> bool:
        """Whether images are padded to ``multiple_of`` by mirroring (as-is models: photographs) rather than with
        black (white-on-black models, whose background black is); see ``images.pad_to``."""
        return self.polarity == contract.AS_IS

    @property
    def colour_space(self) -> str:
        """``gray`` for one channel, ``srgb`` for three."""
        return contract.COLOUR_SPACES[self.channels]

    def images_per_call(self, height: int, width: int, *, limit: int = IMAGES_PER_CALL) -> int:
        """How many images of height × width pixels one session call takes: the ``batch`` the file fixes, else at
        most ``limit``, and at most ``CONV_PIXELS_PER_CALL`` pixels for a model of any size (conv; 64
        digits) or ``PIXELS_PER_CALL`` values for one of a fixed size (dense; 256 digits); at least one, whatever
        ``limit`` says."""
        if self.batch:
            return self.batch
        if self.size is None:
            return max(1, min(limit, CONV_PIXELS_PER_CALL // max(1, height * width)))
        return max(1, min(limit, PIXELS_PER_CALL // max(1, self.channels * height * width)))

    def tiling(self, height: int, width: int) -> tuple[int, int] | None:
        """``(tile, margin)`` in pixels when :meth:`Model.reconstruct` runs images of height × width in tiles
        (:mod:`aetool.runtime.tiles`): through a model of any size (conv), more than ``tiles.TILE``² pixels; both
        rounded up to a multiple of ``multiple_of``. None when the image goes whole."""
        if self.size is not None or height * width <= tiles.TILE * tiles.TILE:
            return None
        tile, margin = (-(-size // self.multiple_of) * self.multiple_of for size in (tiles.TILE, tiles.MARGIN))
        return tile, margin

    def check(self, height: int, width: int) -> None:
        """Raise ``ValueError`` when an image of this size cannot go into the model as it is."""
        if height < 1 or width < 1:
            raise ValueError(f"expected images of at least 1×1 pixels, got {height}×{width}")
        if self.size is not None and (height, width) != self.size:
            raise ValueError(
                f"model takes {self.size[0]}×{self.size[1]} images, got {height}×{width} (height×width, as arrays are)"
            )
        if height % self.multiple_of or width % self.multiple_of:
            raise ValueError(
                f"model takes sizes divisible by {self.multiple_of}, got {height}×{width} (height×width, as arrays are)"
            )

    def padded(self, height: int, width: int, *, border: int = 0, tiled: bool = False) -> tuple[int, int]:
        """The size an image of any size is padded to for a model of any size (the next multiples of
        ``multiple_of``, after ``border`` rows and columns on every side); raises ``ValueError`` when that is over
        ``MAX_CONV_PIXELS``, the largest page whose activations fit in memory in one call (about 230 bytes a pixel
        for ``conv-unpool``, 490 for the bundled ``denoise``), and when a file that fixes its batch at B (each call
        padded to B images) would run B such pages over it, and for a size under 1×1 or a negative ``border`` (-5×3
        gave (-4, 4); trial 100). ``tiled``: no limit, for an image that :meth:`Model.reconstruct` runs in tiles."""
        if height < 1 or width < 1 or border < 0:
            raise ValueError(
                f"expected an image of at least 1×1 pixels and a border ≥ 0, got {height}×{width}, {border}"
            )
        rows, cols = height + 2 * border, width + 2 * border
        padded = contract.rounded_up((rows, cols), self.multiple_of)
        if tiled:
            return padded
        if padded[0] * padded[1] > MAX_CONV_PIXELS:
            raise ValueError(
                f"{width}×{height} (width×height) is over the {MAX_CONV_PIXELS:,}-pixel limit of a conv model for an image run in "
                "one call, as here (230 to 490 bytes of memory per pixel, by model; denoise, reconstruct and evaluate "
                "run larger images in tiles); scale it down first"
            )
        if self.batch and self.batch * padded[0] * padded[1] > MAX_CONV_PIXELS:
            raise ValueError(
                f"the model file fixes its batch at {self.batch} images a call, so this {width}×{height} (width×height) image "
                f"would run as {self.batch} ({self.batch * padded[0] * padded[1]:,} pixels), over the "
                f"{MAX_CONV_PIXELS:,}-pixel limit of a conv model; use a file exported without a fixed batch"
            )
        return padded


def check_contract(session: onnxruntime.InferenceSession, path: Path, metadata: dict[str, Any]) -> InputSpec:
    """The model's InputSpec, once its inputs, outputs and metadata are shown to follow aetool's ONNX contract;
    raises ``ModelFileError`` naming what does not (a bad metadata field is named too)."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected = f"one input {contract.INPUT!r} of shape N×C×H×W (C 1 or 3), float32 or float16"
    if [i.name for i in inputs] == [contract.CODE] and path.name.endswith(".decoder.onnx"):
        model = path.with_name(path.name.removesuffix(".decoder.onnx") + ".onnx")
        raise ModelFileError(
            f"{path} is a decoder graph (code → reconstruction), which takes codes, not images: give its model file "
            f"{model} (in Python, Model.decode runs the decoder)"
        )
    if len(inputs) != 1 or inputs[0].name != contract.INPUT:
        got = ", ".join(f"{i.name!r} {i.shape}" for i in inputs) or "none"
        raise ModelFileError(f"{path} does not follow the aetool contract: expected {expected}, got inputs {got}")
    shape, dtype = inputs[0].shape, inputs[0].type
    if len(shape) != 4 or shape[1] not in (1, 3) or dtype not in DTYPES:
        raise ModelFileError(
            f"{path} does not follow the aetool contract: expected {expected}, got {contract.INPUT!r} {shape} {dtype}"
        )
    if contract.RECONSTRUCTION not in {o.name for o in outputs}:
        raise ModelFileError(f"{path} does not follow the aetool contract: no output {contract.RECONSTRUCTION!r}")
    declared = next(o.shape for o in outputs if o.name == contract.RECONSTRUCTION)
    if declared and (len(declared) != 4 or (isinstance(declared[1], int) and declared[1] != shape[1])):
        raise ModelFileError(
            f"{path} does not follow the aetool contract: its {contract.RECONSTRUCTION!r} is {declared}, where aetool "
            f"reads N×C×H×W images of its input's {shape[1]} channel{'s' * (shape[1] != 1)}"
        )
    check_output_types(session, path)
    check_metadata(path, metadata)
    multiple_of, polarity = check_input_spec(path, metadata.get(contract.INPUT_SPEC), channels=shape[1])
    _check_colour(path, metadata, shape[1])
    height, width = shape[2], shape[3]
    if isinstance(height, int) != isinstance(width, int):
        raise ModelFileError(
            f"{path} fixes one side of its input only ({contract.INPUT!r} {shape}); aetool takes models of one fixed "
            "size or of any size"
        )
    if isinstance(height, int) and not (0 < height * width <= MAX_CONV_PIXELS):
        raise ModelFileError(
            f"{path} declares {width}×{height} (width×height) images, outside 1 to {MAX_CONV_PIXELS:,} pixels"
        )
    fixed = (height, width) if isinstance(height, int) and isinstance(width, int) else None
    spec = metadata.get(contract.INPUT_SPEC)
    if fixed is None and not (isinstance(spec, dict) and spec.get("multiple_of") is not None):
        multiple_of = declared_multiple(height, width)
    return InputSpec(fixed, multiple_of, polarity, shape[1], fixed_batch(session, path))


def declared_multiple(height: Any, width: Any) -> int:
    """The multiple a graph's symbolic input sides declare, for a file whose metadata records none: ``4*h`` and
    ``4*w`` (what torch.onnx.export writes for a net that halves its input twice, aetool's own exports included)
    give 4, sides of different multiples their least common multiple; any other dimension, or a multiple over
    ``metadata.MAX_MULTIPLE_OF`` (the most a recorded one may be), 1."""
    multiples = [int(found[1]) for side in (height, width) if (found := _MULTIPLE.fullmatch(str(side)))]
    multiple = math.lcm(*multiples) if multiples else 1
    return multiple if 1 <= multiple <= MAX_MULTIPLE_OF else 1


def check_output_types(session: onnxruntime.InferenceSession, path: Path) -> None:
    """Raise ``ModelFileError`` for an output of a model or decoder file that is not a float tensor (a string or
    integer output ended a batch in a traceback, trial 38)."""
    for output in session.get_outputs():
        if output.type not in DTYPES and output.type != "tensor(double)":
            raise ModelFileError(
                f"{path} does not follow the aetool contract: its output {output.name!r} is {output.type}, where "
                "aetool reads float tensors"
            )


def fixed_batch(session: onnxruntime.InferenceSession, path: Path) -> int | None:
    """How many images (or codes) one call of the session takes when its file fixes the first dimension of its
    inputs or outputs (e.g. an export at batch 1), else None; ``ModelFileError`` when they fix different ones."""
    fixed = {
        arg.shape[0]
        for arg in (*session.get_inputs(), *session.get_outputs())
        if arg.shape and isinstance(arg.shape[0], int)
    }
    if len(fixed) > 1 or any(n < 1 or n > IMAGES_PER_CALL for n in fixed):
        raise ModelFileError(
            f"{path} fixes the batch of its inputs and outputs at {', '.join(map(str, sorted(fixed)))}; aetool takes "
            f"one fixed batch of 1 to {IMAGES_PER_CALL}, or any"
        )
    return fixed.pop() if fixed else None


def contract_version(path: Path, metadata: dict[str, Any]) -> int:
    """The contract version a file was written for: 1 when it names none; a ``ModelFileError`` for one that is not
    a version or is newer than this runtime reads."""
    version = metadata.get(contract.CONTRACT_VERSION)
    if version is None:
        return 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(
            f"{path}: metadata {contract.CONTRACT_VERSION!r} must be a version number, got {version!r}"
        )
    if version > contract.VERSION:
        raise ModelFileError(
            f"{path} was written for aetool contract version {version}; this aetool reads versions 1 to "
            f"{contract.VERSION}: upgrade aetool"
        )
    return version


def _check_colour(path: Path, metadata: dict[str, Any], channels: int) -> None:
    """Raise ``ModelFileError`` when the metadata's channels or colour space contradict the graph's input."""
    contract_version(path, metadata)
    declared = metadata.get(contract.CHANNELS)
    if declared is not None and declared != channels:
        raise ModelFileError(
            f"{path}: metadata {contract.CHANNELS!r} says {declared!r} but the input {contract.INPUT!r} has "
            f"{channels} channels"
        )
    space = metadata.get(contract.COLOUR_SPACE)
    if space is not None and space != contract.COLOUR_SPACES[channels]:
        raise ModelFileError(
            f"{path}: metadata {contract.COLOUR_SPACE!r} must be {contract.COLOUR_SPACES[channels]!r} for a "
            f"{channels}-channel input, got {space!r}"
        )


def decoder_file(path: Path, metadata: dict[str, Any]) -> Path:
    """The decoder graph of the model at ``path``: the file its metadata names, else the contract's default."""
    named = metadata.get(contract.DECODER)
    if named and (not isinstance(named, str) or Path(named).name != named or named in (".", "..")):
        raise ModelFileError(f"{path}: metadata {contract.DECODER!r} must name a file beside the model, got {named!r}")
    return path.with_name(named) if named else contract.decoder_path(path)
