"""What a person does on the page, as small steps the browser tests compose (no assertions here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page


@dataclass(frozen=True)
class Pictures:
    photo: Path
    paintings: list[Path]
    not_a_picture: Path


# Records every value the progress bar takes and every preview image shown, so a test can tell afterwards
# that the bar moved and the preview appeared, however fast the job ran.
_RECORDER = """() => {
  window.seen = { progress: [], previews: 0 };
  const bar = document.querySelector("#progress");
  new MutationObserver(() => {
    if (window.seen.progress.at(-1) !== bar.value) window.seen.progress.push(bar.value);
  }).observe(bar, { attributes: true, attributeFilter: ["value"] });
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
