"""What a person does on the page, as small steps the browser tests compose (no assertions here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import FloatRect, Page


@dataclass(frozen=True)
class Pictures:
    photo: Path
    paintings: list[Path]
    not_a_picture: Path


# Records every value the progress bar takes, every progress text and every preview image shown, so a test can
# tell afterwards that the bar moved, what the text said and that the preview appeared, however fast the job ran.
_RECORDER = """() => {
  window.seen = { progress: [], texts: [], previews: 0 };
  const bar = document.querySelector("#progress");
  new MutationObserver(() => {
    if (window.seen.progress.at(-1) !== bar.value) window.seen.progress.push(bar.value);
  }).observe(bar, { attributes: true, attributeFilter: ["value"] });
  const text = document.querySelector("#progress-text");
  new MutationObserver(() => window.seen.texts.push(text.textContent)).observe(text, { childList: true });
  const preview = document.querySelector("#preview");
  preview.addEventListener("load", () => { window.seen.previews += 1; });
}"""


def open_restyle(page: Page, url: str, api_key: str | None = None) -> None:
    """Load the page, type the API key (if any) into its settings, and wait for the parameters to load."""
    page.goto(url)
    if api_key:
        page.click("#key-settings summary")
        page.fill("#api-key", api_key)
        page.press("#api-key", "Enter")
        page.click("#key-settings summary")
    page.wait_for_selector("#param-size", state="attached")
    page.evaluate(_RECORDER)


def choose(page: Page, photo: Path, paintings: list[Path]) -> None:
    page.set_input_files("#content-input", str(photo))
    page.set_input_files("#style-input", [str(path) for path in paintings])


def set_parameters(page: Page, **values: object) -> None:
    """Open "Advanced" and type exact parameter values."""
    if not page.locator("#advanced").evaluate("details => details.open"):
        page.click("#advanced summary")
    for name, value in values.items():
        page.fill(f"#param-{name}", str(value))


def wait_until_running(page: Page) -> None:
    page.wait_for_function("document.querySelector('#progress').value > 0")


def wait_until_done(page: Page) -> None:
    page.wait_for_selector("#done", state="visible")
    page.wait_for_function(
        "document.querySelector('#result').complete && document.querySelector('#result').naturalWidth > 0"
    )


def wait_until_clip_done(page: Page) -> None:
    """Wait for the finished clip to be shown and for the browser to have read how long it is."""
    page.wait_for_selector("#done", state="visible")
    page.wait_for_function(
        "(video => video.readyState >= 1 && video.duration > 0)(document.querySelector('#result-video'))"
    )


def open_regions(page: Page) -> None:
    """Open "Regions", which appears once a photo and a painting are chosen."""
    page.wait_for_selector("#regions", state="visible")
    if not page.locator("#regions").evaluate("details => details.open"):
        page.click("#regions summary")


def paint_for(page: Page, painting: int) -> None:
    """Choose which painting's region the brush paints (from 1, as in "Painting 1")."""
    page.locator("#region-legend label").nth(painting - 1).click()


def pick_tool(page: Page, tool: str) -> None:
    page.check(f"#tool-{tool}")


def set_brush_size(page: Page, pixels: int) -> None:
    page.eval_on_selector(
        "#brush-size", "(range, value) => { range.value = value; range.dispatchEvent(new Event('input')); }", pixels
    )


def drag_over_photo(page: Page, points: list[tuple[float, float]]) -> None:
    """Press the mouse on the photo at the first point and drag it through the others; points are fractions of the
    photo's shown width and height. Chromium turns the mouse into the pointer events a person's would be."""
    box = _photo_box(page)
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def paint_columns(page: Page, left: float, right: float, brush: int = 40) -> None:
    """Paint (or erase, with the eraser chosen) the band of the photo from `left` to `right` (fractions of its
    width), top to bottom, in vertical strokes a brush's width apart."""
    width = _photo_box(page)["width"]
    set_brush_size(page, brush)
    inset = brush / 2 / width
    x = left + inset
    while True:
        drag_over_photo(page, [(min(x, right - inset), 0.01), (min(x, right - inset), 0.99)])
        if x >= right - inset:
            break
        x += 0.6 * brush / width


def _photo_box(page: Page) -> FloatRect:
    box = page.locator("#stage").bounding_box()
    if box is None:
        raise RuntimeError("the photo to paint on is not shown")
    return box
