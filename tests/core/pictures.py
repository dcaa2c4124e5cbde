"""Small synthetic pictures for the engine's tests, drawn in code so no test depends on files."""

from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw


def make_photo(width: int = 48, height: int = 40) -> Image.Image:
    """A smooth 'landscape': sky gradient, a dark hill and a bright sun, so structure is easy to measure."""
    image = Image.new("RGB", (width, height))
    for y in range(height):
        for x in range(width):
            image.putpixel((x, y), (60 + 2 * y, 120 + y, 230 - 3 * y))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.6, 4, width * 0.85, height * 0.35), fill=(250, 220, 80))
    draw.polygon([(0, height), (width * 0.4, height * 0.45), (width, height)], fill=(30, 70, 30))
    return image


def make_painting(width: int = 40, height: int = 40, phase: float = 0.0) -> Image.Image:
    """Saturated diagonal stripes: a texture with strong, easily detected Gram statistics."""
    image = Image.new("RGB", (width, height))
    for y in range(height):
        for x in range(width):
            v = math.sin((x + y) * 0.9 + phase)
            image.putpixel((x, y), (int(127 + 120 * v), 30, int(127 - 120 * v)))
    return image


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    """The picture as file bytes, as an upload would bring it."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
