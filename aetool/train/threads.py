"""PyTorch's thread pools sized to the CPUs this process may use; torch is imported only when they are sized."""

from __future__ import annotations

import os
from contextlib import suppress


def size_torch_threads() -> int:
    """Size PyTorch's thread pools to the CPUs this process may use (affinity and cgroup quota; PyTorch counts the
    host's), unless ``OMP_NUM_THREADS`` says otherwise (torchrun sets it for its ranks); returns the intra-op thread
    count. The inter-op pool is left as it is once it can no longer change (it was set, or parallel work began)."""
    import torch

    from aetool.runtime.cpu import usable_cores

    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    cores = usable_cores()
    torch.set_num_threads(cores)
    with suppress(RuntimeError):  # once set, or once parallel work has started, it can no longer change
        torch.set_num_interop_threads(cores)
    return cores
