"""One onnxruntime session per model file, checked against the ONNX contract and reused for every batch.

Like rembg's ``new_session``, :func:`load` keeps a registry of open models, so a server or a batch over thousands
of images pays for the session once and its memory stays flat. Unlike rembg, it says so when the execution
provider asked for (say CUDA) is not the one the session actually runs on.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aetool.errors import AetoolError, ModelFileError, first_line
from aetool.runtime import contract
from aetool.runtime.cpu import check_threads, usable_cores
from aetool.runtime.registry import resolve

if TYPE_CHECKING:
    import onnxruntime

CPU = "CPUExecutionProvider"
IMAGES_PER_CALL = 256  # images per session call: large enough to be fast, small enough to keep memory flat
PIXELS_PER_CALL = IMAGES_PER_CALL * 28 * 28  # larger images go fewer at a time (a 1000×1000 page: one per call)
MAX_CONV_PIXELS = 4096 * 4096  # the largest page a conv model takes: about 230 bytes of memory per pixel
_JSON_KEYS = {
    contract.ARCHITECTURE,
    contract.NOISE,
    contract.INPUT_SPEC,
    contract.PARITY,
    contract.VERSIONS,
    contract.VARIANT,
    contract.ANOMALY,
}
_NUMBER_KEYS = {contract.EPOCHS, contract.TEST_MSE, contract.OPSET, contract.CONTRACT_VERSION, contract.CHANNELS}
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_OPEN: dict[tuple, Model] = {}


class ProviderWarning(UserWarning):
    """The session runs on other execution providers than the ones asked for."""


@dataclass(frozen=True)
class InputSpec:
    """What images a model takes: a fixed size (dense models) or any size divisible by ``multiple_of`` (conv),
    with ``channels`` channels (1 grey, 3 sRGB) and a polarity (``white-on-black``: MNIST's world; ``as-is``)."""

    size: tuple[int, int] | None  # (height, width) when fixed
    multiple_of: int = 1
    polarity: str = contract.POLARITY
    channels: int = 1

    @property
    def colour_space(self) -> str:
        """``gray`` for one channel, ``srgb`` for three."""
        return contract.COLOUR_SPACES[self.channels]

    def check(self, height: int, width: int) -> None:
        """Raise ``ValueError`` when an image of this size cannot go into the model as it is."""
        if self.size is not None and (height, width) != self.size:
            raise ValueError(f"model takes {self.size[0]}×{self.size[1]} images, got {height}×{width}")
        if height % self.multiple_of or width % self.multiple_of:
            raise ValueError(f"model takes sizes divisible by {self.multiple_of}, got {height}×{width}")

    def padded(self, height: int, width: int) -> tuple[int, int]:
        """The size an image of any size is padded to for a model of any size (the next multiples of
        ``multiple_of``); raises ``ValueError`` when that is over ``MAX_CONV_PIXELS``, the largest page whose
        activations fit in memory (about 230 bytes a pixel for ``conv-unpool``)."""
        padded = (-(-height // self.multiple_of) * self.multiple_of, -(-width // self.multiple_of) * self.multiple_of)
        if padded[0] * padded[1] > MAX_CONV_PIXELS:
            raise ValueError(
                f"{width}×{height} is over the {MAX_CONV_PIXELS:,}-pixel limit of a conv model (about 230 bytes "
                "of memory per pixel); scale it down first"
            )
        return padded


def ort_errors() -> tuple[type[Exception], ...]:
    """The exceptions onnxruntime raises for bad files and failed runs (they do not share a base class)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = (
        "Fail",
        "InvalidArgument",
        "NoSuchFile",
        "NoModel",
        "InvalidProtobuf",
        "InvalidGraph",
        "RuntimeException",
        "NotImplemented",
        "EPFail",
    )
    return (RuntimeError, *(getattr(state, name) for name in names if hasattr(state, name)))


def provider_names(requested: Sequence[str] | None) -> list[str]:
    """Full provider names for ``requested`` (``cuda`` → ``CUDAExecutionProvider``); CPU when none asked for."""
    import onnxruntime as ort

    if not requested:
        return [CPU]
    known = {name.lower().removesuffix("executionprovider"): name for name in ort.get_all_providers()}
    names = []
    for name in requested:
        full = known.get(name.lower().removesuffix("executionprovider"))
        if full is None:
            raise AetoolError(f"unknown execution provider {name!r}; known: {', '.join(sorted(known))}")
        names.append(full)
    return names


def open_session(
    path: Path,
    providers: Sequence[str] | None = None,
    threads: int | None = None,
) -> onnxruntime.InferenceSession:
    """An onnxruntime session for ``path``; a file that is not ONNX or will not load is a ModelFileError."""
    import onnxruntime as ort

    wanted = provider_names(providers)
    available = ort.get_available_providers()
    options = ort.SessionOptions()
    options.log_severity_level = 4  # onnxruntime's own log lines would bury ours; its errors still raise
    options.intra_op_num_threads = check_threads(threads) if threads else usable_cores()
    try:
        session = ort.InferenceSession(str(path), options, providers=[p for p in wanted if p in available] or [CPU])
    except ort_errors() as err:
        raise ModelFileError(f"{path} is not a loadable ONNX model: {first_line(err)}") from None
    unused = [p for p in wanted if p not in session.get_providers()]
    if unused:
        why = (
            ""
            if all(p in available for p in unused)
            else (f" (this onnxruntime offers only {', '.join(available)}; for CUDA install onnxruntime-gpu)")
        )
        warnings.warn(
            f"{path.name}: asked for {', '.join(unused)} but the session runs on "
            f"{', '.join(session.get_providers())}{why}",
            ProviderWarning,
            stacklevel=3,
        )
    return session


def parse_metadata(props: dict[str, str]) -> dict[str, Any]:
    """The file's ``metadata_props`` with JSON and numbers decoded; empty values become ``None``."""
    parsed: dict[str, Any] = {}
    for key, text in props.items():
        parsed[key] = text
        if key in _JSON_KEYS | _NUMBER_KEYS:
            try:
                parsed[key] = json.loads(text) if text else None
            except ValueError:
                if key == contract.INPUT_SPEC:  # the one key the runtime cannot do without
                    raise ModelFileError(f"metadata {key!r} is not valid JSON: {text[:60]!r}") from None
    return parsed


def check_contract(session: onnxruntime.InferenceSession, path: Path, metadata: dict[str, Any]) -> InputSpec:
    """The model's InputSpec, once its inputs and outputs are shown to follow aetool's ONNX contract."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected = f"one input {contract.INPUT!r} of shape N×C×H×W (C 1 or 3), float32"
    if len(inputs) != 1 or inputs[0].name != contract.INPUT:
        got = ", ".join(f"{i.name!r} {i.shape}" for i in inputs) or "none"
        raise ModelFileError(f"{path} does not follow the aetool contract: expected {expected}, got inputs {got}")
    shape, dtype = inputs[0].shape, inputs[0].type
    if len(shape) != 4 or shape[1] not in (1, 3) or dtype not in _DTYPES:
        raise ModelFileError(
            f"{path} does not follow the aetool contract: expected {expected}, got {contract.INPUT!r} {shape} {dtype}"
        )
    if contract.RECONSTRUCTION not in {o.name for o in outputs}:
        raise ModelFileError(f"{path} does not follow the aetool contract: no output {contract.RECONSTRUCTION!r}")
    declared = metadata.get(contract.INPUT_SPEC) or {}
    multiple_of = declared.get("multiple_of") if isinstance(declared, dict) else "missing"
    multiple_of = 1 if multiple_of is None else multiple_of
    if not isinstance(multiple_of, int) or multiple_of < 1:
        raise ModelFileError(
            f'{path}: metadata {contract.INPUT_SPEC!r} needs an object with "multiple_of" a '
            f"positive integer or null, got {declared!r}"
        )
    polarity = declared.get("polarity") or contract.POLARITY
    if polarity not in contract.POLARITIES:
        raise ModelFileError(
            f"{path}: metadata {contract.INPUT_SPEC!r} polarity must be one of {', '.join(contract.POLARITIES)}, "
            f"got {polarity!r}"
        )
    _check_colour(path, metadata, shape[1])
    height, width = shape[2], shape[3]
    fixed = (height, width) if isinstance(height, int) and isinstance(width, int) else None
    return InputSpec(fixed, multiple_of, polarity, shape[1])


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


class Model:
    """An aetool model file ready to run: ``reconstruct``, ``encode``, ``decode``, its metadata and input spec."""

    def __init__(self, path: Path, providers: Sequence[str] | None = None, threads: int | None = None):
        self.path = path
        self.session = open_session(path, providers, threads)
        self.metadata = parse_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.input_spec = check_contract(self.session, path, self.metadata)
        self.name: str = self.metadata.get(contract.MODEL_NAME) or path.name.removesuffix(".onnx")
        self._dtype = _DTYPES[self.session.get_inputs()[0].type]
        self._outputs = {o.name for o in self.session.get_outputs()}
        self._options = (providers, threads)
        self._decoder: onnxruntime.InferenceSession | None = None

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}, providers={self.providers})"

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really runs on, best first."""
        return self.session.get_providers()

    @property
    def kind(self) -> str:
        """``dense``, ``conv`` or ``pca`` from the metadata; guessed from the input size for foreign files."""
        return self.metadata.get(contract.MODEL_KIND) or ("dense" if self.input_spec.size else "conv")

    @property
    def has_code(self) -> bool:
        """Whether the file exposes the latent code, so :meth:`encode` works."""
        return contract.CODE in self._outputs

    @property
    def decoder_path(self) -> Path:
        """Where the decoder graph is (or would be) beside the model file."""
        return decoder_file(self.path, self.metadata)

    @property
    def has_decoder(self) -> bool:
        """Whether a decoder graph sits beside the file, so :meth:`decode` works."""
        return self.decoder_path.is_file()

    def reconstruct(self, images: np.ndarray, chunk: int = IMAGES_PER_CALL) -> np.ndarray:
        """Run the autoencoder on N×C×H×W images in [0, 1] (N×H×W for grey models); the same shape back, float32."""
        images = np.asarray(images)
        batch = self._images(images)
        out = self._run(self.session, contract.RECONSTRUCTION, contract.INPUT, batch, chunk)
        if out.shape != batch.shape:
            raise ModelFileError(
                f"{self.path.name} returned {contract.RECONSTRUCTION} of shape {out.shape} for "
                f"images of shape {batch.shape}; an aetool model returns them at their size"
            )
        return out.reshape(images.shape)

    def encode(self, images: np.ndarray, chunk: int = IMAGES_PER_CALL) -> np.ndarray:
        """The latent codes of N×C×H×W images (N×H×W for grey models)."""
        if not self.has_code:
            raise ModelFileError(f"{self.path} has no {contract.CODE!r} output, so it cannot encode")
        return self._run(self.session, contract.CODE, contract.INPUT, self._images(np.asarray(images)), chunk)

    def decode(self, codes: np.ndarray, chunk: int = IMAGES_PER_CALL) -> np.ndarray:
        """Images (N×1×H×W) from latent codes, through the decoder graph beside the model file."""
        if self._decoder is None:
            if not self.has_decoder:
                raise ModelFileError(f"{self.path} has no decoder graph beside it (expected {self.decoder_path})")
            decoder = open_session(self.decoder_path, *self._options)
            names = [i.name for i in decoder.get_inputs()]
            if names != [contract.CODE]:
                raise ModelFileError(f"decoder {self.decoder_path} must take one input {contract.CODE!r}, has {names}")
            self._decoder = decoder
        return self._run(self._decoder, contract.RECONSTRUCTION, contract.CODE, np.asarray(codes), chunk)

    def _images(self, images: np.ndarray) -> np.ndarray:
        channels = self.input_spec.channels
        if not (images.ndim == 4 and images.shape[1] == channels) and not (images.ndim == 3 and channels == 1):
            wanted = "N×H×W or N×1×H×W" if channels == 1 else f"N×{channels}×H×W"
            raise ValueError(f"expected {wanted} images, got shape {images.shape}")
        self.input_spec.check(*images.shape[-2:])
        return images.reshape(len(images), channels, *images.shape[-2:])

    def _run(
        self, session: onnxruntime.InferenceSession, output: str, feed: str, batch: np.ndarray, chunk: int
    ) -> np.ndarray:
        if len(batch) == 0:
            raise ValueError("empty batch")
        batch = batch.astype(self._dtype, copy=False)
        chunk = max(1, min(chunk, PIXELS_PER_CALL // max(1, int(np.prod(batch.shape[1:])))))
        try:
            parts = [session.run([output], {feed: batch[i : i + chunk]})[0] for i in range(0, len(batch), chunk)]
        except ort_errors() as err:
            raise ModelFileError(
                f"{self.path.name} failed on a batch of shape {batch.shape}: {first_line(err)}"
            ) from None
        if sum(len(part) for part in parts) != len(batch) or len({part.shape[1:] for part in parts}) > 1:
            raise ModelFileError(
                f"{self.path.name} returned {output} of shape {parts[0].shape} for a batch of "
                f"{len(batch)}; an aetool model returns one per image"
            )
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if not np.isfinite(joined).all():
            raise ModelFileError(f"{self.path.name} returned NaN or infinite {output} values; the model file is broken")
        return joined.astype(np.float32, copy=False)


def load(model: str | Path, providers: Sequence[str] | None = None, threads: int | None = None) -> Model:
    """The model at a path or bundled under a name; opened once per process and then reused."""
    path = resolve(model)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, tuple(providers or ()), threads)
    if key not in _OPEN:
        _OPEN[key] = Model(path, providers, threads)
    return _OPEN[key]
