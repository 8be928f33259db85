"""Where each image of a byte stream ends (runtime.stream), as ffmpeg's image2pipe writes frames."""

import io

import numpy as np
import pytest
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
