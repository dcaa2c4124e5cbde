"""Decoding untrusted bytes or files: every usable kind of picture comes out as upright RGB, every bad one as a
typed error."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import numpy
import pytest
from PIL import Image

from core.errors import ImageTooLarge, ImageTooSmall, NotAnImage, TruncatedImage
from core.images import MEDIA_TYPES, decode_image, encode_image, fit_longest_side
from tests.core.pictures import encoded, make_photo


def test_png_decodes_to_rgb(photo: Image.Image) -> None:
    image = decode_image(encoded(photo))
    assert image.mode == "RGB" and image.size == photo.size


def test_format_comes_from_the_bytes_not_a_name(photo: Image.Image) -> None:
    assert decode_image(encoded(photo, "JPEG"), name="holiday.png").size == photo.size


def test_text_is_not_an_image() -> None:
    with pytest.raises(NotAnImage, match="content is not an image"):
        decode_image(b"hello, I am a text file\n" * 10, name="content")


def test_empty_upload_is_not_an_image() -> None:
    with pytest.raises(NotAnImage, match="empty"):
        decode_image(b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_reported(fmt: str) -> None:
    data = encoded(make_photo(64, 64), fmt)
    with pytest.raises(TruncatedImage, match="truncated"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = encoded(Image.new("1", (6000, 6000)))  # a few KB on disk, 36 megapixels in memory
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLarge, match="36,000,000 pixels"):
        decode_image(bomb, max_pixels=10_000_000)


def test_tiny_image_is_refused() -> None:
    with pytest.raises(ImageTooSmall, match="8×8"):
        decode_image(encoded(Image.new("RGB", (8, 8))))


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = encoded(make_photo(48, 32), "JPEG", exif=exif)
    assert decode_image(data).size == (32, 48)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1"])
def test_other_modes_become_rgb(mode: str) -> None:
    source = make_photo().convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    assert decode_image(encoded(source, fmt)).mode == "RGB"


def test_sixteen_bit_greyscale_keeps_its_tones() -> None:
    levels = numpy.zeros((32, 32), dtype=numpy.uint16)
    levels[:, :16] = 40000  # left half at 61% grey, right half black
    source = Image.fromarray(levels)
    image = decode_image(encoded(source))
    assert image.getpixel((4, 4)) == (155, 155, 155)  # 40000 / 257, truncated
    assert image.getpixel((28, 4)) == (0, 0, 0)


def test_transparency_is_composited_on_white() -> None:
    source = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    source.paste((255, 0, 0, 255), (0, 0, 16, 32))
    image = decode_image(encoded(source))
    assert image.getpixel((4, 4)) == (255, 0, 0)
    assert image.getpixel((28, 4)) == (255, 255, 255)


def test_animation_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    assert decode_image(buffer.getvalue()).getpixel((5, 5)) == (255, 0, 0)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_results_encode_in_each_output_format(fmt: str, photo: Image.Image) -> None:
    data = encode_image(photo, fmt)  # type: ignore[arg-type]
    assert Image.open(io.BytesIO(data)).get_format_mimetype() == MEDIA_TYPES[fmt]


@contextmanager
def spooled(data: bytes) -> Iterator[IO[bytes]]:
    """``data`` in a file that has spilled to disk, as an upload larger than the API's spool arrives, left at
    its end (as the multipart parser leaves it)."""
    with tempfile.SpooledTemporaryFile(max_size=16) as file:
        file.write(data)
        yield file


def test_a_file_decodes_as_its_bytes_do(photo: Image.Image) -> None:
    with spooled(encoded(photo, "JPEG")) as file:
        assert decode_image(file).tobytes() == decode_image(encoded(photo, "JPEG")).tobytes()


def test_an_empty_file_is_not_an_image() -> None:
    with spooled(b"") as file, pytest.raises(NotAnImage, match="content is empty"):
        decode_image(file, name="content")


def test_a_truncated_file_is_reported() -> None:
    data = encoded(make_photo(64, 64))
    with spooled(data[: len(data) // 2]) as file, pytest.raises(TruncatedImage, match="truncated"):
        decode_image(file)


def test_a_file_declaring_too_many_pixels_is_refused_before_decoding() -> None:
    with spooled(encoded(Image.new("1", (6000, 6000)))) as file, pytest.raises(ImageTooLarge, match="36,000,000"):
        decode_image(file, max_pixels=10_000_000)


def test_png_output_is_lossless(photo: Image.Image) -> None:
    assert decode_image(encode_image(photo, "png")).tobytes() == photo.tobytes()


def test_fit_longest_side_keeps_the_aspect_ratio() -> None:
    assert fit_longest_side(make_photo(48, 24), 32).size == (32, 16)
    assert fit_longest_side(make_photo(24, 48), 64).size == (32, 64)


def test_a_file_that_breaks_pillows_parser_is_not_an_image() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40)).save(buffer, "DDS")
    data = bytearray(buffer.getvalue())
    data[80:84] = (0x200000).to_bytes(4, "little")  # a pixel-format flag the DDS plugin does not implement
    with pytest.raises(NotAnImage, match=r"texture\.dds could not be read"):
        decode_image(bytes(data), name="texture.dds")


def test_a_dark_sixteen_bit_picture_stays_dark() -> None:
    data = encoded(Image.fromarray(numpy.full((32, 32), 200, dtype=numpy.uint16)))
    assert numpy.asarray(decode_image(data)).max() <= 1


def test_a_float_picture_with_non_finite_pixels_is_refused() -> None:
    pixels = numpy.ones((32, 32), dtype=numpy.float32)
    pixels[3, 3] = numpy.nan
    with pytest.raises(NotAnImage, match="not finite"):
        decode_image(encoded(Image.fromarray(pixels), "TIFF"))
