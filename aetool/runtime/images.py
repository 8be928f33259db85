"""The one image loader and writer: any file Pillow opens becomes an H×W float32 array in [0, 1], and back.

Models see MNIST's world (white digit on black, 28×28 for dense models); these functions carry a user's image
into that world — grayscale, alpha flattened, polarity flipped, fitted or padded — and the output back out.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aetool.errors import AetoolError, ImageError

if TYPE_CHECKING:
    from PIL import Image

# Suffixes looked for in folders; a file named explicitly is tried whatever its suffix.
IMAGE_SUFFIXES = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".pgm",
        ".pbm",
        ".ppm",
        ".pnm",
        ".webp",
        ".gif",
        ".tga",
        ".ico",
        ".pcx",
        ".sgi",
    }
)
# Output format names accepted by --format and recognised in output file names → Pillow's format name.
FORMATS = {
    "png": "PNG",
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "bmp": "BMP",
    "tif": "TIFF",
    "tiff": "TIFF",
    "webp": "WEBP",
    "gif": "GIF",
    "pgm": "PPM",
    "tga": "TGA",
}
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
MNIST_BOX = 20 / 28  # MNIST digits fill a 20×20 box centred in 28×28


def read_gray(source: Path | bytes) -> np.ndarray:
    """Grayscale pixels in [0, 1] of an image file (or its bytes); an unreadable image is an ImageError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    empty = source == b"" if isinstance(source, bytes) else source.is_file() and source.stat().st_size == 0
    if empty:
        raise ImageError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as opened:
                image = ImageOps.exif_transpose(opened)
                image.load()
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except IsADirectoryError:
        raise ImageError("is a folder, not an image") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"refused as a possible decompression bomb: {err}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise ImageError(f"truncated or corrupt image: {err}") from None
    return _to_gray(image)


def _to_gray(image: Image.Image) -> np.ndarray:
    """Pixels of a loaded PIL image as H×W float32 in [0, 1]: 16-bit scaled, alpha composited."""
    if image.mode in _SIXTEEN_BIT:
        return np.asarray(image).astype(np.float32) / 65535
    if image.mode == "I":
        pixels = np.asarray(image).astype(np.float32)
        return np.clip(pixels / (65535 if pixels.max() > 255 else 255), 0, 1)
    if image.mode == "F":
        pixels = np.asarray(image, dtype=np.float32)
        return np.clip(pixels / 255 if pixels.max() > 1 else pixels, 0, 1)
    try:
        if "A" not in image.getbands() and "transparency" not in image.info:
            return np.asarray(image.convert("L"), dtype=np.float32) / 255
        rgba = image.convert("RGBA")
    except ValueError as err:
        raise ImageError(f"cannot convert image mode {image.mode} to grayscale: {err}") from None
    gray = np.asarray(rgba.convert("L"), dtype=np.float32) / 255
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255
    return gray * alpha + _background_for(gray, alpha) * (1 - alpha)


def _background_for(gray: np.ndarray, alpha: np.ndarray) -> float:
    """Transparent areas become the opposite of the ink: white behind dark strokes, black behind light ones."""
    weight = alpha.sum()
    return 1.0 if weight and float((gray * alpha).sum() / weight) < 0.5 else 0.0


def is_dark_on_light(pixels: np.ndarray) -> bool:
    """Whether the border is bright, i.e. dark ink on a light page (the opposite of MNIST)."""
    ring = max(1, min(pixels.shape) // 14)
    border = np.concatenate(
        [pixels[:ring].ravel(), pixels[-ring:].ravel(), pixels[:, :ring].ravel(), pixels[:, -ring:].ravel()]
    )
    return float(border.mean()) > 0.5


def fit(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fit white-on-black pixels into ``size`` the MNIST way: crop to the ink, longer side to 20/28, centred."""
    from PIL import Image

    ink = pixels >= 0.5 * pixels.max() if pixels.max() > 0 else np.ones_like(pixels, dtype=bool)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = MNIST_BOX * min(size) / max(crop.shape)
    height, width = (max(1, round(n * scale)) for n in crop.shape)
    small = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32)).resize(
        (width, height), Image.Resampling.LANCZOS
    )
    out = np.zeros(size, dtype=np.float32)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    out[top : top + height, left : left + width] = np.clip(np.asarray(small), 0, 1)
    return out


def pad_to(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pad white-on-black H×W pixels with black at the bottom and right up to ``size`` (height, width)."""
    height, width = pixels.shape
    return np.pad(pixels, ((0, size[0] - height), (0, size[1] - width)))


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """One image showing ``left | right`` (same height)."""
    return np.concatenate([left, right], axis=1)


def format_for(name: str) -> str:
    """Pillow's format name for ``png``, ``.jpg``, ``out.tiff``…; an unknown one is a usage error."""
    key = name.rsplit(".", 1)[-1].lower()
    if key not in FORMATS:
        raise AetoolError(f"unknown image format {name!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[key]


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    """An 8-bit grayscale image file (Pillow format name ``fmt``) of pixels in [0, 1]."""
    from PIL import Image

    image = Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    return buffer.getvalue()
