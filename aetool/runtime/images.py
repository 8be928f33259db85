"""The one image loader and writer: any file Pillow opens becomes a C×H×W float32 array in [0, 1], and back.

Reading carries a user's file into the pixels a model sees — EXIF orientation applied, an embedded ICC profile
converted to sRGB with Pillow's ImageCms, 16-bit values scaled, alpha composited — and says what it did. Grey
images come back with one channel, colour images with three; :func:`to_channels` converts between the two the way
Pillow does (RGB → grey by its luma, ITU-R 601-2). The other functions carry images into a model's size and
polarity and back out: fitting the MNIST way and back, plain resizing, padding, side by side, encoding.
"""

from __future__ import annotations

import errno
import io
import math
import numbers
import os
import re
import struct
import threading
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from aetool.errors import AetoolError, ImageError

if TYPE_CHECKING:
    from PIL import Image

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
    "pgm": "PPM",  # Netpbm: grey (P5) in a .pgm, colour (P6) in a .ppm
    "ppm": "PPM",
    "tga": "TGA",
}
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}
EXIF_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF"})  # the output formats that carry an input's EXIF
# Heatmaps: a 24-megapixel one encoded 4.1× faster than at Pillow's default level 6, its file 1.29× larger (the 16-bit
# raw map 3.9× and 1.46×; detect's heatmaps of a 6000×4000 photo, one run here).
FAST_PNG = {"compress_level": 1}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
DEEPER = "more than 8 bits a pixel, read in full; the images aetool writes have 8"
# TIFF tags of how a file stores its pixels (sizes, bits, compression, strips and tiles, photometric, sample
# format…) and the application blocks (XMP, IPTC, Photoshop, ICC, handled on its own): left out of the EXIF that
# outputs carry from a TIFF, whose getexif() is its own tags, so an 8-bit output said BitsPerSample 16 and the width
# of its input (a trial's side-by-side image).
TIFF_STORAGE_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 290, 291, 317, 320, 322, 323}
    | {324, 325, 338, 339, 340, 341, 347, 513, 514, 530, 531, 532, 700, 33723, 34377, 34675}
)
# Pillow's modes of more than 8 bits are grey without alpha: it decodes 16-bit RGB, RGBA and grey+alpha PNG and
# TIFF files to 8 bits a channel.
REDUCED = "16 bits a channel, read at 8 (Pillow decodes colour and alpha images at 8 bits a channel)"
GREY_MODES = {"1", "L", "LA", "La", "I", "F", *_SIXTEEN_BIT}  # Pillow modes of grey images (one channel, alpha aside)
# Formats Pillow registers but cannot decode without outside programs, or only as stubs for plugins of your own.
_NOT_DECODED = {"BUFR", "GRIB", "HDF5", "FITS", "EPS", "WMF", "PDF", "MPEG"}
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Pillow's RGB → L weights (ITU-R 601-2)
MNIST_BOX = 20 / 28  # MNIST digits fill a 20×20 box centred in 28×28
TURNS = range(2, 9)  # EXIF orientations that flip or turn an image (1: as stored; other values are invalid)
PIXEL_TOLERANCE = 1e-3  # how far outside [0, 1] a float pixel may stray (rounding) before it is refused
# What Pillow raises parsing or writing a malformed EXIF block: a header that is no TIFF header (SyntaxError), a block
# cut short (struct.error, EOFError, IndexError), tags of the wrong type (TypeError, KeyError, ValueError).
_EXIF_ERRORS = (SyntaxError, struct.error, ValueError, OSError, EOFError, KeyError, IndexError, TypeError)


def check_pixels(pixels: np.ndarray, *, name: str = "images", scan: bool = False) -> None:
    """Raise ``ValueError`` unless ``pixels`` are floats, as every pixel array of the runtime is (in [0, 1]).

    Integer and bool arrays (8-bit pixels, 0–255) are refused, not guessed at, with the advice the model's input
    check gives (divide them by 255, or 65535 for uint16); ``name`` is the array's name in the message. ``scan``:
    also refuse values outside [0, 1] by more than ``PIXEL_TOLERANCE``, NaN and infinities (a pass over the array).
    """
    if not np.issubdtype(pixels.dtype, np.floating):
        full = {np.dtype(np.uint16): ("16-bit", "0–65535", 65535)}.get(pixels.dtype, ("8-bit", "0–255", 255))
        raise ValueError(
            f"expected float {name} in [0, 1], got {pixels.dtype} values; for {full[0]} pixels ({full[1]}) pass "
            f"{name}.astype(np.float32) / {full[2]}"
        )
    if scan and (outside := outside_unit_range(pixels)) is not None:
        if np.isnan(pixels).any():
            raise ValueError(f"expected {name} in [0, 1], got {np.isnan(pixels).sum()} NaN values")
        raise ValueError(f"expected {name} in [0, 1], got values from {outside[0]} to {outside[1]}; scale or clip them")


def outside_unit_range(values: np.ndarray) -> tuple[float, float] | None:
    """The lowest and highest of ``values`` (numpy's scalars of their dtype) when they leave [0, 1] by more than
    ``PIXEL_TOLERANCE`` (or hold NaN, which compares as neither), else None: the one test of pixels read, given
    and reconstructed."""
    if not values.size:
        return None
    low, high = values.min(), values.max()
    return None if low >= -PIXEL_TOLERANCE and high <= 1 + PIXEL_TOLERANCE else (low, high)


@cache
def image_suffixes() -> frozenset[str]:
    """The file suffixes of every format Pillow can decode here: what a folder scan picks up."""
    from PIL import Image

    Image.init()
    return frozenset(
        suffix for suffix, fmt in Image.registered_extensions().items() if fmt in Image.OPEN and fmt not in _NOT_DECODED
    )


@dataclass(frozen=True)
class Decoded:
    """An image as read: C×H×W float32 pixels in [0, 1] (C = 1 grey, 3 sRGB) and what reading did to them."""

    pixels: np.ndarray
    notes: tuple[str, ...] = ()
    exif: bytes = b""  # its EXIF (camera, date, exposure…) for the outputs, less Orientation (the pixels are upright)
    stored_colour: bool = False  # the file stores colour, though its pixels may be grey (one channel): a black frame

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[2])


def image_source(source: object, *, reader: str = "read_image") -> Path | bytes:
    """What :func:`read_image` reads ``source`` as: a path (``str``, ``Path`` or any ``os.PathLike``) as a ``Path``,
    the file's bytes (``bytes``, ``bytearray``, ``memoryview``) or a binary file object's bytes (read from where it
    stands) as ``bytes``. Raises ``TypeError``, naming ``reader`` (the function the caller is), for a source of
    another type (such as a PIL image: it is decoded already) and for a file object opened in text mode;
    ``ImageError`` for an empty name."""
    kind = type(source)
    if isinstance(source, str | os.PathLike):
        if not os.fsdecode(source):  # Path("") is the current folder: "is a folder, not an image" (trial 100)
            raise ImageError("an empty name names no file")
        return Path(os.fsdecode(source))
    if isinstance(source, bytearray | memoryview):
        return bytes(source)
    read = getattr(source, "read", None)
    if callable(read) and not isinstance(source, bytes):
        try:
            source = read()
        except UnicodeDecodeError:  # an image opened in text mode: its bytes do not decode as text
            source = ""
        if not isinstance(source, bytes):  # a text file: its read gives str
            raise TypeError(
                f"{reader} reads binary file objects; a {kind.__module__}.{kind.__qualname__} read gave "
                f"{type(source).__qualname__}, not bytes (open the file with 'rb')"
            )
    if not isinstance(source, bytes):
        raise TypeError(
            f"{reader} takes a path (str, Path or os.PathLike), the file's bytes or a binary file object, got "
            f"{kind.__module__}.{kind.__qualname__}"
        )
    return source


def read_image(source: str | Path | bytes | bytearray | memoryview | BinaryIO) -> Decoded:
    """Decode an image file (a path: ``str``, ``Path`` or any ``os.PathLike``), its bytes (``bytes``, ``bytearray``,
    ``memoryview``) or a binary file object read from where it stands (an upload's spooled file) into C×H×W float32
    pixels in [0, 1].

    Raises ``ImageError`` (one line, for the per-image error of a batch) for a missing, empty, unreadable,
    truncated or oversized (decompression bomb, Pillow's limit) file, and for a file of several frames;
    ``TypeError`` for a source of another type (such as a PIL image: it is decoded already). The ImageError of a
    path carries a note naming it (``__notes__``, shown in a traceback); its message stays the one line.
    """
    source = image_source(source)
    try:
        return _decoded(source)
    except ImageError as err:  # its message is a batch's per-image line, which names the file; a traceback too now
        if isinstance(source, Path):
            err.add_note(f"reading {source}")
        raise


def _decoded(source: Path | bytes) -> Decoded:
    """:func:`read_image` of a path or of the file's bytes."""
    from PIL import ImageOps

    warned: list[str] = []
    with opened_image(source, warned=warned) as opened:
        if isinstance(source, Path) and turned_on_open(opened):  # Pillow maps the file at the turned size: garbage
            return _decoded(source.read_bytes())  # (trial 90); from bytes, its raw decoder fills the stored size
        _check_single_frame(opened)
        reduced = _reduced_to_8_bits(opened)  # before getexif, which loads a PNG (its tiles then gone)
        # A PNG decoded before its EXIF is read: its getexif decodes the pixels, and their errors were taken for a
        # damaged EXIF block, the image "done" black or half decoded (trial 99's fuzzing: 237 PNGs). Not a TIFF:
        # Pillow turns one upright as it loads it, and drops the orientation tag the note comes from.
        if opened.format == "PNG":
            opened.load()
        exif, damage = read_exif(opened, warned=warned)
        orientation = exif.get(0x0112, 1)  # EXIF Orientation, 1: as stored
        # PhotometricInterpretation 0, WhiteIsZero: Pillow inverts an 8-bit grey TIFF's values, not a 16-bit or
        # float one's, which was read as its negative (trials 90, 92)
        tags = getattr(opened, "tag_v2", {}) if opened.format == "TIFF" else {}  # a TiffImageFile's
        white_is_zero = (opened.mode in _SIXTEEN_BIT or opened.mode == "F") and tags.get(262) == 0
        # Pillow turns a TIFF upright itself as it loads it (10.0 keeps the tag, 13 drops it): turned by the tag
        # again, 5–8 came out on their side and 2–4 as stored under Pillow 10.0 (trial 90)
        turn = orientation in TURNS and opened.format != "TIFF"
        image = ImageOps.exif_transpose(opened) if turn else opened.copy()
        source_format = opened.format
    # How the input's pixels are stored is not the output's: a TIFF's "EXIF" is its own tags, and a phone JPEG's
    # IFD0 can say ImageWidth and ImageLength too, which a TIFF output then took for its own (sheared; trial 92)
    for tag in TIFF_STORAGE_TAGS:
        exif.pop(tag, None)
    notes = [f"Pillow: {message}" for message in dict.fromkeys(warned)] + ([damage] if damage else [])
    notes += [f"turned upright by its EXIF orientation ({orientation})"] if orientation in TURNS else []
    notes += [REDUCED] if reduced else []
    kept, note = _exif_kept(exif)
    notes += [note] if note else []
    sixteen_bit = source_format == "PNG"  # an integer PNG is 16-bit, whatever mode Pillow opens it in
    if white_is_zero:
        notes.append("white is zero in it (its PhotometricInterpretation): its values inverted")
    if white_is_zero and image.mode in _SIXTEEN_BIT:  # before its profile converts it, as Pillow's 8-bit (trial 92)
        image = _inverted_16_bit(image)
    image, note = _to_srgb(image, sixteen_bit=sixteen_bit)
    notes += [note] if note else []
    pixels, note = _pixels(image, sixteen_bit=sixteen_bit)
    if white_is_zero and image.mode == "F":  # its scale (0–1 or 0–255) is known once read
        pixels = 1 - pixels
    notes += [note] if note else []
    return Decoded(pixels, tuple(notes), kept, stored_colour=image.mode not in GREY_MODES)


def turned_on_open(image: Image.Image) -> bool:
    """Whether Pillow reports an opened (not yet loaded) TIFF of EXIF orientation 5–8 at its upright size already,
    as Pillow 13 does (10.0 reports the stored size; both turn a TIFF as they load it). Loaded from a file, an
    uncompressed one (grey, 16-bit, palette, RGBA, CMYK) is then memory-mapped at the turned size, and its pixels
    came out striped (trial 90). Raises nothing."""
    tags = getattr(image, "tag_v2", None)
    if image.format != "TIFF" or tags is None or tags.get(0x0112) not in (5, 6, 7, 8):
        return False
    stored = (tags.get(256), tags.get(257))  # ImageWidth, ImageLength
    return image.size != stored and image.size == stored[::-1]


_WARNINGS = threading.Lock()  # Python's warning filters and hooks are the process's: one capture at a time


@contextmanager
def _pillow_warnings(warned: list[str] | None) -> Iterator[None]:
    """For a ``with`` block of Pillow reading one file's header or EXIF: its warnings (damaged EXIF tags) concern
    that file, so their messages are appended to ``warned`` (the file's notes), or dropped when it is None (a header
    probe, whose file is read and its notes said later), never printed unattributed; a decompression-bomb warning
    is raised as an error; ``ResourceWarning`` (Pillow's own unclosed file, which Python hides by default; it
    reached a pipe input's notes, trial 96) is ignored. Python's warning state is the process's, not the thread's:
    captured around the whole read, from several threads, it leaked (notes given to another image; every later
    warning of the process swallowed; trial 92), so it is taken under one lock around these short header reads
    only, not the decoding."""
    from PIL import Image

    with _WARNINGS, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)  # of a file Pillow left open (a pipe's), not of the image
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield
    if warned is not None:
        warned.extend(str(warning.message).strip() for warning in caught)


def _inverted_16_bit(image: Image.Image) -> Image.Image:
    """A 16-bit grey image with its values inverted (65535 − v), its ``info`` (ICC profile…) kept."""
    from PIL import Image

    inverted = Image.fromarray((65535 - np.asarray(image).astype(np.int32)).astype(np.uint16))
    inverted.info = dict(image.info)
    return inverted


def read_exif(image: Image.Image, *, warned: list[str] | None = None) -> tuple[Image.Exif, str | None]:
    """An opened image's EXIF (Pillow's ``Image.Exif``, a mapping of tag numbers to values), and a note when its
    block is damaged beyond reading. Pillow parses a PNG's or WebP's block only when asked, and raises for one whose
    header is no TIFF header or that ends inside it (a ``struct.error``: a traceback, or the whole image refused as
    corrupt, though its pixels decode; trial 88): such a block is taken as none, the image read as stored. Tags it
    skips (a block cut short later) are warnings: appended to ``warned`` (see :func:`_pillow_warnings`). Raises
    nothing."""
    from PIL import Image

    try:
        with _pillow_warnings(warned):
            return image.getexif(), None
    except _EXIF_ERRORS as err:
        return Image.Exif(), f"its EXIF block is damaged and was ignored ({err})"


def _exif_kept(exif: Image.Exif) -> tuple[bytes, str | None]:
    """An image's EXIF as the outputs carry it (``EXIF_FORMATS``), its Orientation tag dropped, since the pixels
    are turned upright, and its pixel dimensions, which are the input's; and a note when the EXIF is there but
    cannot be written again (a malformed block)."""
    if not exif:
        return b"", None
    exif.pop(0x0112, None)
    try:
        if 0x8769 in exif:  # the Exif IFD's PixelXDimension and PixelYDimension: the input's size, not the output's
            dimensions = exif.get_ifd(0x8769)  # (turned, or side by side; trial 90)
            dimensions.pop(0xA002, None)
            dimensions.pop(0xA003, None)
        block = exif.tobytes()
    except _EXIF_ERRORS as err:
        return b"", f"its EXIF could not be carried over to the output ({type(err).__name__})"
    problem = _exif_problem(block)  # encode refuses a block Pillow does not read back whole
    return (b"", f"its EXIF could not be carried over to the output ({problem})") if problem else (block, None)


def set_pixel_limit(*, megapixels: float) -> None:
    """Refuse images over ``megapixels`` (a float above 0) from now on in this process: sets Pillow's
    decompression-bomb limit ``PIL.Image.MAX_IMAGE_PIXELS`` (89.5 megapixels by default), which every reading in
    aetool applies, to that many pixels, rounded. Raises ``ValueError`` for anything but a number above 0 and finite.
    ``aetool --max-megapixels`` calls it."""
    from PIL import Image

    if isinstance(megapixels, bool) or not isinstance(megapixels, numbers.Real) or not 0 < megapixels < float("inf"):
        raise ValueError(f"set_pixel_limit takes megapixels above 0, got {megapixels!r}")
    Image.MAX_IMAGE_PIXELS = max(1, round(megapixels * 1e6))


# What Pillow raises on a damaged file: OSError and these, whoever raised them (as since the first round) …
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error)
# … and these only where Pillow raised them (a bug of aetool's in the ``with`` block stays a traceback): a TIFF page
# without its size (TypeError), a DDS pixel format it has no decoder for (NotImplementedError), a damaged AVIF
# (RuntimeError), and in its plugins' header parsing the rest; 6,000 damaged files of 16 formats found the first
# two as tracebacks that ended a batch (trial 96), damaged AVIFs the third (trial 97).
_PILLOW_ERRORS = (TypeError, NotImplementedError, RuntimeError, IndexError, KeyError, ArithmeticError)


def _raised_in_pillow(err: BaseException) -> bool:
    """Whether the innermost Python frame of ``err``'s traceback is Pillow's (its C decoders raise from there)."""
    import PIL

    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(Path(PIL.__file__).resolve().parent)


@contextmanager
def opened_image(source: Path | bytes, *, warned: list[str] | None = None) -> Iterator[Image.Image]:
    """Pillow's image of a file or of its bytes, opened (its header read; its pixels on ``load()``), for a ``with``
    block. Pillow's decompression-bomb warning is an error here, and what goes wrong while opening or in the block
    (decoding included) becomes one ``ImageError`` line: missing, empty, a folder, permission denied, not an image,
    a possible bomb, a loop of symbolic links, truncated or corrupt. Pillow's other warnings as it opens the file
    (a JPEG's damaged EXIF tags) are :func:`_pillow_warnings`' ``warned``. The training data's header probe opens
    files with it too, so both say the same."""
    from PIL import Image, UnidentifiedImageError

    empty = source == b"" if isinstance(source, bytes) else source.is_file() and source.stat().st_size == 0
    if empty:
        raise ImageError("empty file")
    try:
        with _pillow_warnings(warned):  # a str, not a Path: Pillow before 10.1 resolves a Path, RuntimeError on a loop
            opened = Image.open(str(source) if isinstance(source, Path) else io.BytesIO(source))
        with opened as image:
            yield image
    except FileNotFoundError:
        raise ImageError("no such file or folder") from None  # a mistyped folder is an argument read as a file
    except IsADirectoryError:
        raise ImageError("is a folder, not an image") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        claimed = re.search(r"\((\d+) pixels\)", str(err))  # Pillow's "Image size (N pixels) exceeds limit of …"
        size = f"{int(claimed[1]):,} pixels" if claimed else str(err)
        raise ImageError(
            f"refused as a possible decompression bomb: {size}, over the limit of {Image.MAX_IMAGE_PIXELS or 0:,} "
            "(aetool --max-megapixels MP COMMAND … raises it)"
        ) from None
    except _DECODE_ERRORS as err:
        if isinstance(err, OSError) and err.errno == errno.ELOOP:
            raise ImageError("a loop of symbolic links") from None
        raise ImageError(f"truncated or corrupt image: {err}") from None
    except _PILLOW_ERRORS as err:
        if not _raised_in_pillow(err):
            raise
        raise ImageError(f"truncated or corrupt image: {err}") from None


def _check_single_frame(image: Image.Image) -> None:
    """Raise ``ImageError`` for a file of several frames (a multi-page TIFF, an animated GIF or PNG, a stereo pair's
    MPO whose bytes hold its pictures): aetool reads one image per file, and taking the first frame alone would drop
    the others silently (for an APNG whose default image is not part of the animation, the first frame is that
    default, often blank)."""
    frames = getattr(image, "n_frames", 1)
    if image.format == "MPO" and _previews_only(image):
        return
    if frames > 1 and not (image.format == "MPO" and not _holds_later_pictures(image)):
        kinds = {"TIFF": "pages", "MPO": "pictures of a stereo or multi-picture JPEG"}
        kind = kinds.get(str(image.format), "an animation" if getattr(image, "is_animated", False) else "pages")
        raise ImageError(
            f"has {frames} frames ({kind}); aetool reads single-frame images: split it into one file per frame "
            "first (e.g. ImageMagick: convert IN OUT-%d.png)"
        )


def _previews_only(image: Image.Image) -> bool:
    """Whether every picture of an MPO after the first is a preview of the first: a Large Thumbnail (MP type
    0x010001 or 0x010002) or a dependent child image (CIPA DC-007, the Multi-Picture Format), as cameras write after
    the photo in an ordinary .JPG, which Pillow opens as MPO; such photos were refused as stereo pairs (trial 94)."""
    entries = (getattr(image, "mpinfo", None) or {}).get(0xB002)  # Pillow's parsed MP entries, one per picture
    if not isinstance(entries, list) or len(entries) < 2 or not all(isinstance(entry, dict) for entry in entries):
        return False
    for entry in entries[1:]:
        attribute = entry.get("Attribute")
        if not isinstance(attribute, dict):
            return False
        thumbnail = str(attribute.get("MPType", "")).startswith("Large Thumbnail")
        if not (thumbnail or attribute.get("DependentChildImageFlag") is True):
            return False
    return True


def _holds_later_pictures(image: Image.Image) -> bool:
    """Whether an MPO's bytes hold its second picture, not only the index that names it: a stereo pair on standard
    input is cut into its pictures (``stream.split_images``), and the first, index and all, is one picture."""
    try:
        image.seek(1)
    except (ValueError, EOFError, OSError):  # Pillow: "No data found for frame"
        return False
    finally:
        image.seek(0)
    return True


def _reduced_to_8_bits(image: Image.Image) -> bool:
    """Whether Pillow decodes an opened (not yet loaded) image's 16-bit samples to 8 bits: its mode is an 8-bit one
    while a tile's raw mode holds 16-bit samples (PNG ``RGB;16B``, ``LA;16B``; TIFF ``RGB;16N``)."""
    if image.mode in _SIXTEEN_BIT or image.mode in ("I", "F"):
        return False
    for tile in getattr(image, "tile", ()):  # (codec, extents, offset, args): a plain tuple before Pillow 11
        args = tile[3] if isinstance(tile[3], tuple) else (tile[3],)
        if args and isinstance(args[0], str) and ";16" in args[0]:
            return True
    return False


def _to_srgb(image: Image.Image, *, sixteen_bit: bool = False) -> tuple[Image.Image, str | None]:
    """``image`` with its embedded ICC profile converted to sRGB (grey images stay grey), and a note saying so;
    ``sixteen_bit`` as for :func:`_pixels`."""
    from PIL import Image, ImageCms

    icc = image.info.get("icc_profile")
    if not icc:
        return image, None
    grey = image.mode in GREY_MODES
    alpha = image.convert("RGBA").getchannel("A") if _has_alpha(image) else None
    deep = image.mode in _SIXTEEN_BIT or image.mode in ("I", "F")
    if deep:  # ImageCms converts 8-bit modes only, and Pillow's convert("L") clips these at 255: scale them first
        values, read = _pixels(image, sixteen_bit=sixteen_bit)  # a 16-bit grey PNG's tRNS composited: said (trial 92)
        composited = read.split(";")[0] if read and read.startswith("transparent") else None
        source = Image.fromarray(np.round(values[0] * 255).astype(np.uint8))
    else:
        source = image if image.mode in ("L", "RGB", "CMYK") else image.convert("L" if grey else "RGB")
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(source, profile, srgb, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as err:
        return image, f"its ICC profile could not be applied and was ignored ({err})"
    if converted is None:  # only when asked to convert in place
        raise ImageError("the ICC conversion returned no image")
    if grey:
        converted = converted.convert("L")
    if alpha is not None:
        converted.putalpha(alpha)
    said = "converted from its embedded ICC profile to sRGB" + (" (at 8 bits)" if deep else "")
    return converted, f"{composited}; {said}" if deep and composited else said


def _has_alpha(image: Image.Image) -> bool:
    return "A" in image.getbands() or "transparency" in image.info


def _pixels(image: Image.Image, *, sixteen_bit: bool = False) -> tuple[np.ndarray, str | None]:
    """C×H×W float32 in [0, 1] of a loaded image: 16-bit and float scaled, alpha composited; a note when it was
    (or when it holds more than 8 bits a pixel, which the 8-bit files aetool writes do not keep). ``sixteen_bit``:
    an integer image ``I`` is 16-bit by its format (a PNG, which Pillow before 10.1 opens as ``I``). Raises
    ``ImageError`` for integer or float pixels outside the scales it reads (0–65535; 0–1 or 0–255)."""
    if image.mode in _SIXTEEN_BIT or (image.mode == "I" and sixteen_bit):
        values = np.asarray(image)
        scaled = (values.astype(np.float32) / 65535)[None]
        key = image.info.get("transparency")  # a PNG's tRNS: the one grey value that is transparent (trial 90)
        if not isinstance(key, int) or not (values == key).any():
            return scaled, DEEPER
        alpha = (values != key).astype(np.float32)
        background = _background_for(scaled[0], alpha)
        composited = scaled * alpha + background * (1 - alpha)
        return composited, f"transparent areas composited on {'white' if background else 'black'}; {DEEPER}"
    if image.mode == "I":  # 32-bit integer TIFF, and 16-bit PNG in Pillow before 10.1
        values = np.asarray(image)  # int32: its range checked exactly, then one float32 copy as before
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 65535:  # clipped before: CT numbers (−1000…3000) lost every negative value
            raise ImageError(
                f"integer pixels {low:g}…{high:g}, outside 0–65535 (8 or 16 bits), which aetool reads: rescale the "
                "image into that range first"
            )
        deep = high > 255
        scale = f"integer pixels up to {high:g} read on a {'0–65535' if deep else '0–255'} scale"
        return (values.astype(np.float32) / (65535 if deep else 255))[None], f"{scale}; {DEEPER}"
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        unusable = int(np.count_nonzero(~np.isfinite(values)))
        if unusable:  # a float TIFF can hold NaN and infinities, which no pixel scale maps into [0, 1]
            raise ImageError(f"{unusable} of its {values.size} float pixels are NaN or infinite")
        low, high = float(values.min()), float(values.max())
        # rounding within PIXEL_TOLERANCE of the scale is clipped: a 0–1 image with one pixel at 1.0000001 was read
        # on 0–255, almost black, and its note said "up to 1"; one at -1e-7 was refused (trial 88)
        if low < -PIXEL_TOLERANCE or high > 255 * (1 + PIXEL_TOLERANCE):  # CT numbers came out 0 or 1, clipped
            raise ImageError(
                f"float pixels {low:.7g}…{high:.7g}, outside both 0–1 and 0–255, the scales aetool reads: rescale "
                "the image into one of them first"
            )
        if high > 1 + PIXEL_TOLERANCE:  # a 0–255 float image; one of 0–1 with a pixel farther above 1 too: said
            return np.clip(values[None] / 255, 0, 1), f"float pixels up to {high:.7g} read on a 0–255 scale; {DEEPER}"
        return np.clip(values[None], 0, 1), DEEPER
    grey = image.mode in GREY_MODES
    try:
        if not _has_alpha(image):
            converted = image.convert("L" if grey else "RGB")
            return _channels_first(np.asarray(converted, dtype=np.float32) / 255, grey), None
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255
    except ValueError as err:
        raise ImageError(f"cannot convert image mode {image.mode}: {err}") from None
    colour, alpha = rgba[..., :3].transpose(2, 0, 1), rgba[..., 3]
    background = _background_for(np.tensordot(LUMA, colour, axes=1), alpha)
    composited = colour * alpha + background * (1 - alpha)
    shade = "white" if background else "black"
    pixels = composited[:1] if grey or _is_grey(composited) else composited
    note = f"transparent areas composited on {shade}" if (alpha < 1).any() else None
    return pixels.astype(np.float32), note


def _channels_first(values: np.ndarray, grey: bool) -> np.ndarray:
    """H×W or H×W×3 values as C×H×W; colour images whose three channels are equal everywhere come back grey."""
    if grey:
        return values[None]
    colour = values.transpose(2, 0, 1)
    return colour[:1].copy() if _is_grey(colour) else np.ascontiguousarray(colour)


def _is_grey(colour: np.ndarray) -> bool:
    return bool((colour[0] == colour[1]).all() and (colour[1] == colour[2]).all())


def _background_for(luma: np.ndarray, alpha: np.ndarray) -> float:
    """Transparent areas become the opposite of the ink: white behind dark strokes, black behind light ones."""
    weight = alpha.sum()
    return 1.0 if weight and float((luma * alpha).sum() / weight) < 0.5 else 0.0


GREY_TO_RGB = "grey → RGB (replicated)"  # to_channels' note for a grey image given to a colour model


def to_channels(pixels: np.ndarray, channels: int) -> tuple[np.ndarray, str | None]:
    """C×H×W (or N×C×H×W) pixels with ``channels`` channels (1 or 3), and a note when they were converted.

    Grey → RGB replicates the channel; RGB → grey takes Pillow's luma (ITU-R 601-2: 0.299 R + 0.587 G + 0.114 B).
    Raises ``ValueError`` for pixels of another rank (an H×W image: add its channel axis, ``pixels[None]``), for
    other channel counts and for integer pixels (divide 8-bit ones by 255).
    """
    check_pixels(pixels, name="pixels")
    if pixels.ndim not in (3, 4):
        raise ValueError(
            f"expected C×H×W or N×C×H×W pixels, got shape {pixels.shape}; for an H×W image pass pixels[None]"
        )
    have = pixels.shape[-3]
    if have == channels:
        return pixels, None
    if (have, channels) == (1, 3):
        return np.repeat(pixels, 3, axis=-3), GREY_TO_RGB
    if (have, channels) == (3, 1):
        grey = np.einsum("c,...chw->...hw", LUMA, pixels)[..., None, :, :]
        return grey.astype(np.float32, copy=False), "RGB → grey (luma)"
    raise ValueError(f"cannot convert {have}-channel pixels to {channels} channels")


def luma(pixels: np.ndarray) -> np.ndarray:
    """H×W brightness of C×H×W (or H×W) float pixels; ``ValueError`` for integer ones (divide 8-bit ones by 255)
    and for other ranks (a batch: one image at a time)."""
    _check_one_image(pixels)
    return pixels if pixels.ndim == 2 else to_channels(pixels, 1)[0][0]


def _check_one_image(pixels: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``pixels`` are the float H×W or C×H×W pixels of one image."""
    check_pixels(pixels, name="pixels")
    if pixels.ndim not in (2, 3):
        raise ValueError(f"expected H×W or C×H×W pixels of one image, got shape {pixels.shape}")


def is_dark_on_light(pixels: np.ndarray) -> bool:
    """Whether the border is bright, i.e. dark ink on a light page (the opposite of MNIST); H×W or C×H×W float
    pixels in [0, 1]. Raises ``ValueError`` for integer pixels (divide 8-bit ones by 255), other ranks (a batch)
    and no pixels."""
    return float(_border(luma(pixels), shape=pixels.shape).mean()) > 0.5


def _border(brightness: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
    """The H×W ``brightness``'s border ring, ``max(1, min(H, W) // 14)`` pixels wide (corners twice); a
    ``ValueError`` naming ``shape`` (the image's) when there are no pixels."""
    if not brightness.size:
        raise ValueError(f"expected pixels, got an image of shape {shape}")
    ring = max(1, min(brightness.shape) // 14)
    return np.concatenate(
        [
            brightness[:ring].ravel(),
            brightness[-ring:].ravel(),
            brightness[:, :ring].ravel(),
            brightness[:, -ring:].ravel(),
        ]
    )


WRITING_GRID = 1_000_000  # about how many pixels of a large image looks_like_writing judges (an even grid)


def looks_like_writing(pixels: np.ndarray) -> bool:
    """Whether C×H×W float pixels in [0, 1] look like what a model of MNIST's world knows: digits, or writing or
    drawing on plain paper, noisy ones included; not a photograph. That is: grey (99 % of the pixels have their
    channels within 0.1 of each other: a JPEG's colour noise passes), on a plain black or white ground (the
    median luma of :func:`is_dark_on_light`'s border ring ≤ 0.2 or ≥ 0.8) that ≥ 60 % of the pixels are within
    0.25 of. Pages of digits pass up to Gaussian σ 0.5, and every photograph in ``../shared/data/photos`` fails,
    noisy or not (``tests/test_runtime_images.py``); a guess, which grey dark-sky photos pass and pages on tinted
    paper fail (README). A large image is judged on an even grid of about :data:`WRITING_GRID` pixels. Raises what
    :func:`luma` raises."""
    _check_one_image(pixels)  # a 1-D array was an IndexError (trial 100)
    step = max(1, math.ceil(math.sqrt(pixels.shape[-2] * pixels.shape[-1] / WRITING_GRID)))
    grid = pixels[..., ::step, ::step]
    if grid.ndim == 3 and grid.shape[0] == 3:
        spread = grid.max(axis=0) - grid.min(axis=0)
        if spread.size and float(np.quantile(spread, 0.99)) > 0.1:
            return False
    brightness = luma(grid)
    ground = float(np.median(_border(brightness, shape=pixels.shape)))
    return (ground <= 0.2 or ground >= 0.8) and float(np.mean(np.abs(brightness - ground) <= 0.25)) >= 0.6


@dataclass(frozen=True)
class Fitted:
    """An image fitted into a model's size the MNIST way, with the geometry :func:`unfit` needs to carry a result
    back: ``crop`` (top, left, bottom, right) is the ink's box in the image, ``box`` (top, left, bottom, right)
    where that box landed in ``pixels`` (C×h×w float32 in [0, 1]), ``size`` (height, width) the image's own."""

    pixels: np.ndarray
    crop: tuple[int, int, int, int]
    box: tuple[int, int, int, int]
    size: tuple[int, int]


def fit(pixels: np.ndarray, size: tuple[int, int], *, like: Fitted | None = None) -> Fitted:
    """Fit white-on-black C×H×W pixels into ``size`` the MNIST way: crop to the ink (judged by luma), longer side to
    20/28 of the model's shorter side, centred on black. ``like``: crop and place them as that fit did instead (an
    image of the same H×W, such as a noisy input placed as its clean target was, so the two stay aligned). Raises
    ``ValueError`` for pixels of another size than ``like``'s, and what :func:`resize` raises for pixels and sizes
    (an H×W image was an IndexError, an empty one numpy's reduction error, a size of 0 taken; trial 100)."""
    size = _checked_size(size, name="fit")
    pixels = _checked_for_resize(pixels, name="fit")
    if like is not None:
        if pixels.shape[1:] != like.size:
            raise ValueError(f"pixels of {pixels.shape[1:]} cannot be placed like an image of {like.size}")
        crop, (top, left, bottom, right) = like.crop, like.box
        height, width = bottom - top, right - left
    else:
        brightness = luma(pixels)
        peak = brightness.max()
        ink = brightness >= 0.5 * peak if peak > 0 else np.ones_like(brightness, dtype=bool)
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        crop = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
        scale = MNIST_BOX * min(size) / max(crop[2] - crop[0], crop[3] - crop[1])
        height, width = (max(1, round(n * scale)) for n in (crop[2] - crop[0], crop[3] - crop[1]))
        top, left = (size[0] - height) // 2, (size[1] - width) // 2
    out = np.zeros((pixels.shape[0], *size), dtype=np.float32)
    out[:, top : top + height, left : left + width] = resize(
        pixels[:, crop[0] : crop[2], crop[1] : crop[3]], (height, width)
    )
    return Fitted(out, crop, (top, left, top + height, left + width), (int(pixels.shape[1]), int(pixels.shape[2])))


def unfit(output: np.ndarray, fitted: Fitted) -> np.ndarray:
    """Carry a model's C×h×w output of a :func:`fit` image back to the image's size: the part in the fitted ink box
    scaled back into the ink's box of the image, black elsewhere."""
    top, left, bottom, right = fitted.box
    crop_top, crop_left, crop_bottom, crop_right = fitted.crop
    back = np.zeros((output.shape[0], *fitted.size), dtype=np.float32)
    back[:, crop_top:crop_bottom, crop_left:crop_right] = resize(
        output[:, top:bottom, left:right], (crop_bottom - crop_top, crop_right - crop_left)
    )
    return back


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """C×H×W float pixels in [0, 1] resized to ``size`` (height, width, whole pixels) with Pillow's Lanczos filter,
    clipped to [0, 1], float32. Raises ``ValueError`` for pixels of another rank (an H×W image: pass
    ``pixels[None]``), for integer pixels (divide 8-bit ones by 255), for no pixels, NaN and infinities (the
    result was all NaN; trial 100), for a size that is not two whole numbers above 0, and for one over Pillow's
    decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, the limit aetool's image reading applies too; sides
    above 2**31 − 1 when that limit is off)."""
    from PIL import Image

    pixels = _checked_for_resize(pixels, name="resize")
    height, width = _checked_size(size, name="resize")
    limit = Image.MAX_IMAGE_PIXELS
    if max(height, width) > 2**31 - 1 or (limit is not None and height * width > limit):
        raise ValueError(
            f"resize refuses {height}×{width} pixels (height×width): over the {limit or 2**31 - 1:,} "
            f"{'pixels' if limit else 'a side'} that Pillow takes (Image.MAX_IMAGE_PIXELS)"
        )
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32)).resize(
                (width, height), Image.Resampling.LANCZOS
            )
        )
        for plane in pixels
    ]
    return np.clip(np.stack(planes), 0, 1).astype(np.float32, copy=False)


def _checked_for_resize(pixels: np.ndarray, *, name: str) -> np.ndarray:
    """``pixels`` as an array when they are the C×H×W float pixels, finite and not empty, that :func:`resize`
    resamples; else ``ValueError`` naming the function ``name``."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3:
        raise ValueError(f"{name} takes C×H×W pixels, got shape {pixels.shape}; for an H×W image pass pixels[None]")
    check_pixels(pixels, name="pixels")
    if not pixels.size:
        raise ValueError(f"{name} takes an image, got no pixels (shape {pixels.shape})")
    if not np.isfinite(pixels).all():
        raise ValueError(f"{name} takes pixels in [0, 1], got NaN or infinite values")
    return pixels


def _checked_size(size: Any, *, name: str) -> tuple[int, int]:
    """``size`` as (height, width) when it is two whole numbers above 0; else ``ValueError`` naming ``name``."""
    whole = isinstance(size, tuple | list) and len(size) == 2
    if not whole or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0 for v in size):
        raise ValueError(f"{name} takes size as (height, width), two whole numbers > 0, got {size!r}")
    return int(size[0]), int(size[1])


def pad_to(pixels: np.ndarray, size: tuple[int, int], *, mirror: bool = False, border: int = 0) -> np.ndarray:
    """Pad H×W (or C×H×W) pixels up to ``size`` (height, width): ``border`` rows and columns at the top and left,
    the rest at the bottom and right; with black, MNIST's background, or with ``mirror`` by mirroring the image's
    outer rows and columns (numpy's ``symmetric`` mode, mirrored again where the padding is wider than the image),
    so that a photograph gets no black edge that a model would reconstruct badly and a detector score as a defect.
    Any dtype (padding moves values, never scales them: 8-bit pixels stay 8-bit). Raises ``ValueError`` for fewer
    than two axes, no pixels to mirror, a ``size`` that is not two whole numbers above 0, a ``border`` that is not a
    whole number ≥ 0, and a ``size`` smaller than the pixels' and ``border`` (padding only grows them)."""
    if pixels.ndim < 2:
        raise ValueError(f"pad_to takes H×W or C×H×W pixels, got shape {pixels.shape}")
    size = _checked_size(size, name="pad_to")  # floats, one number, a negative border: numpy's errors (trial 100)
    if isinstance(border, bool) or not isinstance(border, int | np.integer) or border < 0:
        raise ValueError(f"pad_to takes border as a whole number ≥ 0, got {border!r}")
    if mirror and not pixels.size:
        raise ValueError(f"pad_to cannot mirror an image without pixels (shape {pixels.shape})")
    height, width = pixels.shape[-2:]
    if size[0] < height + border or size[1] < width + border:
        raise ValueError(
            f"cannot pad {height}×{width} pixels (height×width) to the smaller {size[0]}×{size[1]}; padding only "
            "grows them: crop or resize instead"
        )
    if (height, width) == size:  # nothing to add: numpy's pad took 60 µs to copy a digit (10,000 in evaluate)
        return pixels.copy()
    pad = [(0, 0)] * (pixels.ndim - 2) + [(border, size[0] - height - border), (border, size[1] - width - border)]
    return np.pad(pixels, pad, mode="symmetric") if mirror else np.pad(pixels, pad)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """One image showing ``left | right`` (H×W or C×H×W, of one height and channel count); raises ``ValueError``
    for two that cannot stand side by side (it was numpy's concatenation error; trial 100)."""
    if np.ndim(left) != np.ndim(right) or np.shape(left)[:-1] != np.shape(right)[:-1]:
        raise ValueError(
            f"side_by_side takes two images of one height and channels, got {np.shape(left)} and {np.shape(right)}"
        )
    return np.concatenate([left, right], axis=-1)


def parse_size(text: str | None, *, option: str = "--size") -> tuple[int, int] | None:
    """``"32x48"`` (or ``32×48``) → (32, 48), height by width; None stays None; raises ``AetoolError`` otherwise."""
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and int(p) > 0 for p in parts):
        raise AetoolError(f"{option} takes HxW with positive integers, e.g. 28x28; got {text!r}")
    return int(parts[0]), int(parts[1])


def format_for(name: str) -> str:
    """Pillow's format name for ``png``, ``.jpg``, ``out.tiff``…; an unknown one raises ``AetoolError``."""
    key = name.rsplit(".", 1)[-1].lower()
    if key not in FORMATS:
        raise AetoolError(f"unknown image format {name!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[key]


# The longest side each output format holds: libjpeg's JPEG_MAX_DIMENSION, libwebp's WEBP_MAX_DIMENSION and the
# 16-bit size fields of GIF and TGA (where Pillow raised OverflowError, a traceback that ended a batch; trial 96).
MAX_SIDE = {"JPEG": 65500, "WEBP": 16383, "GIF": 65535, "TGA": 65535}


def size_problem(fmt: str, *, width: int, height: int) -> str | None:
    """Why an image of ``width`` × ``height`` pixels cannot be written in Pillow format ``fmt`` (a side over
    ``MAX_SIDE``), or None when it can."""
    limit = MAX_SIDE.get(fmt)
    if limit is None or max(width, height) <= limit:
        return None
    return f"a {fmt} image is at most {limit:,} pixels a side, this one is {width}×{height}; write it as PNG"


# How far beyond [0, 1] encode clips values; pixels farther out are of another scale (0–255), refused
ENCODE_SLACK = 0.5


def _exif_problem(block: bytes) -> str | None:
    """What Pillow finds wrong in an EXIF block (an error, or the first warning of tags it skips); None when it
    reads the block whole."""
    from PIL import Image

    warned: list[str] = []
    try:
        with _pillow_warnings(warned):
            Image.Exif().load(block)
    except _EXIF_ERRORS as err:
        return str(err)
    return warned[0] if warned else None


def encode(pixels: np.ndarray, fmt: str, *, fast: bool = False, exif: bytes = b"") -> bytes:
    """An 8-bit image file (Pillow format name ``fmt``) of float pixels in [0, 1] (values up to ``ENCODE_SLACK``
    beyond clipped): grey for H×W or 1×H×W, RGB for 3×H×W; ``fast``: a PNG compressed at zlib level 1, not Pillow's 6 (``FAST_PNG``);
    ``exif``: an EXIF block (``Decoded.exif``) written into the formats that hold one (``EXIF_FORMATS``).
    ``fmt`` is one of ``FORMATS``' values (:func:`format_for` gives it for a file name). Raises ``ValueError`` for
    another ``fmt``, an image too large for it (:func:`size_problem`), integer pixels (8-bit ones: divide them by
    255), NaN values, values farther out and other shapes, and for an ``exif`` Pillow cannot read (it wrote such
    blocks as given, in files their readers refuse; trial 88); ``TypeError`` for an ``exif`` that is not bytes."""
    from PIL import Image

    if fmt not in FORMATS.values():
        known = ", ".join(dict.fromkeys(FORMATS.values()))
        raise ValueError(f"unknown format {fmt!r}: encode takes {known} (format_for('name.png') gives it)")
    if not isinstance(exif, bytes):
        raise TypeError(
            f"encode takes exif as bytes (Decoded.exif or Pillow's Exif.tobytes()), got {type(exif).__name__}"
        )
    if exif.startswith((b"II*\x00", b"MM\x00*")):  # a bare TIFF block (a WebP's): a JPEG dropped it unsaid (trial 92)
        exif = b"Exif\x00\x00" + exif
    problem = _exif_problem(exif) if exif else None
    if problem:
        raise ValueError(f"encode takes an EXIF block Pillow reads whole, not this one: {problem}")
    pixels = np.asarray(pixels)
    check_pixels(pixels, name="pixels")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[0] in (1, 3))):
        raise ValueError(f"encode takes H×W, 1×H×W or 3×H×W pixels, got shape {pixels.shape}")
    if np.isnan(pixels).any():
        raise ValueError(f"encode takes pixels in [0, 1], got {int(np.isnan(pixels).sum())} NaN values")
    low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    if low < -ENCODE_SLACK or high > 1 + ENCODE_SLACK:  # 0–255 floats came out all white (trial 86)
        raise ValueError(
            f"encode takes pixels in [0, 1], got values from {low:.6g} to {high:.6g}; "
            "for 8-bit pixels pass pixels / 255"
        )
    scaled = np.clip(pixels, 0, 1)  # one float temporary, scaled and rounded in place, let go before encoding
    scaled *= 255
    values = np.round(scaled, out=scaled).astype(np.uint8)
    del scaled
    if values.ndim == 3:
        values = values[0] if values.shape[0] == 1 else values.transpose(1, 2, 0)
    too_large = size_problem(fmt, width=values.shape[1], height=values.shape[0])
    if too_large:
        raise ValueError(too_large)
    image = Image.fromarray(np.ascontiguousarray(values))
    buffer = io.BytesIO()
    options = FAST_PNG if fast and fmt == "PNG" else _SAVE_OPTIONS.get(fmt, {})
    image.save(buffer, format=fmt, **options, **({"exif": exif} if exif and fmt in EXIF_FORMATS else {}))
    return buffer.getvalue()
