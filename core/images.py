"""Decoding untrusted images (bytes or files) into clean RGB pictures and greyscale masks, and encoding results,
with Pillow alone.

This module deliberately does not import torch, so the API can validate uploads without loading the
engine. Every way an upload can be unusable ends in a typed ``InvalidImage`` naming the problem.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from typing import IO, Literal, cast

import numpy
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageTooLarge, ImageTooSmall, NotAnImage, TruncatedImage

OutputFormat = Literal["png", "jpeg", "webp"]

MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
DEFAULT_MAX_PIXELS = 40_000_000
MIN_SIDE = 16
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
# Pillow's format plugins parse hostile bytes with plain Python and raise whatever their parsers hit: OSError
# and SyntaxError by convention, but also ValueError, NotImplementedError (unknown DDS pixel formats),
# OverflowError (TIFF offsets), struct.error, IndexError, KeyError, ZeroDivisionError, TypeError.
_PARSER_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    NotImplementedError,
    ArithmeticError,
    LookupError,
    TypeError,
    struct.error,
)


def decode_image(
    source: bytes | IO[bytes], *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image"
) -> Image.Image:
    """Turn an untrusted picture into an upright 8-bit RGB one, or raise the ``InvalidImage`` that explains why not.

    ``source`` is the file's bytes, or a seekable binary file read from its start (an upload spooled to disk is
    decoded from there, never read into memory first). The format comes from the content (Pillow sniffs magic
    numbers), never from a file name. The pixel count is checked from the header before any pixel is decoded,
    so a decompression bomb costs nothing. ``name`` ("content", "style 2", a file name) is put into messages
    so the user knows which file failed.
    """
    image = _opened(source, max_pixels=max_pixels, name=name)
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise ImageTooSmall(f"{name} is {width}×{height}; each side must be at least {MIN_SIDE} px")
    return _decoded(image, name, lambda upright: _to_rgb(upright, name))


def decode_mask(source: bytes | IO[bytes], *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "mask") -> Image.Image:
    """Turn an untrusted mask into an upright 8-bit greyscale picture (mode ``L``) whose levels are weights, from
    0 (none) to 255 (full), or raise the ``InvalidImage`` that explains why not.

    Checked as ``decode_image`` checks a picture (format sniffed from the bytes, pixel count before decoding,
    truncation), but a mask may be any size: the engine scales it to the picture it covers. Colour counts by
    its luminance. A transparent pixel counts as black, no weight, where a picture's is white: a mask painted on
    a transparent canvas then covers what was painted, not the whole canvas.
    """
    image = _opened(source, max_pixels=max_pixels, name=name)
    return _decoded(image, name, lambda upright: _to_grey(upright, name))


def _opened(source: bytes | IO[bytes], *, max_pixels: int, name: str) -> Image.Image:
    """The image's header read and its pixel count checked; no pixel is decoded yet."""
    file = io.BytesIO(source) if isinstance(source, bytes) else source
    if _is_empty(file):
        raise NotAnImage(f"{name} is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(file)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge(f"{name} declares too many pixels to decode safely ({error})") from error
    except UnidentifiedImageError as error:
        raise NotAnImage(
            f"{name} is not an image in a format we can read (PNG, JPEG, WebP, GIF, BMP, TIFF, …)"
        ) from error
    except _PARSER_ERRORS as error:
        raise NotAnImage(f"{name} could not be read as an image: {_reason(error)}") from error

    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"{name} is {width}×{height} = {width * height:,} pixels; the limit is {max_pixels:,}")
    return image


def _decoded(image: Image.Image, name: str, convert: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """The opened image's pixels, upright, in the mode ``convert`` gives them; a file that ends early or that its
    parser chokes on raises the ``InvalidImage`` that says so."""
    try:
        image.seek(0)  # animations: the first frame is the picture
        image.load()
        # In place, and no copy of a picture that is RGB already: Pillow keeps four bytes a pixel, so a picture
        # near the pixel limit takes over a hundred megabytes decoded, which decoding then holds once, not three times.
        ImageOps.exif_transpose(image, in_place=True)
        return convert(image)
    except (*_PARSER_ERRORS, EOFError) as error:
        if "truncated" in str(error).lower() or isinstance(error, EOFError):
            raise TruncatedImage(f"{name} is truncated: the file ends before the picture does") from error
        raise NotAnImage(f"{name} could not be decoded: {_reason(error)}") from error


def _is_empty(file: IO[bytes]) -> bool:
    """Whether the file holds no byte at all (Pillow reads files from their start, so that is where to look)."""
    file.seek(0)
    return not file.read(1)


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


def _to_rgb(image: Image.Image, name: str, background: tuple[int, int, int] = _WHITE) -> Image.Image:
    """Normalise every Pillow mode to 8-bit RGB; transparency is composited onto ``background``, by default white,
    as a viewer shows it."""
    if image.mode.startswith("I"):
        # Pillow's direct conversion clips deep integers at 255 (an all-white picture). 16-bit files are
        # 16-bit whatever their values; a 32-bit one is read at the smallest usual depth that holds its values.
        sixteen_bit, image = image.mode.startswith("I;16"), image.convert("I")
        bits = 16 if sixteen_bit else _bits_holding(image)
        image = image.point(lambda value: value * 255 / (2**bits - 1)).convert("L")
    if image.mode == "F":
        # Pillow's extrema skip NaN (every comparison with it is false), so a NaN would go unnoticed there.
        if not numpy.isfinite(numpy.asarray(image)).all():
            raise NotAnImage(f"{name} has pixels that are not finite numbers (NaN or infinity)")
        low, top = cast(tuple[float, float], image.getextrema())
        span = (top - low) or 1.0
        image = image.point(lambda value: (value - low) * 255 / span).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_grey(image: Image.Image, name: str) -> Image.Image:
    """Normalise every Pillow mode to 8-bit greyscale, transparency composited onto black (no weight)."""
    if image.mode == "L":
        return image
    return _to_rgb(image, name, background=_BLACK).convert("L")


def _bits_holding(image: Image.Image) -> int:
    _, high = cast(tuple[int, int], image.getextrema())
    return next(bits for bits in (8, 16, 32) if high < 2**bits)


def scaled_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """The size ``fit_longest_side`` gives a picture of ``size``: longest side ``side``, aspect ratio kept."""
    width, height = size
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit_longest_side(image: Image.Image, side: int) -> Image.Image:
    """Scale so the longest side is ``side`` px, keeping the aspect ratio (Lanczos, the sharpest good filter)."""
    target = scaled_size(image.size, side)
    return image if target == image.size else image.resize(target, Image.Resampling.LANCZOS)


def encode_image(image: Image.Image, output_format: OutputFormat = "png") -> bytes:
    """Encode a result; lossy formats use a quality at which artefacts are not visible."""
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, format="PNG", optimize=False)
    elif output_format == "jpeg":
        image.save(buffer, format="JPEG", quality=92, subsampling=0)
    else:
        image.save(buffer, format="WEBP", quality=92, method=4)
    return buffer.getvalue()
