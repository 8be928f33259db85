"""aetool: autoencoders for the edge — train in PyTorch, export to verified ONNX, run without PyTorch."""

__version__ = "0.1.0"
