"""aetool: autoencoders for the edge — train in PyTorch, export to verified ONNX, run without PyTorch."""

import os

__version__ = "0.1.0"

# PyTorch's OpenMP threads spin while they wait for work. On a small machine shared with other processes that
# spinning steals the cores they wait for (the README's Training section gives the measured cost). The variable
# must be set before torch is first imported, hence here; a value the user sets wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# onnxruntime (1.32 measured) writes a device id and queued telemetry records under ~/.cache/Microsoft/ unless this
# variable is 1 when it is imported; an edge tool sends nothing home by default. ORT_DISABLE_TELEMETRY=0 turns it on.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
