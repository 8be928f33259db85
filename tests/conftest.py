"""Model files and images for the runtime and CLI tests, made without torch or onnx.

Two kinds of model: *toy* models, identity graphs written byte by byte below, whose output equals their input so
tests can check pixels exactly (polarity round trips, padding, cropping, channel conversions); and *real* models
(the bundled ones in ``aetool/runtime/bundled/``) for shapes and codes. The grey toys are contract-1 files, as
round 1's exporter wrote them; the colour toys are contract-2 files for images taken as they are.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aetool.runtime import contract
from aetool.runtime.registry import BUNDLED_DIR, INDEX, MODEL_DIR_ENV

REPO = Path(__file__).resolve().parents[1]
REAL_NAMES = ("denoise", "denoise-dense", "conv-unpool", "deep")


# ---- ONNX protobuf, by hand: just enough of onnx.proto for small identity graphs ----


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


FLOAT, INT64, BOOL, FLOAT16 = 1, 7, 9, 10  # TensorProto.DataType


def _value_info(name: str, dims: list[int | str] | None, elem: int = FLOAT) -> bytes:
    """A ValueInfoProto: a tensor of ``elem`` type, of ``dims`` (None: shape unknown)."""
    shape = (
        b"" if dims is None else b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in dims)
    )
    tensor_type = _field(1, elem) + (b"" if dims is None else _field(2, shape))
    return _field(1, name) + _field(2, _field(1, tensor_type))


def node(op: str, inputs: list[str], outputs: list[str], attributes: list[bytes] = ()) -> bytes:
    return (
        b"".join(_field(1, i) for i in inputs)
        + b"".join(_field(2, o) for o in outputs)
        + _field(4, op)
        + b"".join(_field(5, a) for a in attributes)
    )


def graph_attribute(name: str, body: bytes) -> bytes:
    """An AttributeProto holding a graph (type GRAPH), e.g. a Loop's ``body``."""
    return _field(1, name) + _field(6, body) + _field(20, 5)


def int_attribute(name: str, value: int) -> bytes:
    return _field(1, name) + _field(3, value) + _field(20, 2)


def tensor_attribute(name: str, value: bytes) -> bytes:
    """An AttributeProto holding a tensor (type TENSOR), e.g. a Constant's ``value``."""
    return _field(1, name) + _field(5, value) + _field(20, 4)


def int64_tensor(name: str, values: list[int]) -> bytes:
    return _field(1, len(values)) + _field(2, 7) + _field(8, name) + _field(9, struct.pack(f"<{len(values)}q", *values))


def tensor(name: str, dims: list[int], elem: int, raw: bytes = b"", location: str | None = None) -> bytes:
    """A TensorProto with ``raw`` data, or with its data "external", at ``location`` beside the model file."""
    data = b"".join(_field(1, d) for d in dims) + _field(2, elem) + _field(8, name)
    if location is None:
        return data + _field(9, raw)
    entries = [("location", location), ("offset", "0"), ("length", str(len(raw) or 4))]
    return data + b"".join(_field(13, _field(1, k) + _field(2, v)) for k, v in entries) + _field(14, 1)


def graph(
    inputs: dict[str, list | None],
    outputs: dict[str, list | None],
    nodes: list[bytes],
    initializers: list[bytes] = (),
    types: dict[str, int] | None = None,
) -> bytes:
    """A serialized GraphProto; ``types`` gives the element type of inputs and outputs other than float."""
    types = types or {}
    return (
        b"".join(_field(1, n) for n in nodes)
        + _field(2, "g")
        + b"".join(_field(5, t) for t in initializers)
        + b"".join(_field(11, _value_info(k, v, types.get(k, FLOAT))) for k, v in inputs.items())
        + b"".join(_field(12, _value_info(k, v, types.get(k, FLOAT))) for k, v in outputs.items())
    )


def onnx_bytes(
    inputs: dict[str, list],
    outputs: dict[str, list],
    nodes: list[bytes],
    metadata: dict[str, str] | None = None,
    initializers: list[bytes] = (),
    *,
    ir_version: int = 8,
    opset: int = 13,
    types: dict[str, int] | None = None,
) -> bytes:
    """A serialized ModelProto (IR 8, opset 13 unless told otherwise; ``types`` as :func:`graph` takes them)."""
    props = b"".join(_field(14, _field(1, k) + _field(2, v)) for k, v in (metadata or {}).items())
    return (
        _field(1, ir_version)
        + _field(2, "aetool-tests")
        + _field(7, graph(inputs, outputs, nodes, initializers, types))
        + _field(8, _field(2, opset))
        + props
    )


def float16_input_model() -> bytes:
    """A model of float16 ``image`` inputs: its ``reconstruction`` is them cast to float32."""
    image = ["N", 1, "H", "W"]
    cast = node("Cast", ["image"], ["reconstruction"], [int_attribute("to", FLOAT)])
    return onnx_bytes({"image": image}, {"reconstruction": image}, [cast], types={"image": FLOAT16})


def toy_metadata(name: str, kind: str, multiple_of: int | None, noise: float = 0.0) -> dict[str, str]:
    """Contract-1 metadata of a grey, white-on-black model: 28×28 (dense) or any multiple of ``multiple_of``."""
    shape = ["N", 1, "H", "W"] if multiple_of else ["N", 1, 28, 28]
    return {
        contract.MODEL_NAME: name,
        contract.MODEL_KIND: kind,
        contract.DATASET: "mnist",
        contract.OPSET: "13",
        contract.PRECISION: "fp32",
        contract.TEST_MSE: "0.0",
        contract.EPOCHS: "0",
        contract.NOISE: json.dumps({"level": noise, "kind": "gaussian"}),
        contract.INPUT_SPEC: json.dumps(
            {"shape": shape, "range": [0, 1], "polarity": contract.POLARITY, "multiple_of": multiple_of}
        ),
        contract.PARITY: json.dumps(
            {
                "passed": True,
                "cases": [{"output": "reconstruction", "max_abs": 2e-7}, {"output": "code", "max_abs": 5e-7}],
            }
        ),
    }


def colour_metadata(name: str, shape: list, *, multiple_of: int | None, noise: float = 0.0) -> dict[str, str]:
    """Contract-2 metadata of a colour (sRGB) model of images taken as they are, ``shape`` its input's."""
    size = None if multiple_of else shape[2:]
    spec = {"shape": shape, "range": [0, 1], "polarity": contract.AS_IS, "multiple_of": multiple_of, "size": size}
    return {
        **toy_metadata(name, "conv" if multiple_of else "dense", multiple_of, noise),
        contract.CONTRACT_VERSION: str(contract.VERSION),
        contract.CHANNELS: "3",
        contract.COLOUR_SPACE: "srgb",
        contract.INPUT_SPEC: json.dumps({**spec, "channels": 3}),
    }


def write_toy_models(folder: Path) -> Path:
    """Identity models (grey: dense 28×28 with a decoder, conv any size; colour: dense 16×16, conv any size) and
    broken files, with a models.json that bundles the two grey ones."""
    folder.mkdir(parents=True, exist_ok=True)
    dense = ["N", 1, 28, 28]
    (folder / "dense.onnx").write_bytes(
        onnx_bytes(
            {"image": dense},
            {"reconstruction": dense, "code": ["N", 784]},
            [node("Identity", ["image"], ["reconstruction"]), node("Flatten", ["image"], ["code"])],
            toy_metadata("denoise", "dense", None, noise=0.5),
        )
    )
    (folder / "dense.decoder.onnx").write_bytes(
        onnx_bytes(
            {"code": ["N", 784]},
            {"reconstruction": dense},
            [node("Reshape", ["code", "shape"], ["reconstruction"])],
            initializers=[int64_tensor("shape", [-1, 1, 28, 28])],
        )
    )
    conv = ["N", 1, "H", "W"]
    (folder / "conv.onnx").write_bytes(
        onnx_bytes(
            {"image": conv},
            {"reconstruction": conv, "code": conv},
            [node("Identity", ["image"], ["reconstruction"]), node("Identity", ["image"], ["code"])],
            toy_metadata("conv-unpool", "conv", 4),
        )
    )
    rgb_conv = ["N", 3, "H", "W"]
    (folder / "rgb-conv.onnx").write_bytes(
        onnx_bytes(
            {"image": rgb_conv},
            {"reconstruction": rgb_conv, "code": rgb_conv},
            [node("Identity", ["image"], ["reconstruction"]), node("Identity", ["image"], ["code"])],
            colour_metadata("rgb-conv", rgb_conv, multiple_of=4, noise=0.1),
        )
    )
    rgb_dense = ["N", 3, 16, 16]
    (folder / "rgb-dense.onnx").write_bytes(
        onnx_bytes(
            {"image": rgb_dense},
            {"reconstruction": rgb_dense, "code": ["N", 768]},
            [node("Identity", ["image"], ["reconstruction"]), node("Flatten", ["image"], ["code"])],
            colour_metadata("rgb-dense", rgb_dense, multiple_of=None),
        )
    )
    (folder / "flat.onnx").write_bytes(
        onnx_bytes(  # valid ONNX, wrong input shape
            {"image": ["N", 784]}, {"reconstruction": ["N", 784]}, [node("Identity", ["image"], ["reconstruction"])]
        )
    )
    (folder / "text.onnx").write_text("this is not a model\n")
    good = (folder / "dense.onnx").read_bytes()
    (folder / "truncated.onnx").write_bytes(good[: len(good) // 2])
    (folder / INDEX).write_text(
        json.dumps({"denoise": {"file": "dense.onnx", "test_mse": 0.0123}, "conv-unpool": {"file": "conv.onnx"}})
    )
    return folder


class CountingSession:
    """An onnxruntime session that records how many images each call gets (``batches``) and their shapes
    (``shapes``); everything else is the session's."""

    def __init__(self, session):
        self.session, self.batches, self.shapes = session, [], []

    def __getattr__(self, name):
        return getattr(self.session, name)

    def run(self, outputs, feed, *options):
        self.batches.append(len(feed["image"]))
        self.shapes.append(feed["image"].shape)
        return self.session.run(outputs, feed, *options)


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_raises() -> None:
    """Tests press Ctrl-C (SIGINT to this process or a child) and expect KeyboardInterrupt or exit 130. A run started
    in the background of a shell without job control (`( pytest & )`) inherits SIGINT ignored, and then those tests
    failed, and one waited forever; Ctrl-C's usual handler is put back for the run (children then inherit the
    default action, which Python turns into KeyboardInterrupt again)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Likewise SIGHUP under nohup (a CI run started as `nohup bash .ci/run`): aetool rightly leaves an ignored SIGHUP
    # ignored, so the tests that send it to a command need its default back for the children they start.
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory) -> Path:
    """A folder of toy models, which also serves as the bundled-models folder via AETOOL_MODEL_DIR."""
    return write_toy_models(tmp_path_factory.mktemp("toy-models"))


@pytest.fixture
def bundled(toy_dir, monkeypatch) -> Path:
    """Make the toy models the bundled ones (``denoise`` → identity dense, ``conv-unpool`` → identity conv)."""
    monkeypatch.setenv(MODEL_DIR_ENV, str(toy_dir))
    return toy_dir


def cli_runner():
    """Typer's CliRunner with stderr kept apart from stdout, under every Typer the requirements admit."""
    from typer.testing import CliRunner

    try:
        return CliRunner(mix_stderr=False)  # Click before 8.2 mixes stderr into stdout unless told not to
    except TypeError:  # Click 8.2 and later (and Typer's own copy of it) always keep them apart
        return CliRunner()


@pytest.fixture
def cli(bundled, tmp_path, monkeypatch):
    """Run ``aetool ARGS`` in-process (Typer's CliRunner) in tmp_path with the toy models bundled; returns the
    result, after checking that no traceback reached stderr."""
    from aetool.cli import app

    monkeypatch.chdir(tmp_path)
    runner = cli_runner()

    def invoke(*args: str, stdin: bytes | None = None):
        result = runner.invoke(app, list(args), input=stdin)
        assert "Traceback" not in result.stderr
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


# ---- data ----


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A folder holding the four IDX files of a tiny synthetic MNIST look-alike (256 train, 64 test images)."""
    from synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synthetic"), n_train=256, n_test=64)


# ---- real models: the bundled ones ----


@pytest.fixture(scope="session")
def real_models() -> dict[str, Path]:
    """``{name: model file}`` for the bundled denoise, denoise-dense and deep (with decoders), and conv-unpool."""
    index = json.loads((BUNDLED_DIR / INDEX).read_text())
    return {name: BUNDLED_DIR / index[name]["file"] for name in REAL_NAMES}


@pytest.fixture
def real_model(real_models, request) -> Path:
    """The real model named by ``@pytest.mark.parametrize("real_model", [...], indirect=True)``."""
    if request.param not in real_models:
        pytest.skip(f"no real model {request.param!r} available")
    return real_models[request.param]


# ---- images ----


def digit(height: int = 28, width: int = 28) -> np.ndarray:
    """A white-on-black ring, digit-like, as uint8 pixels."""
    y, x = np.mgrid[:height, :width]
    radius = np.hypot((y - height / 2) / (height * 0.3), (x - width / 2) / (width * 0.2))
    return np.where(np.abs(radius - 1) < 0.25, 255, 0).astype(np.uint8)


def save(path: Path, pixels: np.ndarray, **options) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **options)
    return path


def read(path: Path | bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as image:
        return np.asarray(image)


def camera_jpeg(photo: np.ndarray, preview: np.ndarray, *, mp_type: int = 0x40010002) -> bytes:
    """A JPEG as cameras write it: the photo, then a preview that its APP2 Multi-Picture index (CIPA DC-007) names
    with attribute ``mp_type`` (default: a dependent child image of type Large Thumbnail, Full HD), which Pillow
    opens as a two-picture MPO. Pillow writes the index with that picture's type Undefined; it is set here."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="MPO", save_all=True, append_images=[Image.fromarray(preview)])
    data = bytearray(buffer.getvalue())
    with Image.open(io.BytesIO(bytes(data))) as opened:
        first = opened.mpinfo[0xB002][0]["Size"]
    second = data.find(struct.pack("<LLL", 0x030000, first, 0)) + 16  # Pillow's index is little-endian
    struct.pack_into("<L", data, second, mp_type)
    return bytes(data)


def run_aetool(
    *args: str,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """``python -m aetool ARGS`` in a fresh interpreter, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "aetool", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def write_mnist(folder: Path, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """A tiny MNIST folder: the test split as gzipped IDX (magic 0x803 images, 0x801 labels), train as a copy."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    labels = np.arange(len(images), dtype=np.uint8) % 10 if labels is None else labels
    image_file = struct.pack(">IIII", 0x803, *images.shape) + images.astype(np.uint8).tobytes()
    label_file = struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes()
    for split in ("t10k", "train"):
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(image_file))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(label_file))
    return folder


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """Twelve 28×28 ring 'digits' of varying brightness as a test split."""
    rings = np.stack([(digit() * (0.4 + 0.05 * i)).astype(np.uint8) for i in range(12)])
    return write_mnist(tmp_path_factory.mktemp("mnist"), rings)


TORCH_FREE_COMMANDS = """
import json, sys
from aetool.cli import main
exits = (0, None) if sys.argv[2] == "0" else (int(sys.argv[2]),)
for argv in json.loads(sys.argv[1]):
    sys.argv = ["aetool", *argv]
    try:
        main()
    except SystemExit as done:
        assert done.code in exits, (argv, done.code)
heavy = sorted(m for m in ("torch", "torchvision", "onnx", "onnxscript", "pydantic") if m in sys.modules)
assert not heavy, heavy
print("torch-free")
"""


def run_torch_free(
    commands: list[list[str]], *, env: dict | None = None, exit_code: int = 0
) -> subprocess.CompletedProcess:
    """Run aetool ``commands`` (each an argv, all exiting ``exit_code``) in one fresh interpreter that then asserts torch,
    torchvision, onnx and onnxscript were never imported, nor pydantic (Typer 0.29 imports it for every command:
    0.1 s of cold start); its stdout ends with "torch-free" when all held."""
    return subprocess.run(
        [sys.executable, "-c", TORCH_FREE_COMMANDS, json.dumps(commands), str(exit_code)],
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
