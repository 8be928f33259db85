"""The torch-free half of aetool: load an exported model with onnxruntime and run it on images.

Only onnxruntime, numpy, Pillow and the standard library are imported here, so an edge install needs no torch.
"""

from aetool.runtime.model import Model, load
from aetool.runtime.session import ProviderWarning
from aetool.runtime.spec import InputSpec

__all__ = ["InputSpec", "Model", "ProviderWarning", "load"]
