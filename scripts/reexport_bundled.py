"""Re-export the shipped conv-unpool in the current export target from its own weights, without training again.

    python scripts/reexport_bundled.py --data-dir ../shared/data/mnist

The bundled conv-unpool was trained by aetool's pipeline (registry defaults, 10 epochs) and exported as the
onnxruntime graph (``ort_layers.FirstStageByWindow``); its run folder was not kept. This rebuilds the ConvAE from
the shipped file's initializers: ``enc1``, ``enc2`` and ``dec2`` as stored, ``dec1`` from the unpooling taps
(``taps[o·16 + (2 − dy)·4 + (2 − dx), c] = dec1.weight[o, c, dy, dx]``, window position 0), then checks that the
rebuilt model's taps are the file's bit for bit at all four positions and that the file reproduces the rebuilt
model on the 10,000 test digits. It exports with aetool's exporter (default target, parity against the rebuilt
model on the usual cases plus 64 test digits, every installed runtime), keeps the shipped file's training facts
(epochs, test MSE) after checking that the new file scores that test MSE, and updates models.json.
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
from aetool.models import ConvAE, build_model, get_spec
from aetool.runtime import contract, load
from aetool.runtime.idx import load_split
from aetool.runtime.model import parse_metadata

BUNDLED = Path(__file__).resolve().parents[1] / "aetool" / "runtime" / "bundled"
NAME = "conv-unpool"


def rebuilt(path: Path) -> ConvAE:
    """The ConvAE whose FirstStageByWindow export ``path`` is; raises ``SystemExit`` when its taps disagree."""
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in onnx.load(path).graph.initializer}
    net = build_model(NAME).eval()
    if not isinstance(net, ConvAE):
        raise SystemExit(f"{NAME} is not a ConvAE")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder of the MNIST IDX files")
    args = parser.parse_args()
    shipped = BUNDLED / f"{NAME}.onnx"
    meta = parse_metadata({p.key: p.value for p in onnx.load(shipped).metadata_props})
    net = rebuilt(shipped)
    digits = load_split(Path(args.data_dir), "test")[0]
    images = digits.astype(np.float32)[:, None] / 255
    with torch.no_grad():
        want = torch.cat([net(torch.from_numpy(images[i : i + 1000]))[0] for i in range(0, len(images), 1000)])
    old = load(shipped).reconstruct(images)
    print(f"shipped file vs rebuilt model on {len(images)} test digits: max abs {np.abs(old - want.numpy()).max():.2e}")
    recorded = float(meta[contract.TEST_MSE])
    facts = ModelFacts(NAME, get_spec(NAME).arch, epochs=int(meta[contract.EPOCHS]), test_mse=recorded)
    with tempfile.TemporaryDirectory() as folder:
        result = export_model(
            net, Path(folder) / shipped.name, facts=facts, options=ExportOptions(), test_images=digits
        )
        new = load(result.path).reconstruct(images)
        mse = float(np.mean((new.astype(np.float64) - images) ** 2))
        print(f"test MSE: recorded {recorded:.10f}, new file {mse:.10f}")
        if abs(mse - recorded) > 1e-7:
            raise SystemExit("the re-exported file does not score the recorded test MSE; nothing was replaced")
        shipped.write_bytes(result.path.read_bytes())
    index_path = BUNDLED / "models.json"
    index = json.loads(index_path.read_text())
    index[NAME]["bytes"] = shipped.stat().st_size
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    print(f"replaced {shipped} ({shipped.stat().st_size / 1e3:.1f} kB, target {ExportOptions().target})")


if __name__ == "__main__":
    main()
