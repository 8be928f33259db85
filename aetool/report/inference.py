"""Run a report model: through its exported ONNX files and aetool's runtime, with torch only where no file exists.

Every figure of the report thus doubles as a check of the runtime a user gets; ``backend`` says which path ran.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import numpy as np
import torch

from aetool import runtime
from aetool.models import Autoencoder
from aetool.report.runs import ReportRun
from aetool.runtime.metrics import mean_squared_error
from aetool.train import load_run

TORCH_BATCH = 1000  # images per torch call


class Engine:
    """Reconstruct, encode and decode N×28×28 float32 images in [0, 1] with one trained model."""

    def __init__(self, run: ReportRun) -> None:
        self.run = run
        self.name = run.name
        self.onnx = runtime.load(run.onnx) if run.onnx is not None else None

    @property
    def backend(self) -> str:
        return "onnxruntime" if self.onnx is not None else "torch"

    @property
    def decoder_backend(self) -> str:
        return "onnxruntime" if self.onnx is not None and self.onnx.has_decoder else "torch"

    @cached_property
    def net(self) -> Autoencoder:
        """The trained torch network, for weights and filters (and inference only when no ONNX file exists)."""
        return load_run(self.run.path).net

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """Reconstructions of N×28×28 float32 images in [0, 1], the same shape, through ONNX when exported."""
        if self.onnx is not None:
            return self.onnx.reconstruct(images[:, None]).reshape(images.shape)
        return self._torch(lambda x: self.net(x)[0], images[:, None]).reshape(images.shape)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Codes of N×28×28 float32 images in [0, 1]: N×D (dense) or N×C×h×w (conv)."""
        if self.onnx is not None:
            return self.onnx.encode(images[:, None])
        return self._torch(self.net.encode, images[:, None])

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Images from codes, for models whose decoder needs nothing but the code."""
        if self.onnx is not None and self.onnx.has_decoder:
            images = self.onnx.decode(codes)
        else:
            images = self._torch(self.net.decode, codes)
        return images.reshape(len(codes), 28, 28)

    @torch.no_grad()
    def _torch(self, step: Callable[[torch.Tensor], torch.Tensor], batch: np.ndarray) -> np.ndarray:
        parts = [
            step(torch.from_numpy(np.ascontiguousarray(batch[i : i + TORCH_BATCH], np.float32))).numpy()
            for i in range(0, len(batch), TORCH_BATCH)
        ]
        return np.concatenate(parts)


def mse(engine: Engine, inputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean squared error per pixel between the model's output for ``inputs`` and ``targets`` (N×28×28)."""
    return mean_squared_error(engine.reconstruct, inputs, targets)
