"""Convert a registry model to ONNX graphs: the full model and, where the decoder needs only the code, the decoder.

Conversion only; whether the graphs compute what PyTorch computes is ``parity``'s job.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import onnx
import torch
from torch import nn
from torch.export import Dim

from aetool.export.phases import split_transposed_convs
from aetool.export.portable import for_target
from aetool.export.unpool import translation_table
from aetool.models import Autoencoder
from aetool.runtime import contract

EXAMPLE_BATCH = 2  # not 0 or 1, which torch.export would specialise
# The notes torch's exporter leaves on the graph and on every node: each node's Python stack trace (absolute paths
# of the exporting machine's aetool and torch: a user name in a home folder, the customer folder of a checkout; so
# the same model exported from two install paths differed too), its FX node and module names, the program's
# signature, and its symbolic sizes' ranges in the order of a Python set (which changed with the hash seed).
TORCH_NOTES = "pkg.torch."
EXAMPLE_SIZE = (28, 28)  # the example height and width of fully convolutional models, rounded up to their multiple


@dataclass(frozen=True)
class ExportSpec:
    """What to hand the exporter for one graph: the module, an example input, names, and which dimensions stay symbolic."""

    module: nn.Module
    example: torch.Tensor
    input_name: str
    output_names: tuple[str, ...]
    dynamic: dict[int, Any]
    # Output name → the magnitude its float32 rounding grows with, where that exceeds the output's own: parity holds
    # it to atol × that (a detector's score divides components by their spread; see scores.Detector).
    scales: dict[str, float] = field(default_factory=dict)


class Decoder(nn.Module):
    """The decoder half of an autoencoder as its own module: code in, reconstruction out."""

    def __init__(self, net: Autoencoder) -> None:
        super().__init__()
        self.net = net

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net.decode(code)


def example_images(net: Autoencoder, *, batch: int = EXAMPLE_BATCH) -> torch.Tensor:
    """Random N×C×H×W images ``net`` takes: its fixed size, or 28×28 rounded up to its ``multiple_of``."""
    return torch.rand(batch, net.channels, *(net.size or contract.rounded_up(EXAMPLE_SIZE, net.multiple_of)))


def model_spec(net: Autoencoder, *, target: str) -> ExportSpec:
    """The full model: ``image`` → ``reconstruction``, ``code``; batch dynamic, and height and width for conv.

    The exported module is ``net`` with layers swapped for equivalent ones that the export ``target`` runs well
    (``portable.for_target``); parity is checked against ``net`` itself. Raises ``ValueError`` for an unknown
    target.
    """
    dynamic: dict[int, Any] = {0: Dim("N")}
    if net.multiple_of is not None:
        dynamic.update({2: net.multiple_of * Dim("h"), 3: net.multiple_of * Dim("w")})
    outputs = (contract.RECONSTRUCTION, contract.CODE)
    return ExportSpec(for_target(net, target), example_images(net), contract.INPUT, outputs, dynamic)


def decoder_spec(net: Autoencoder) -> ExportSpec:
    """The decoder: ``code`` → ``reconstruction``, with the code's batch (and spatial size for conv) dynamic."""
    with torch.no_grad():
        code = net(example_images(net))[1]
    dynamic: dict[int, Any] = {0: Dim("N")}
    if code.ndim == 4:
        dynamic.update({2: Dim("h"), 3: Dim("w")})
    return ExportSpec(Decoder(net), torch.rand_like(code), contract.CODE, (contract.RECONSTRUCTION,), dynamic)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep the exporter's progress lines and onnx-ir's notes off our output; errors still raise."""
    ir_logger = logging.getLogger("onnx_ir")
    level = ir_logger.level
    ir_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        ir_logger.setLevel(level)


def to_onnx(spec: ExportSpec) -> onnx.ModelProto:
    """Export with the dynamo exporter, in one piece (no external data), unpooling kept in ONNX's convention, and
    stride-2 transposed convolutions rewritten as the phase convolutions onnxruntime runs faster (``phases``);
    without torch's notes (``TORCH_NOTES``: stack traces with the machine's paths, hash-ordered ranges), so the same
    model gives the same bytes on any machine."""
    with quiet(), torch.no_grad():
        program = torch.onnx.export(
            spec.module.eval(),
            (spec.example,),
            input_names=[spec.input_name],
            output_names=list(spec.output_names),
            dynamic_shapes=(spec.dynamic,),
            custom_translation_table=translation_table(),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    if program is None:  # torch returns None only when asked to write a file itself
        raise RuntimeError("torch.onnx.export returned no program")
    proto = split_transposed_convs(program.model_proto)
    without_torch_notes(proto)
    return proto


def without_torch_notes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with torch's notes removed in place: the ``TORCH_NOTES`` keys of the graph's and its functions'
    metadata_props, and every node's metadata_props (torch's alone: its stack trace, FX node, module names),
    subgraphs included; aetool's own metadata (the model's) is kept."""

    def graph(g: onnx.GraphProto) -> None:
        kept = [prop for prop in g.metadata_props if not prop.key.startswith(TORCH_NOTES)]
        del g.metadata_props[:]
        g.metadata_props.extend(kept)
        nodes(g.node)

    def nodes(found: Iterable[onnx.NodeProto]) -> None:
        for node in found:
            del node.metadata_props[:]
            for attribute in node.attribute:
                subgraphs = [attribute.g] if attribute.HasField("g") else []  # reading .g alone would set it
                for sub in (*subgraphs, *attribute.graphs):
                    graph(sub)

    graph(proto.graph)
    for function in proto.functions:
        del function.metadata_props[:]
        nodes(function.node)
    return proto


def check_onnx(proto: onnx.ModelProto) -> None:
    """The ONNX checker in full: graph structure, then strict shape inference."""
    onnx.checker.check_model(proto, full_check=True)
