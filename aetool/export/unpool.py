"""Max-unpooling that onnxruntime runs exactly and fast: the pooling indices never leave ONNX.

PyTorch numbers a max-pool index within its channel plane; ONNX ``MaxPool``/``MaxUnpool`` number it over the
whole N·C·H·W tensor. The stock exporter bridges the two with index arithmetic and unpools with ``ScatterND``,
which is exact but slow. Inside an aetool graph the indices are never an output: they only travel from the
encoder's pooling to the decoder's unpooling. So both ends can use ONNX's own convention, and the graph becomes
a plain ``MaxPool`` (with its ``Indices`` output) feeding a plain ``MaxUnpool``. onnxruntime's CPU ``MaxPool``
keeps the first maximum of a window in row-major order, as PyTorch's CPU kernel does, so ties (a window of equal
values, common after a ReLU) unpool to the same position; the parity check verifies this on every export.
``MaxPool`` with ``Indices`` is slow scalar code in onnxruntime, so aetool's exports use this for the second
pooling stage only; ``ort_layers`` computes the 4× larger first stage without indices.

Runtimes other than onnxruntime lack ``MaxUnpool`` or ``MaxPool``'s indices, so the portable target
(``portable``) unpools without either: it spreads the pooled values over the four positions of a window on the
channel axis and puts them in place with ``DepthToSpace``, which PyTorch has no operator for; the custom operator
:func:`depth_to_space` stands in for it in the exported program and is translated to ONNX's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from onnxscript import opset18 as op

WINDOW = [2, 2]


def _pair(value: int | Sequence[int]) -> list[int]:
    return [value, value] if isinstance(value, int) else list(value)


def _check_window(
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    ceil_mode: bool,
) -> None:
    """Refuse any pooling but the 2×2 stride-2 windows of aetool's ConvAE: nothing else is verified."""
    window = (_pair(kernel_size), _pair(stride) or _pair(kernel_size), _pair(padding), _pair(dilation), ceil_mode)
    if window != (WINDOW, WINDOW, [0, 0], [1, 1], False):
        raise NotImplementedError(
            f"only 2×2 stride-2 max pooling exports with indices; got kernel {kernel_size}, "
            f"stride {stride}, padding {padding}, dilation {dilation}, ceil_mode {ceil_mode}"
        )


def _max_pool_with_indices(self, kernel_size, stride=(), padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    _check_window(kernel_size, stride, padding, dilation, ceil_mode)
    pooled, indices = op.MaxPool(self, kernel_shape=WINDOW, strides=WINDOW)
    return pooled, indices


def _max_unpool(self, indices, output_size):
    # The default output size of a 2×2 stride-2 MaxUnpool is twice the input: the pooled size of an even input.
    return op.MaxUnpool(self, indices, kernel_shape=WINDOW, strides=WINDOW)


@torch.library.custom_op("aetool::depth_to_space", mutates_args=())
def depth_to_space(x: torch.Tensor) -> torch.Tensor:
    """ONNX ``DepthToSpace`` (blocksize 2, mode DCR): N×4C×h×w → N×C×2h×2w, channel p·C + c of the input going to
    pixel (2i + a, 2j + b) of channel c for the window position p = 2a + b."""
    n, channels, height, width = x.shape
    blocks = x.reshape(n, 2, 2, channels // 4, height, width)
    return blocks.permute(0, 3, 4, 1, 5, 2).reshape(n, channels // 4, 2 * height, 2 * width).contiguous()


@depth_to_space.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    n, channels, height, width = x.shape
    return x.new_empty(n, channels // 4, 2 * height, 2 * width)


def _depth_to_space(x):
    return op.DepthToSpace(x, blocksize=2, mode="DCR")


def translation_table() -> dict[Any, Any]:
    """Custom translations for ``torch.onnx.export``: pooling with indices and unpooling, in ONNX's convention,
    and :func:`depth_to_space` as ONNX's ``DepthToSpace``."""
    aten = torch.ops.aten
    return {
        aten.max_pool2d_with_indices.default: _max_pool_with_indices,
        aten.max_unpool2d.default: _max_unpool,
        torch.ops.aetool.depth_to_space.default: _depth_to_space,
    }
