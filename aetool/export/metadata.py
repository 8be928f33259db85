"""What an exported file says about itself: the ``metadata_props`` the runtime reads (keys in runtime/contract.py).

The runtime reads these back without onnx (onnxruntime's ``custom_metadata_map``); here we only write them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import onnx

import aetool
from aetool.errors import AetoolError
from aetool.models import get_spec
from aetool.runtime import contract
from aetool.runtime.noise import Noise

VERSIONED = ("torch", "onnx", "onnxscript", "onnxruntime")
MAX_EPOCH_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime holds


@dataclass(frozen=True)
class ModelFacts:
    """Where a model came from: registry name and kind, architecture, data, noise, training length and result."""

    model_name: str
    arch: dict[str, Any]
    dataset: str = "mnist"  # "mnist", "fashion-mnist", or "images" (a folder or glob of the user's)
    noise: Noise = field(default_factory=Noise)  # the training noise
    epochs: int = 0
    test_mse: float | None = None
    channels: int = 1  # of the images: 1 grey, 3 sRGB
    checkpoint_sha256: str = ""  # of the run's checkpoint.pt (RunFolder.checkpoint_digest), "" for a bare network

    @property
    def model_kind(self) -> str:
        """``pca``, ``dense`` or ``conv``, from the registry."""
        return get_spec(self.model_name).kind

    @property
    def polarity(self) -> str:
        """MNIST's white-on-black for the IDX datasets (the runtime inverts dark-on-light inputs), else as-is."""
        return contract.polarity_of(self.dataset)


def noise_record(noise: Noise) -> dict[str, Any]:
    """The training noise as the runtime reads it: ``{"level", "kind"}`` for one level of one kind (as contract 1
    wrote), plus ``"mix"`` (Noise's text) for a range or mix, whose level and kind are then null."""
    single = noise.level if noise else (0.0, "gaussian")
    if single is not None:
        return {"level": single[0], "kind": single[1]}
    return {"level": None, "kind": None, "mix": str(noise)}


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def graph_shape(proto: onnx.ModelProto) -> list[int | str]:
    """The graph input's shape, symbolic dimensions by name."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in dims]


def image_spec(proto: onnx.ModelProto, *, multiple_of: int | None, polarity: str) -> dict[str, Any]:
    """The image input as the runtime must feed it: shape, channels, pixel range, polarity, size constraint."""
    shape = graph_shape(proto)
    size = shape[2:] if all(isinstance(d, int) for d in shape[2:]) else None
    return {
        "shape": shape,
        "channels": shape[1],
        "size": size,
        "range": [0, 1],
        "polarity": polarity,
        "multiple_of": multiple_of,
    }


def code_spec(proto: onnx.ModelProto) -> dict[str, Any]:
    """A decoder's input: codes of this shape, any real values."""
    return {"shape": graph_shape(proto), "range": None, "polarity": None, "multiple_of": None}


def opset(proto: onnx.ModelProto) -> int:
    """The default-domain opset the file needs."""
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def operators(proto: onnx.ModelProto) -> list[str]:
    """The graph's operator types, sorted, those of other domains than ONNX's as ``domain:Op``."""
    return sorted(
        {
            node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
            for node in proto.graph.node
        }
    )


def created() -> datetime:
    """When a file is written, in UTC: now, or ``$SOURCE_DATE_EPOCH`` (seconds since 1970, the reproducible-builds
    convention, https://reproducible-builds.org/specs/source-date-epoch/) when set, so that one run exported twice
    gives the same bytes. Raises ``AetoolError`` for a value that is not such a number of seconds."""
    pinned = os.environ.get("SOURCE_DATE_EPOCH")
    if pinned is None:
        return datetime.now(timezone.utc)
    if not (pinned.isascii() and pinned.isdigit()):
        raise AetoolError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970-01-01 UTC, got {pinned!r}")
    if int(pinned) > MAX_EPOCH_SECONDS:
        raise AetoolError(
            f"SOURCE_DATE_EPOCH {pinned} is after 9999-12-31T23:59:59 UTC ({MAX_EPOCH_SECONDS}), the last time a "
            "creation date can hold"
        )
    return datetime.fromtimestamp(int(pinned), timezone.utc)


def metadata(
    facts: ModelFacts,
    proto: onnx.ModelProto,
    *,
    spec: dict[str, Any],
    precision: str,
    parity: dict[str, Any] | None,
    decoder: str,
    target: str,
    checked_in: dict[str, Any],
    variant: dict[str, Any] | None = None,
    decoder_sha256: str = "",
) -> dict[str, str]:
    """Every contract key as text (JSON where structured), for ``proto`` as written: ``target`` is the export target,
    ``checked_in`` the record of its runs in other runtimes (``exporter.check_record``); ``decoder_sha256``, the
    digest of the decoder file written beside it, binds the two (the runtime refuses a decoder of another export)."""
    text = {
        contract.CONTRACT_VERSION: str(contract.VERSION),
        contract.CHANNELS: str(facts.channels),
        contract.COLOUR_SPACE: contract.COLOUR_SPACES[facts.channels],
        contract.AETOOL_VERSION: aetool.__version__,
        contract.MODEL_NAME: facts.model_name,
        contract.MODEL_KIND: facts.model_kind,
        contract.ARCHITECTURE: json.dumps(facts.arch),
        contract.DATASET: facts.dataset,
        contract.NOISE: json.dumps(noise_record(facts.noise)),
        contract.EPOCHS: str(facts.epochs),
        contract.TEST_MSE: "" if facts.test_mse is None else repr(float(facts.test_mse)),
        contract.INPUT_SPEC: json.dumps(spec),
        contract.PARITY: json.dumps(parity),  # null for a variant, checked against its fp32 file (``variant``)
        contract.VERSIONS: json.dumps({name: _version(name) for name in VERSIONED}),
        contract.CREATED: created().isoformat(timespec="seconds"),
        contract.OPSET: str(opset(proto)),
        contract.PRECISION: precision,
        contract.DECODER: decoder,
        contract.TARGET: target,
        contract.OPERATORS: json.dumps(operators(proto)),
        contract.CHECKED_IN: json.dumps(checked_in),
    }
    if variant is not None:
        text[contract.VARIANT] = json.dumps(variant)
    if decoder_sha256:
        text[contract.DECODER_SHA256] = decoder_sha256
    if facts.checkpoint_sha256:
        text[contract.CHECKPOINT_SHA256] = facts.checkpoint_sha256
    return text


def write(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace the file's metadata_props with ``props``."""
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)


def read(proto: onnx.ModelProto) -> dict[str, str]:
    """The file's metadata_props as a dict (the onnx side of the round trip; the runtime has its own reader)."""
    return {prop.key: prop.value for prop in proto.metadata_props}
