"""Several images in one byte stream, as ``ffmpeg -f image2pipe`` writes frames to a pipe: where each ends.

Only formats whose end the bytes themselves tell are split: PNG (chunks up to IEND), JPEG (segments and
entropy-coded data up to EOI, ITU-T T.81 annex B), binary Netpbm (P4, P5, P6: the header's size), BMP (the file
size in its header) and WebP (the RIFF size). An image is cut off where the next bytes begin another image of these
formats or of another one aetool looks for (TIFF, GIF, QOI, plain Netpbm…), at once or after whitespace (a shell
loop's ``echo``). Where they do not (a damaged image, or bytes between two images), the stream goes on at the next
PNG, JPEG or WebP signature found further on, so nothing after it is lost: a damaged image runs up to it (a frame
cut short whose header claims the next frame's bytes too), and bytes between an image's end and it become an input
of their own, which fails to read. A signature inside an image that looks whole counts only where a whole image begins
there (pixels may read ``FF D8 FF E0``; a PNG may hold a thumbnail). With no signature further on, whatever
follows an image stays with it, so one file with data after its image (a motion photo's video after the JPEG) is
one image, as Pillow reads it. An MPO (a stereo pair: JPEGs one after another) is its pictures, one by one, but
a camera's photo with its previews after it (named so in its Multi-Picture index) is one image, as its file is.

:class:`ImageStream` gives the same images as they arrive on a pipe (a camera's frames), each once it is settled.
"""

from __future__ import annotations

import io
import os
import re
import select
import stat
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import BinaryIO, Literal

SPLIT_FORMATS = frozenset({"PNG", "JPEG", "PPM", "BMP", "WEBP"})  # Pillow's names of the formats split here
READ_SIZE = 1 << 20  # bytes asked of the stream at a time
GROWTH = 2  # the held bytes are split again once they doubled since the last split ...
SPLIT_SHARE = 4  # ... or, once the writer paused, when the time since the last split is 4× what that split took
WHOLE_AFTER = 2  # a part that is no whole image is settled once this many whole images follow it

_PNG = b"\x89PNG\r\n\x1a\n"
# A Netpbm header's next number, after whitespace and comments; at most 10 digits (int() refuses over 4,300)
_NUMBER = re.compile(rb"(?:\s|#[^\n]*\n)*(\d{1,10})(?!\d)")
_FILL = re.compile(rb"\xff+")  # a JPEG's fill bytes
_SPACE = re.compile(rb"[ \t\r\n]*")  # whitespace between two frames (a shell loop's echo)
# In a JPEG's entropy-coded data, the next marker: 0xFF followed by neither a stuffed 0, an RSTn nor more fill
_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")
# Where an image may begin: PNG's, JPEG's (SOI and the marker after it) and WebP's signatures are taken as they are;
# BMP's "BM" and Netpbm's "P5 " are common in other bytes, so they count only where a whole image follows
_STRONG = re.compile(rb"\x89PNG\r\n\x1a\n|\xff\xd8\xff[\xc0-\xfe]|RIFF....WEBP", re.DOTALL)
# Images of other formats, whose end aetool does not find: TIFF (a camera's raw file too), GIF, QOI, plain (ASCII)
# Netpbm, HEIF/AVIF, JPEG 2000, Photoshop, ICO, EPS, ICNS, DDS; looked for where a stream begins, which is then one
# image
_OTHER_FORMAT = re.compile(
    rb"II\*\0|MM\0\*|GIF8|qoif|P[123]\s|....ftyp|\0\0\0\x0cjP|8BPS|\0\0\x01\0|%!PS|\xc5\xd0\xd3\xc6|icns|DDS ",
    re.DOTALL,
)
# Of those, the ones that end an image before them where they follow it: not ftyp (a motion photo's video after its
# JPEG is part of it) nor ICO's four bytes (common in pixel data)
_FOLLOWING = re.compile(rb"II\*\0|MM\0\*|GIF8[79]a|qoif|P[123]\s|\0\0\0\x0cjP  |8BPS|%!PS|\xc5\xd0\xd3\xc6|icns|DDS ")
# Of those, the signatures that come again where several such images follow one another (ffmpeg -c:v tiff)
_REPEATED = re.compile(rb"II\*\0|MM\0\*|GIF87a|GIF89a|qoif|P[123](?=\s)")
_CANDIDATE = re.compile(_STRONG.pattern + rb"|BM|P[456]\s", re.DOTALL)
# What each of those begins with, found by bytes.find (several times faster than the pattern's own search)
_PREFIXES = (_PNG, b"\xff\xd8\xff", b"RIFF", b"BM", b"P4", b"P5", b"P6")


def split_images(data: bytes, *, follows: bool = False) -> list[bytes]:
    """The images of ``data`` (bytes of one or more image files written one after another), each as its own
    bytes, in order, with the bytes between two images (or a damaged image's) as an entry of their own (module
    docstring); ``[data]`` when it holds one image. ``follows``: other parts of the stream came before ``data``
    (so bytes after its last image are an entry of their own). Never raises."""
    images: list[bytes] = []
    start = 0
    while start < len(data):
        end = _image_end(data, start)
        if end is not None and (_ends_cleanly(data, end) or _spaced(data, end)):
            images.append(data[start:end])
            start = end
            continue
        end_of = _format_at(data, start)
        other = end_of is None and bool(_OTHER_FORMAT.match(data, start))
        if end_of is None and not other and _spaced(data, start):  # whitespace, then an image (of any format)
            images.append(data[start : _SPACE.match(data, start).end()])  # type: ignore[union-attr]
            start += len(images[-1])
            continue
        # Inside the image too (a frame cut short may claim the next one's bytes as its own), but for a JPEG only
        # past its segments, where its EXIF thumbnail (itself a JPEG) lies; not in an image of another format that
        # begins the stream (a TIFF or a camera's raw file holds JPEG previews), which is one image
        found = None
        if not other or images or follows:
            found = _next_image(data, _jpeg_parse(data, start)[1] if end_of is _jpeg_end else start + 1)
            while found is not None and end is not None and found < end and not _frame_inside(data, found, end, end_of):
                found = _next_image(data, found + 1)  # bytes of the whole image (its pixels, a thumbnail)
        if found is None:
            in_a_stream = images or follows  # then bytes after its last image fail alone
            if in_a_stream and end is not None and end < len(data):
                images += [data[start:end], data[end:]]
            else:  # the rest is this image and what follows it (a motion photo's video)
                images.append(data[start:])
            break
        if end is None or found < end:  # damaged (or no image at all) up to the next image
            images.append(data[start:found])
        else:  # whole, then bytes that are no image up to the next one
            images += [data[start:end], data[end:found]]
        start = found
    return images or [data]


class ImageStream:
    """The parts of a byte stream (:func:`split_images`'s, the same ones in the same order) as it is read: each
    part is given once the bytes read settle it, so a pipe that stays open (a camera's frames from ``ffmpeg -f
    image2pipe``) has each frame done while the next ones are still to come.

    A part is settled once it is a whole image that another image follows, or once two such images follow it (a
    damaged frame, or bytes between two frames, waits for two whole frames and the start of a third;
    :data:`WHOLE_AFTER`): an image still arriving may hold what looks like another's signature. When the writer
    paused after a whole image, that image is settled then (but for the stream's first, which may be the stream's
    only image, whose bytes after it would be its own). A file (``< photo.png``) is read whole at once. The bytes
    held are split again once they doubled, and when the writer paused (nothing more to read at once) if
    splitting takes at most a quarter of the time, so a large image on a slow pipe is not walked again on every
    read. Everything is settled at the stream's end.
    """

    def __init__(self, stream: BinaryIO, *, read_size: int = READ_SIZE) -> None:
        self._stream = stream
        self._read_size = read_size
        self._held: list[bytes] = []  # bytes read and not yet settled, in the order read
        self._held_size = 0
        self._split_at = 0  # how many bytes were held at the last split
        self._split_cost = 0.0  # what it took, in seconds
        self._split_ended = 0.0  # when it ended (time.perf_counter)
        self._settled: deque[bytes] = deque()
        self._started = False  # a part was settled: the held bytes follow others
        self._ended = False
        self.one_part: bool | None = None  # whether the stream is one part: known once the first is given

    def ready(self) -> bool:
        """Whether the next part is settled: taking it does not wait for the stream."""
        return bool(self._settled)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            if self._settled:
                yield self._settled.popleft()
            elif self._ended:
                return
            else:
                self._read()

    def _read(self) -> None:
        chunk = self._next_bytes()
        if not chunk:
            self._ended = True
            data = b"".join(self._held)
            self._held, self._held_size = [], 0
            if data or not self._started:
                parts = split_images(data, follows=self._started)
                self._settled.extend(parts)
                self.one_part = not self._started and len(parts) == 1
            return
        self._held.append(chunk)
        self._held_size += len(chunk)
        paused = not _readable(self._stream)
        due = time.perf_counter() - self._split_ended >= SPLIT_SHARE * self._split_cost
        if self._held_size >= GROWTH * self._split_at or (paused and due):
            self._split(paused=paused)

    def _next_bytes(self) -> bytes:
        """The stream's next bytes, ``b""`` at its end: a file's all at once (``< photo.png``, none to wait for);
        on a non-blocking pipe (O_NONBLOCK, which a process that shares it may set), whose read with nothing there
        yet gives None or ``b""``, once bytes or the end are there."""
        if _regular_file(self._stream):
            return self._stream.read()
        read = getattr(self._stream, "read1", self._stream.read)
        chunk = read(self._read_size)
        if not chunk and _non_blocking(self._stream):
            chunk = None
            while chunk is None:
                select.select([self._stream.fileno()], [], [])
                chunk = read(self._read_size)
        return chunk or b""

    def _split(self, *, paused: bool) -> None:
        started = time.perf_counter()
        data = b"".join(self._held)
        parts = split_images(data, follows=self._started)
        whole = [self._whole(parts, index) for index in range(len(parts) - 1)]
        settled = 0  # the parts before the last, up to the first that is not settled yet
        while settled < len(parts) - 1 and (whole[settled] or sum(whole[settled + 1 :]) >= WHOLE_AFTER):
            settled += 1
        last = parts[-1]
        if paused and settled == len(parts) - 1 and (self._started or settled) and _image_end(last, 0) == len(last):
            settled += 1  # a whole image the writer paused after, not the stream's first: no later byte changes it
        self._settled.extend(parts[:settled])
        if settled:  # a part follows each one settled here
            self._started, self.one_part = True, False
        rest = data[sum(map(len, parts[:settled])) :]
        self._held, self._held_size = [rest], len(rest)
        self._split_at = len(rest)
        self._split_ended = time.perf_counter()
        self._split_cost = self._split_ended - started

    def _whole(self, parts: list[bytes], index: int) -> bool:
        """Whether ``parts[index]`` is a whole image that the split of every longer stream cuts where it ends: one
        another image (of any format) follows, at once or after whitespace (a shell loop's ``echo``)."""
        part, after = parts[index], parts[index + 1]
        if _image_end(part, 0) != len(part):
            return False
        spaced = not after.strip(b" \t\r\n") and index + 2 < len(parts) and _ends_cleanly(parts[index + 2], 0)
        return _ends_cleanly(after, 0) or spaced  # as split_images takes an image followed by these


def _regular_file(stream: BinaryIO) -> bool:
    """Whether ``stream`` reads a file on disk (not a pipe, a terminal or a stream in memory)."""
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


def _non_blocking(stream: BinaryIO) -> bool:
    """Whether ``stream`` reads a descriptor in non-blocking mode (never on Windows before Python 3.12, which has
    no ``os.get_blocking`` there)."""
    try:
        return not os.get_blocking(stream.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False


def _readable(stream: BinaryIO) -> bool:
    """Whether more bytes of ``stream`` can be read at once; True for a stream that cannot tell (no descriptor)."""
    try:
        return bool(select.select([stream.fileno()], [], [], 0)[0])
    except (OSError, ValueError, io.UnsupportedOperation):
        return True


def begins_an_image(data: bytes) -> bool:
    """Whether ``data`` begins with an image's signature (whole or damaged), rather than bytes that are no image
    (a newline between two frames): of a format :func:`split_images` cuts, or of another it looks for."""
    return _begins_at(data, 0)


def repeated_signature(data: bytes) -> int | None:
    """Where ``data``, beginning with a TIFF, GIF, QOI or plain (ASCII) Netpbm image (formats whose end aetool does
    not find), holds that signature again: several such images one after another, of which only the first is read;
    None otherwise. A plain Netpbm signature (``P3``) counts where whitespace follows it, as in a header."""
    first = _REPEATED.match(data)
    if first is None:
        return None
    again = re.compile(re.escape(first[0]) + (rb"\s" if first[0].startswith(b"P") else b"")).search(data, first.end())
    return again.start() if again else None


def _ends_cleanly(data: bytes, end: int) -> bool:
    """Whether an image that ends at ``end`` is followed by the end of ``data`` or the start of another image (of a
    format split here or another: a PGM frame before a GIF one was taken for bytes between images; trial 87)."""
    return end == len(data) or _format_at(data, end) is not None or bool(_FOLLOWING.match(data, end))


def _spaced(data: bytes, at: int) -> bool:
    """Whether whitespace (a shell loop's ``echo``) begins at ``at`` or not, and another image follows it."""
    after = _SPACE.match(data, at).end()  # type: ignore[union-attr]
    return after < len(data) and _ends_cleanly(data, after)


def _begins_at(data: bytes, at: int) -> bool:
    """Whether an image of a format split here, or of another that aetool looks for, begins at ``at``."""
    return _format_at(data, at) is not None or bool(_OTHER_FORMAT.match(data, at))


def _frame_inside(data: bytes, at: int, end: int, end_of: Callable[[bytes, int], int | None] | None) -> bool:
    """Whether the image beginning at ``at``, inside one that ``end_of`` says ends at ``end``, is a frame of its
    own, that image cut short and claiming its bytes: it is whole, and it runs past ``end``, or ends where the
    bytes end or another image begins, or the outer image's end is no more than a size in its header (BMP, Netpbm,
    WebP: a frame cut short claims whatever follows). Otherwise it is the outer image's own bytes: pixels that
    happen to read ``FF D8 FF E0``, or a thumbnail in a PNG's eXIf chunk (a PNG's end is checked by its CRCs)."""
    inner = _image_end(data, at)
    sized = end_of in (_bmp_end, _netpbm_end, _webp_end)
    return inner is not None and (sized or inner > end or _ends_cleanly(data, inner))


def _next_image(data: bytes, at: int) -> int | None:
    """The offset of the next image that begins at or after ``at``: a PNG, JPEG or WebP signature, or a BMP or
    Netpbm one where a whole image follows that ends cleanly, or with only whitespace (``echo``'s newline) between
    it and the next image or the end (PPM frames each followed by a newline were one input, or lost; trial 86);
    None for none."""
    for begins in _candidates(data, at):
        if _STRONG.match(data, begins):
            return begins
        end = _image_end(data, begins)
        if end is not None and _ends_cleanly(data, _SPACE.match(data, end).end()):  # type: ignore[union-attr]
            return begins
    return None


def _candidates(data: bytes, at: int) -> Iterator[int]:
    """The offsets at or after ``at`` where ``_CANDIDATE`` matches, in order (each prefix's next place found by
    ``bytes.find``; none of them can begin inside a match of another but a strong signature, after which
    :func:`_next_image` looks no further)."""
    found = {prefix: data.find(prefix, at) for prefix in _PREFIXES}
    while any(place >= 0 for place in found.values()):
        begins = min(place for place in found.values() if place >= 0)
        if _CANDIDATE.match(data, begins):
            yield begins
        found.update({prefix: data.find(prefix, begins + 1) for prefix, place in found.items() if place == begins})


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
    """After IEND, walking chunks whose types are four letters and whose CRCs hold (a frame cut short, read on
    into the next one's chunks, claimed them as its own)."""
    at = start + len(_PNG)
    while at + 12 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        after = at + 12 + length  # length, type, data, CRC
        if not kind.isalpha() or after > len(data):
            return None
        if zlib.crc32(data[at + 4 : after - 4]) != int.from_bytes(data[after - 4 : after], "big"):
            return None
        at = after
        if kind == b"IEND":
            return at
    return None


def _jpeg_end(data: bytes, start: int) -> int | None:
    return _jpeg_parse(data, start)[0]


def _jpeg_parse(data: bytes, start: int, *, previews: bool = True) -> tuple[int | None, int]:
    """The offset just after the JPEG's EOI (None when it is damaged or cut short, or another SOI comes first), and
    the offset past its segments up to its first scan (where an EXIF thumbnail, itself a JPEG, lies) as far as they
    were whole, from which to look for the next image when it is damaged. ``previews``: a photo's previews after
    its EOI, as its Multi-Picture index names them, are its bytes (:func:`_previews_end`; while they arrive, the
    offset to look from is where they will end)."""
    at = scan = start + 2
    scanning = False
    pictures = None  # the previews a camera wrote after the photo, as its APP2 Multi-Picture index claims them
    while at + 2 <= len(data):
        if data[at] != 0xFF:
            return None, scan
        scan = scan if scanning else at  # a marker is here: the segments before it were whole
        marker = data[at + 1]
        if marker == 0xFF:  # fill bytes before a marker: to the last of them, in one step
            at = _FILL.match(data, at).end() - 1  # type: ignore[union-attr]
            continue
        at += 2
        if marker == 0xD9:  # EOI
            end = _previews_end(data, at, pictures) if pictures else None
            if end is not None:  # the previews are the photo's bytes; until they have all arrived, none is an image
                return (end, scan) if end <= len(data) else (None, end)
            return at, scan
        if marker == 0xD8:  # SOI: the next image began before this one ended
            return None, scan
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM and RSTn take no length
            continue
        if at + 2 > len(data):
            return None, scan
        segment = at
        at += int.from_bytes(data[at : at + 2], "big")
        if previews and marker == 0xE2 and not scanning and data.startswith(b"MPF\0", segment + 2):
            pictures = _preview_pictures(data, segment + 6)
        if (scanning or marker == 0xDA) and data.find(b"\xff\xd8\xff", segment, at + 1) >= 0:
            return None, scan  # a damaged length claimed the next image's bytes (only APPn segments hold thumbnails)
        if marker == 0xDA:  # SOS: entropy-coded data up to the next marker
            scanning = True
            found = _MARKER.search(data, at)
            if found is None:
                return None, scan
            at = found.start()
    return None, scan


_BYTE_ORDERS: dict[bytes, Literal["little", "big"]] = {b"II": "little", b"MM": "big"}  # a TIFF header's
PREVIEW_BYTES = 1 << 24  # the largest preview taken as a photo's bytes: a Full HD JPEG is about 1 MB


def _preview_pictures(data: bytes, tiff: int) -> list[tuple[int, int]] | None:
    """The pictures after the first that a JPEG's Multi-Picture index names, as (offset in ``data``, size), when
    every one is a preview of the first (CIPA DC-007: a TIFF header at ``tiff`` in the first picture's APP2 segment,
    its MP entries of 16 bytes: attribute, size, offset from that header): a Large Thumbnail (MP type 0x010001,
    0x010002) or a dependent child image, as cameras write after the photo in an ordinary .JPG, which read from a
    file is one image (``images._check_single_frame``) and on standard input was two (trial 94). None otherwise."""
    order = _BYTE_ORDERS.get(data[tiff : tiff + 2])
    if order is None:
        return None

    def number(at: int, size: int) -> int:
        return int.from_bytes(data[at : at + size], order)

    directory = tiff + number(tiff + 4, 4)
    fields = range(directory + 2, directory + 2 + 12 * number(directory, 2), 12)
    entries = next((field for field in fields if number(field, 2) == 0xB002 and field + 12 <= len(data)), None)
    if entries is None:
        return None
    size, table = number(entries + 4, 4), tiff + number(entries + 8, 4)
    if size < 32 or size % 16 or table + size > len(data):
        return None
    pictures = []
    for entry in range(table + 16, table + size, 16):
        attribute = number(entry, 4)
        if not (attribute & 1 << 30 or (attribute & 0xFFFFFF) in (0x010001, 0x010002)):
            return None
        pictures.append((tiff + number(entry + 8, 4), number(entry + 4, 4)))
    return pictures


def _previews_end(data: bytes, eoi: int, pictures: list[tuple[int, int]]) -> int | None:
    """Where a photo's previews (:func:`_preview_pictures`) end after its EOI at ``eoi``, when the bytes bear its
    index out: each a whole JPEG of the size it gives, the first at ``eoi``, each where the one before ends; or,
    for one cut short by the end of the bytes so far with no other image begun in them (a pipe's frame still
    arriving), where it will end. None otherwise, and the pictures are images of their own: a preview stripped
    from the file with its index kept, or a size past the end, claimed the frames after it, lost (trial 97)."""
    at = eoi
    for start, size in pictures:
        if start != at or not 0 < size <= PREVIEW_BYTES or not data.startswith(b"\xff\xd8\xff", at):
            return None
        end = _jpeg_parse(data, at, previews=False)[0]
        if end is None:
            arriving = at + size > len(data) and data.find(b"\xff\xd8\xff", at + 3) < 0
            return at + size if arriving else None
        if end != at + size:
            return None
        at = end
    return at


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
