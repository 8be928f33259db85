"""Re-export shipped models in the current exporter from their own weights, without training again.

    python scripts/reexport_bundled.py --data-dir ../shared/data/mnist [--models conv-unpool deep denoise-dense]

Rebuilds each model from the shipped file's initializers, checks that the rebuilt model reproduces the shipped
file on the 10,000 test digits, exports it with aetool's exporter (default target, parity against the rebuilt
model on the usual cases plus 64 test digits, every installed runtime), checks that the new file reproduces the
shipped one on the test digits (max abs ≤ 1e-6) and only then replaces it (and its decoder graph), keeping the
shipped file's training facts (epochs, noise, test MSE), and updates models.json.

- ``conv-unpool`` was trained by aetool's pipeline (registry defaults, 10 epochs); its run folder was not kept.
  ``enc1``, ``enc2`` and ``dec2`` are stored as they are, ``dec1`` is read back from the unpooling taps
  (``taps[o·16 + (2 − dy)·4 + (2 − dx), c] = dec1.weight[o, c, dy, dx]``, window position 0), checked bit for bit
  against the taps at all four positions: the onnxruntime graph's ``taps`` (``ort_layers.FirstStageByWindow``,
  how it first shipped) or the portable graph's ``unpool_last`` (``portable.unpool_conv_transpose``).
- ``deep`` and ``denoise-dense``: their ``Linear`` weights are stored under the state-dict names; re-exported,
  their graphs reshape before the output sigmoid (``DenseAE.decode``).

``scripts/build_bundled.py`` remains the way to rebuild every bundled model from scratch.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from aetool.export import ExportOptions, export_model
from aetool.export.metadata import ModelFacts
from aetool.export.ort_layers import unpool_conv_taps
from aetool.models import Autoencoder, ConvAE, build_model, get_spec
from aetool.runtime import contract, load
from aetool.runtime.evaluate import trained_noise
from aetool.runtime.idx import load_split

BUNDLED = Path(__file__).resolve().parents[1] / "aetool" / "runtime" / "bundled"
NAMES = ("conv-unpool", "deep", "denoise-dense")


def rebuilt_conv_unpool(weights: dict[str, torch.Tensor], path: Path) -> ConvAE:
    """The ConvAE whose export ``path`` is (either target); raises ``SystemExit`` when its taps disagree."""
    net = build_model("conv-unpool").eval()
    if not isinstance(net, ConvAE):
        raise SystemExit("conv-unpool is not a ConvAE")
    if "taps" not in weights:  # the portable graph's ConvTranspose weight (4·in, out, 4, 4), back to taps' layout
        unpool_last = weights["unpool_last"]
        weights["taps"] = unpool_last.permute(1, 2, 3, 0).reshape(-1, unpool_last.shape[0]).contiguous()
    with torch.no_grad():
        for layer in ("enc1", "enc2", "dec2"):
            getattr(net, layer).weight.copy_(weights[f"{layer}.weight"])
            getattr(net, layer).bias.copy_(weights[f"{layer}.bias"])
        taps = weights["taps"].reshape(-1, 4, 4, 4, net.dec1.in_channels)  # out, ky, kx, position, in
        for dy in range(3):
            for dx in range(3):
                net.dec1.weight[:, :, dy, dx] = taps[:, 2 - dy, 2 - dx, 0, :]
        net.dec1.bias.copy_(weights["last_bias"].reshape(-1))
    if not torch.equal(unpool_conv_taps(net.dec1.weight.detach()), weights["taps"]):
        raise SystemExit(f"{path}: the unpooling taps do not come from one 3×3 conv")
    return net


def rebuilt(name: str, path: Path, arch: dict) -> Autoencoder:
    """The PyTorch model whose export ``path`` is, from its initializers."""
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in onnx.load(path).graph.initializer}
    if name == "conv-unpool":
        return rebuilt_conv_unpool(weights, path)
    net = build_model(name, **arch).eval()
    net.load_state_dict({key: weights[key] for key in net.state_dict()})
    return net


def reconstructions(net: Autoencoder, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([net(torch.from_numpy(images[i : i + 1000]))[0] for i in range(0, len(images), 1000)]).numpy()


def reexport(name: str, digits: np.ndarray) -> int:
    """Replace the shipped ``name`` (and its decoder graph) by a re-export; its size in bytes. Raises
    ``SystemExit`` (nothing replaced) when the new file does not reproduce the shipped one."""
    shipped = BUNDLED / f"{name}.onnx"
    model = load(shipped)
    meta = model.metadata
    arch = meta.get(contract.ARCHITECTURE) or get_spec(name).arch
    net = rebuilt(name, shipped, arch)
    images = digits.astype(np.float32)[:, None] / 255
    old = model.reconstruct(images)
    print(
        f"{name}: shipped file vs rebuilt model, {len(images)} test digits: max abs "
        f"{np.abs(old - reconstructions(net, images)).max():.2e}"
    )
    facts = ModelFacts(
        name,
        arch,
        dataset=meta.get(contract.DATASET, "mnist"),
        noise=trained_noise(model),
        epochs=int(meta[contract.EPOCHS]),
        test_mse=float(meta[contract.TEST_MSE]),
    )
    with tempfile.TemporaryDirectory() as folder:
        result = export_model(
            net, Path(folder) / shipped.name, facts=facts, options=ExportOptions(), test_images=digits
        )
        moved = np.abs(load(result.path).reconstruct(images) - old).max()
        print(f"{name}: re-exported file vs shipped file: max abs {moved:.2e}")
        if moved > 1e-6:
            raise SystemExit(f"{name}: the re-exported file does not reproduce the shipped one; nothing was replaced")
        files = [result.path, *([result.decoder_path] if result.decoder_path else [])]
        for path in files:
            (BUNDLED / path.name).write_bytes(path.read_bytes())
    size = sum((BUNDLED / path.name).stat().st_size for path in files)
    print(
        f"{name}: replaced {', '.join(path.name for path in files)} ({size / 1e3:.1f} kB, target {ExportOptions().target})"
    )
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder of the MNIST IDX files")
    parser.add_argument("--models", nargs="*", choices=NAMES, default=list(NAMES))
    args = parser.parse_args()
    digits = load_split(Path(args.data_dir), "test")[0]
    index_path = BUNDLED / "models.json"
    index = json.loads(index_path.read_text())
    for name in args.models:
        index[name]["bytes"] = reexport(name, digits)
        index_path.write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
