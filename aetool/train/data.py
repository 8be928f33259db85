"""MNIST and Fashion-MNIST as uint8 tensors: from a local folder of IDX files, or downloaded by torchvision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aetool.errors import DataError
from aetool.runtime.idx import DATA_DIR_ENV, load_split, resolve_data_dir

DOWNLOAD_ROOT = Path.home() / ".cache" / "aetool"


def _download(dataset: str, split: str) -> np.ndarray:
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[dataset]
    try:
        return cls(str(DOWNLOAD_ROOT), train=split == "train", download=True).data.numpy()
    except (OSError, RuntimeError) as err:
        raise DataError(
            f"cannot download {dataset} ({err}); pass --data-dir or set {DATA_DIR_ENV} to a folder of IDX files"
        ) from None


def load_images(dataset: str, split: str, data_dir: str | Path | None = None) -> torch.Tensor:
    """N×1×28×28 uint8 images of ``split`` (``train`` or ``test``); white digit on black, as in MNIST."""
    folder = resolve_data_dir(data_dir, dataset)
    images = _download(dataset, split) if folder is None else load_split(folder, split)[0]
    return torch.from_numpy(np.array(images)).unsqueeze(1)  # np.array: a writable copy


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → float32 in [0, 1]; float images pass through."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()
