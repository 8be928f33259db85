"""The train extra as the commands that need it (train, export, calibrate, report, bench --compare-torch) check for
it: one line naming what is missing, before any of them imports PyTorch."""

from __future__ import annotations

import importlib.util

from aetool.cli.output import fail

# The train extra's packages (pyproject.toml) by the module each is imported as
TRAIN_EXTRA = {
    "torch": "torch",
    "torchvision": "torchvision",
    "onnx": "onnx",
    "onnxscript": "onnxscript",
    "onnxconverter-common": "onnxconverter_common",
    "matplotlib": "matplotlib",
    "pytorch-msssim": "pytorch_msssim",
}


TRAIN_INSTALL = "pip install 'aetool[train]', or '.[train]' in a clone"


def need_train_extra(command: str) -> None:
    """Fail with one line (exit 2) when a package of the train extra is missing (torch installed alone, a distro's
    packages), instead of an ImportError traceback; else size torch's pools (``train.threads``). ``command``: the
    command as the line names it (``bench --compare-torch``)."""
    from aetool.train.threads import size_torch_threads

    missing = [package for package, module in TRAIN_EXTRA.items() if importlib.util.find_spec(module) is None]
    if "torch" in missing:  # the base install: the extra installs the rest with it
        fail(f"aetool {command} needs PyTorch: install the train extra, see the README ({TRAIN_INSTALL})")
    if missing:
        fail(
            f"aetool {command} needs the train extra: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            f"not installed; see the README ({TRAIN_INSTALL})"
        )
    size_torch_threads()
