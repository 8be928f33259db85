"""Where each image of a byte stream ends (runtime.stream), as ffmpeg's image2pipe writes frames."""

import io
import warnings

import numpy as np
import pytest
from conftest import camera_jpeg
from PIL import Image

from aetool.runtime.files import standard_input
from aetool.runtime.stream import ImageStream, repeated_signature, split_images

RNG = np.random.default_rng(0)
COLOUR = (RNG.random((37, 53, 3)) * 255).astype(np.uint8)
GREY = (RNG.random((30, 21)) * 255).astype(np.uint8)


def encoded(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "image",
    [
        encoded(COLOUR, "PNG"),
        encoded(GREY.astype(np.uint16) * 250, "PNG"),
        encoded(COLOUR, "JPEG", quality=90),
        encoded(COLOUR, "JPEG", progressive=True),
        encoded(COLOUR, "JPEG", restart_marker_blocks=1),
        encoded(COLOUR, "PPM"),
        encoded(GREY, "PPM"),
        encoded(GREY > 128, "PPM"),
        encoded(COLOUR, "BMP"),
        encoded(COLOUR, "WEBP"),
    ],
    ids=["png", "png16", "jpeg", "progressive", "restarts", "ppm", "pgm", "pbm", "bmp", "webp"],
)
def test_a_stream_is_cut_into_its_images(image):
    assert split_images(image) == [image]
    assert split_images(image * 3) == [image] * 3


def test_a_stream_of_mixed_formats():
    parts = [encoded(COLOUR, "PNG"), encoded(GREY, "JPEG"), encoded(GREY, "PPM"), encoded(COLOUR, "WEBP")]
    assert split_images(b"".join(parts)) == parts


def test_bytes_after_an_image_that_begin_no_image_stay_with_it():
    """A motion photo's video after its JPEG, say (with an EXIF thumbnail, a JPEG inside the JPEG): one file, read
    as Pillow reads it."""
    exif = Image.Exif()
    exif[0x010F] = "camera"
    thumbnail = encoded(GREY[:8, :8], "JPEG")
    jpeg = encoded(COLOUR, "JPEG", exif=exif.tobytes())
    app1 = b"\xff\xe1" + (len(thumbnail) + 8).to_bytes(2, "big") + b"Thumb\0" + thumbnail  # a JPEG inside a segment
    photo = jpeg[:2] + app1 + jpeg[2:] + b"\0\0\0\x18ftypmp42 and the rest of a video"
    assert split_images(photo) == [photo]
    assert split_images(b"not an image") == [b"not an image"] and split_images(b"") == [b""]


def test_an_image_of_another_format_is_never_searched():
    """A JPEG-compressed TIFF (or a raw file with JPEG previews) is one image, not cut at its JPEG data."""
    tiff = encoded(COLOUR, "TIFF", compression="jpeg")
    assert b"\xff\xd8\xff" in tiff and split_images(tiff) == [tiff]
    assert split_images(tiff + encoded(GREY, "PNG")) == [tiff + encoded(GREY, "PNG")]  # its end is not known


def test_a_truncated_last_image_is_an_image_of_its_own():
    """Not bytes ignored after the image before it, which would drop the frame without a word."""
    png = encoded(COLOUR, "PNG")
    assert split_images(png + png[:100]) == [png, png[:100]]


def test_a_damaged_image_or_bytes_between_images_lose_nothing_after_them():
    """The stream goes on at the next image: a damaged frame, a newline between two frames or a frame cut short
    dropped every frame after it, exit 0 (trial 61)."""
    png, jpeg, webp = encoded(COLOUR, "PNG"), encoded(GREY, "JPEG"), encoded(COLOUR, "WEBP")
    assert split_images(png + b"\n" + jpeg + b"\r\n" + webp) == [png, b"\n", jpeg, b"\r\n", webp]
    assert split_images(png + png[:400] + jpeg) == [png, png[:400], jpeg]
    damaged = bytearray(png)
    damaged[33:37] = (0x7F000000).to_bytes(4, "big")  # the first chunk after IHDR claims 2 GB
    assert split_images(png + bytes(damaged) + jpeg + png) == [png, bytes(damaged), jpeg, png]
    bmp = encoded(COLOUR, "BMP")
    assert split_images(png + bmp[:600] + jpeg) == [png, bmp[:600], jpeg]  # its header claims the JPEG's bytes
    tail = b"P5 no image"  # a damaged Netpbm frame at the end: an input of its own, which fails
    assert split_images(jpeg + tail) == [jpeg, tail]


def test_an_mpo_is_its_pictures():
    """A stereo pair (an MPO: its APP2 MPF segment, then its pictures one after another) is two images on stdin."""
    jpeg = encoded(GREY, "JPEG")
    mpf = b"MPF\0" + b"\0" * 8
    first = jpeg[:2] + b"\xff\xe2" + (len(mpf) + 2).to_bytes(2, "big") + mpf + jpeg[2:]
    assert split_images(first + jpeg) == [first, jpeg]


def test_a_camera_jpeg_with_a_preview_after_the_photo_is_one_image():
    """The preview its Multi-Picture index names as a Large Thumbnail was a second image on stdin, while the file
    reads as one (trial 94); whole only once the preview has arrived."""
    photo = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    camera = camera_jpeg(photo, photo[::4, ::4].copy())
    png = encoded(GREY, "PNG")
    assert split_images(camera) == [camera] and split_images(camera + png + camera) == [camera, png, camera]
    assert len(split_images(camera_jpeg(photo, photo, mp_type=0x020002))) == 2  # a stereo pair: two pictures
    stream = ImageStream(io.BytesIO(camera + png), read_size=len(camera) - 100)
    assert list(stream) == [camera, png]
    with Image.open(io.BytesIO(camera)) as opened:
        photo_bytes = opened.mpinfo[0xB002][0]["Size"]
    stripped = camera[:photo_bytes]  # its preview cut off, its index kept: it claimed the frames after it (trial 97)
    jpeg = encoded(GREY, "JPEG")
    assert split_images(stripped + png + jpeg) == [stripped, png, jpeg]
    assert split_images(stripped + jpeg[:-40] + png) == [stripped, jpeg[:-40], png]  # not a whole preview: a frame


def damaged(data: bytes, rng: np.random.Generator) -> bytes:
    """``data`` with one change at a random place: a byte set, up to 30 bytes cut out, or up to 10 put in."""
    changed = bytearray(data)
    at = int(rng.integers(0, len(changed)))
    change = rng.integers(0, 3)
    if change == 0:
        changed[at] = int(rng.integers(0, 256))
    elif change == 1:
        del changed[at : at + int(rng.integers(1, 30))]
    else:
        changed[at:at] = rng.integers(0, 256, int(rng.integers(1, 10)), dtype=np.uint8).tobytes()
    return bytes(changed)


def test_no_byte_of_a_damaged_stream_is_lost_and_nothing_raises():
    """Streams of every format, damaged at random (bytes changed, cut out, put in): the parts always join back into
    the stream, so every byte reaches an input that is done or fails with its line."""
    frames = [encoded(COLOUR, fmt) for fmt in ("PNG", "JPEG", "PPM", "BMP", "WEBP")] + [encoded(GREY, "PPM")]
    rng = np.random.default_rng(1)
    for _ in range(500):
        data = b"".join(frames[i] for i in rng.integers(0, len(frames), rng.integers(1, 6)))
        for _ in range(rng.integers(0, 4)):
            data = damaged(data, rng)
        assert b"".join(split_images(data)) == data


def test_hostile_headers_do_not_raise():
    """A Netpbm size of 5,000 digits (int() refuses over 4,300) and a long run of JPEG fill bytes."""
    huge = b"P5 " + b"9" * 5000 + b" 3 255\n"
    assert split_images(huge) == [huge]
    fill = b"\xff\xd8\xff" + b"\xff" * 100_000
    assert split_images(fill) == [fill]


@pytest.mark.parametrize("fmt", ["PPM", "BMP", "JPEG", "PNG"])
def test_a_damaged_frame_of_a_one_format_stream_fails_alone(fmt):
    """A PPM or BMP frame cut short, a JPEG segment length gone wrong, a PNG cut in its last chunk: the frames
    after it were dropped without a word, exit 0, where only PNG, JPEG and WebP signatures were looked for (trial
    62)."""
    frames = [encoded(np.roll(COLOUR, shift, axis=1), fmt) for shift in range(5)]
    damaged = bytearray(frames[2])
    if fmt == "JPEG":
        damaged[4:6] = b"\xff\xff"  # its APP0 segment claims 64 KiB, the next frames' bytes
    else:
        del damaged[-10:]
    parts = split_images(b"".join([*frames[:2], bytes(damaged), *frames[3:]]))
    assert parts[:2] == frames[:2] and parts[-2:] == frames[3:] and b"".join(parts[2:-2]) == bytes(damaged)


def test_damage_at_either_end_of_a_stream_is_an_input_of_its_own():
    png = encoded(COLOUR, "PNG")
    assert split_images(b"\n" + png + png) == [b"\n", png, png]  # it was one input: nothing of the stream read
    assert split_images(png + png + b"\x00" + png[1:]) == [png, png, b"\x00" + png[1:]]  # it went with the one before


def test_a_stream_of_a_format_whose_end_is_not_found_is_said():
    tiff = encoded(COLOUR, "TIFF")
    assert split_images(tiff + tiff) == [tiff + tiff] and repeated_signature(tiff + tiff) == len(tiff)
    assert repeated_signature(tiff) is None and repeated_signature(encoded(COLOUR, "PNG") * 2) is None
    with pytest.warns(UserWarning, match=rf"signature comes again at byte {len(tiff):,}\): only the first is read"):
        assert [item.label for item in standard_input(ImageStream(io.BytesIO(tiff + tiff)))] == ["-"]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "PPM", "BMP", "WEBP"])
def test_every_intact_frame_after_a_damaged_one_is_an_input_of_its_own(fmt):
    """500 streams of one format (as ffmpeg writes them), one frame damaged at random in each: the frames after
    it always come out whole, each its own input."""
    rng = np.random.default_rng(3)
    kinds = [encoded((rng.random((13, 17, 3)) * 255).astype(np.uint8), fmt) for _ in range(3)]
    for _ in range(500):
        frames = [kinds[i] for i in rng.integers(0, 3, 8)]
        which = int(rng.integers(0, 8))
        after = frames[which + 1 :]
        parts = split_images(b"".join([*frames[:which], damaged(frames[which], rng), *after]))
        assert not after or parts[-len(after) :] == after


class Trickle(io.RawIOBase):
    """A pipe's bytes as reads of random sizes return them, recording how many bytes were read."""

    def __init__(self, data: bytes, rng: np.random.Generator, *, largest: int = 8000) -> None:
        self.data, self.rng, self.largest, self.at = data, rng, largest, 0

    def read1(self, size: int = -1) -> bytes:
        taken = self.data[self.at : self.at + min(size, int(self.rng.integers(1, self.largest)))]
        self.at += len(taken)
        return taken


def test_a_stream_read_as_it_arrives_gives_the_parts_of_the_whole(monkeypatch):
    """ImageStream settles parts as the bytes come, in reads of any size and with the writer pausing anywhere,
    and always gives split_images' parts of the whole stream: damaged frames, bytes between frames, one image
    with bytes after it (a motion photo), no bytes at all."""
    from aetool.runtime import stream

    rng = np.random.default_rng(4)
    monkeypatch.setattr(stream, "_readable", lambda _: rng.random() < 0.5)  # the writer paused after half the reads
    frames = [encoded(COLOUR, fmt) for fmt in ("PNG", "JPEG", "PPM", "BMP", "WEBP")] + [encoded(GREY, "JPEG")]
    streams = [b"", b"not an image", encoded(COLOUR, "JPEG") + b"\0\0\0\x18ftypmp42 a video", encoded(COLOUR, "TIFF")]
    for _ in range(400):
        picked = [frames[i] + b"\n" * int(rng.random() < 0.2) for i in rng.integers(0, len(frames), rng.integers(1, 8))]
        data = b"".join(picked)
        for _ in range(rng.integers(0, 3)):
            data = damaged(data, rng)
        streams.append(data)
    for data in streams:
        images = ImageStream(Trickle(data, rng))
        assert list(images) == split_images(data)
        assert images.one_part == (len(split_images(data)) == 1)


def test_each_image_of_a_stream_is_given_before_the_stream_is_read_to_its_end(monkeypatch):
    """A writer that pauses after each frame (a camera): the first frame is given once the second arrived (until
    then it may be the stream's only image, with bytes after it that are its own), each later one as soon as it
    is whole; not once the whole stream was read (a camera's pipe does not end)."""
    from aetool.runtime import stream

    monkeypatch.setattr(stream, "_readable", lambda _: False)  # nothing more to read after each frame
    frames = [encoded(np.roll(COLOUR, n, axis=0), "PNG") for n in range(4)]
    pipe = io.BytesIO(b"".join(frames))
    pipe.read1 = lambda size=-1: pipe.read(len(frames[0]))  # type: ignore[method-assign]  # a frame a read
    images = ImageStream(pipe)
    read_when_given = [(part, pipe.tell()) for part in images]
    assert [part for part, _ in read_when_given] == frames
    ends = np.cumsum([len(frame) for frame in frames]).tolist()
    assert [read for _, read in read_when_given] == [ends[1], *ends[1:]]
    assert images.one_part is False


def test_a_non_blocking_pipe_is_waited_on_not_taken_for_its_end():
    """A pipe another process set non-blocking (O_NONBLOCK is shared by every process that holds it): a read with
    nothing there yet returns None, which is not the stream's end."""
    import os
    import threading
    import time

    frames = [encoded(np.roll(COLOUR, n, axis=1), "PNG") for n in range(3)]
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)

    def write() -> None:
        with open(write_end, "wb", buffering=0) as pipe:
            for frame in frames:
                time.sleep(0.2)
                pipe.write(frame)

    writer = threading.Thread(target=write)
    writer.start()
    with open(read_end, "rb") as pipe:
        assert list(ImageStream(pipe)) == frames
    writer.join()


def bright() -> np.ndarray:
    """A 4×4 picture two of whose pixels are written, in BMP's BGR and in PPM's RGB order alike, as the bytes
    FF D8 FF E0: a JPEG's SOI and APP0 (bright pink beside near white; any light photo has such runs)."""
    pixels = np.full((4, 4, 3), 200, np.uint8)
    pixels[1, 1], pixels[1, 2] = (255, 216, 255), (224, 255, 255)
    return pixels


@pytest.mark.parametrize("fmt", ["BMP", "PPM"])
def test_a_whole_frame_followed_by_a_newline_is_not_cut_at_jpeg_like_bytes_inside_it(fmt):
    """A newline after a whole BMP or PPM frame whose pixels hold the bytes FF D8 FF E0: the frame stays whole
    (it was cut there into two inputs that failed, and the numbering shifted)."""
    pixels = bright()
    frame = encoded(pixels[..., ::-1].copy() if fmt == "BMP" else pixels, fmt)
    assert b"\xff\xd8\xff\xe0" in frame
    assert split_images(frame + b"\n" + frame) == [frame, b"\n", frame]
    assert split_images(frame + frame + b"\n") == [frame, frame, b"\n"]  # a trailing newline (… ; echo)
    labels = [item.label for item in standard_input(ImageStream(io.BytesIO(frame + b"\n" + frame)))]
    assert labels == ["-:1", f"-:byte {len(frame)}", "-:2"]


@pytest.mark.parametrize("into", [0, 1, 2, 3, 4])
def test_a_segment_length_landing_in_the_next_frames_signature_does_not_swallow_that_frame(into):
    """A damaged length after a JPEG's first scan that lands ``into`` bytes into the next frame: 2 (on its first
    marker) left the signature's last FF outside the bytes searched, and both frames became one damaged input."""
    first, after = encoded(COLOUR, "JPEG", progressive=True), encoded(GREY, "JPEG")
    table = first.find(b"\xff\xc4", first.find(b"\xff\xda")) + 2  # a DHT's length, after the first SOS
    lands = len(first) - table + into
    damaged = first[:table] + lands.to_bytes(2, "big") + first[table + 2 :]
    assert split_images(damaged + after) == [damaged, after]


def test_a_bmp_header_claiming_under_26_bytes_is_no_image_and_the_split_ends():
    """A stray "BM" whose size field says 0 (no BMP is under 26 bytes, its two headers): taken as an empty image
    that ends where it begins, the split would never move on (the command hangs, its memory growing)."""
    import signal

    def stop(*_):
        raise TimeoutError("the split did not end within 5 s")

    png = encoded(COLOUR, "PNG")
    stray = b"BM\0\0\0\0 and some bytes"
    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 5)
    try:
        assert split_images(png + stray) == [png, stray]
        assert split_images(stray) == [stray]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_netpbm_maxval_of_256_has_two_bytes_a_sample():
    """Netpbm: one byte a sample for a maxval under 256, two from 256 on; taking 256 as one byte cut each frame
    of a 9-bit PGM stream in half."""
    pgm = b"P5 4 2 256\n" + bytes(range(16))
    assert Image.open(io.BytesIO(pgm)).size == (4, 2)
    assert split_images(pgm * 2) == [pgm, pgm]


def test_a_pbm_frame_whose_width_is_a_multiple_of_8_has_no_padding_byte():
    """P4 rows are padded to whole bytes: a width of 16 is 2 bytes a row, not 3."""
    pbm = encoded(RNG.random((5, 16)) > 0.5, "PPM")
    assert pbm.startswith(b"P4") and split_images(pbm * 3) == [pbm] * 3


def test_a_netpbm_header_may_hold_comments():
    """'# …' comments may come between a Netpbm header's numbers (GIMP, ImageMagick and netpbm's tools write one)."""
    ppm = b"P6\n# written by hand\n2 2\n255\n" + bytes(range(12))
    assert Image.open(io.BytesIO(ppm)).size == (2, 2)
    assert split_images(ppm * 3) == [ppm] * 3


def test_a_jpeg_cut_in_its_headers_ends_at_the_next_frames_soi():
    """A frame cut short between two header segments, the next frame's SOI where its next marker should be: that
    SOI ends it. Read as a segment instead, the next frame's first bytes (FF E0 = 65,504) become a length that
    here lands on the third frame's first marker, and three frames become one damaged input."""
    jpeg = encoded(GREY, "JPEG")
    assert jpeg[2:6] == b"\xff\xe0\x00\x10"  # SOI, then an APP0 of 16 bytes: a cut after it is between segments
    cut = jpeg[:20]
    pad = 65504 - len(jpeg) - 4  # a comment segment makes the middle frame 65,504 bytes long
    middle = jpeg[:20] + b"\xff\xfe" + (pad + 2).to_bytes(2, "big") + b"\0" * pad + jpeg[20:]
    assert len(middle) == 65504 and Image.open(io.BytesIO(middle)).size == (21, 30)
    assert split_images(cut + middle + jpeg) == [cut, middle, jpeg]


def test_a_segment_length_gone_wrong_after_the_first_scan_does_not_swallow_the_next_frame():
    """A progressive JPEG's Huffman table between two scans whose length claims the next frame's first
    segments: the frame after it is its own input, not the tail of one damaged input (a lost frame)."""
    first, after = encoded(COLOUR, "JPEG", progressive=True), encoded(GREY, "JPEG")
    table = first.find(b"\xff\xc4", first.find(b"\xff\xda")) + 2  # a DHT after the first SOS: its length
    lands = len(first) - table + after.find(b"\xff\xdb")  # on the next frame's DQT marker
    damaged = first[:table] + lands.to_bytes(2, "big") + first[table + 2 :]
    assert split_images(damaged + after) == [damaged, after]


def test_fill_bytes_before_a_jpeg_marker_are_no_damage():
    """Any number of 0xFF fill bytes may come before a JPEG marker (T.81 B.1.1.2): such a frame is whole, so a
    newline after it is an input of its own, not bytes glued to the frame."""
    jpeg = encoded(GREY, "JPEG")
    table = jpeg.find(b"\xff\xdb")
    filled = jpeg[:table] + b"\xff\xff" + jpeg[table:]
    assert Image.open(io.BytesIO(filled)).size == (21, 30)
    assert split_images(filled + b"\n" + filled) == [filled, b"\n", filled]


class Reads(io.RawIOBase):
    """A pipe whose reads return the given numbers of bytes, then the rest."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes, self.at = data, list(sizes), 0

    def read1(self, size: int = -1) -> bytes:
        taken = self.data[self.at : self.at + (self.sizes.pop(0) if self.sizes else size)]
        self.at += len(taken)
        return taken


def test_bytes_that_are_no_image_wait_for_two_whole_images_after_them():
    """A stray "BM" in bytes between frames whose size field, once the stream is read further, ends cleanly two
    frames on: with one whole frame after them, the bytes before it were settled too early and the stream's
    parts differed from split_images' of the whole (a frame given twice over, others missing)."""
    png = encoded(COLOUR, "PNG")
    stray = b"BM" + (6 + 2 * len(png)).to_bytes(4, "little")
    data = png + b"x" + stray + png + png + png
    first_read = len(png) + 1 + len(stray) + len(png) + 100  # one whole frame after the stray bytes, then a bit
    assert list(ImageStream(Reads(data, [first_read]))) == split_images(data)


def test_a_stream_of_gif89a_images_is_said_to_be_read_as_its_first():
    """GIF89a (any GIF with transparency or animation) is the common GIF: several one after another on standard
    input are warned about like GIF87a, TIFF or QOI."""
    gif = encoded(GREY, "GIF", transparency=0)
    assert gif.startswith(b"GIF89a") and repeated_signature(gif + gif) == len(gif)


def test_an_image_of_a_format_whose_end_is_not_found_is_numbered_in_a_stream():
    """A TIFF after two PNG frames is the third image (-:3, written as stdin-000003), not bytes between images."""
    png, tiff = encoded(COLOUR, "PNG"), encoded(GREY, "TIFF")
    labels = [item.label for item in standard_input(ImageStream(io.BytesIO(png + png + tiff)))]
    assert labels == ["-:1", "-:2", "-:3"]


def test_a_riff_file_that_is_no_webp_is_bytes_between_images():
    """RIFF also holds WAV and AVI: between two frames it begins no image, so it is labelled by its bytes and the
    frames keep the numbers -:1, -:2."""
    png = encoded(COLOUR, "PNG")
    wave = b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + bytes(28)
    labels = [item.label for item in standard_input(ImageStream(io.BytesIO(png + wave + png)))]
    start = len(png)
    assert labels == ["-:1", f"-:bytes {start}-{start + len(wave) - 1}", "-:2"]


def with_chunk(png: bytes, kind: bytes, content: bytes) -> bytes:
    """``png`` with a chunk of ``kind`` holding ``content`` before its IEND chunk."""
    import zlib

    chunk = len(content).to_bytes(4, "big") + kind + content + zlib.crc32(kind + content).to_bytes(4, "big")
    return png[:-12] + chunk + png[-12:]


def test_a_whole_png_holding_a_whole_jpeg_is_one_image_before_bytes_that_are_none():
    """A thumbnail in a PNG's chunk is the PNG's bytes, also when a newline follows the PNG (a PNG's end is
    checked by its CRCs, so the PNG is whole)."""
    png = with_chunk(encoded(COLOUR, "PNG"), b"thMb", encoded(GREY, "JPEG"))
    assert Image.open(io.BytesIO(png)).size == (53, 37)
    assert split_images(png + b"\n" + png) == [png, b"\n", png]


@pytest.mark.parametrize("fmt", ["BMP", "PPM", "WEBP"])
def test_a_frame_cut_short_before_a_whole_one_and_a_newline_loses_neither(fmt):
    """A BMP, Netpbm or WebP frame cut short, whose header's size claims the whole next frame and the newline
    after it: the next frame is its own input all the same."""
    cut = encoded(COLOUR, fmt)[:600]
    png = encoded(COLOUR[:20], "PNG")
    assert split_images(cut + png + b"\n" + png) == [cut, png, b"\n", png]


def test_images_of_a_format_whose_end_is_not_found_inside_a_stream_are_numbered_and_said():
    """Two GIFs (or plain P3 PPMs) between PNG frames were one input, of which Pillow read the first, and the second
    was lost without a word, exit 0; a P3 image was taken for bytes between images (-:bytes 88-12935; trial 86)."""
    png, gif = encoded(COLOUR, "PNG"), encoded(GREY, "GIF")
    plain = b"P3\n# plain\n2 1\n255\n1 2 3  4 5 6\n"
    assert Image.open(io.BytesIO(plain)).size == (2, 1) and repeated_signature(plain + plain) == len(plain)
    assert repeated_signature(plain) is None and repeated_signature(b"P3\n1 1\n9\nP3 4 5 6\n") == 9
    for other in (gif, plain):
        stream = png + other + other + png
        with pytest.warns(UserWarning, match=rf"^-:2 seems to hold several images .* at byte {len(png + other):,} of"):
            labels = [item.label for item in standard_input(ImageStream(io.BytesIO(stream)))]
        assert labels == ["-:1", "-:2", "-:3"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one such image among the frames: nothing to say
        assert len(list(standard_input(ImageStream(io.BytesIO(png + plain + png))))) == 3


@pytest.mark.parametrize("fmt", ["PPM", "BMP"])
def test_netpbm_or_bmp_frames_each_followed_by_a_newline_are_each_an_input(fmt, monkeypatch):
    """`for f in *.ppm; do cat $f; echo; done | aetool denoise -` was one input (a BMP or Netpbm frame was taken as
    one only where another image or the end followed it at once), or lost the middle frames as bytes between
    images (trial 86); on a pipe that stays open, each is given before the stream ends."""
    from aetool.runtime import stream

    frames = [encoded(np.roll(COLOUR, n, axis=1), fmt) for n in range(5)]
    assert split_images(b"".join(frame + b"\n" for frame in frames)) == [
        part for frame in frames for part in (frame, b"\n")
    ]
    assert split_images(b"\r\n".join(frames)) == [
        frames[0],
        *(part for frame in frames[1:] for part in (b"\r\n", frame)),
    ]
    monkeypatch.setattr(stream, "_readable", lambda _: False)  # the writer pauses after each frame and newline
    pipe = io.BytesIO(b"".join(frame + b"\n" for frame in frames))
    pipe.read1 = lambda size=-1: pipe.read(len(frames[0]) + 1)  # type: ignore[method-assign]  # a frame a read
    given = [(part, pipe.tell()) for part in ImageStream(pipe)]
    assert [part for part, _ in given] == [part for frame in frames for part in (frame, b"\n")]
    assert given[0][1] < len(pipe.getvalue())  # the first frame before the stream's end


def test_frames_of_other_formats_between_split_frames_end_those_before_them():
    """A PGM or BMP frame before a TIFF, GIF or plain P3 one was taken for bytes between images, with the frames
    after it: 5 frames in, 3 done, exit 0 (trial 87)."""
    png, tiff, pgm, gif, bmp = (encoded(GREY, fmt) for fmt in ("PNG", "TIFF", "PPM", "GIF", "BMP"))
    plain = b"P3\n2 1\n255\n1 2 3  4 5 6\n"
    for frames in ([png, tiff, pgm, gif, png], [png, plain, bmp, tiff, png], [png, gif, pgm, plain, bmp, png]):
        assert split_images(b"".join(frames)) == frames
    stream = png + b"\n" + gif + b"\n" + png  # a shell loop's echo: the GIF was "-:bytes …", glued to its newline
    labels = [item.label for item in standard_input(ImageStream(io.BytesIO(stream)))]
    assert labels == ["-:1", f"-:byte {len(png)}", "-:2", "-:3"]


def test_a_whole_frame_before_whitespace_and_a_frame_is_not_searched_inside():
    """A PGM whose pixels hold a whole PNG, then a newline: it was cut at the inner PNG into bogus inputs."""
    inner = encoded(GREY[:2, :2], "PNG")
    pixels = np.frombuffer(bytes(30 * 21 - len(inner)) + inner, np.uint8).reshape(30, 21)
    pgm = encoded(pixels, "PPM")
    assert inner in pgm and split_images(pgm + b"\n" + pgm) == [pgm, b"\n", pgm]
    png = encoded(COLOUR, "PNG")
    assert split_images(png + b"\n" + pgm + b"\n" + png) == [png, b"\n", pgm, b"\n", png]
