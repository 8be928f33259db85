"""aetool.runtime.images: every image Pillow opens becomes C×H×W in [0, 1]; channels, fitting, padding, encoding."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import camera_jpeg, digit, read, save
from PIL import Image

from aetool.errors import AetoolError, ImageError
from aetool.runtime import images
from aetool.runtime.noise import add_noise
from aetool.runtime.spec import InputSpec


def gray(source) -> np.ndarray:
    """H×W grey pixels of an image file or its bytes, colour converted by luma, as the grey models see them."""
    return images.to_channels(images.read_image(source).pixels, 1)[0][0]


def test_rgba_dark_strokes_on_transparent_become_dark_on_white(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[5:15, 9:11] = (0, 0, 0, 255)  # black opaque stroke, the rest transparent
    pixels = gray(save(tmp_path / "a.png", rgba))
    assert pixels[10, 10] == 0 and pixels[0, 0] == 1
    assert images.is_dark_on_light(pixels)


def test_rgba_light_strokes_on_transparent_become_light_on_black(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[5:15, 9:11] = (255, 255, 255, 255)
    pixels = gray(save(tmp_path / "a.png", rgba))
    assert pixels[10, 10] == 1 and pixels[0, 0] == 0
    assert not images.is_dark_on_light(pixels)


def test_half_transparent_pixels_are_blended(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[2:6, 3] = (0, 0, 0, 255)  # a black stroke on transparent, so the background becomes white ...
    rgba[4, 5] = (0, 0, 0, 128)  # ... and a half-transparent black pixel half gray
    assert gray(save(tmp_path / "a.png", rgba))[4, 5] == pytest.approx(127 / 255, abs=1e-6)


def test_sixteen_bit_images_are_scaled_to_one(tmp_path):
    deep = np.array([[0, 32768], [65535, 1000]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    pixels = gray(tmp_path / "deep.png")
    np.testing.assert_allclose(pixels, deep / 65535, atol=1e-6)
    assert images.read_image(tmp_path / "deep.png").notes == (images.DEEPER,)  # outputs are 8-bit: said
    Image.fromarray((deep // 257).astype(np.uint8)).save(tmp_path / "eight.png")
    assert images.read_image(tmp_path / "eight.png").notes == ()


def _png16(path, values: np.ndarray, colour_type: int, *, transparent: int | None = None, icc: bytes = b""):
    """A 16-bit PNG of H×W×C uint16 ``values`` (colour type 2: RGB, 4: grey + alpha, 6: RGBA), which Pillow does
    not write; ``transparent``: a grey image's (type 0) tRNS value, which Pillow 10.0 does not write; ``icc``: an
    embedded profile (iCCP)."""
    height, width = values.shape[:2]
    raw = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + (chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc)) if icc else b"")
        + (chunk(b"tRNS", struct.pack(">H", transparent)) if transparent is not None else b"")
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("colour_type, channels", [(2, 3), (6, 4), (4, 2)])
def test_sixteen_bit_colour_and_alpha_images_say_they_are_read_at_8_bits(tmp_path, colour_type, channels):
    """A trial's 16-bit RGB PNG and TIFF were read at 8 bits with no note, while the README said 16-bit images are
    read in full: Pillow has no deeper colour mode. The pixels are Pillow's 8 bits; the note says so."""
    values = np.full((3, 4, channels), 65535, np.uint16)
    values[..., 0] = [[0, 300, 40000, 65535]] * 3  # 300: 1.2 of an 8-bit step, which 8 bits read as 1
    decoded = images.read_image(_png16(tmp_path / "deep.png", values, colour_type))
    assert images.REDUCED in decoded.notes and images.DEEPER not in decoded.notes
    np.testing.assert_allclose(decoded.pixels[0, 0], np.array([0, 1, 156, 255]) / 255, atol=1e-6)
    grey = np.full((3, 4, 1), 300, np.uint16)  # 16-bit grey is read in full: no such note
    assert images.read_image(_png16(tmp_path / "grey.png", grey, 0)).notes == (images.DEEPER,)


def test_integer_and_float_pixels_outside_the_scales_read_are_refused_not_clipped(tmp_path):
    """CT numbers (−1000…3000) in a float or int32 TIFF were clipped to [0, 1] in silence: 87 % of an image
    saturated, every negative value 0 (trial 58). A float image just above 1 is read on the 0–255 scale, said."""
    ct = np.linspace(-1000, 3000, 28 * 28, dtype=np.float32).reshape(28, 28)
    Image.fromarray(ct, "F").save(tmp_path / "ct.tif")
    Image.fromarray(ct.astype(np.int32), "I").save(tmp_path / "ct32.tif")
    with pytest.raises(ImageError, match=r"^float pixels -1000…3000, outside both 0–1 and 0–255"):
        images.read_image(tmp_path / "ct.tif")
    with pytest.raises(ImageError, match=r"^integer pixels -1000…3000, outside 0–65535"):
        images.read_image(tmp_path / "ct32.tif")
    over = np.full((28, 28), 0.5, np.float32)
    over[0, 0] = 1.01
    Image.fromarray(over, "F").save(tmp_path / "over.tif")
    decoded = images.read_image(tmp_path / "over.tif")
    assert decoded.notes[0].startswith("float pixels up to 1.01 read on a 0–255 scale")
    assert decoded.pixels.max() == pytest.approx(1.01 / 255)


@pytest.mark.parametrize("stray", [np.nextafter(np.float32(1), np.float32(2)), np.float32(1.0009), np.float32(-1e-7)])
def test_a_float_tiff_in_0_1_with_a_pixel_rounded_past_an_end_is_read_on_0_1_and_clipped(tmp_path, stray):
    """One pixel at 1.0000001 read the image on 0–255, almost black, noted "up to 1"; −1e-7 refused it (trial 88)."""
    values = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    values[1, 1] = stray
    Image.fromarray(values, "F").save(tmp_path / "f.tif")
    decoded = images.read_image(tmp_path / "f.tif")
    np.testing.assert_array_equal(decoded.pixels[0], np.clip(values, 0, 1))
    assert decoded.notes == (images.DEEPER,)


def test_a_16_bit_png_is_read_on_the_16_bit_scale_whatever_pillow_opens_it_as(tmp_path):
    """Pillow before 10.1 opens a 16-bit PNG as ``I``, which a per-image guess read on 0–255 when its values
    stayed under 256 (mode I;16 since: always 0–65535)."""
    Image.fromarray(np.full((4, 4), 200, np.uint16)).save(tmp_path / "low.png")
    with Image.open(tmp_path / "low.png") as opened:
        opened.load()
        as_i = opened.convert("I")
    pixels, note = images._pixels(as_i, sixteen_bit=True)
    assert pixels.max() == pytest.approx(200 / 65535) and note == images.DEEPER
    assert images.read_image(tmp_path / "low.png").pixels.max() == pytest.approx(200 / 65535)


def test_a_float_tiff_of_nan_is_one_line_and_the_batch_goes_on(tmp_path):
    """A trial's 32-bit float TIFF of NaN ended the batch with a traceback (`expected images in [0, 1]`)."""
    from typer.testing import CliRunner

    from aetool.cli import app

    Image.fromarray(np.full((28, 28), np.nan, np.float32), "F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageError, match="784 of its 784 float pixels are NaN or infinite"):
        images.read_image(tmp_path / "nan.tif")
    save(tmp_path / "ok.png", digit())
    result = CliRunner().invoke(
        app, ["reconstruct", str(tmp_path / "nan.tif"), str(tmp_path / "ok.png"), "-o", str(tmp_path / "out")]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok.png"]


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".tiff", ".webp", ".pgm", ".gif"])
def test_common_formats_read_back(tmp_path, suffix):
    ring = digit()
    pixels = gray(save(tmp_path / f"ring{suffix}", ring))
    assert pixels.shape == (28, 28) and pixels.dtype == np.float32
    assert np.abs(pixels - ring / 255).mean() < 0.02


def test_rgb_is_converted_to_luma(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 255  # pure green
    assert gray(save(tmp_path / "g.png", rgb))[0, 0] == pytest.approx(150 / 255, abs=0.01)


def test_bytes_read_like_files(tmp_path):
    path = save(tmp_path / "r.png", digit())
    assert np.array_equal(gray(path.read_bytes()), gray(path))
    data = path.read_bytes()
    for source in (bytearray(data), memoryview(data), io.BytesIO(data)):  # an upload's buffer or spooled file
        assert np.array_equal(gray(source), gray(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"hello, I am text\n", "not an image Pillow can read"),
    ],
)
def test_unreadable_files(tmp_path, content, message):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(ImageError, match=message):
        images.read_image(tmp_path / "bad.png")


def test_truncated_image(tmp_path):
    data = save(tmp_path / "full.png", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        images.read_image(tmp_path / "cut.png")


def _tiff_whose_second_page_has_no_size() -> bytes:
    """A one-page TIFF with a second page (IFD) of one tag, Compression, and no ImageWidth or ImageLength."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(buffer, format="TIFF")
    data = bytearray(buffer.getvalue())
    first = struct.unpack_from("<I", data, 4)[0]
    struct.pack_into("<I", data, first + 2 + 12 * struct.unpack_from("<H", data, first)[0], len(data))
    return bytes(data + struct.pack("<HHHIII", 1, 259, 3, 1, 1, 0))


def _dds_of_an_unknown_pixel_format() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buffer, format="DDS")
    data = bytearray(buffer.getvalue())
    struct.pack_into("<I", data, 80, 0x0A)  # the pixel format's flags: alpha and a FourCC of zero
    return bytes(data)


def _avif_without_its_primary_item() -> bytes:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow reads no AVIF")
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, format="AVIF")
    return buffer.getvalue().replace(b"pitm", b"\0itm", 1)  # its primary item box, unnamed


@pytest.mark.parametrize(
    "damaged", [_tiff_whose_second_page_has_no_size, _dds_of_an_unknown_pixel_format, _avif_without_its_primary_item]
)
def test_a_damaged_file_pillow_raises_no_os_error_on_is_one_image_error(damaged):
    """Pillow raised TypeError ("Missing dimensions"), NotImplementedError and, for the AVIF, RuntimeError on these:
    tracebacks that ended a batch, the good images after them not done (trials 96, 97)."""
    with pytest.raises(ImageError, match="truncated or corrupt image"):
        images.read_image(damaged())


def test_an_error_of_aetools_own_code_while_an_image_is_open_is_not_called_a_corrupt_image(tmp_path, monkeypatch):
    """Relabelling TypeError and KeyError wherever raised made a bug of aetool's every image "truncated or corrupt"
    (trial 97): only Pillow's own are."""

    def broken(image):
        return image.info["no such key"]

    monkeypatch.setattr(images, "_reduced_to_8_bits", broken)
    with pytest.raises(KeyError, match="no such key"):
        images.read_image(save(tmp_path / "d.png", digit()))


def test_an_image_read_from_a_named_pipe_has_no_note_of_the_file_pillow_left_open(tmp_path):
    """``aetool denoise <(cat a.png)``: Pillow's ResourceWarning for the pipe it left open was the image's note,
    "Pillow: unclosed file <_io.BufferedReader …>" (trial 96)."""
    import os
    import threading

    data = save(tmp_path / "d.png", digit()).read_bytes()
    os.mkfifo(tmp_path / "pipe")
    writer = threading.Thread(target=(tmp_path / "pipe").write_bytes, args=(data,))
    writer.start()
    decoded = images.read_image(tmp_path / "pipe")
    writer.join()
    assert np.array_equal(decoded.pixels[0], digit() / np.float32(255)) and not decoded.notes


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        images.read_image(tmp_path / "nope.png")


def test_a_paths_image_error_names_the_file_in_a_note_and_keeps_its_one_line(tmp_path):
    """A script reading many files got "not an image Pillow can read" with no path (trial 83); the commands put
    the path before the message themselves, so it goes in a note, which a traceback shows."""
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageError) as caught:
        images.read_image(str(tmp_path / "text.png"))
    assert str(caught.value) == "not an image Pillow can read"
    assert caught.value.__notes__ == [f"reading {tmp_path / 'text.png'}"]
    with pytest.raises(ImageError) as from_bytes:
        images.read_image(b"not an image")
    assert not hasattr(from_bytes.value, "__notes__")


def test_paths_as_text_or_path_like_read_like_paths(tmp_path):
    path = save(tmp_path / "r.png", digit())

    class PathLike:
        def __fspath__(self) -> str:
            return str(path)

    assert np.array_equal(gray(str(path)), gray(path))  # was: 'str' object has no attribute 'is_file'
    assert np.array_equal(gray(PathLike()), gray(path))
    with pytest.raises(ImageError, match="no such file"):
        images.read_image(str(tmp_path / "nope.png"))
    with pytest.raises(
        TypeError, match=r"a path \(str, Path or os.PathLike\), the file's bytes or a binary file object, got PIL\."
    ):
        images.read_image(Image.open(path))
    with pytest.raises(TypeError, match=r"a _io.StringIO read gave str, not bytes \(open the file with 'rb'\)"):
        images.read_image(io.StringIO("abc"))  # named builtins.str, not the object passed (trial 65)
    with open(path) as text, pytest.raises(TypeError, match=r"read gave str, not bytes \(open the file with 'rb'\)"):
        images.read_image(text)  # a PNG opened in text mode: a UnicodeDecodeError traceback (trial 67)


@pytest.mark.parametrize("side", [40, 60])  # over the limit (a warning in Pillow), over twice the limit (an error)
def test_decompression_bombs_are_refused(tmp_path, monkeypatch, side):
    path = save(tmp_path / "bomb.png", np.zeros((side, side), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bomb"):
        images.read_image(path)


def test_set_pixel_limit_moves_the_bomb_limit(tmp_path, monkeypatch):
    path = save(tmp_path / "big.png", np.zeros((40, 40), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    images.set_pixel_limit(megapixels=0.001)
    with pytest.raises(ImageError, match=r"1,600 pixels, over the limit of 1,000 \(aetool --max-megapixels"):
        images.read_image(path)
    images.set_pixel_limit(megapixels=0.0016)
    assert images.read_image(path).pixels.shape == (1, 40, 40)
    for megapixels in (0.0, -1.0, float("nan"), float("inf"), "x", None, True):  # "x" was a raw comparison error
        with pytest.raises(ValueError, match="set_pixel_limit takes megapixels above 0"):
            images.set_pixel_limit(megapixels=megapixels)


def test_sixteen_bit_pixels_are_told_to_divide_by_65535_not_255():
    """uint16 images were told "for 8-bit pixels (0–255) pass images.astype(np.float32) / 255" (trial 65)."""
    with pytest.raises(ValueError, match=r"got uint16 values; for 16-bit pixels \(0–65535\) pass .* / 65535$"):
        images.luma(np.zeros((3, 4, 4), np.uint16))


def test_polarity_is_judged_by_the_border():
    ring = digit() / 255
    assert not images.is_dark_on_light(ring)
    assert images.is_dark_on_light(1 - ring)


def test_helpers_that_read_pixel_values_refuse_eight_bit_pixels_rather_than_misjudge_them():
    eight_bit = np.maximum(digit(), 1)[None]  # white on black, 0–255: its border (1) is dark
    for helper in (images.is_dark_on_light, images.luma, lambda p: images.to_channels(np.repeat(p, 3, 0), 1)):
        with pytest.raises(ValueError, match=r"expected float pixels in \[0, 1\], got uint8 values.*/ 255"):
            helper(eight_bit)
    assert images.pad_to(eight_bit, (30, 30)).dtype == np.uint8  # padding moves values, never scales them
    with pytest.raises(ValueError, match=r"got an image of shape \(1, 0, 0\)"):
        images.is_dark_on_light(np.zeros((1, 0, 0), np.float32))


def test_a_nan_pixel_is_named_as_nan():
    pixels = np.full((1, 4, 4), 0.5, np.float32)
    pixels[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match=r"expected images in \[0, 1\], got 1 NaN values$"):
        images.check_pixels(pixels, scan=True)


def test_fit_scales_the_ink_to_twenty_pixels_and_centres_it():
    wide = np.zeros((100, 160), np.float32)
    wide[30:70, 20:140] = 1  # a 40×120 bar with a margin
    fit = images.fit(wide[None], (28, 28))
    fitted = fit.pixels[0]
    assert fitted.shape == (28, 28) and fit.crop == (30, 20, 70, 140) and fit.size == (100, 160)
    rows, cols = np.flatnonzero(fitted.max(axis=1) > 0.5), np.flatnonzero(fitted.max(axis=0) > 0.5)
    assert cols[-1] - cols[0] + 1 == 20 and 6 <= rows[-1] - rows[0] + 1 <= 8
    assert abs((cols[0] + cols[-1]) / 2 - 13.5) <= 0.5 and abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1
    assert fitted.min() >= 0 and fitted.max() <= 1


def test_pages_are_padded_bottom_right_with_black_to_the_models_multiple():
    spec = InputSpec(None, multiple_of=4)
    assert spec.padded(30, 45) == (32, 48) and spec.padded(32, 48) == (32, 48)
    padded = images.pad_to(np.ones((30, 45), np.float32), spec.padded(30, 45))
    assert padded.shape == (32, 48)
    assert padded[:30, :45].min() == 1 and padded[30:].max() == 0 and padded[:, 45:].max() == 0


def test_photos_are_padded_by_mirroring_their_last_rows_and_columns():
    assert not InputSpec(None, multiple_of=4).mirror_padding  # MNIST's world: black, its background
    assert InputSpec(None, multiple_of=4, polarity="as-is").mirror_padding
    photo = np.random.default_rng(0).random((3, 30, 45)).astype(np.float32)
    padded = images.pad_to(photo, (32, 48), mirror=True)
    assert padded.shape == (3, 32, 48) and np.array_equal(padded[:, :30, :45], photo)
    assert np.array_equal(padded[:, 30:, :45], photo[:, [29, 28]]) and np.array_equal(
        padded[:, :30, 45:], photo[..., [44, 43, 42]]
    )
    assert np.array_equal(
        images.pad_to(np.full((1, 1), 0.7, np.float32), (4, 4), mirror=True), np.full((4, 4), 0.7, np.float32)
    )
    bordered = images.pad_to(photo, (48, 64), mirror=True, border=8)  # 8 on top and left, the rest bottom and right
    assert np.array_equal(bordered, np.pad(photo, [(0, 0), (8, 10), (8, 11)], "symmetric"))
    assert InputSpec(None, multiple_of=4, polarity="as-is").border == 8 and InputSpec(None, multiple_of=4).border == 0
    assert InputSpec(None, multiple_of=4, polarity="as-is").padded(30, 45, border=8) == (48, 64)


def test_fast_pngs_hold_the_same_pixels_at_zlib_level_1():
    pixels = np.random.default_rng(2).random((3, 40, 30)).astype(np.float32)
    fast, default = images.encode(pixels, "PNG", fast=True), images.encode(pixels, "PNG")
    assert np.array_equal(read(fast), read(default))

    def zlib_header(png: bytes) -> bytes:  # the first two bytes of the first IDAT chunk's data: FLEVEL in the second
        start = png.index(b"IDAT") + 4
        return png[start : start + 2]

    assert zlib_header(fast) == b"\x78\x01" and zlib_header(default) == b"\x78\x9c"  # levels 1 and 6 (the default)


def test_the_page_limit_counts_the_padding():
    with pytest.raises(ValueError, match="over the"):
        InputSpec(None, multiple_of=8192).padded(28, 28)  # one 28×28 digit would become 67 megapixels


def test_the_page_limit_counts_the_pages_a_fixed_batch_pads_a_call_with():
    assert InputSpec(None, multiple_of=4, batch=100).padded(400, 400) == (400, 400)  # 16.0 M pixels: in
    with pytest.raises(ValueError, match="fixes its batch at 100 images a call"):
        InputSpec(None, multiple_of=4, batch=100).padded(512, 512)  # 26.2 M pixels
    assert InputSpec(None, multiple_of=4).padded(512, 512) == (512, 512)


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "L"), ("JPEG", "L"), ("BMP", "L"), ("TIFF", "L"), ("WEBP", "RGB")])
def test_encode_writes_eight_bit_grayscale(fmt, mode):
    data = images.encode(digit() / 255, fmt)
    with Image.open(__import__("io").BytesIO(data)) as image:
        assert image.format == fmt and image.size == (28, 28) and image.mode == mode


def test_encode_png_is_lossless_for_eight_bit_values():
    ring = digit()
    assert np.array_equal(read(images.encode(ring / 255, "PNG")), ring)


def test_encode_holds_one_float_copy_of_the_image():
    """Clip, scale and round took two float temporaries of a photo's size at once (288 MB each for a 24-megapixel
    colour photo); now one, worked in place. The bytes are the same: round(clip(x) × 255)."""
    import tracemalloc

    pixels = np.zeros((3, 1000, 1000), np.float32)  # 12 MB; zeros encode small
    pixels[:, :2, :3] = [[0.2, 0.5 / 255, 1.5 / 255], [1.2, -0.1, 0.998]]
    tracemalloc.start()
    try:
        data = images.encode(pixels, "PNG")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6  # one float copy (12 MB) and the 8-bit one (3 MB); before: 24 MB and more
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    assert decoded[:2, :3, 0].tolist() == [[51, 0, 2], [255, 0, 254]]


def test_encode_refuses_eight_bit_pixels_and_other_shapes():
    with pytest.raises(ValueError, match=r"got uint8 values; .* pass pixels.astype\(np.float32\) / 255"):
        images.encode(digit(), "PNG")  # was a black-and-white PNG: every nonzero value clipped to 1
    with pytest.raises(ValueError, match="H×W, 1×H×W or 3×H×W"):
        images.encode(np.zeros((2, 4, 4), np.float32), "PNG")
    eight_bit = digit().astype(np.float32)  # 0–255 floats: an all-white image (trial 86)
    with pytest.raises(ValueError, match=r"got values from 0 to 255; for 8-bit pixels pass pixels / 255$"):
        images.encode(eight_bit, "PNG")
    overshoot = np.array([[-0.2, 0.5, 1.2]], np.float32)  # values just beyond [0, 1]: clipped, as before
    assert np.asarray(Image.open(io.BytesIO(images.encode(overshoot, "PNG")))).tolist() == [[0, 128, 255]]


def test_format_names():
    assert images.format_for("jpg") == images.format_for("out.JPEG") == "JPEG"
    assert images.format_for(".tif") == "TIFF"
    with pytest.raises(AetoolError, match="unknown image format 'xyz'"):
        images.format_for("xyz")


def test_side_by_side_is_input_then_output():
    left, right = np.zeros((3, 2)), np.ones((3, 4))
    both = images.side_by_side(left, right)
    assert both.shape == (3, 6) and both[:, :2].max() == 0 and both[:, 2:].min() == 1


def test_unfit_puts_the_result_back_in_the_ink_box_at_the_image_size():
    wide = np.zeros((3, 100, 160), np.float32)
    wide[:, 30:70, 20:140] = 1
    fit = images.fit(wide, (28, 28))
    assert fit.pixels.shape == (3, 28, 28)
    back = images.unfit(fit.pixels, fit)
    assert back.shape == (3, 100, 160) and np.abs(back - wide).mean() < 0.01
    assert back[:, :30].max() == 0 and back[:, :, 140:].max() == 0


def test_resize_keeps_channels_and_range():
    ramp = np.linspace(0, 1, 3 * 20 * 30, dtype=np.float32).reshape(3, 20, 30)
    small = images.resize(ramp, (10, 15))
    assert small.shape == (3, 10, 15) and small.dtype == np.float32 and 0 <= small.min() <= small.max() <= 1
    assert np.abs(images.resize(small, (20, 30)) - ramp)[:, 2:-2, 2:-2].max() < 0.01


def test_resize_takes_a_height_and_a_width_of_whole_pixels():
    ramp = np.linspace(0, 1, 20 * 30, dtype=np.float32).reshape(1, 20, 30)
    for size in (10, (10,), (0, 5), (-1, 5), (5.5, 5), (True, 5), "ab"):  # were TypeErrors or Pillow's ValueError
        with pytest.raises(ValueError, match=r"resize takes size as \(height, width\), two whole numbers > 0, got"):
            images.resize(ramp, size)  # type: ignore[arg-type]
    assert images.resize(ramp, (np.int64(7), 9)).shape == (1, 7, 9)


def test_resize_refuses_a_size_pillow_would_not_take(monkeypatch):
    from PIL import Image

    ramp = np.linspace(0, 1, 4 * 4, dtype=np.float32).reshape(1, 4, 4)
    with pytest.raises(ValueError, match=r"resize refuses 2199023255552×2 pixels \(height×width\): over the"):
        images.resize(ramp, (2**41, 2))  # was Pillow's OverflowError
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"over the 1,000 pixels that Pillow takes \(Image.MAX_IMAGE_PIXELS\)"):
        images.resize(ramp, (40, 26))  # was an attempt at any size: 2**20 × 2**20 filled memory
    assert images.resize(ramp, (40, 25)).shape == (1, 40, 25)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ValueError, match=r"over the 2,147,483,647 a side"):
        images.resize(ramp, (2, 2**31))


def test_channels_first_is_required_not_guessed():
    page = np.zeros((40, 30), np.float32)
    with pytest.raises(ValueError, match=r"resize takes C×H×W pixels, got shape \(40, 30\); .* pixels\[None\]"):
        images.resize(page, (64, 64))  # was 40 channels of 30-pixel rows
    with pytest.raises(ValueError, match="got uint8 values"):
        images.resize(digit()[None], (64, 64))
    with pytest.raises(ValueError, match=r"expected C×H×W or N×C×H×W pixels, got shape \(40, 30\)"):
        images.to_channels(page, 3)  # was an IndexError
    assert images.resize(page[None], (64, 64)).shape == (1, 64, 64)


def test_pad_to_only_grows():
    with pytest.raises(ValueError, match=r"cannot pad 40×30 pixels \(height×width\) to the smaller 32×32"):
        images.pad_to(np.zeros((1, 40, 30), np.float32), (32, 32))
    assert images.pad_to(np.zeros((1, 40, 30), np.float32), (40, 30)).shape == (1, 40, 30)


def test_grey_and_colour_convert_as_pillow_does(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200
    decoded = images.read_image(save(tmp_path / "red.png", rgb))
    assert decoded.channels == 3 and decoded.size == (4, 4)
    grey, note = images.to_channels(decoded.pixels, 1)
    with Image.open(tmp_path / "red.png") as image:
        assert round(float(grey[0, 0, 0]) * 255) == np.asarray(image.convert("L"))[0, 0] and note == "RGB → grey (luma)"
    colour, note = images.to_channels(grey, 3)
    assert colour.shape == (3, 4, 4) and (colour == grey).all() and note == "grey → RGB (replicated)"
    assert images.to_channels(colour, 3)[1] is None


# ---- images from the field: several frames, colour profiles ----


def multi_frame_files(folder) -> dict[str, object]:
    """A 3-page TIFF, an animated GIF and an APNG whose default image (blank) is not part of its animation."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = [Image.fromarray(digit() // n) for n in (1, 2, 3)]
    pages[0].save(folder / "scan.tif", save_all=True, append_images=pages[1:])
    pages[0].save(folder / "anim.gif", save_all=True, append_images=pages[1:])
    Image.new("L", (28, 28)).save(folder / "moving.png", save_all=True, append_images=pages[:1], default_image=True)
    return {"scan.tif": 3, "anim.gif": 3, "moving.png": 2}


def test_images_of_several_frames_are_refused_never_cut_to_their_first(tmp_path):
    for name, frames in multi_frame_files(tmp_path).items():
        with pytest.raises(ImageError, match=rf"has {frames} frames .*split it into one file per frame"):
            images.read_image(tmp_path / name)
    Image.fromarray(digit()).save(tmp_path / "still.gif")
    assert images.read_image(tmp_path / "still.gif").pixels.shape == (1, 28, 28)
    pair = [Image.fromarray(digit()), Image.fromarray(255 - digit())]
    pair[0].save(tmp_path / "pair.mpo", save_all=True, append_images=pair[1:])  # a stereo pair was "an animation"
    with pytest.raises(ImageError, match=r"has 2 frames \(pictures of a stereo or multi-picture JPEG\)"):
        images.read_image(tmp_path / "pair.mpo")


def test_a_camera_jpeg_with_a_preview_after_the_photo_is_the_photo_and_a_stereo_pair_still_refused():
    """Cameras write a Large Thumbnail after the photo in an ordinary .JPG; Pillow opens it as an MPO of two
    pictures, and a folder of such photos was refused whole as stereo pairs (trial 94)."""
    photo = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    preview = photo[::4, ::4].copy()
    data = camera_jpeg(photo, preview)
    decoded = images.read_image(data)
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.format == "MPO" and opened.n_frames == 2
        expected = np.asarray(opened.convert("RGB"))
    assert np.array_equal(np.rint(decoded.pixels * 255).transpose(1, 2, 0), expected) and not decoded.notes
    with pytest.raises(ImageError, match="has 2 frames"):  # the second picture a disparity image: a stereo pair
        images.read_image(camera_jpeg(photo, preview, mp_type=0x020002))


def test_each_picture_of_a_stereo_pair_on_standard_input_is_read(tmp_path):
    """A stream cuts an MPO into its pictures (stream.split_images); the first holds the index that names the second,
    and was refused as "2 frames" while the second was done. It is read as the one picture it holds, as Pillow
    reads the pair's first; the pair as a file is still refused whole."""
    from aetool.runtime.stream import split_images

    colours = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 3), dtype=np.uint8)
    pair = [Image.fromarray(colour) for colour in colours]
    pair[0].save(tmp_path / "pair.mpo", save_all=True, append_images=pair[1:])
    data = (tmp_path / "pair.mpo").read_bytes()
    first, second = split_images(data)
    with Image.open(tmp_path / "pair.mpo") as whole:
        expected = [np.asarray(whole.convert("RGB"))]
        whole.seek(1)
        expected.append(np.asarray(whole.convert("RGB")))
    for picture, pixels in zip((first, second), expected, strict=True):
        read = images.read_image(picture).pixels
        assert read.shape == (3, 28, 28) and np.array_equal(np.rint(read * 255).transpose(1, 2, 0), pixels)
    assert not np.array_equal(expected[0], expected[1])
    with pytest.raises(ImageError, match="has 2 frames"):
        images.read_image(data)


def test_a_batch_with_multi_frame_images_does_the_rest_and_names_each(cli, tmp_path):
    multi_frame_files(tmp_path / "in")
    save(tmp_path / "in" / "ring.png", digit())
    result = cli("denoise", "in", "-o", "out")
    assert result.exit_code == 1 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ring.png"]
    lines = result.stderr.strip().splitlines()
    assert sum("frames" in line for line in lines) == 3 and "1 done, 3 failed" in lines[-1]


def grey_gamma_profile(gamma: float) -> bytes:
    """An ICC v2 display profile of a grey space with a pure gamma curve, written out field by field."""
    import struct

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    d50 = s15(0.9642) + s15(1.0) + s15(0.8249)
    text = b"grey gamma"
    tags = [
        (b"desc", b"desc\0\0\0\0" + struct.pack(">I", len(text) + 1) + text + b"\0" + b"\0" * 8 + b"\0" * 70),
        (b"wtpt", b"XYZ \0\0\0\0" + d50),
        (b"kTRC", b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"),
    ]
    offset, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntrGRAYXYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + d50
        + b"\0" * 48
    )
    return header + struct.pack(">I", len(tags)) + table + body


def test_two_inputs_that_look_alike_in_a_colour_managed_viewer_give_alike_outputs(cli, tmp_path, toy_dir):
    """The same greys as sRGB values (no profile: sRGB) and as linear values under a gamma-1.0 grey profile: read
    through the profile, both are the same image, so a model gives the same output within a few grey levels
    (the linear file's 8 bits are coarser in the darks)."""
    srgb = np.linspace(48, 255, 28 * 28).reshape(28, 28)
    linear = np.where(srgb / 255 <= 0.04045, srgb / 255 / 12.92, ((srgb / 255 + 0.055) / 1.055) ** 2.4)
    save(tmp_path / "srgb.png", np.round(srgb).astype(np.uint8))
    save(tmp_path / "linear.png", np.round(linear * 255).astype(np.uint8), icc_profile=grey_gamma_profile(1.0))
    assert np.abs(read(tmp_path / "linear.png").astype(int) - read(tmp_path / "srgb.png")).max() > 50  # as stored
    result = cli("reconstruct", "srgb.png", "linear.png", "-o", "out", "--model", str(toy_dir / "conv.onnx"))
    assert result.exit_code == 0
    first, second = (read(tmp_path / "out" / name).astype(int) for name in ("srgb.png", "linear.png"))
    assert np.abs(first - second).max() <= 3
    assert "icc_profile" not in Image.open(tmp_path / "out" / "linear.png").info  # sRGB, as untagged images are read


def test_a_16_bit_grey_image_with_an_icc_profile_keeps_its_greys(tmp_path):
    """ImageCms converts 8-bit modes only, and Pillow's own I;16 → L clips at 255: the greys are scaled first."""
    greys = np.linspace(0, 255, 24 * 32).reshape(24, 32).round().astype(np.uint8)
    profile = grey_gamma_profile(2.2)
    save(tmp_path / "eight.png", greys, icc_profile=profile)
    Image.fromarray(greys.astype(np.uint16) * 257).save(tmp_path / "sixteen.png", icc_profile=profile)
    assert Image.open(tmp_path / "sixteen.png").mode.startswith("I")
    eight, sixteen = images.read_image(tmp_path / "eight.png"), images.read_image(tmp_path / "sixteen.png")
    np.testing.assert_array_equal(sixteen.pixels, eight.pixels)
    assert sixteen.notes == ("converted from its embedded ICC profile to sRGB (at 8 bits)",)


def test_notes_name_only_what_reading_changed(tmp_path):
    opaque = np.dstack([digit()] * 3 + [np.full((28, 28), 255, np.uint8)])
    save(tmp_path / "opaque.png", opaque)
    decoded = images.read_image(tmp_path / "opaque.png")
    assert decoded.notes == () and decoded.pixels.shape == (1, 28, 28)
    for value in (0, 9):  # outside EXIF's 1..8: nothing is turned
        exif = Image.Exif()
        exif[0x0112] = value
        Image.fromarray(digit()).save(tmp_path / f"o{value}.jpg", exif=exif)
        assert images.read_image(tmp_path / f"o{value}.jpg").notes == ()


def _damaged_exif(length: int) -> bytes:
    """An EXIF block (Orientation 6 and a description) cut to its first ``length`` bytes."""
    exif = Image.Exif()
    exif[0x0112], exif[0x010E] = 6, "a description long enough to be cut"
    return exif.tobytes()[:length]


@pytest.mark.parametrize("suffix", [".png", ".webp"])
@pytest.mark.parametrize(
    ("block", "said"),
    [
        (b"garbage", "its EXIF block is damaged and was ignored (not a TIFF file"),
        (_damaged_exif(13), "its EXIF block is damaged and was ignored (unpack requires a buffer of 4 bytes)"),
        (_damaged_exif(27), "Pillow: Corrupt EXIF data."),
    ],
    ids=["no-tiff-header", "cut-in-its-header", "cut-in-a-tag"],
)
def test_an_image_with_a_damaged_exif_block_is_read_as_stored_and_says_so(tmp_path, suffix, block, said):
    """Pillow parses a PNG's or WebP's EXIF only when asked: a block that was no TIFF data refused the image as
    corrupt, and one cut short ended a whole batch with a struct.error traceback, though the pixels decode (trial
    88). Its pixels are read, as stored (the orientation in it unread), and a note says what was wrong."""
    Image.fromarray(digit()).save(tmp_path / f"d{suffix}", exif=block, lossless=True)
    decoded = images.read_image(tmp_path / f"d{suffix}")
    assert decoded.pixels.shape[1:] == (28, 28) and decoded.exif == b""
    assert any(note.startswith(said) for note in decoded.notes), decoded.notes
    assert gray(tmp_path / f"d{suffix}") == pytest.approx(digit() / 255, abs=1e-6)


@pytest.mark.parametrize("mode", ["L", "I;16", "RGBA"])
def test_an_uncompressed_tiff_turned_by_its_orientation_reads_upright_not_striped(tmp_path, mode):
    """Pillow 13 reports such a TIFF at its turned size as it opens it, and memory-maps a file's pixels at that
    size: the image came out striped, at its stored size, noted as turned (trial 90). Read as bytes, it is whole."""
    from PIL import TiffImagePlugin

    stored = (np.arange(12 * 20).reshape(12, 20) % 251).astype(np.uint8)  # 20 wide, 12 high
    values = {"L": stored, "I;16": stored.astype(np.uint16) * 257, "RGBA": np.dstack([stored] * 3 + [stored * 0 + 255])}
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[0x0112] = 6  # stored on its side: turned 90° clockwise to be seen
    Image.fromarray(values[mode]).save(tmp_path / "scan.tif", tiffinfo=tags)
    for source in (tmp_path / "scan.tif", (tmp_path / "scan.tif").read_bytes()):
        decoded = images.read_image(source)
        assert decoded.pixels.shape[1:] == (20, 12) and "turned upright by its EXIF orientation (6)" in decoded.notes
        np.testing.assert_allclose(images.to_channels(decoded.pixels, 1)[0][0], np.rot90(stored, -1) / 255, atol=1e-6)


def test_a_16_bit_grey_pngs_transparent_value_is_composited_as_an_8_bit_ones_is(tmp_path):
    """tRNS names one grey value transparent: 8-bit grey PNGs were composited, 16-bit ones read as stored (trial 90)."""
    values = np.full((10, 12), 40000, np.uint16)
    values[2:8, 3:9] = 1000  # a dark mark, the light ground transparent: composited on white, behind dark ink
    _png16(tmp_path / "deep.png", values[..., None], 0, transparent=40000)
    Image.fromarray((values >> 8).astype(np.uint8)).save(tmp_path / "eight.png", transparency=40000 >> 8)
    deep, eight = images.read_image(tmp_path / "deep.png"), images.read_image(tmp_path / "eight.png")
    assert deep.pixels[0, 0, 0] == eight.pixels[0, 0, 0] == 1 and deep.pixels[0, 5, 5] == pytest.approx(1000 / 65535)
    assert eight.notes == ("transparent areas composited on white",)
    assert deep.notes == (f"transparent areas composited on white; {images.DEEPER}",)
    # with a profile, composited before its conversion at 8 bits: the note was lost (trial 92)
    managed = _png16(tmp_path / "icc.png", values[..., None], 0, transparent=40000, icc=grey_gamma_profile(2.2))
    assert images.read_image(managed).notes == (
        "transparent areas composited on white; converted from its embedded ICC profile to sRGB (at 8 bits)",
    )


def test_a_16_bit_tiff_whose_white_is_zero_is_read_inverted(tmp_path):
    """PhotometricInterpretation 0 (WhiteIsZero): Pillow inverts an 8-bit grey TIFF, not a 16-bit one, which was
    read as its negative, 0.94 off, unsaid (trial 90)."""
    from PIL import TiffImagePlugin

    values = (np.arange(12 * 20).reshape(12, 20) * 257).astype(np.uint16)
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[262] = 0
    Image.fromarray(values).save(tmp_path / "white-is-zero.tif", tiffinfo=tags)  # the values stored as given
    Image.fromarray(values).save(tmp_path / "black-is-zero.tif")
    inverted, plain = (images.read_image(tmp_path / f"{name}.tif") for name in ("white-is-zero", "black-is-zero"))
    np.testing.assert_allclose(inverted.pixels[0], 1 - values / 65535, atol=1e-6)
    np.testing.assert_allclose(plain.pixels[0], values / 65535, atol=1e-6)
    assert "white is zero in it (its PhotometricInterpretation): its values inverted" in inverted.notes
    assert not any("white is zero" in note for note in plain.notes)
    # with a profile: inverted before its conversion, as Pillow's own 8-bit reading does (after: mirrored tones)
    tags[34675] = grey_gamma_profile(2.2)
    Image.fromarray(values).save(tmp_path / "managed.tif", tiffinfo=tags)
    del tags[262]
    Image.fromarray(65535 - values).save(tmp_path / "managed-black-is-zero.tif", tiffinfo=tags)
    managed, twin = (images.read_image(tmp_path / f"{name}.tif") for name in ("managed", "managed-black-is-zero"))
    np.testing.assert_array_equal(managed.pixels, twin.pixels)
    del tags[34675]
    tags[262] = 0
    floats = (values / 65535).astype(np.float32)  # a float one was read as its negative too (trial 92)
    Image.fromarray(floats).save(tmp_path / "float.tif", tiffinfo=tags)
    np.testing.assert_allclose(images.read_image(tmp_path / "float.tif").pixels[0], 1 - floats, atol=1e-6)


def test_pillows_warnings_on_an_image_are_its_notes_and_the_tags_read_are_kept(tmp_path):
    """A JPEG's EXIF cut in its last tag: Pillow warns as it opens the file, and the warning was printed without the
    file's name, beside the batch (a trial); the orientation it did read still turns the image."""
    Image.fromarray(digit()[:, :20]).save(tmp_path / "cut.jpg", exif=_damaged_exif(41), quality=100)
    decoded = images.read_image(tmp_path / "cut.jpg")
    pillows = [note for note in decoded.notes if note.startswith("Pillow: ")]  # its words vary by version
    assert pillows and decoded.notes[: len(pillows)] == tuple(pillows) and len(set(pillows)) == len(pillows)
    turned = "turned upright by its EXIF orientation (6)" in decoded.notes  # Pillow 13 reads the tag; 10.0 not
    assert decoded.pixels.shape == ((1, 20, 28) if turned else (1, 28, 20))


def test_encode_refuses_an_exif_block_its_reader_would_not_read_whole():
    """encode wrote b"garbage" as a PNG's EXIF, a file read_image then refused; a str was Pillow's TypeError."""
    pixels = np.full((8, 8), 0.5, np.float32)
    for block in (b"garbage", _damaged_exif(41)):  # Pillow's own words vary by version
        with pytest.raises(ValueError, match=r"^encode takes an EXIF block Pillow reads whole, not this one: ."):
            images.encode(pixels, "PNG", exif=block)
    with pytest.raises(TypeError, match=r"^encode takes exif as bytes .*got str$"):
        images.encode(pixels, "PNG", exif="Canon")  # type: ignore[arg-type]
    whole = Image.Exif()
    whole[0x010F] = "Canon"
    assert images.read_image(images.encode(pixels, "PNG", exif=whole.tobytes())).exif == whole.tobytes()
    bare = whole.tobytes()[6:]  # no "Exif\0\0" (a WebP's own block): a JPEG dropped it, unsaid (trial 92)
    assert images.read_image(images.encode(pixels, "JPEG", exif=bare)).exif == whole.tobytes()


def test_a_batch_with_damaged_exif_blocks_does_every_image_and_names_each_warning(cli, tmp_path):
    for name, length in (("a.png", 13), ("b.jpg", 27), ("c.webp", 27)):
        Image.fromarray(digit()).save(tmp_path / name, exif=_damaged_exif(length))
    result = cli("denoise", "a.png", "b.jpg", "c.webp", "-o", "out")
    assert result.exit_code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]
    assert "a.png: its EXIF block is damaged and was ignored" in result.stderr
    assert "b.jpg: Pillow: Corrupt EXIF data." in result.stderr and "warning" not in result.stderr


def test_a_loop_of_symbolic_links_is_one_failed_input_of_its_batch(cli, tmp_path):
    save(tmp_path / "one.png", digit())
    (tmp_path / "loop1.png").symlink_to("loop2.png")
    (tmp_path / "loop2.png").symlink_to("loop1.png")
    result = cli("denoise", "one.png", "loop1.png", "-o", "out")
    assert result.exit_code == 1 and [p.name for p in (tmp_path / "out").iterdir()] == ["one.png"]
    assert "loop1.png: a loop of symbolic links" in result.stderr and "1 done, 1 failed" in result.stderr


def test_luma_and_the_page_test_refuse_a_batch():
    """A batch gave the first image's luma (1×H×W, not H×W) and a wrong page verdict, silently."""
    page = np.zeros((1, 28, 28), np.float32)
    page[:, :2], page[:, -2:], page[:, :, :2], page[:, :, -2:] = 1, 1, 1, 1  # a white frame: a light page
    assert images.is_dark_on_light(page) and images.luma(page).shape == (28, 28)
    for function in (images.luma, images.is_dark_on_light):
        with pytest.raises(ValueError, match=r"expected H×W or C×H×W pixels of one image, got shape \(1, 1, 28, 28\)"):
            function(page[None])


@pytest.mark.parametrize("fmt", [".png", "pgm", "xyz"])
def test_encode_names_the_formats_it_takes(fmt):
    """Pillow's KeyError ('.PNG') came through; the formats are FORMATS' values, which format_for gives."""
    with pytest.raises(ValueError, match=f"unknown format {fmt!r}: encode takes PNG, JPEG, BMP, TIFF, WEBP, GIF, PPM"):
        images.encode(np.zeros((4, 4), np.float32), fmt)
    assert images.encode(np.zeros((4, 4), np.float32), images.format_for("x.pgm"))[:2] == b"P5"  # grey Netpbm


@pytest.mark.parametrize(("fmt", "limit"), [("JPEG", 65500), ("WEBP", 16383), ("GIF", 65535), ("TGA", 65535)])
def test_encode_refuses_an_image_too_large_for_its_format_in_one_line(fmt, limit):
    """Pillow raised OverflowError for GIF and TGA (a traceback that ended a batch), libjpeg printed its own line
    and Pillow said "broken data stream" (trial 96)."""
    assert images.encode(np.zeros((1, limit), np.float32), fmt)
    with pytest.raises(
        ValueError, match=rf"a {fmt} image is at most {limit:,} pixels a side, this one is 1×{limit + 1}"
    ):
        images.encode(np.zeros((limit + 1, 1), np.float32), fmt)


def test_encode_refuses_nan_pixels():
    """NaN was cast to a byte with a RuntimeWarning, and the image written."""
    pixels = np.zeros((4, 4), np.float32)
    pixels[1, 2] = np.nan
    with pytest.raises(ValueError, match="encode takes pixels in \\[0, 1\\], got 1 NaN values"):
        images.encode(pixels, "PNG")


def scanned_page(rng: np.random.Generator, *, height: int = 90, width: int = 160, sigma: float = 0.0) -> np.ndarray:
    """A 1×H×W page of dark digits on textured off-white paper, with Gaussian noise of ``sigma``."""
    page = 0.92 + 0.02 * rng.standard_normal((height, width))
    for left in range(4, width - 28, 32):
        ink = digit().astype(np.float64) / 255
        top = int(rng.integers(2, height - 30))
        page[top : top + 28, left : left + 28] = page[top : top + 28, left : left + 28] * (1 - ink) + 0.1 * ink
    return np.clip(page + sigma * rng.standard_normal(page.shape), 0, 1)[None].astype(np.float32)


PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "photos"


def test_digits_and_pages_of_writing_look_like_writing_and_photographs_do_not():
    """The bundled denoise told every scanned page it made photographs worse (any image not 28×28 counted as one,
    trial 77): pages of ink on plain paper, noisy, colour-stored or at any size, are told apart from photographs."""
    rng = np.random.default_rng(3)
    assert images.looks_like_writing(digit()[None].astype(np.float32) / 255)
    for sigma in (0.0, 0.2, 0.5):
        page = scanned_page(rng, sigma=sigma)
        assert images.looks_like_writing(page) and images.looks_like_writing(1 - page), sigma  # either polarity
    tinted = np.concatenate([scanned_page(rng)] * 3) + rng.normal(0, 0.01, (3, 90, 160)).astype(np.float32)
    assert images.looks_like_writing(np.clip(tinted, 0, 1))  # a page stored as a colour JPEG
    large = np.tile(scanned_page(rng, sigma=0.1), (1, 20, 15))  # 1800×2400: judged on a grid
    assert images.looks_like_writing(large)
    noise = rng.random((1, 48, 64), dtype=np.float32)
    assert not images.looks_like_writing(noise)
    colour = np.stack([scanned_page(rng)[0], scanned_page(rng)[0] * 0.5, scanned_page(rng)[0] * 0.2])
    assert not images.looks_like_writing(colour)
    if not PHOTOS.is_dir():
        pytest.skip("../shared/data/photos (real photographs) is not here")
    photos = [images.read_image(path).pixels for path in sorted(PHOTOS.glob("*/*/*.png"))]
    assert len(photos) >= 10 and not any(images.looks_like_writing(photo) for photo in photos)
    for sigma in (0.1, 0.3, 0.5):  # the README: noisy or not
        assert not any(images.looks_like_writing(add_noise(photo, sigma, rng=0)) for photo in photos), sigma


# ---- trial 82: mutants of images.py the tests above let live, each killed below ----


def test_the_page_test_reads_the_left_and_right_edges_too():
    """A tall strip of paper with dark top and bottom rows: its border ring, all four sides, is mostly light."""
    strip = np.zeros((1, 56, 14), np.float32)
    strip[:, :, 0] = strip[:, :, -1] = 1.0  # light left and right edges (ring: max(1, 14 // 14) = 1)
    strip[:, 0] = strip[:, -1] = 0.0
    assert images.is_dark_on_light(strip) and not images.is_dark_on_light(1 - strip)


def test_the_border_ring_is_a_fourteenth_of_the_shorter_side():
    """A 28×280 line with a 2-pixel light frame (28 // 14) round a dark inside; a fourteenth of the longer side
    (20 of 28 rows) read the inside as the border."""
    line = np.zeros((1, 28, 280), np.float32)
    line[:, :2], line[:, -2:], line[:, :, :2], line[:, :, -2:] = 1, 1, 1, 1
    assert images.is_dark_on_light(line) and not images.is_dark_on_light(1 - line)


def test_the_page_test_takes_the_mean_of_the_border_ring():
    """Light top and bottom rows (0.9) and mid-grey sides (0.45): the ring's mean is above one half, its median
    below."""
    page = np.full((1, 56, 14), 0.2, np.float32)
    page[:, :, 0] = page[:, :, -1] = 0.45
    page[:, 0] = page[:, -1] = 0.9
    ring = np.concatenate([page[0, 0], page[0, -1], page[0, :, 0], page[0, :, -1]])
    assert ring.mean() > 0.5 > np.median(ring)
    assert images.is_dark_on_light(page)


def test_a_photo_in_a_black_frame_does_not_look_like_writing():
    """A noisy picture letterboxed in black: its ground is plain, but only about 40 % of its pixels are near it,
    under the 60 % writing has."""
    framed = np.zeros((1, 64, 64), np.float32)
    framed[:, 4:-4, 4:-4] = np.random.default_rng(0).random((56, 56), dtype=np.float32)
    assert 0.3 < float(np.mean(framed <= 0.25)) < 0.6
    assert not images.looks_like_writing(framed)


def test_resize_is_pillows_lanczos_plane_by_plane():
    """Oracle: Pillow's Lanczos resize of each float plane, clipped to [0, 1]; the non-square size pins the
    (height, width) order. Bilinear went unnoticed."""
    pixels = np.random.default_rng(1).random((3, 21, 34), dtype=np.float32)
    planes = [np.asarray(Image.fromarray(plane).resize((47, 13), Image.Resampling.LANCZOS)) for plane in pixels]
    resized = images.resize(pixels, (13, 47))
    assert resized.shape == (3, 13, 47)
    np.testing.assert_allclose(resized, np.clip(np.stack(planes), 0, 1), rtol=0, atol=1e-6)


def test_a_32_bit_integer_tiff_whose_white_is_255_reads_as_the_8_bit_file_of_its_values(tmp_path):
    """White exactly 255 is the 0–255 scale's top; read on 0–65535 it was near black."""
    values = np.array([[0, 64, 128, 255]] * 4, np.int32)
    Image.fromarray(values).save(tmp_path / "i32.tif")
    Image.fromarray(values.astype(np.uint8)).save(tmp_path / "u8.png")
    deep = images.read_image(tmp_path / "i32.tif").pixels
    assert deep.max() == 1.0
    np.testing.assert_allclose(deep, images.read_image(tmp_path / "u8.png").pixels, rtol=0, atol=1e-6)


def test_a_float_tiff_in_0_1_with_a_white_pixel_is_read_as_it_is(tmp_path):
    """A top value of exactly 1.0 is [0, 1]'s; divided by 255 the image was near black, noted as 0–255."""
    values = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    Image.fromarray(values).save(tmp_path / "f.tif")
    decoded = images.read_image(tmp_path / "f.tif")
    np.testing.assert_array_equal(decoded.pixels[0], values)
    assert decoded.notes == (images.DEEPER,)


def test_images_read_in_threads_keep_their_own_notes_and_leave_the_warning_state_as_it_was(tmp_path):
    """Warnings captured around each whole read, from 8 threads, gave images each other's notes and left the
    process's warning hooks replaced: every later warning of a user's script was swallowed (trial 92)."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    damaged, whole = io.BytesIO(), io.BytesIO()
    Image.fromarray(digit()).save(damaged, "PNG", exif=_damaged_exif(27))
    Image.fromarray(digit()).save(whole, "PNG")
    sources = [damaged.getvalue(), whole.getvalue()] * 200
    filters, hook = list(warnings.filters), warnings.showwarning
    with ThreadPoolExecutor(8) as pool:
        notes = list(pool.map(lambda source: images.read_image(source).notes, sources))
    assert all(any("Pillow: " in note for note in found) == (i % 2 == 0) for i, found in enumerate(notes))
    assert warnings.filters == filters and warnings.showwarning is hook


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: images.looks_like_writing(np.zeros(28, np.float32)), r"^expected H×W or C×H×W pixels of one image"),
        (lambda: images.resize(np.full((1, 4, 4), np.nan, np.float32), (8, 8)), r"NaN or infinite values$"),
        (lambda: images.resize(np.full((1, 4, 4), np.inf, np.float32), (8, 8)), r"NaN or infinite values$"),
        (
            lambda: images.fit(np.full((1, 5, 5), np.nan, np.float32), (28, 28)),
            r"^fit takes pixels in \[0, 1\], got NaN",
        ),
        (lambda: images.fit(np.ones((5, 5), np.float32), (28, 28)), r"^fit takes C×H×W pixels, got shape \(5, 5\)"),
        (lambda: images.fit(np.ones((1, 0, 0), np.float32), (28, 28)), r"^fit takes an image, got no pixels"),
        (
            lambda: images.fit(np.ones((1, 5, 5), np.float32), (0, 0)),
            r"^fit takes size as \(height, width\), two whole",
        ),
        (lambda: images.pad_to(np.ones((1, 0, 0), np.float32), (4, 4), mirror=True), r"^pad_to cannot mirror an"),
        (lambda: images.pad_to(np.ones((3, 4, 5)), (6, 7), border=-1), r"^pad_to takes border as a whole number ≥ 0"),
        (lambda: images.pad_to(np.ones((3, 4, 5)), (6.0, 7.0)), r"^pad_to takes size as \(height, width\), two whole"),
        (lambda: images.pad_to(np.ones((3, 4, 5)), (6,)), r"^pad_to takes size as \(height, width\), two whole"),
        (lambda: images.side_by_side(np.ones((1, 4, 5)), np.ones((1, 3, 5))), r"^side_by_side takes two images of one"),
    ],
)
def test_image_helpers_refuse_what_they_cannot_take_in_their_own_words(call, message):
    """IndexError, numpy's reduction and padding errors, a NaN result "clipped to [0, 1]" and a size of 0 taken
    (trial 100)."""
    with pytest.raises(ValueError, match=message):
        call()


def test_an_empty_name_names_no_file_not_the_current_folder():
    """Path("") is ".": read_image("") said "is a folder, not an image" (trial 100)."""
    with pytest.raises(ImageError, match=r"^an empty name names no file$"):
        images.read_image("")


def test_a_png_whose_pixels_do_not_decode_is_corrupt_not_a_damaged_exif_block(tmp_path):
    """A PNG's getexif decodes its pixels, and their errors were taken for a damaged EXIF block: the image was
    "done" black, and one whose header claimed 9000×9000 ran the model on 81 megapixels (trial 99's fuzzing)."""
    import struct

    save(tmp_path / "good.png", (np.arange(28 * 28).reshape(28, 28) % 256).astype(np.uint8))
    raw = (tmp_path / "good.png").read_bytes()
    start = raw.find(b"IDAT") - 4
    length = struct.unpack(">I", raw[start : start + 4])[0]
    zeroed = raw[: start + 8] + bytes(length) + raw[start + 8 + length :]  # the pixel data zeroed, its CRC kept
    header = struct.pack(">II", 9000, 9000) + raw[24:29]
    claimed = raw[:8] + struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    for data in (zeroed, claimed + raw[33:]):
        with pytest.raises(ImageError, match=r"^truncated or corrupt image: "):
            images.read_image(data)
    assert images.read_image(raw).notes == ()
