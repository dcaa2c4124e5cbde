"""Stands in for the pictures people upload: small, deterministic pictures with some structure, and masks, encoded
in memory. The same arguments always give the same bytes."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def make_png(width: int = 48, height: int = 40, seed: int = 0, image_format: str = "PNG") -> bytes:
    """A small picture with some structure (stripes and a disc), encoded in memory."""
    image = Image.new("RGB", (width, height), (40 + 50 * seed % 200, 90, 160))
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 6):
        draw.line([(x, 0), (x + height, height)], fill=(230, 200 - 30 * seed % 200, 60), width=2)
    draw.ellipse((width // 4, height // 4, width // 2, height // 2), fill=(20, 20, 20))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def make_mask(width: int = 48, height: int = 40, covered: float = 0.5, image_format: str = "PNG") -> bytes:
    """A greyscale mask: white over the left ``covered`` share of its width, black over the rest (0: all black)."""
    image = Image.new("L", (width, height), 0)
    if covered > 0:
        ImageDraw.Draw(image).rectangle((0, 0, round(width * covered) - 1, height), fill=255)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()
