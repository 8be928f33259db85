"""Several images in one byte stream, as ``ffmpeg -f image2pipe`` writes frames to a pipe: where each ends.

Only formats whose end the bytes themselves tell are split: PNG (chunks up to IEND), JPEG (segments and
entropy-coded data up to EOI, ITU-T T.81 annex B), binary Netpbm (P4, P5, P6: the header's size), BMP (the file
size in its header) and WebP (the RIFF size). An image is cut off where the next bytes begin another image of these
formats. Where they do not (a damaged image, or bytes between two images), the stream goes on at the next PNG, JPEG
or WebP signature found further on, so nothing after it is lost: a damaged image runs up to it (a frame cut short
whose header claims the next frame's bytes too), and bytes between an image's end and it become an input of their
own, which fails to read. With no signature further on, whatever follows an image stays with it, so one file with
data after its image (a motion photo's video after the JPEG) is one image, as Pillow reads it. An MPO (a stereo
pair: JPEGs one after another) is its pictures, one by one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_PNG = b"\x89PNG\r\n\x1a\n"
# A Netpbm header's next number, after whitespace and comments; at most 10 digits (int() refuses over 4,300)
_NUMBER = re.compile(rb"(?:\s|#[^\n]*\n)*(\d{1,10})(?!\d)")
_FILL = re.compile(rb"\xff+")  # a JPEG's fill bytes
# Signatures distinctive enough to look for inside other bytes: PNG's, a JPEG's SOI and the marker after it, WebP's
_SEARCHED = re.compile(rb"\x89PNG\r\n\x1a\n|\xff\xd8\xff[\xc0-\xfe]|RIFF....WEBP", re.DOTALL)


def split_images(data: bytes) -> list[bytes]:
    """The images of ``data`` (bytes of one or more image files written one after another), each as its own
    bytes, in order, with the bytes between two images (or a damaged image's) as an entry of their own (module
    docstring); ``[data]`` when it holds one image. Never raises."""
    images = []
    start = 0
    while start < len(data):
        end = _image_end(data, start)
        if end is not None and (end == len(data) or _format_at(data, end) is not None):
            images.append(data[start:end])
            start = end
            continue
        # Inside the image too (a frame cut short may claim the next one's bytes as its own), but for a JPEG only
        # past its segments, where its EXIF thumbnail (itself a JPEG) lies; not in an image of another format (a
        # TIFF or a camera's raw file holds JPEG previews)
        end_of = _format_at(data, start)
        found = None
        if end_of is not None:
            found = _SEARCHED.search(data, _jpeg_parse(data, start)[1] if end_of is _jpeg_end else start + 1)
        if found is None:  # the rest is this image and what follows it
            images.append(data[start:])
            break
        if end is None or found.start() < end:  # damaged (or no image at all) up to the next image
            images.append(data[start : found.start()])
        else:  # whole, then bytes that are no image up to the next one
            images += [data[start:end], data[end : found.start()]]
        start = found.start()
    return images or [data]


def _format_at(data: bytes, at: int) -> Callable[[bytes, int], int | None] | None:
    """The function that finds the end of the image beginning at ``at``, by its signature; None for none."""
    if data.startswith(_PNG, at):
        return _png_end
    if data.startswith(b"\xff\xd8\xff", at):
        return _jpeg_end
    if data.startswith(b"BM", at):
        return _bmp_end
    if data.startswith(b"RIFF", at) and data.startswith(b"WEBP", at + 8):
        return _webp_end
    if re.match(rb"P[456]\s", data[at : at + 3]):
        return _netpbm_end
    return None


def _image_end(data: bytes, start: int) -> int | None:
    """The offset just after the image that begins at ``start``, or None when no image of a known format begins
    there or it is cut short."""
    end_of = _format_at(data, start)
    end = end_of(data, start) if end_of is not None else None
    return end if end is not None and end <= len(data) else None


def _png_end(data: bytes, start: int) -> int | None:
    at = start + len(_PNG)
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        at += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return at
    return None


def _jpeg_end(data: bytes, start: int) -> int | None:
    return _jpeg_parse(data, start)[0]


def _jpeg_parse(data: bytes, start: int) -> tuple[int | None, int]:
    """The offset just after the JPEG's EOI (None when it is damaged or cut short, or another SOI comes first), and
    the offset past its segments before its first scan's data (where an EXIF thumbnail, itself a JPEG, lies), from
    which to look for the next image when it is damaged."""
    at = scan = start + 2
    scanning = False
    while at + 2 <= len(data):
        if data[at] != 0xFF:
            return None, scan
        marker = data[at + 1]
        if marker == 0xFF:  # fill bytes before a marker: to the last of them, in one step
            at = _FILL.match(data, at).end() - 1  # type: ignore[union-attr]
            continue
        at += 2
        if marker == 0xD9:  # EOI
            return at, scan
        if marker == 0xD8:  # SOI: the next image began before this one ended
            return None, scan
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM and RSTn take no length
            continue
        if at + 2 > len(data):
            return None, scan
        at += int.from_bytes(data[at : at + 2], "big")
        scan = scan if scanning else min(at, len(data))
        if marker == 0xDA:  # SOS: entropy-coded data up to the next marker that is not a stuffed 0 or an RSTn
            scanning = True
            while True:
                at = data.find(b"\xff", at)
                if at < 0 or at + 1 >= len(data):
                    return None, scan
                following = data[at + 1]
                if following == 0xFF:  # fill bytes before a marker
                    at = _FILL.match(data, at).end() - 1  # type: ignore[union-attr]
                elif following == 0 or 0xD0 <= following <= 0xD7:
                    at += 2
                else:
                    break
    return None, scan


def _bmp_end(data: bytes, start: int) -> int | None:
    size = int.from_bytes(data[start + 2 : start + 6], "little")
    return start + size if size >= 26 else None


def _webp_end(data: bytes, start: int) -> int | None:
    size = int.from_bytes(data[start + 4 : start + 8], "little")
    return start + 8 + size + (size & 1)  # RIFF chunks are padded to an even length


def _netpbm_end(data: bytes, start: int) -> int | None:
    bitmap = data[start + 1] == ord("4")  # P4: one bit a pixel, rows padded to whole bytes, no maxval
    values = []
    at = start + 2
    for _ in range(2 if bitmap else 3):
        number = _NUMBER.match(data, at)
        if number is None:
            return None
        values.append(int(number[1]))
        at = number.end()
    at += 1  # the one whitespace byte before the pixels
    width, height = values[0], values[1]
    if bitmap:
        return at + (width + 7) // 8 * height
    sample = 1 if values[2] < 256 else 2
    return at + width * height * (3 if data[start + 1] == ord("6") else 1) * sample
