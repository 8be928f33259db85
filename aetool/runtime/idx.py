"""Read MNIST-style IDX files (gzipped or not) with numpy alone."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from aetool.errors import DataError
from aetool.runtime.files import expand_home, is_path

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DATA_DIR_ENV = "AETOOL_DATA_DIR"
IDX_DATASETS = ("mnist", "fashion-mnist")  # the published datasets read from IDX files (28×28 grey)
EXPECTED_FILES = ", ".join(f"{stem}.gz" for pair in SPLIT_FILES.values() for stem in pair)
# MD5 of the decompressed t10k-images file, as published with each dataset: how a folder is told apart.
KNOWN_TEST_IMAGES = {
    "2646ac647ad5339dbf082846283269ea": "mnist",
    "8181f5470baa50b63fa0f6fddb340f0a": "fashion-mnist",
}
_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array one IDX file holds (shape and dtype as its header says; read-only, a view of the file's bytes);
    ``.gz`` files are decompressed on the fly. Raises ``TypeError`` for a ``path`` that is no path, ``DataError`` for
    a file that cannot be read, is no IDX file (its magic number), or whose length is not what its header says
    (cut short inside the header too)."""
    if not is_path(path):
        raise TypeError(f"read_idx takes a path (text or a Path), got {path!r}")
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read IDX file {path}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:  # numpy's "buffer is smaller than requested size" (trial 100)
        raise DataError(f"{path} is truncated: {len(raw)} bytes, its header alone takes {header}")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path} is truncated or padded: {len(raw)} bytes, header says {expected}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _find(data_dir: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(f"data folder {data_dir} lacks {stem}.gz; expected the four IDX files {EXPECTED_FILES}")


def load_split(data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×H×W uint8, white on black: 28×28 in MNIST and Fashion-MNIST) and labels (N uint8) of ``train``
    or ``test``, read-only
    (views of the files' bytes: ``.copy()`` them to change them). Raises ``ValueError`` for another ``split``,
    ``TypeError`` for a ``data_dir`` that is no path, ``DataError`` for a folder without readable IDX files."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split takes {' or '.join(map(repr, SPLIT_FILES))}, got {split!r}")
    if not is_path(data_dir):
        raise TypeError(f"data_dir takes a folder of IDX files (text or a Path), got {data_dir!r}")
    data_dir = existing_folder(Path(data_dir))
    image_stem, label_stem = SPLIT_FILES[split]
    images = read_idx(_find(data_dir, image_stem))
    labels = read_idx(_find(data_dir, label_stem))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{data_dir}: {split} images {images.shape} and labels {labels.shape} do not match")
    return images, labels


def existing_folder(data_dir: Path) -> Path:
    """``data_dir`` when it is a folder; else ``DataError`` naming the IDX files a data folder holds."""
    if not data_dir.is_dir():
        problem = "is a file, not a folder" if data_dir.exists() else "does not exist"
        raise DataError(f"data folder {data_dir} {problem}; expected the four IDX files {EXPECTED_FILES}")
    return data_dir


def resolve_data_dir(data_dir: str | Path | None, dataset: str) -> Path | None:
    """The folder to read: ``--data-dir``, else ``$AETOOL_DATA_DIR``; ``None`` when neither is given. Raises
    ``DataError`` when the folder comes from the variable and is none (a missing ``--data-dir`` is the reader's to
    refuse).

    The folder may hold the four IDX files itself or a subfolder named after the dataset
    (``mnist/``, ``fashion-mnist/``), so one variable can serve both datasets.
    """
    folder = chosen_data_dir(data_dir)
    if folder is None:
        return None
    return folder / dataset if (folder / dataset).is_dir() else folder


def dataset_folder(data_dir: str | Path, dataset: str | None, *, recorded: object) -> Path:
    """The folder of a dataset's IDX files that ``data_dir`` names, as the commands read it: itself, or its
    subfolder named after the dataset (``mnist/``, ``fashion-mnist/``). The dataset: ``dataset`` (``mnist`` or
    ``fashion-mnist``, ``--dataset``), else the one a model ``recorded`` (its metadata's; ``mnist`` for one of
    one's own images, ``images``), else ``mnist``. Raises ``DataError`` when the folder holds the other published
    dataset (:func:`check_dataset`), ``ValueError`` for another ``dataset`` and ``TypeError`` for a ``data_dir``
    that is no folder's path (None was pathlib's error, "" the current folder)."""
    if dataset not in (None, "mnist", "fashion-mnist"):
        raise ValueError(f"dataset takes mnist or fashion-mnist (the IDX datasets), got {dataset!r}")
    if not is_path(data_dir):
        raise TypeError(f"data_dir takes a folder of IDX files (text or a Path), got {data_dir!r}")
    named = dataset or (recorded if isinstance(recorded, str) and recorded else "mnist")
    folder = resolve_data_dir(data_dir, "mnist" if named == "images" else named) or Path(data_dir)
    check_dataset(folder, named)
    return folder


def chosen_data_dir(data_dir: str | Path | None) -> Path | None:
    """The folder named: ``--data-dir``, else ``$AETOOL_DATA_DIR``; ``None`` when neither is given. Raises
    ``DataError`` when the folder comes from the variable and is none."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    folder = expand_home(chosen, named="--data-dir" if data_dir else f"${DATA_DIR_ENV}")
    if not data_dir and not folder.is_dir():  # say where the folder came from: the variable is easy to forget
        problem = "a file, not a folder" if folder.exists() else "a folder that does not exist"
        raise DataError(f"${DATA_DIR_ENV} names {folder}, {problem}; set it to a folder of IDX files or unset it")
    return folder


def known_dataset(data_dir: str | Path) -> str | None:
    """Which published dataset a folder of IDX files holds (``mnist``, ``fashion-mnist``), or None for others.

    Told by the MD5 of the decompressed test images, as published with each dataset; raises ``DataError`` when the
    folder lacks them or they cannot be read.
    """
    path = _find(Path(data_dir), SPLIT_FILES["test"][0])
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            digest = hashlib.md5(f.read(), usedforsecurity=False).hexdigest()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read IDX file {path}: {err}") from None
    return KNOWN_TEST_IMAGES.get(digest)


def check_dataset(data_dir: str | Path, dataset: str, *, advice: str | None = None) -> None:
    """Refuse a folder of IDX files that holds the other published dataset than ``dataset`` (``mnist`` or
    ``fashion-mnist``; any other name is not checked): raises ``DataError`` naming both and ending in ``advice``
    (default: another folder, or --dataset where the command takes it), as training, evaluation and calibration
    would otherwise read one dataset under the other's name. A folder without readable test images passes: reading
    it says what is missing."""
    if dataset not in IDX_DATASETS:
        return
    try:
        held = known_dataset(data_dir)
    except DataError:
        return
    if held is not None and held != dataset:
        advice = advice or (  # export and calibrate read a run's dataset: they take no --dataset
            f"name a folder of {dataset} (--data-dir or $AETOOL_DATA_DIR), or ask for {held} (--dataset {held}, "
            "where the command takes it)"
        )
        raise DataError(f"{data_dir} holds {held}, not {dataset}; {advice}")
