"""Convert a registry model to ONNX graphs: the full model and, where the decoder needs only the code, the decoder.

Conversion only; whether the graphs compute what PyTorch computes is ``parity``'s job.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import onnx
import torch
from torch import nn
from torch.export import Dim

from aetool.export.ort_layers import for_onnxruntime
from aetool.export.unpool import translation_table
from aetool.runtime import contract

EXAMPLE_BATCH = 2  # not 0 or 1, which torch.export would specialise
MULTIPLE_OF = 4  # conv models pool twice by 2, so height and width must be multiples of 4


@dataclass(frozen=True)
class Graph:
    """One graph to export: the module, an example input, and which of its dimensions stay symbolic."""

    module: nn.Module
    example: torch.Tensor
    input_name: str
    output_names: tuple[str, ...]
    dynamic: dict[int, Any]


class Decoder(nn.Module):
    """The decoder half of an autoencoder as its own module: code in, reconstruction out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.model.decode(code)


def is_conv(model: nn.Module) -> bool:
    """Conv models take any height and width that are multiples of 4; the others only 28×28."""
    return hasattr(model, "uses_indices")


def has_decoder(model: nn.Module) -> bool:
    """Whether ``decode`` needs only the code (not the encoder's pooling indices), so a decoder graph can exist."""
    return not getattr(model, "uses_indices", False)


def model_graph(model: nn.Module) -> Graph:
    """The full model: ``image`` → ``reconstruction``, ``code``; batch dynamic, and height and width for conv.

    The exported module is ``model`` with layers onnxruntime runs slowly swapped for equivalent ones
    (``ort_layers``); parity is checked against ``model`` itself.
    """
    dynamic: dict[int, Any] = {0: Dim("N")}
    if is_conv(model):
        dynamic.update({2: MULTIPLE_OF * Dim("h4"), 3: MULTIPLE_OF * Dim("w4")})
    example = torch.rand(EXAMPLE_BATCH, 1, 28, 28)
    return Graph(for_onnxruntime(model), example, contract.INPUT, (contract.RECONSTRUCTION, contract.CODE), dynamic)


def decoder_graph(model: nn.Module) -> Graph:
    """The decoder: ``code`` → ``reconstruction``, with the code's batch (and spatial size for conv) dynamic."""
    with torch.no_grad():
        code = model(torch.rand(EXAMPLE_BATCH, 1, 28, 28))[1]
    dynamic: dict[int, Any] = {0: Dim("N")}
    if code.ndim == 4:
        dynamic.update({2: Dim("h4"), 3: Dim("w4")})
    return Graph(Decoder(model), torch.rand_like(code), contract.CODE, (contract.RECONSTRUCTION,), dynamic)


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


def to_onnx(graph: Graph) -> onnx.ModelProto:
    """Export with the dynamo exporter, in one piece (no external data), unpooling kept in ONNX's convention."""
    with quiet(), torch.no_grad():
        program = torch.onnx.export(
            graph.module.eval(),
            (graph.example,),
            input_names=[graph.input_name],
            output_names=list(graph.output_names),
            dynamic_shapes=(graph.dynamic,),
            custom_translation_table=translation_table(),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    return program.model_proto


def check_onnx(model: onnx.ModelProto) -> None:
    """The ONNX checker in full: graph structure, then strict shape inference."""
    onnx.checker.check_model(model, full_check=True)
