"""Graphs every major ONNX runtime runs: the ``portable`` export target.

``aetool export --target onnxruntime`` writes the graph onnxruntime's CPU provider runs fastest (``ort_layers``),
whose unpooling models use ``MaxPool`` with its ``Indices`` output, ``MaxUnpool`` and ``Col2Im``. Those are
missing elsewhere: OpenVINO has no conversion rule for ``MaxUnpool``, OpenCV DNN none for ``Col2Im`` (and fails
on the ``Shape`` of a dynamic input), onnxruntime-web's WebGPU backend does not produce ``MaxPool``'s indices.
The ``portable`` target writes the unpooling models with :class:`PortableUnpool` instead, whose graph holds only
``PORTABLE_OPS``; every other registry model's graph already does (PCA's ``Gemm`` stand-in included) and is
exported as for onnxruntime. The exporter refuses a portable graph with any other operator.

``PORTABLE_OPS`` are the operators of aetool's portable graphs at opset 20, each run with results within 1e-4 of
onnxruntime's by onnxruntime, the ONNX reference evaluator, OpenCV DNN 5.0 (both engines), OpenVINO 2026.4
(CPU, f32) and onnxruntime-web 1.30 (wasm, and WebGPU) — the README's compatibility matrix,
from benchmarks/compat.py. ``Max`` is not among them: onnxruntime-web's WebGPU backend has no kernel for it and
its CPU fallback returned wrong values.
"""

from __future__ import annotations

import copy

import onnx
import torch
import torch.nn.functional as F
from torch import nn

from aetool.export.metadata import operators
from aetool.export.ort_layers import POSITIONS, as_conv, conv_weight, for_onnxruntime, is_same_3x3, unpool_conv_taps
from aetool.export.unpool import depth_to_space
from aetool.models.conv import ConvAE
from aetool.runtime import contract

PORTABLE_OPS = frozenset(
    {
        "Add",
        "Cast",
        "Clip",
        "Concat",
        "Conv",
        "ConvTranspose",
        "DepthToSpace",
        "Gemm",
        "GreaterOrEqual",
        "MatMul",
        "MaxPool",  # without its Indices output
        "Mul",
        "Relu",
        "Reshape",
        "Sigmoid",
        "Sub",
    }
)


def foreign_operators(proto: onnx.ModelProto) -> list[str]:
    """What in ``proto``'s graph is outside ``PORTABLE_OPS``: operator types, and ``MaxPool`` asked for indices."""
    indices = any(node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1] for node in proto.graph.node)
    return sorted(set(operators(proto)) - PORTABLE_OPS) + (["MaxPool with its Indices output"] if indices else [])


def pool_by_window(x: torch.Tensor, conv: nn.Conv2d) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``max_pool2d(relu(conv(x)), 2)`` (N×C×h×w for an N×Cin×2h×2w input) and the one-hot float masks of each
    window's first maximum, one per window position p = 2a + b (row-major), each N×C×h×w.

    The conv is computed at each of the four positions of every window: four stride-2 convs of the input padded by
    (top 1 − a, left 1 − b, bottom a, right b), which the exporter folds into the convs' own pads. They share
    input and output shapes and kernel, so equal neighbourhoods give bit-equal values and ties stay ties. First
    maximum, row first: ``c0 = at0 ≥ at1``, ``c2 = at2 ≥ at3``, ``r = max(at0, at1) ≥ max(at2, at3)``; the masks
    ``r·c0, r·(1 − c0), (1 − r)·c2, (1 − r)·(1 − c2)`` give a tie to the earlier row, then the earlier column:
    PyTorch's first maximum in row-major order. Each maximum is the exact select ``a·c + b·(1 − c)`` with
    ``c = [a ≥ b]`` (a·1 + b·0 = a for finite values), not ``Max``. No compare reads the pooled value, whose
    consumers int8 quantization rewires (see ``ort_layers.FirstStageByWindow``).
    """
    at = [F.relu(F.conv2d(F.pad(x, (1 - b, b, 1 - a, a)), conv.weight, conv.bias, stride=2)) for a, b in POSITIONS]
    first_in_top, first_in_bottom = (at[0] >= at[1]).to(x.dtype), (at[2] >= at[3]).to(x.dtype)
    second_in_top, second_in_bottom = 1 - first_in_top, 1 - first_in_bottom
    top = at[0] * first_in_top + at[1] * second_in_top
    bottom = at[2] * first_in_bottom + at[3] * second_in_bottom
    in_top = (top >= bottom).to(x.dtype)
    in_bottom = 1 - in_top
    pooled = top * in_top + bottom * in_bottom
    masks = [in_top * first_in_top, in_top * second_in_top, in_bottom * first_in_bottom, in_bottom * second_in_bottom]
    return pooled, masks


def by_position(d: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
    """N×4C×h×w: ``d`` (N×C×h×w) at each window position where that position held the first maximum, else 0;
    position-major channels (p·C + c), the layout ``DepthToSpace`` (DCR) and :func:`unpool_conv_transpose` read."""
    return torch.cat([d * mask for mask in masks], 1)


def unpool_conv_transpose(layer: nn.Conv2d | nn.ConvTranspose2d) -> torch.Tensor:
    """Weight (4·in, out, 4, 4) of the ``ConvTranspose`` (stride 2, pads 1) over :func:`by_position` channels that
    computes max-unpooling followed by ``layer`` (a 3×3 stride-1 'same' (transposed) conv): the taps of
    ``ort_layers.unpool_conv_taps`` in ConvTranspose's layout."""
    taps = unpool_conv_taps(conv_weight(layer))  # (out·16, 4·in), rows o·16 + ky·4 + kx
    return taps.reshape(-1, 4, 4, taps.shape[1]).permute(3, 0, 1, 2).contiguous()


class PortableUnpool(nn.Module):
    """An unpooling ``ConvAE`` (same weights, same results, ties included) from ``PORTABLE_OPS`` alone.

    Encoder: both pooling stages by window position (:func:`pool_by_window`), no indices. Decoder: the second
    unpooling is ``DepthToSpace`` of the code spread over the four positions (:func:`by_position`), exactly
    ``max_unpool2d``, then the 3×3 conv; the first unpooling and the last conv, both linear in the decoder
    activation, are one ``ConvTranspose`` 4×4, stride 2 (what ``FirstStageByWindow``'s ``MatMul`` + ``Col2Im``
    computes; onnxruntime runs the full-size ``DepthToSpace`` and a 1-output-channel conv after it slowly).
    """

    unpool_last: torch.Tensor

    def __init__(self, net: ConvAE) -> None:
        super().__init__()
        layers = (net.enc1, net.enc2, net.dec2, net.dec1)
        if not (net.uses_indices and all(map(is_same_3x3, layers))):
            raise NotImplementedError("only an unpooling ConvAE with 3×3 stride-1 'same' convolutions stands in")
        self.enc1, self.enc2, self.dec2 = net.enc1, net.enc2, as_conv(net.dec2)
        self.last_bias = net.dec1.bias
        self.register_buffer("unpool_last", unpool_conv_transpose(net.dec1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, first = pool_by_window(x, self.enc1)
        code, second = pool_by_window(h, self.enc2)
        d = F.relu(self.dec2(depth_to_space(by_position(code, second))))
        out = F.conv_transpose2d(by_position(d, first), self.unpool_last, self.last_bias, stride=2, padding=1)
        return torch.sigmoid(out), code


def for_target(net: nn.Module, target: str) -> nn.Module:
    """What to export for ``net`` on ``target``: :class:`PortableUnpool` for an unpooling ConvAE on ``portable``,
    else what onnxruntime runs fastest (``ort_layers.for_onnxruntime``), which runs everywhere for the other
    models. Raises ``ValueError`` for an unknown target."""
    if target not in contract.TARGETS:
        raise ValueError(f"unknown export target {target!r}; choose one of {', '.join(contract.TARGETS)}")
    if target == contract.PORTABLE and isinstance(net, ConvAE) and net.uses_indices:
        return PortableUnpool(copy.deepcopy(net))
    return for_onnxruntime(net)
