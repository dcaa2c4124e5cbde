"""Small synthetic pictures for the engine's tests, drawn in code so no test depends on files."""

from __future__ import annotations

import io
import math

import numpy as np
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


def make_scene(width: int = 96, height: int = 72, seed: int = 0) -> Image.Image:
    """A photo-like landscape: a sky with soft clouds, a sun, two ridges of textured hills, a house with a lit
    window and a roof, a few trees, and a lake that mirrors the sky, with a little sensor grain.

    Real-looking enough for trained filters to see objects and edges at several scales, where the flat shapes of
    ``make_photo`` give them little to hold on to; drawn from ``seed`` so no test needs a file."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = (1 - rows) * np.array([70, 120, 200]) + rows * np.array([190, 210, 235])
    pixels = np.broadcast_to(sky, (height, width, 3)).copy()
    clouds = _smooth_noise(rng, height, width, scale=max(width, height) // 6)
    pixels += (np.clip(clouds - 0.55, 0, None) * 300)[..., None]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    w, h = width, height
    draw.ellipse((0.72 * w, 0.08 * h, 0.84 * w, 0.08 * h + 0.12 * w), fill=(255, 236, 150))
    far = [(x, 0.42 * h + 0.08 * h * math.sin(x / w * 7 + seed)) for x in range(0, w + 1, max(1, w // 24))]
    draw.polygon([(0, h), *far, (w, h)], fill=(90, 110, 140))
    near = [(x, 0.55 * h + 0.10 * h * math.sin(x / w * 4 + 1 + seed)) for x in range(0, w + 1, max(1, w // 24))]
    draw.polygon([(0, h), *near, (w, h)], fill=(60, 115, 50))
    draw.rectangle((0, 0.78 * h, w, h), fill=(80, 120, 170))  # the lake
    draw.rectangle((0.22 * w, 0.5 * h, 0.42 * w, 0.72 * h), fill=(200, 180, 150))  # the house
    draw.polygon([(0.19 * w, 0.5 * h), (0.32 * w, 0.38 * h), (0.45 * w, 0.5 * h)], fill=(150, 50, 40))
    draw.rectangle((0.26 * w, 0.56 * h, 0.31 * w, 0.63 * h), fill=(250, 220, 120))
    draw.rectangle((0.34 * w, 0.6 * h, 0.39 * w, 0.72 * h), fill=(90, 60, 40))
    for x in (0.55, 0.65, 0.8, 0.9):
        trunk = x * w
        draw.rectangle((trunk - 0.01 * w, 0.6 * h, trunk + 0.01 * w, 0.75 * h), fill=(70, 45, 30))
        draw.ellipse((trunk - 0.05 * w, 0.48 * h, trunk + 0.05 * w, 0.66 * h), fill=(30, 80 + int(40 * x), 35))
    pixels = np.asarray(image).astype(np.float64)
    lake = int(0.78 * h)
    mirrored = pixels[lake - 1 :: -1][: h - lake]
    pixels[lake : lake + len(mirrored)] = 0.55 * pixels[lake : lake + len(mirrored)] + 0.45 * mirrored * 0.8
    grass = np.zeros((h, w), dtype=bool)
    grass[int(0.62 * h) : lake] = True
    grass &= pixels[..., 1] > pixels[..., 0] + 30  # the green of the hill, not the house or the trunks
    pixels[grass] *= 0.8 + 0.4 * rng.random((int(grass.sum()), 1))
    pixels += rng.normal(0, 4, pixels.shape)  # sensor grain
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


# The palettes of ``make_brushwork``: the ground first, then the strokes' colours.
NIGHT_SKY = (
    (25, 35, 80),
    (30, 60, 150),
    (60, 110, 200),
    (240, 210, 70),
    (250, 240, 180),
    (20, 30, 70),
    (120, 170, 220),
)
EMBERS = ((70, 15, 10), (200, 40, 20), (240, 120, 30), (150, 20, 40), (250, 200, 120), (110, 30, 15), (230, 80, 60))


def make_brushwork(
    width: int = 96, height: int = 96, seed: int = 0, palette: tuple[tuple[int, int, int], ...] = NIGHT_SKY
) -> Image.Image:
    """A painting-like texture: short thick strokes of a palette (by default blue and yellow) on a dark ground,
    laid along a swirling field, as a post-impressionist sky is painted; drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    ground, *colours = palette
    image = Image.new("RGB", (width, height), ground)
    draw = ImageDraw.Draw(image)
    length = max(width, height) / 12
    for _ in range(width * height // 6):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        angle = math.sin(x / width * 6) + math.cos(y / height * 5) * 1.5 + rng.normal(0, 0.15)
        dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
        colour = colours[int(rng.integers(len(colours)))]
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=colour, width=max(2, width // 40))
    return image


def _smooth_noise(rng: np.random.Generator, height: int, width: int, *, scale: int) -> np.ndarray:
    """Values in [0, 1] that vary over about ``scale`` pixels: coarse uniform noise, upsampled bicubically."""
    coarse = rng.random((height // scale + 2, width // scale + 2))
    upsampled = Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(upsampled).astype(np.float64) / 255
