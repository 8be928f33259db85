"""aetool: autoencoders for the edge — train in PyTorch, export to verified ONNX, run without PyTorch."""

import os

__version__ = "0.2.0"

BUSY_LOAD = 1.0  # the 1-minute load average (a core's worth of other work) from which the cores are taken as shared


def omp_wait_policy(load: float | None) -> str | None:
    """The OpenMP wait policy for PyTorch's threads, given the 1-minute load average (None: unknown).

    PyTorch's OpenMP threads spin a while (GNU OpenMP: 300,000 turns) before they sleep when they wait for work.
    On idle cores that spinning made an epoch 1.26–1.73× faster than sleeping at once; beside one busy process it
    steals the cores the threads wait for, 1.1–2× slower (``benchmarks/wait_policy.py``; the README's Training
    section). So: ``"PASSIVE"`` (sleep at once) when the load is ``BUSY_LOAD`` or more or unknown, None (keep
    OpenMP's default) on an idle machine.
    """
    return "PASSIVE" if load is None or load >= BUSY_LOAD else None


def load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:  # no load average on this platform
        return None


# The variable must be set before torch is first imported, hence here; a value the user sets wins.
if "OMP_WAIT_POLICY" not in os.environ:
    _policy = omp_wait_policy(load_average())
    if _policy is not None:
        os.environ["OMP_WAIT_POLICY"] = _policy

# onnxruntime (1.32 measured) writes a device id and queued telemetry records under ~/.cache/Microsoft/ unless this
# variable is 1 when it is imported; an edge tool sends nothing home by default. ORT_DISABLE_TELEMETRY=0 turns it on.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
