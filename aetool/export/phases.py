"""Stride-2 transposed convolutions as ordinary convolutions, one per output phase: what onnxruntime runs fastest.

A ``ConvTranspose`` with stride S writes each output pixel ``o = S·i − P + k`` from input pixel ``i`` and kernel tap
``k``. Split the output by its phase ``u = o mod S`` (per axis) and each phase is an ordinary convolution of the
input with the taps that land on it (for a 4×4, stride-2, pads-1 kernel: 2×2 taps per phase); interleaving the
phases (``DepthToSpace``) gives the output. This is the sub-pixel view of a transposed convolution (Shi et al.,
"Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network",
CVPR 2016). onnxruntime's CPU provider runs ``ConvTranspose`` as a matrix product and a scalar ``Col2Im``
scatter, but ordinary convolutions in its blocked NCHWc kernels, several times faster per multiply-add.

The interleave itself is slow in onnxruntime (its ``DepthToSpace`` is a generic 6-D transpose), so a tensor stays
split into phases through elementwise activations and into the next transposed convolution, which reads its input
phases directly (``F`` phases per axis in, ``F·S`` out); one ``DepthToSpace`` is left where a tensor leaves the
chain. A transposed convolution is rewritten only where that pays, as measured (benchmarks/export_speed.py): a
kernel larger than its stride (taps that overlap), and either at least ``MIN_PHASE_CHANNELS`` channels per output
phase (a conv of its own per phase, which the NCHWc kernels pad to their channel block) or an input already split
(convs per input phase, summed, with every output phase's channels together). Where each output phase takes a
single tap from an input phase (a 4×4 stride-2 kernel reading split input), that is a 1×1 conv and a depthwise
conv that moves each output phase to its offset, not a wider conv mostly of zero taps.

Only the order of float additions changes. The rewrite works on the exported ONNX graph, so the model, decoder
and detector graphs and every variant made from them get it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Fewer channels per output phase and a conv of its own per phase wastes most of the NCHWc kernels' channel block
# (16 floats with AVX-512, 8 with AVX2); the transposed convolution is then left as it is unless its input is split.
MIN_PHASE_CHANNELS = 8
ACTIVATIONS = frozenset({"Relu", "Sigmoid"})  # elementwise: applied to each phase as it is


@dataclass(frozen=True)
class Split:
    """A tensor held as ``factor`` × ``factor`` phases, in parts: each part a tensor holding the ``phases`` it lists
    (flat index ``u·factor + v``), phase-major (``DepthToSpace``'s DCR order)."""

    factor: int
    parts: tuple[tuple[tuple[int, ...], str], ...]


def _attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _stride_and_pad(node: onnx.NodeProto, weight: np.ndarray, *, overlapping_only: bool) -> tuple[int, int] | None:
    """(S, P) of a 2-D transposed convolution this module rewrites, else None: ungrouped, undilated, square kernel
    K, equal stride S ≥ 2 and pads P on both axes and sides, K − 2P = S (output exactly S × input), no output
    padding, and with ``overlapping_only`` K > S: taps that overlap, which onnxruntime's ``Col2Im`` must add up."""
    kernel = weight.shape[2:]
    strides = list(_attribute(node, "strides", [1, 1]))
    pads = list(_attribute(node, "pads", [0, 0, 0, 0]))
    plain = (
        weight.ndim == 4
        and _attribute(node, "group", 1) == 1
        and list(_attribute(node, "dilations", [1, 1])) == [1, 1]
        and not any(_attribute(node, "output_padding", [0, 0]))
        and _attribute(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
        and not _attribute(node, "output_shape", [])
        and kernel[0] == kernel[1]
        and len(set(strides)) == 1
        and len(set(pads)) == 1
    )
    if (
        not plain
        or kernel[0] - 2 * pads[0] != strides[0]
        or strides[0] < 2
        or (overlapping_only and kernel[0] == strides[0])
    ):
        return None
    return strides[0], pads[0]


def phase_taps(*, kernel: int, stride: int, pad: int, factor: int) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Per axis: for output phase u (of factor·stride) and input phase r (of factor), the (offset d, tap k) pairs
    with ``out[(factor·stride)·p + u] += in[factor·(p + d) + r] · w[k]``; from ``o = stride·i − pad + k``."""
    out_factor = factor * stride
    taps: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for u in range(out_factor):
        for r in range(factor):
            for k in range(kernel):
                offset, rest = divmod(u + pad - stride * r - k, out_factor)
                if rest == 0:
                    taps.setdefault((u, r), []).append((offset, k))
    return taps


def _block_conv(
    weight: np.ndarray,
    taps: dict[tuple[int, int], list[tuple[int, int]]],
    *,
    out_factor: int,
    in_factor: int,
    out_phases: tuple[int, ...],
    in_phases: tuple[int, ...],
) -> tuple[np.ndarray, list[int], list[set[tuple[int, int]]]] | None:
    """The Conv weight (len(out_phases)·Cout, len(in_phases)·Cin, Th, Tw) and pads [top, left, bottom, right] taking
    the listed input phases to the listed output phases, and for each output phase the window positions its taps
    use; None where no tap connects them. ``weight`` is the ConvTranspose's (Cin, Cout, K, K); phases are flat
    indices ``u·factor + v``. The window spans the offsets used, and offset 0, so that the pads are never negative
    and the output has the input's size."""
    cin, cout = weight.shape[:2]
    entries = []  # (row block, column block, dh, dw, kh, kw)
    for row, q in enumerate(out_phases):
        u, v = divmod(q, out_factor)
        for column, t in enumerate(in_phases):
            r, s = divmod(t, in_factor)
            for dh, kh in taps.get((u, r), []):
                for dw, kw in taps.get((v, s), []):
                    entries.append((row, column, dh, dw, kh, kw))
    if not entries:
        return None
    top, left = min(0, *(e[2] for e in entries)), min(0, *(e[3] for e in entries))
    bottom, right = max(0, *(e[2] for e in entries)), max(0, *(e[3] for e in entries))
    conv = np.zeros((len(out_phases) * cout, len(in_phases) * cin, bottom - top + 1, right - left + 1), weight.dtype)
    used: list[set[tuple[int, int]]] = [set() for _ in out_phases]
    for row, column, dh, dw, kh, kw in entries:
        conv[row * cout : (row + 1) * cout, column * cin : (column + 1) * cin, dh - top, dw - left] = weight[
            :, :, kh, kw
        ].T
        used[row].add((dh - top, dw - left))
    return conv, [-top, -left, bottom, right], used


def _pointwise_and_shift(conv: np.ndarray, used: list[set[tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray]:
    """``conv`` (R, C, Th, Tw), whose output phases (R / len(used) channels each) each use one window position, as
    a 1×1 conv (R, C, 1, 1) of that position's weights and a depthwise conv (R, 1, Th, Tw) that is 1 at it: the
    same products without the multiply-adds by zero taps (three quarters of the deconv decoder's last layer's)."""
    per_phase = conv.shape[0] // len(used)
    pointwise = np.empty((conv.shape[0], conv.shape[1], 1, 1), conv.dtype)
    shift = np.zeros((conv.shape[0], 1, *conv.shape[2:]), conv.dtype)
    for row, positions in enumerate(used):
        ((a, b),) = positions
        rows = slice(row * per_phase, (row + 1) * per_phase)
        pointwise[rows, :, 0, 0] = conv[rows, :, a, b]
        shift[rows, 0, a, b] = 1
    return pointwise, shift


def split_transposed_convs(proto: onnx.ModelProto, *, overlapping_only: bool = True) -> onnx.ModelProto:
    """``proto`` with its stride-≥2 transposed convolutions run as phase convolutions where that pays (see the
    module docstring); the same graph when none qualifies. Inputs, outputs and their names are unchanged.

    ``overlapping_only=False`` also rewrites kernels as large as their stride (DnCNN's 2×2, stride 2), where each
    output pixel takes one tap: onnxruntime runs those fast as they are, and interleaving their many channels costs
    more than the rewrite saves (``benchmarks/export_speed.py --model denoise``, column ``phases-all``)."""
    graph = proto.graph
    opset = next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), 0)
    subgraphs = any(
        attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        for node in graph.node
        for attribute in node.attribute
    )
    if opset < 11 or subgraphs:  # DepthToSpace's mode is opset 11's; a subgraph may read what this rewrites
        return proto
    inputs = {value.name for value in graph.input}  # an initializer listed as an input can be fed: not constant
    weights = {init.name: init for init in graph.initializer if init.name not in inputs}
    taken = (
        inputs
        | {init.name for init in graph.initializer}
        | {name for node in graph.node for name in (*node.input, *node.output)}
    )
    split: dict[str, Split] = {}
    plain: set[str] = set()  # split tensors already interleaved under their own name
    nodes: list[onnx.NodeProto] = []
    added: list[onnx.TensorProto] = []

    counter = itertools.count()

    def fresh(name: str, kind: str) -> str:
        # Ending in a word: onnxruntime's quantizer names a copy of a shared bias by appending digits to its name
        # without checking other tensors (a bias "…/1" copied as "…/11" took the name of a conv output).
        while (candidate := f"phases/{name}/{next(counter)}_{kind}") in taken:
            pass
        return candidate

    def interleave(name: str) -> None:
        if name in plain:
            return
        plain.add(name)
        held = split[name]
        parts = [part for _, part in sorted(held.parts)]
        source = parts[0]
        if len(parts) > 1:
            source = fresh(name, "concat")
            nodes.append(helper.make_node("Concat", parts, [source], axis=1))
        nodes.append(helper.make_node("DepthToSpace", [source], [name], blocksize=held.factor, mode="DCR"))

    def transposed(node: onnx.NodeProto) -> bool:
        source = node.input[0]
        if node.input[1] not in weights or (len(node.input) > 2 and node.input[2] and node.input[2] not in weights):
            return False
        weight = numpy_helper.to_array(weights[node.input[1]])
        shape = _stride_and_pad(node, weight, overlapping_only=overlapping_only)
        if shape is None or (weight.shape[1] < MIN_PHASE_CHANNELS and source not in split):
            return False
        stride, pad = shape
        cout = weight.shape[1]
        bias = numpy_helper.to_array(weights[node.input[2]]) if len(node.input) > 2 and node.input[2] else None
        held = split.get(source, Split(1, (((0,), source),)))
        out_factor = held.factor * stride
        taps = phase_taps(kernel=weight.shape[2], stride=stride, pad=pad, factor=held.factor)
        everything = tuple(range(out_factor * out_factor))
        groups = [(q,) for q in everything] if cout >= MIN_PHASE_CHANNELS else [everything]
        parts = []
        for group in groups:
            total = ""
            for phases, part in held.parts:
                block = _block_conv(
                    weight, taps, out_factor=out_factor, in_factor=held.factor, out_phases=group, in_phases=phases
                )
                if block is None:
                    continue
                conv, pads, used = block
                out = fresh(node.output[0], "conv")
                one_tap = conv.shape[2:] != (1, 1) and all(len(positions) == 1 for positions in used)
                if one_tap:  # each output phase takes one window position: a 1×1 conv, then shift each into place
                    pointwise, shift = _pointwise_and_shift(conv, used)
                    pointwise_name = fresh(node.output[0], "pointwise")
                    added.append(numpy_helper.from_array(pointwise, pointwise_name))
                    between = fresh(node.output[0], "unshifted")
                    nodes.append(helper.make_node("Conv", [part, pointwise_name], [between], kernel_shape=[1, 1]))
                    inputs = [between, fresh(node.output[0], "shift")]
                    added.append(numpy_helper.from_array(shift, inputs[1]))
                else:
                    inputs = [part, fresh(node.output[0], "weight")]
                    added.append(numpy_helper.from_array(conv, inputs[1]))
                if not total and bias is not None:
                    inputs.append(fresh(node.output[0], "bias"))
                    added.append(numpy_helper.from_array(np.tile(bias, len(group)), inputs[2]))
                kernel = list(conv.shape[2:])
                depthwise = {"group": conv.shape[0]} if one_tap else {}
                nodes.append(helper.make_node("Conv", inputs, [out], kernel_shape=kernel, pads=pads, **depthwise))
                if total:
                    summed = fresh(node.output[0], "sum")
                    nodes.append(helper.make_node("Add", [total, out], [summed]))
                    out = summed
                total = out
            parts.append((group, total))
        split[node.output[0]] = Split(out_factor, tuple(parts))
        return True

    for node in graph.node:
        if node.op_type == "ConvTranspose" and transposed(node):
            continue
        if node.op_type in ACTIVATIONS and node.input[0] in split:
            held = split[node.input[0]]
            parts = []
            for phases, part in held.parts:
                out = fresh(node.output[0], node.op_type.lower())
                nodes.append(helper.make_node(node.op_type, [part], [out]))
                parts.append((phases, out))
            split[node.output[0]] = Split(held.factor, tuple(parts))
            continue
        for name in node.input:
            if name in split:
                interleave(name)
        nodes.append(node)
    if not split:
        return proto
    for output in graph.output:
        if output.name in split:
            interleave(output.name)
    result = onnx.ModelProto()
    result.CopyFrom(proto)
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input} | {output.name for output in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    del result.graph.initializer[:]
    result.graph.initializer.extend(kept + added)
    produced = {name for node in nodes for name in node.output}
    info = [value for value in graph.value_info if value.name in produced]
    del result.graph.value_info[:]
    result.graph.value_info.extend(info)
    return result
