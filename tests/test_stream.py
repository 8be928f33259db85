"""Where each image of a byte stream ends (runtime.stream), as ffmpeg's image2pipe writes frames."""

import io

import numpy as np
import pytest
from PIL import Image

from aetool.runtime.stream import split_images

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
    """A motion photo's video after its JPEG, say: one file, read as Pillow reads it."""
    jpeg = encoded(COLOUR, "JPEG") + b"\0\0\0\x18ftypmp42 and the rest of a video"
    assert split_images(jpeg) == [jpeg]
    assert split_images(b"not an image") == [b"not an image"] and split_images(b"") == [b""]


def test_a_truncated_last_image_is_an_image_of_its_own():
    """Not bytes ignored after the image before it, which would drop the frame without a word."""
    png = encoded(COLOUR, "PNG")
    assert split_images(png + png[:100]) == [png, png[:100]]


def test_an_mpo_stays_one_file():
    """A JPEG whose APP2 MPF segment says its other pictures follow: Pillow reads it as frames of one image."""
    jpeg = encoded(GREY, "JPEG")
    mpf = b"MPF\0" + b"\0" * 8
    mpo = jpeg[:2] + b"\xff\xe2" + (len(mpf) + 2).to_bytes(2, "big") + mpf + jpeg[2:] + jpeg
    assert split_images(mpo) == [mpo]
