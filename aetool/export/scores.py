"""Anomaly scores on the torch side: the head a detector graph puts on an autoencoder.

The components and the score are defined in :mod:`aetool.runtime.anomaly` (the numpy side); this module computes
the same in float32 torch ops that export to plain ONNX operators (Conv, ReduceMean, ReduceMax, arithmetic; no
``Max`` over tensors, which onnxruntime-web's WebGPU backend lacks), so the file alone computes the score in any
runtime. :class:`Detector` carries a calibrated detector into the exporter: the graph to export, the module it
is held to, and a second check of the graph's scores against the numpy runtime's on the same reconstructions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from aetool.console import Echo
from aetool.export.onnx_export import ExportSpec, model_spec
from aetool.export.parity import Case, ParityReport, check_parity, cpu_session, run_session
from aetool.models import Autoencoder
from aetool.runtime import anomaly, contract
from aetool.runtime.metrics import SSIM_K1, SSIM_K2, SSIM_RADIUS, SSIM_SIGMA

OUTPUTS = (contract.RECONSTRUCTION, contract.CODE, contract.SCORE, contract.ANOMALY_MAP, contract.SCORE_COMPONENTS)
# What a portable detector may use beyond portable.PORTABLE_OPS: the ratios of SSIM, and the means and the maximum
# over an image. A dense model's detector runs in every runtime aetool checks (onnxruntime, the ONNX reference
# evaluator, OpenCV DNN's two engines, OpenVINO); a conv model's in all but OpenCV's classic engine, which cannot
# size a reduction over a conv output of any size. Not measured in onnxruntime-web.
DETECTOR_OPS = frozenset({"Div", "ReduceMean", "ReduceMax"})


def gaussian_taps(sigma: float, radius: int) -> torch.Tensor:
    """The 2·radius + 1 taps of a Gaussian of ``sigma``, normalised to sum 1 in float64, then float32."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (taps / taps.sum()).float()


def gaussian_window(sigma: float, radius: int) -> torch.Tensor:
    """1×1×k×k float32, k = 2·radius + 1: the outer product of the normalised Gaussian taps (computed in float64)."""
    taps = gaussian_taps(sigma, radius).double()
    return (taps[:, None] * taps[None, :]).float()[None, None]


def image_mean(values: torch.Tensor) -> torch.Tensor:
    """N: the mean of each N×C×H×W image's values, along the rows, then down the columns, then over channels.

    Equal to one mean over (C, H, W) in real arithmetic, but no float32 sum is longer than a side: onnxruntime's
    ReduceMean over all 383,000 SSIM positions of a 300×451 colour photo differed from PyTorch's by 1.3e-4 (the
    parity check refused the detector), the three short means by 1e-10 (the numpy runtime's float64 by 2e-8).
    """
    return values.mean(3).mean(2).mean(1)


def error_map(images: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """N×1×H×W: the mean over channels of the squared error of N×C×H×W ``outputs`` against ``images``."""
    difference = images - outputs
    return (difference * difference).mean(1, keepdim=True)  # a product, not Pow: Pow is not a portable operator


@dataclass(frozen=True)
class Constants:
    """What a detector's score needs besides the model: its ``components``, the ``wmse`` weights 1 / (v + 0.001)
    (1×H×W float32, None when unused) and the mean and standard deviation standardising each component."""

    components: tuple[str, ...]
    weights: np.ndarray | None = None
    mean: tuple[float, ...] | None = None  # None: 0 (raw components, before calibration)
    std: tuple[float, ...] | None = None  # None: 1


class AnomalyHead(nn.Module):
    """An autoencoder and its anomaly score: ``image`` (N×C×H×W in [0, 1]) → ``reconstruction``, ``code``,
    ``score`` (N), ``anomaly_map`` (N×1×H×W) and ``score_components`` (N×K, raw), as runtime.anomaly defines them.

    SSIM filters four local moments (x̂, x, (x̂ − ½)² + (x − ½)², (x − x̂)²) of every channel with its 11×11
    Gaussian window ('valid', as Wang et al. 2004 and scikit-image; see :meth:`ssim_distance`), as two grouped
    convolutions of 11 taps, down the rows, then along them; the map is smoothed by a 5×5 Gaussian of σ 1 with zero
    padding. Constants live in buffers, which export as initializers. Written with the portable operators and
    ``DETECTOR_OPS`` only (squares as products, one convolution per moment, the sum over components a product).
    """

    weights: torch.Tensor
    mean: torch.Tensor
    inverse_std: torch.Tensor
    smooth_window: torch.Tensor
    ssim_rows: torch.Tensor
    ssim_columns: torch.Tensor

    def __init__(self, net: nn.Module, constants: Constants, *, channels: int) -> None:
        super().__init__()
        self.net, self.components = net, constants.components
        count = len(constants.components)
        self.register_buffer("smooth_window", gaussian_window(anomaly.SMOOTH_SIGMA, anomaly.SMOOTH_RADIUS))
        taps = gaussian_taps(SSIM_SIGMA, SSIM_RADIUS).repeat(channels, 1)  # one row per channel
        self.register_buffer("ssim_rows", taps[:, None, :, None].clone())
        self.register_buffer("ssim_columns", taps[:, None, None, :].clone())
        if constants.weights is not None:
            weights = torch.from_numpy(constants.weights).float()
            self.register_buffer("weights", weights.reshape(1, 1, *weights.shape[-2:]))
        std = torch.tensor(constants.std or (1.0,) * count, dtype=torch.float64)
        self.register_buffer("mean", torch.tensor(constants.mean or (0.0,) * count, dtype=torch.float32))
        self.register_buffer("inverse_std", (1 / std).float()[:, None])  # K×1: OpenCV DNN's MatMul takes no vector

    def _window(self, planes: torch.Tensor) -> torch.Tensor:
        """The Gaussian-weighted local means of N×C×H×W planes, per channel, at the 'valid' positions."""
        channels = planes.shape[1]
        return F.conv2d(F.conv2d(planes, self.ssim_rows, groups=channels), self.ssim_columns, groups=channels)

    def ssim_distance(self, images: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        """N: 1 − the mean SSIM of each image's channels (``metrics.ssims``), written for float32.

        SSIM = l · cs with l = (2μxμy + C1) / (μx² + μy² + C1) and cs = (2σxy + C2) / (σx² + σy² + C2), which is
        1 − σ²(x−y) / (σx² + σy² + C2); the variances are those of x − ½ and y − ½ (a shift changes no variance).
        Equal in real arithmetic, the second form loses fewer digits in float32, where E[x²] − μ² cancels on bright
        flat areas (Fashion-MNIST's garments): it takes the variance of the small difference x − y, and of values
        half as large; the separable window sums 11 products at a time instead of 121. Measured on Fashion-MNIST
        coats against float64: errors of 2e-6 in torch, onnxruntime, OpenVINO and the ONNX reference evaluator,
        against 3.6e-5 in torch (6.5e-6 in onnxruntime) for the textbook form with the 2-D window.
        """
        difference, shifted_x, shifted_y = images - outputs, outputs - 0.5, images - 0.5
        mu_x, mu_y = self._window(outputs), self._window(images)
        squares = self._window(shifted_x * shifted_x + shifted_y * shifted_y)
        difference_squared = self._window(difference * difference)
        c1, c2 = SSIM_K1**2, SSIM_K2**2
        luminance = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
        centre_x, centre_y, mean_difference = mu_x - 0.5, mu_y - 0.5, mu_y - mu_x
        spread = squares - centre_x * centre_x - centre_y * centre_y + c2
        structure = 1 - (difference_squared - mean_difference * mean_difference) / spread
        return 1 - image_mean(luminance * structure)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs, code = self.net(images)
        errors = error_map(images, outputs)
        smoothed = F.conv2d(errors, self.smooth_window, padding=anomaly.SMOOTH_RADIUS)
        columns = []
        for name in self.components:
            if name == "mse":
                columns.append(image_mean(errors))
            elif name == "ssim":
                columns.append(self.ssim_distance(images, outputs))
            elif name == "smax":
                columns.append(smoothed.amax((1, 2, 3)))
            else:  # wmse
                columns.append(image_mean(errors * self.weights))
        values = torch.cat([column.reshape(-1, 1) for column in columns], 1)
        score = ((values - self.mean) @ self.inverse_std).reshape(-1)  # Σ (value − mean) / std
        return outputs, code, score, smoothed, values


def default_score(net: Autoencoder) -> tuple[str, ...]:
    """The score measured best for the model: ``ssim+smax+wmse`` for a model of one size, else ``ssim+smax``."""
    return anomaly.FIXED_SIZE_SCORE if net.size is not None else anomaly.ANY_SIZE_SCORE


def check_score(net: Autoencoder, components: Sequence[str]) -> None:
    """Raise ``ValueError`` for a score the model cannot have: ``wmse`` needs a model of one size, ``ssim`` images
    of at least 11×11."""
    if "wmse" in components and net.size is None:
        raise ValueError("wmse weighs each pixel of one image size; this model takes any size: leave wmse out")
    window = 2 * SSIM_RADIUS + 1
    if "ssim" in components and net.size is not None and min(net.size) < window:
        raise ValueError(f"ssim needs images of at least {window}×{window}; this model takes {net.size}")


@torch.no_grad()
def raw_components(
    net: Autoencoder, batches: Sequence[np.ndarray], constants: Constants
) -> tuple[np.ndarray, np.ndarray]:
    """N×K float64 raw components and the N largest anomaly-map values of the images in ``batches`` (each
    B×C×H×W float32 in [0, 1]), computed by the head in eval mode on the CPU."""
    head = AnomalyHead(net, Constants(constants.components, constants.weights), channels=net.channels).eval()
    values, peaks = [], []
    for batch in batches:
        _, _, _, maps, columns = head(torch.from_numpy(batch))
        values.append(columns.double().numpy())
        peaks.append(maps.amax((1, 2, 3)).double().numpy())
    return np.concatenate(values), np.concatenate(peaks)


@dataclass(frozen=True)
class Detector:
    """A calibrated detector on its way into a file: its constants and the record its metadata will hold."""

    constants: Constants
    spec: anomaly.AnomalySpec

    def module(self, net: Autoencoder) -> AnomalyHead:
        """The head on ``net``: what the graph is held to."""
        return AnomalyHead(net, self.constants, channels=net.channels).eval()

    def export_spec(self, net: Autoencoder, *, target: str) -> ExportSpec:
        """The graph to export: the head on the model as it exports for ``target`` (``model_spec``), batch (and
        for models of any size, height and width) dynamic."""
        base = model_spec(net, target=target)
        head = AnomalyHead(base.module, self.constants, channels=net.channels).eval()
        scales = {contract.SCORE: self.spec.score_scale}
        return ExportSpec(head, base.example, base.input_name, OUTPUTS, base.dynamic, scales)

    def runtime_check(self, proto: onnx.ModelProto, cases: list[Case], *, atol: float) -> ParityReport:
        """The graph's ``score``, ``anomaly_map`` and ``score_components`` against what the numpy runtime
        (runtime.anomaly, float64) computes from the graph's own reconstructions, held to ``atol`` as parity is."""
        session = cpu_session(proto)
        spec, weights = self.spec, self.constants.weights

        def numpy_scores(inputs: np.ndarray) -> dict[str, np.ndarray]:
            outputs = run_session(session, inputs)[contract.RECONSTRUCTION]
            values = anomaly.components(inputs, outputs, spec.components, weights=weights)
            return {
                contract.SCORE: anomaly.standardised_sum(values, spec.mean, spec.std),
                contract.ANOMALY_MAP: anomaly.anomaly_map(inputs, outputs),
                contract.SCORE_COMPONENTS: values,
            }

        scales = {contract.SCORE: self.spec.score_scale}
        return check_parity(
            session, numpy_scores, cases, atol=atol, graph="detector", against="the numpy runtime", scales=scales
        )

    def metadata(self, proto: onnx.ModelProto, cases: list[Case], *, atol: float, echo: Echo) -> dict[str, str]:
        """The ``anomaly`` key, once :meth:`runtime_check` passed (its summary goes into the record); raises
        ``ParityError`` when it did not."""
        report = self.runtime_check(proto, cases, atol=atol)
        for line in report.lines():
            echo(line)
        report.raise_if_failed()
        record = self.spec.to_record()
        record["runtime_check"] = {"passed": report.passed, "atol": report.atol, "worst_max_abs": report.worst_max_abs}
        return {contract.ANOMALY: json.dumps(record)}
