"""Training data: MNIST or Fashion-MNIST from IDX files, or a folder or glob of your own images.

One dataset layer with two kinds of source, both decoded once per run into a uint8 cache (:class:`ImageSet`: an
N×C×H×W array when the images share a size, else one C×H×W array per image, all in one buffer that is memory
mapped from a temporary file once it would pass ``IN_MEMORY_BYTES``):

- IDX: ``--data-dir`` (or ``$AETOOL_DATA_DIR``) holding the four files, or torchvision's ``MNIST`` /
  ``FashionMNIST`` download. A folder whose test images are the other published dataset's is refused.
- Images: every file Pillow decodes in a folder (recursively) or matching a glob, read by the runtime's one image
  loader (EXIF orientation, ICC profile → sRGB, alpha composited). Labels are the names of the first-level
  subfolders (torchvision's ``ImageFolder`` convention; "" for images at the top). A validation set is split off by
  a seeded fraction or given as a folder.

The size policy: dense models (a fixed size) get every image resized to ``--size`` (the runtime's
``images.resize``, Pillow's Lanczos, as ``--resize`` fits images at inference), by default the images' own size
when they all share one; convolutional models train on random ``--patch``×``--patch`` crops (by default the whole
images, when they share a size) and are scored on whole images. :class:`Batches` draws the training batches of an
epoch as a pure function of (seed, epoch), so a resumed run sees the batches an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2 import functional as tvf

from aetool.errors import DataError, ImageError
from aetool.models import build_model, get_spec
from aetool.runtime import files
from aetool.runtime.anomaly import parse_classes
from aetool.runtime.idx import DATA_DIR_ENV, IDX_DATASETS, check_dataset, load_split, resolve_data_dir
from aetool.runtime.images import (
    DEEPER,
    GREY_MODES,
    fit,
    is_dark_on_light,
    opened_image,
    read_exif,
    read_image,
    resize,
    to_channels,
    turned_on_open,
)
from aetool.runtime.noise import checked_seed
from aetool.train.config import TrainConfig
from aetool.train.settings import check_val

IN_MEMORY_BYTES = 1 << 30  # decoded sets larger than this live in a memory-mapped temporary file


@dataclass
class ImageSet:
    """Decoded uint8 images with their labels and names.

    ``images`` is N×C×H×W when every image has one size, else a list of C×H×W arrays; ``labels`` holds each
    image's class (a subfolder name, or the digit for IDX data); ``names`` where each came from.
    """

    images: np.ndarray | list[np.ndarray]
    labels: list[str]
    names: list[str]
    _storage: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)  # keeps a memory map alive

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[0])

    @property
    def size(self) -> tuple[int, int] | None:
        """(height, width) when every image has it, else None."""
        if not isinstance(self.images, np.ndarray):
            return None
        return int(self.images.shape[2]), int(self.images.shape[3])

    def sizes(self) -> list[tuple[int, int]]:
        return [(int(image.shape[1]), int(image.shape[2])) for image in self.images]

    def names_sha256(self) -> str:
        """SHA-256 (hex) of the sorted names: which files the set holds, to tell when a folder has changed under a
        run (``metrics.json``'s ``run.images_sha256``)."""
        text = "\n".join(sorted(self.names))
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()

    def subset(self, index: np.ndarray) -> ImageSet:
        """The images at ``index`` (a copy for an array; the same buffers for a list)."""
        images = self.images[index] if isinstance(self.images, np.ndarray) else [self.images[i] for i in index]
        return ImageSet(images, [self.labels[i] for i in index], [self.names[i] for i in index], self._storage)

    def tensor(self) -> torch.Tensor:
        """N×C×H×W uint8 (images of one size only)."""
        if not isinstance(self.images, np.ndarray):
            raise ValueError("images of different sizes do not form one tensor")
        return torch.from_numpy(np.ascontiguousarray(self.images))


# ---- IDX: MNIST and Fashion-MNIST ----


def download_folder() -> Path:
    """Where torchvision downloads MNIST and Fashion-MNIST: ``$XDG_CACHE_HOME/aetool`` when that variable holds an
    absolute path (a relative one is ignored, as the XDG Base Directory Specification says), else
    ``~/.cache/aetool``. Raises ``AetoolError`` without a home folder to expand ``~`` (``files.expand_home``)."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(cache):
        return Path(cache, "aetool")
    return files.expand_home(Path("~", ".cache", "aetool"), named="the download folder")


def _download(dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[dataset]
    folder = download_folder()
    raw = folder / cls.__name__ / "raw"  # where torchvision puts the files (MNIST/raw, FashionMNIST/raw)
    made = [path for path in (raw, *raw.parents) if not path.exists()]  # by the download: removed on failure
    try:
        loaded = cls(str(folder), train=split == "train", download=True)
    except (OSError, RuntimeError) as err:
        _remove_empty_folders(made)
        # torchvision's message lists every mirror it tried, a line each, with their errors: keep the last error
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        raise DataError(
            f"cannot download {dataset} into {folder} ({lines[-1]}); pass --data-dir or set {DATA_DIR_ENV} to a "
            "folder of IDX files"
        ) from None
    return loaded.data.numpy(), loaded.targets.numpy()


def _remove_empty_folders(made: list[Path]) -> None:
    """Remove the folders in ``made`` (a folder, then the parents made for it, the outermost last) when a failed
    download left nothing in them but empty folders (torchvision makes ``MNIST/raw`` before it fetches a byte); any
    file there keeps them all."""
    if made and not any(path.is_file() for path in made[-1].rglob("*")):
        shutil.rmtree(made[-1], ignore_errors=True)


def idx_images(dataset: str, split: str, *, data_dir: str | Path | None = None) -> ImageSet:
    """N×1×28×28 images of ``split`` (``train`` or ``test``), white digit on black, labelled with their digit.

    Raises ``DataError`` for a missing or broken folder, a failed download, or a folder holding the other dataset;
    ``ValueError`` for a ``dataset`` other than ``mnist`` and ``fashion-mnist`` ("cifar" read MNIST; trial 100).
    """
    if dataset not in IDX_DATASETS:
        raise ValueError(f"dataset takes {' or '.join(IDX_DATASETS)} (the IDX datasets), got {dataset!r}")
    folder = resolve_data_dir(data_dir, dataset)
    if folder is None:
        images, labels = _download(dataset, split)
    else:
        images, labels = load_split(folder, split)
        check_dataset(folder, dataset)
    names = [f"{split}#{i}" for i in range(len(images))]
    return ImageSet(np.array(images)[:, None], [str(label) for label in labels], names)  # np.array: writable


def load_images(dataset: str, split: str, *, data_dir: str | Path | None = None) -> torch.Tensor:
    """N×1×28×28 uint8 tensor of an IDX split (see :func:`idx_images`)."""
    return idx_images(dataset, split, data_dir=data_dir).tensor()


# ---- a folder or glob of images ----


def find_images(source: str, *, option: str = "--data", warn: bool = True) -> tuple[list[Path], Path]:
    """The image files of a folder (recursively) or a glob, sorted, and the folder labels are relative to.

    ``warn``: what the folder lacks is a warning each (``files.collect_set``). Raises ``DataError`` (naming
    ``option``, the command-line option that gave ``source``) when the path does not exist or the folder or pattern
    holds no image.
    """
    found = files.collect_set(source, named=f"{option} {source}", warn=warn)
    root = found[0].root if found[0].root is not None else Path(source).parent
    paths = [item.source for item in found if isinstance(item.source, Path)]
    return paths, root


def _probe(path: Path) -> tuple[int, int, bool]:
    """(height, width, colour?) from the file's header, after its EXIF rotation; raises ``ImageError``."""
    with opened_image(path) as image:
        width, height = image.size
        turned = read_exif(image)[0].get(0x0112, 1) in (5, 6, 7, 8) and not turned_on_open(image)
        colour = image.mode not in GREY_MODES
    return (width, height, colour) if turned else (height, width, colour)


def _keeps_ratio(image: tuple[int, int], size: tuple[int, int]) -> bool:
    """Whether resizing an image of (height, width) ``image`` to ``size`` keeps its aspect ratio to the pixel: one
    side of ``size`` is the other scaled by the image's ratio, rounded (641×361 → 64×36 does, 0.1 % off)."""
    (height, width), (to_height, to_width) = image, size
    return round(to_height * width / height) == to_width or round(to_width * height / width) == to_height


def _skipped(path: Path, err: ImageError, *, warn: bool) -> None:
    if warn:
        warnings.warn(f"skipped {path}: {err}", UserWarning, stacklevel=3)


def _buffer(total: int) -> tuple[np.ndarray, tempfile.TemporaryDirectory | None]:
    """``total`` uint8 values: in memory, or memory-mapped from a temporary folder (returned, to keep) above
    ``IN_MEMORY_BYTES``."""
    if total <= IN_MEMORY_BYTES:
        return np.empty(total, np.uint8), None
    storage = tempfile.TemporaryDirectory(prefix="aetool-images-")
    return np.memmap(Path(storage.name) / "images.u8", np.uint8, "w+", shape=(total,)), storage


def _prepared(
    pixels: np.ndarray, header: tuple[int, int], *, size: tuple[int, int] | None, white_on_black: bool
) -> np.ndarray:
    """One decoded C×H×W image as :func:`folder_images` keeps it (see there); raises ``ImageError`` when its pixels
    are not the size its header gave."""
    if pixels.shape[1:] != header:
        raise ImageError(
            f"its header says {header[1]}×{header[0]} but it decodes to {pixels.shape[2]}×{pixels.shape[1]} "
            "(width×height)"
        )
    if white_on_black and is_dark_on_light(pixels):
        pixels = 1 - pixels
    if size is None or header == size:
        return pixels
    return fit(pixels, size).pixels if white_on_black else resize(pixels, size)


def _label(path: Path, root: Path) -> str:
    relative = path.relative_to(root).parts if path.is_relative_to(root) else (path.name,)
    return relative[0] if len(relative) > 1 else ""


def folder_images(
    source: str,
    *,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
    white_on_black: bool = False,
    warn: bool = True,
    option: str = "--data",
    classes: tuple[str, ...] | str = (),
) -> ImageSet:
    """Every image of a folder (recursively) or glob, decoded once into uint8 with ``channels`` channels; with
    ``classes``, only those labelled with one of them (first-level subfolders), so that images of other classes
    decide neither the channels nor the size. ``classes`` may be given as ``--classes`` spells them (``"3,7"``,
    :func:`~aetool.runtime.anomaly.parse_classes`, whose ``ValueError`` it raises).

    ``channels`` None takes 3 when any image is in colour (by its pixels, as the runtime reads it: an RGB file
    whose three channels are equal is grey), else 1. ``size`` (height, width) resizes every image of another size
    (for dense models) with the runtime's ``--resize``: a plain Lanczos resize, or with ``white_on_black`` (the
    images a model of MNIST's world takes, calibrated on) the MNIST fit, dark-on-light images inverted first, as
    the runtime's image commands invert them. Unreadable files (by their header or their pixels) are skipped with
    a warning line each. Raises ``DataError`` when no image is left; its messages name ``source`` as the value of
    ``option``.
    """
    classes = (parse_classes(classes) or ()) if classes else ()  # text was matched as a substring: "" in "3"
    paths, root = find_images(source, option=option, warn=warn)
    if classes:
        labels = [_label(path, root) for path in paths]
        if unknown := tuple(label for label in classes if label not in labels):  # one wrong among right ones too
            raise _no_image_of(unknown, labels)
        paths = [path for path, label in zip(paths, labels, strict=True) if label in classes]
    probed: list[tuple[Path, tuple[int, int, bool]]] = []
    failed: list[str] = []  # why each file skipped was, for the error when none is left
    for path in paths:
        try:
            probed.append((path, _probe(path)))
        except ImageError as err:
            failed.append(f"{path}: {err}")
            _skipped(path, err, warn=warn)
    stored = channels or (3 if any(is_colour for _, (_, _, is_colour) in probed) else 1)
    shapes = [(stored, *(size or (height, width))) for _, (height, width, _) in probed]
    buffer, storage = _buffer(sum(int(np.prod(shape)) for shape in shapes))
    views, kept, colour, offset, resized, greys, deeper, stretched = [], [], False, 0, 0, 0, 0, 0
    for (path, (height, width, _)), shape in zip(probed, shapes, strict=True):
        try:
            decoded = read_image(path)
            read = decoded.pixels
            deeper += any(DEEPER in note for note in decoded.notes)
            pixels = _prepared(to_channels(read, stored)[0], (height, width), size=size, white_on_black=white_on_black)
        except ImageError as err:
            failed.append(f"{path}: {err}")
            _skipped(path, err, warn=warn)
            continue
        colour |= read.shape[0] == 3
        greys += read.shape[0] == 1
        view = buffer[offset : offset + int(np.prod(shape))].reshape(shape)
        view[:] = np.round(pixels * 255)
        views.append(view)
        kept.append(path)
        offset += view.size
        resized += size is not None and (height, width) != size
        stretched += size is not None and not _keeps_ratio((height, width), size)
    if not views:
        raise DataError(  # the images may be fine but over the pixel limit (it said "not an image"; a trial)
            f"{option} {source}: none of its {len(paths)} files could be read as an image; the first, {failed[0]}"
        )
    if deeper and warn:  # the image commands note it per image; training said nothing (trial 58)
        warnings.warn(
            f"{deeper} of the {len(kept)} images of {source} have more than 8 bits a pixel; training keeps 8 (its "
            "cache holds 256 levels), so finer levels are lost: scans that use part of the 16-bit range (12-bit "
            "data) keep few levels, so stretch them to the full range first",
            UserWarning,
            stacklevel=2,
        )
    if channels == 3 and not colour and warn:
        warnings.warn(f"{source} holds grey images only; they are replicated to 3 channels", UserWarning, stacklevel=2)
    elif stored == 1 and colour and warn:
        warnings.warn(
            f"{len(kept) - greys} of the {len(kept)} images of {source} are in colour and were converted to grey "
            "(luma), as the model takes grey images",
            UserWarning,
            stacklevel=2,
        )
    elif stored == 3 and colour and greys and warn:
        why = "" if channels else ", since the others are in colour (pass --channels 1 for a grey model)"
        warnings.warn(
            f"{greys} of the {len(kept)} images of {source} are grey and were replicated to 3 channels{why}",
            UserWarning,
            stacklevel=2,
        )
    if resized and warn and size:
        how = "resized"  # a 640×360 frame resized to 64×36 keeps its aspect ratio (it was said not to; a trial)
        if white_on_black:
            how = "given the MNIST fit (ink centred in 20×20)"
        elif stretched == resized:
            how += " (aspect ratio not kept)"
        elif stretched:
            how += f", {stretched} of them with aspect ratio not kept"
        warnings.warn(
            f"{resized} of the {len(kept)} images of {source} are not {size[0]}×{size[1]} (height×width) and were "
            f"{how}, as aetool's image commands resize them with --resize",
            UserWarning,
            stacklevel=2,
        )
    if channels is None and stored == 3 and not colour:  # RGB files of grey pixels: one channel, as the runtime reads
        grey, storage = _buffer(offset // 3)
        packed, offset = [], 0
        for view in views:
            target = grey[offset : offset + view[0].size].reshape(1, *view.shape[1:])
            target[:] = view[:1]
            packed.append(target)
            offset += target.size
        buffer, views = grey, packed
    same = len({view.shape for view in views}) == 1
    images: np.ndarray | list[np.ndarray] = buffer[:offset].reshape(len(views), *views[0].shape) if same else views
    return ImageSet(images, [_label(p, root) for p in kept], [str(p) for p in kept], storage)


def split_off(images: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """(training, validation): a seeded ``fraction`` of the images (at least one) held out; one image alone is
    both (it cannot be split; a warning says so). Raises ``ValueError`` for a fraction outside (0, 1), no images,
    and, as ``noise.checked_seed`` does, a ``seed`` that is no whole number ≥ 0 (numpy's words; trial 100)."""
    check_val(fraction)
    checked_seed(seed)
    if not len(images):
        raise ValueError("split_off takes one image or more, got none")
    if len(images) == 1:
        warnings.warn(
            f"{images.names[0]} is the only image: it both trains and validates, so the mean training image "
            "reconstructs it exactly and no model can beat that baseline; add images or give --val-data",
            UserWarning,
            stacklevel=2,
        )
        return images, images
    order = np.random.default_rng(seed).permutation(len(images))
    held = min(len(images) - 1, max(1, round(fraction * len(images))))
    return images.subset(np.sort(order[held:])), images.subset(np.sort(order[:held]))


def same_pixels(train: ImageSet, test: ImageSet) -> list[tuple[str, str]]:
    """(test name, train name) for each image of ``test`` whose decoded pixels equal a ``train`` image's: the same
    file reached twice (a link, a folder inside the other) or a copy of it. Names compared, copies went unsaid, and
    a held-out split put a file's copy or link on the other side (trial 94)."""

    def digest(image: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(image).tobytes() + repr(image.shape).encode()).digest()

    learned = {digest(image): name for image, name in zip(train.images, train.names, strict=True)}
    pairs = ((name, learned.get(digest(image))) for image, name in zip(test.images, test.names, strict=True))
    return [(name, match) for name, match in pairs if match is not None]


def _for_example(pairs: list[tuple[str, str]]) -> str:
    name, match = pairs[0]
    return f"; {Path(name).name} has the pixels of {Path(match).name}" if Path(name).name != Path(match).name else ""


def describe_sizes(images: ImageSet, *, most: int = 4) -> str:
    """The sizes found, most common first, as ``height×width: HxW (n), …`` (height first, as ``--size`` takes
    them): for messages."""
    counts = Counter(images.sizes()).most_common()
    shown = ", ".join(f"{h}x{w} ({n})" for (h, w), n in counts[:most])
    return "height×width: " + shown + (f" and {len(counts) - most} more" if len(counts) > most else "")


# ---- batches ----


@dataclass
class Batches:
    """The training batches of an epoch: whole images, or random ``patch``×``patch`` crops.

    Whole images (all of one size) are shuffled once per epoch. With patches, each image gives about one patch per
    ``patch``² of its pixels per epoch (at least one), so an epoch sees about every pixel once; the image order and
    the crop offsets are drawn from generators seeded with (seed, epoch), so batches are a pure function of them.
    Under ``torchrun`` each rank takes an interleaved share of every global batch.
    """

    images: ImageSet
    batch_size: int
    seed: int
    patch: int | None = None
    augment: bool = False  # each crop or image flipped/rotated by one of the 8 symmetries of the square (4: oblong)
    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        if self.patch is None and self.images.size is None:
            raise ValueError("images of different sizes need a patch size")
        sizes = self.images.sizes()
        per_image = [max(1, round(h * w / self.patch**2)) for h, w in sizes] if self.patch else [1] * len(sizes)
        self._per_image = np.array(per_image)

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` as arrays of image indices (repeated where an image gives several
        patches); a last batch of one image joins the one before (BatchNorm cannot train on one)."""
        order = np.repeat(np.arange(len(self.images)), self._per_image)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = order[torch.randperm(len(order), generator=generator).numpy()]
        mine = order[self.rank :: self.world][: len(order) // self.world]
        share = max(1, self.batch_size // self.world)
        batches = [mine[i : i + share] for i in range(0, len(mine), share)]
        if len(batches) > 1 and len(batches[-1]) == 1:  # BatchNorm cannot train on one image: it joins the last
            batches[-2:] = [np.concatenate(batches[-2:])]
        return batches

    def steps_per_epoch(self) -> int:
        return len(self.epoch(0))

    def take(self, index: np.ndarray, *, epoch: int, step: int) -> torch.Tensor:
        """B×C×h×w uint8: the images at ``index``, or a random crop of each (offsets seeded by epoch and step), each
        under a random symmetry with ``augment``."""
        rng = np.random.default_rng([self.seed, epoch, step, self.rank])
        if self.patch is None:
            assert isinstance(self.images.images, np.ndarray)
            whole = torch.from_numpy(self.images.images[index])
            return torch.stack([self._symmetry(image, rng) for image in whole]) if self.augment else whole
        crops = []
        for i in index:
            image = self.images.images[i]
            top = rng.integers(0, image.shape[1] - self.patch + 1)
            left = rng.integers(0, image.shape[2] - self.patch + 1)
            crop = tvf.crop(torch.from_numpy(np.asarray(image)), int(top), int(left), self.patch, self.patch)
            crops.append(self._symmetry(crop, rng) if self.augment else crop)
        return torch.stack(crops)

    @staticmethod
    def _symmetry(image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """C×h×w ``image`` under one of the 8 symmetries of the square, drawn from ``rng`` (a quarter turn keeps an
        oblong image's shape only twice: 4 symmetries there, flips and half turns)."""
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        if image.shape[1] != image.shape[2]:
            turns = 2 * (turns % 2)
        return torch.rot90(tvf.horizontal_flip(image) if flip else image, turns, dims=(1, 2))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → float32 in [0, 1]; float images pass through."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()


# ---- a run's data, resolved against its config ----


@dataclass
class TrainingData:
    """The images a run trains and scores on: the training set and the test split (IDX) or validation images."""

    train: ImageSet
    test: ImageSet
    split: tuple[int, int] | None = None  # (held out, of all) when the test images were split off, before --limit
    test_limited: bool = False  # --limit kept the first of more test images


def _replicated(images: ImageSet, channels: int) -> ImageSet:
    """Grey IDX images with ``channels`` channels (replicated for 3)."""
    if channels == images.channels:
        return images
    assert isinstance(images.images, np.ndarray)
    return ImageSet(np.repeat(images.images, channels, axis=1), images.labels, images.names)


def _resized(images: ImageSet, size: tuple[int, int]) -> ImageSet:
    if images.size == size:
        return images
    resized = [
        np.round(resize(np.asarray(image, np.float32) / 255, size) * 255).astype(np.uint8) for image in images.images
    ]
    return ImageSet(np.stack(resized), images.labels, images.names)


def only(images: ImageSet, classes: tuple[str, ...] | str) -> ImageSet:
    """The images labelled with one of ``classes`` (the normal images of one-class training; text as ``--classes``
    spells them, ``"3,7"``); raises ``DataError`` naming the labels there are when one of ``classes`` labels no
    image, ``ValueError`` for no class, and what :func:`~aetool.runtime.anomaly.parse_classes` raises."""
    classes = parse_classes(classes) or ()  # "37" took the 3s and the 7s, as a substring (trial 100)
    if not classes:  # None gave no image at all (trial 103)
        raise ValueError("only takes one class or more, got none")
    present = set(images.labels)
    if unknown := tuple(label for label in classes if label not in present):  # one wrong among right ones too
        raise _no_image_of(unknown, images.labels)
    index = np.array([i for i, label in enumerate(images.labels) if label in classes], dtype=np.int64)
    return images.subset(index)


def _val_classes(config: TrainConfig) -> tuple[str, ...]:
    """The classes ``--val-data`` is read for (:func:`labelled_classes`)."""
    if config.val_data is None:
        return ()
    return labelled_classes(config.val_data, config.classes, option="--val-data")


def labelled_classes(source: str, classes: tuple[str, ...] | None, *, option: str) -> tuple[str, ...]:
    """The classes to read of the normal images ``source`` (``--val-data``, calibrate's ``--data``): a one-class
    run's ``classes`` where the images are in subfolders, as ``--data``'s are (a test folder of good and defective
    parts gave the defects as normal images); none for a folder of unlabelled images, taken whole as the normal
    images it is given as, and none for the folder of a normal class itself (``data/good``, whose own subfolders,
    ``batch2/``, were taken for labels: "no image is labelled good"). Raises ``DataError`` (naming ``option``) for
    a source without images."""
    if not classes:
        return ()
    paths, root = find_images(source, option=option)
    labels = {_label(path, root) for path in paths}
    if Path(source).name in classes and not labels & set(classes):
        return ()
    return classes if labels - {""} else ()


def _no_image_of(classes: tuple[str, ...], labels: list[str]) -> DataError:
    """The error for ``classes`` that no image is labelled with, naming the ``labels`` there are."""
    there = sorted(set(labels))
    if there == [""]:
        return DataError(
            f"no image is labelled {' or '.join(classes)}: these images have no labels (labels are the names of "
            "the first-level subfolders of --data)"
        )
    named = [label for label in there if label]  # '' (the images beside the subfolders) is no label (trial 94)
    found = ", ".join(repr(label) for label in named[:12]) + (" …" if len(named) > 12 else "")
    beside = " (and images beside them, which have none)" if "" in there else ""
    return DataError(f"no image is labelled {' or '.join(classes)}; the labels are {found}{beside}")


NORMAL_NAMES = ("good", "normal", "ok", "pass")  # subfolder names a warning offers first as the normal class
USEFUL_PATCH = 8  # the smallest patch the patch-size refusal offers: a 3×3 conv sees little more in a smaller one


def load_training_data(config: TrainConfig, *, warn: bool = True) -> tuple[TrainingData, TrainConfig]:
    """The run's training and test images, and ``config`` with the channels and size they settled (and the IDX
    folder ``$AETOOL_DATA_DIR`` gave, when ``data_dir`` was not); ``warn``: a
    warning line for each unreadable file of ``--data`` skipped (export and calibrate read a run's images again,
    after training warned of them).

    One-class training (``config.classes``) keeps the images of those classes (IDX digits, or the first-level
    subfolders of ``--data``) and holds out a seeded ``--val`` fraction of them (default 0.2,
    ``TrainConfig.held_out``) as the test images: normal images the model never trains on, which ``aetool
    calibrate`` sets the threshold on. Applies the size policy of the module's docstring. Raises ``DataError`` (one
    line, before anything is written) for data that cannot train this model: no images, sizes a dense model cannot
    take without ``--size``, sizes a conv model cannot take without ``--patch``, a patch larger than an image.
    """
    net = build_model(config.model)
    fixed = net.multiple_of is None  # dense and pca: one size
    split: tuple[int, int] | None = None
    if config.dataset != "images":
        channels = config.channels or 1
        train = _replicated(idx_images(config.dataset, "train", data_dir=config.data_dir), channels)
        if config.classes:
            train, test = split_off(only(train, config.classes), config.held_out, config.seed)
            split = (len(test), len(train) + len(test))
        else:
            test = _replicated(idx_images(config.dataset, "test", data_dir=config.data_dir), channels)
        if fixed:
            size = config.size or (28, 28)
            train, test = _resized(train, size), _resized(test, size)
    else:
        assert config.data is not None
        train = folder_images(
            config.data,
            channels=config.channels,
            size=config.size if fixed else None,
            warn=warn,
            classes=config.classes or (),
        )
        if (
            not config.classes
            and warn
            and get_spec(config.model).detector
            and len(labels := sorted(set(train.labels) - {""})) > 1
        ):
            example = next((label for label in labels if label.lower() in NORMAL_NAMES), labels[0])
            warnings.warn(
                f"--data {config.data} has subfolders ({', '.join(labels[:6])}{' …' * (len(labels) > 6)}), and "
                f"{config.model} learns all of them as normal; for one-class training name the normal ones with "
                f"--classes (e.g. --classes {example})",
                UserWarning,
                stacklevel=2,
            )
        if fixed and train.size is None:
            raise DataError(
                f"--data {config.data} holds images of several sizes ({describe_sizes(train)}); {config.model} takes "
                "one size: pass --size HxW"
            )
        if config.val_data:
            test = folder_images(
                config.val_data,
                channels=train.channels,
                size=train.size if fixed else None,
                warn=warn,
                option="--val-data",
                classes=_val_classes(config),
            )
            shared = same_pixels(train, test)
            if shared and warn:  # calibrate --data warns of the same
                warnings.warn(
                    f"{len(shared)} of the {len(test)} --val-data images are training images too (--val-data "
                    f"{config.val_data} and --data {config.data} share them{_for_example(shared)}): a model "
                    "reconstructs the images it learned better than new ones, so their scores flatter it, and a "
                    "detector's threshold set on them is too low; hold out images it does not train on",
                    UserWarning,
                    stacklevel=2,
                )
        else:
            train, test = split_off(train, config.held_out, config.seed)
            split = None if train is test else (len(test), len(train) + len(test))  # one image: not split
            shared = same_pixels(train, test) if split is not None else []
            if shared and warn:
                warnings.warn(
                    f"{len(shared)} of the {len(test)} images held out for validation "
                    f"{'has' if len(shared) == 1 else 'have'} the pixels of training images (copies, links, or "
                    f"images alike such as blank pages, in --data {config.data}{_for_example(shared)}): their scores "
                    "flatter the model, and a detector's threshold set on them is too low; leave out copies and "
                    "links (images that are alike may stay)",
                    UserWarning,
                    stacklevel=2,
                )
    test_limited = config.limit is not None and len(test) > config.limit
    train, test = (
        train.subset(np.arange(min(len(train), config.limit or len(train)))),
        test.subset(np.arange(min(len(test), config.limit or len(test)))),
    )
    if not fixed:
        _check_conv_sizes(config, train, multiple=net.multiple_of or 1)
        _check_validation_sizes(config, test, multiple=net.multiple_of or 1)
    data_dir = config.data_dir
    if config.dataset != "images" and data_dir is None:  # $AETOOL_DATA_DIR, recorded so resume and export find it
        found = resolve_data_dir(None, config.dataset)
        data_dir = str(found.absolute()) if found else None
    try:  # the settings checked again against the images' channels and size (--components against their pixels)
        settled = replace(config, channels=train.channels, size=train.size if fixed else None, data_dir=data_dir)
    except ValueError as err:
        raise DataError(str(err)) from None
    return TrainingData(train, test, split, test_limited), settled


def check_pca_components(components: int, train: ImageSet) -> None:
    """Refuse more PCA components than the directions ``train`` spans: n images centred on their mean span at most
    n − 1, and an image of C×H×W pixels at most C·H·W; the eigenvectors beyond are arbitrary. Raises ``DataError``
    (training checks this before it makes the run folder; a run already fitted is still read and exported)."""
    assert train.size is not None  # PCA takes one size
    pixels = train.channels * train.size[0] * train.size[1]
    spanned = min(len(train) - 1, pixels)
    if components > spanned:
        images = f"{len(train)} training image{'s' * (len(train) != 1)}"
        if spanned < 1:
            raise DataError(
                f"PCA needs at least 2 training images; {images} {'spans' if len(train) == 1 else 'span'} no direction"
            )
        raise DataError(
            f"PCA with {components} components: the {images} of {pixels} pixels span at most {spanned} directions; "
            f"pass --components {spanned} or fewer, or more images"
        )


def _check_conv_sizes(config: TrainConfig, train: ImageSet, *, multiple: int) -> None:
    """Refuse training images a conv model cannot take: several sizes without ``--patch``, or smaller than it."""
    if config.patch is None:
        if train.size is None:
            raise DataError(
                f"the training images have several sizes ({describe_sizes(train)}); {config.model} trains on one "
                f"size at a time: pass --patch N for random N×N crops{_of(multiple)}"
            )
        if train.size[0] % multiple or train.size[1] % multiple:
            height, width = train.size
            raise DataError(
                f"the training images are {width}×{height} (width×height); {config.model} takes sizes divisible by {multiple}: pass "
                f"--patch N{_of(multiple)}"
            )
        return
    sides = [min(size) for size in train.sizes()]
    smaller = sum(side < config.patch for side in sides)
    if smaller:
        smallest = sides.index(min(sides))
        height, width = train.sizes()[smallest]
        largest = min(height, width) // multiple * multiple
        images = "image" if smaller == 1 else "images"
        leave_out = f"leave the {smaller} {images} under {config.patch}×{config.patch} out of the training folder"
        if largest >= USEFUL_PATCH and smaller == len(train):  # leaving them out left no image (trial 94)
            advice = f"pass a patch of at most {largest}"
        elif largest >= USEFUL_PATCH:
            advice = f"{leave_out}, or pass a patch of at most {largest}"
        elif not largest:
            advice = f"{leave_out} ({multiple}×{multiple} is the smallest patch {config.model} takes)"
        else:  # it offered "a patch of at most 1"
            advice = f"{leave_out} (too small for a patch to learn from)"
        raise DataError(
            f"--patch {config.patch} is larger than {smaller} of the {len(train)} training images (the smallest: "
            f"{train.names[smallest]}, {width}×{height} (width×height)); {advice}"
        )


def _check_validation_sizes(config: TrainConfig, test: ImageSet, *, multiple: int) -> None:
    """Refuse validation images of which none is one ``multiple`` on each side: the export checks its file on them
    and refused after training, naming ``aetool export RUN``, which refused the same way (trial 94)."""
    if config.val_data is not None and all(min(size) < multiple for size in test.sizes()):
        raise DataError(
            f"no image of --val-data {config.val_data} is at least {multiple}×{multiple} pixels, the smallest "
            f"{config.model} takes, and the export checks its file on them: add larger ones"
        )


def _of(multiple: int) -> str:
    """`` (a multiple of M)`` where a model's patch must be one, else nothing."""
    return f" (a multiple of {multiple})" if multiple > 1 else ""
