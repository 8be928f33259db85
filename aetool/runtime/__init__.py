"""The torch-free half of aetool: load an exported model with onnxruntime and run it on images.

Only onnxruntime, numpy, Pillow and the standard library are imported here, so an edge install needs no torch.
"""

from aetool.runtime.model import InputSpec, Model, ProviderWarning, load

__all__ = ["InputSpec", "Model", "ProviderWarning", "load"]
