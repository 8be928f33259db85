"""Export-time stand-ins for layers that onnxruntime's CPU provider runs slowly; same weights, same results.

A convolution with a single output channel (the conv AE's last layer, C→1, 3×3) is the slowest op of a conv
model in onnxruntime: its NCHWc kernels pad the one output channel to a block of 16, so 15/16 of the work is
thrown away. The same sum taken as one matrix product over channels for every kernel tap (``MatMul``), followed
by ``Col2Im`` adding the k² tap planes into place (``F.fold``), is about five times faster. Only the order of the
float additions changes; the parity check holds the exported graph to the original layer.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class FoldConv(nn.Module):
    """``conv`` (C→1, k×k, stride 1, 'same' padding) as a matmul over channels per tap, then col2im (fold)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k = self.conv.kernel_size[0]
        # fold adds tap (i, j) of the block at (y, x) into pixel (y + i - k//2, x + j - k//2): the kernel flipped
        taps = self.conv.weight.flip(2, 3).permute(2, 3, 0, 1).reshape(k * k, c)
        out = F.fold(torch.matmul(taps, x.reshape(n, c, h * w)), (h, w), k, padding=k // 2)
        return out if self.conv.bias is None else out + self.conv.bias.reshape(1, 1, 1, 1)


def _single_output(conv: nn.Module) -> bool:
    """A plain square-kernel Conv2d with one output channel and 'same' padding: what FoldConv reproduces."""
    return (type(conv) is nn.Conv2d and conv.out_channels == 1 and conv.groups == 1
            and conv.kernel_size[0] == conv.kernel_size[1] and conv.kernel_size[0] % 2 == 1
            and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
            and conv.padding == (conv.kernel_size[0] // 2,) * 2)


def for_onnxruntime(model: nn.Module) -> nn.Module:
    """``model`` itself if nothing needs replacing, else a copy whose single-output convs are FoldConvs."""
    names = [name for name, layer in model.named_modules() if _single_output(layer)]
    if not names:
        return model
    fast = copy.deepcopy(model)
    for name in names:
        parent_name, _, attribute = name.rpartition(".")
        parent = fast.get_submodule(parent_name)
        setattr(parent, attribute, FoldConv(getattr(parent, attribute)))
    return fast
