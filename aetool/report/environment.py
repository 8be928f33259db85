"""Where the report's numbers were measured: hardware and library versions, for the summary table."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

import torch

from aetool.runtime.cpu import cpu_facts
from aetool.train.loop import pick_device

THREAD_SETTINGS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")  # shown when set: they change timings
PACKAGES = ("torch", "torchvision", "onnx", "onnxscript", "onnxruntime", "numpy", "matplotlib")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, str]:
    """Name → value rows: CPU, cores, GPU, training device, Python and the libraries that did the work."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = {
        "CPU": cpu_facts()[0],
        "CPU cores (logical)": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "GPU": gpu,
        "training device": pick_device("auto"),
        "Python": platform.python_version(),
        "OS": platform.platform(),
    }
    rows.update({package: _version(package) for package in PACKAGES})
    rows.update({name: os.environ[name] for name in THREAD_SETTINGS if name in os.environ})
    return rows
