"""Decoding untrusted image bytes into clean RGB pictures and encoding results, with Pillow alone.

This module deliberately does not import torch, so the API can validate uploads without loading the
engine. Every way an upload can be unusable ends in a typed ``InvalidImage`` naming the problem.
"""

from __future__ import annotations

import io
import warnings
from typing import Literal, cast

from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageTooLarge, ImageTooSmall, NotAnImage, TruncatedImage

OutputFormat = Literal["png", "jpeg", "webp"]

MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
DEFAULT_MAX_PIXELS = 40_000_000
MIN_SIDE = 16
_WHITE = (255, 255, 255)


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image") -> Image.Image:
    """Turn untrusted bytes into an upright 8-bit RGB picture, or raise the ``InvalidImage`` that explains why not.

    The format comes from the bytes (Pillow sniffs magic numbers), never from a file name. The pixel
    count is checked from the header before any pixel is decoded, so a decompression bomb costs nothing.
    ``name`` ("content", "style 2", a file name) is put into messages so the user knows which file failed.
    """
    if not data:
        raise NotAnImage(f"{name} is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge(f"{name} declares too many pixels to decode safely ({error})") from error
    except UnidentifiedImageError as error:
        raise NotAnImage(
            f"{name} is not an image in a format we can read (PNG, JPEG, WebP, GIF, BMP, TIFF, …)"
        ) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise NotAnImage(f"{name} could not be read as an image: {error}") from error

    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"{name} is {width}×{height} = {width * height:,} pixels; the limit is {max_pixels:,}")
    if min(width, height) < MIN_SIDE:
        raise ImageTooSmall(f"{name} is {width}×{height}; each side must be at least {MIN_SIDE} px")

    try:
        image.seek(0)  # animations: the first frame is the picture
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        if "truncated" in str(error).lower() or isinstance(error, EOFError):
            raise TruncatedImage(f"{name} is truncated: the file ends before the picture does") from error
        raise NotAnImage(f"{name} could not be decoded: {error}") from error
    return _to_rgb(ImageOps.exif_transpose(image))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Normalise every Pillow mode to 8-bit RGB; transparency is composited onto white, as a viewer shows it."""
    if image.mode.startswith("I"):
        # Pillow's direct conversion clips 16-bit values at 255 (an all-white picture); rescale instead.
        image = image.convert("I")
        _, high = cast(tuple[int, int], image.getextrema())
        scale = 1 / 257 if high > 255 else 1.0
        image = image.point(lambda value: value * scale).convert("L")
    if image.mode == "F":
        low, top = cast(tuple[float, float], image.getextrema())
        span = (top - low) or 1.0
        image = image.point(lambda value: (value - low) * 255 / span).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, _WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def fit_longest_side(image: Image.Image, side: int) -> Image.Image:
    """Scale so the longest side is ``side`` px, keeping the aspect ratio (Lanczos, the sharpest good filter)."""
    width, height = image.size
    scale = side / max(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
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
