"""Fixtures for the page's browser tests: Debian's headless Chromium driven by Playwright, pictures as files,
and a screenshot folder under test-output/page/ (git-ignored) with one subfolder per test."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.core.pictures import encoded, make_painting, make_photo
from tests.page.steps import Pictures

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
# Headless, sandbox-free (containers), and silent: no GPU, no QUIC, no background or update traffic.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "page"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One Chromium for the session; never Playwright's own download (`playwright install`)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab with empty storage; an uncaught JavaScript error fails the test that caused it."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(120_000)  # a loaded 2-core machine; only a broken page ever waits this long
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def snap(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """Save a full-page screenshot per step into test-output/page/<test name>/NN-<step>.png."""
    folder = SCREENSHOTS / re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    taken: list[Path] = []

    def take(tab: Page, step: str) -> Path:
        path = folder / f"{len(taken) + 1:02d}-{step}.png"
        tab.screenshot(path=str(path), full_page=True)
        taken.append(path)
        return path

    return take


@pytest.fixture
def pictures(tmp_path: Path) -> Pictures:
    """A photo, two paintings and a text file, as the files a person would pick."""
    files = {
        "photo.png": encoded(make_photo(48, 40)),
        "painting-1.png": encoded(make_painting(40, 40)),
        "painting-2.png": encoded(make_painting(40, 40, phase=1.5)),
        "notes.txt": b"Shopping list: bread, milk. Not a picture.",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return Pictures(
        photo=tmp_path / "photo.png",
        paintings=[tmp_path / "painting-1.png", tmp_path / "painting-2.png"],
        not_a_picture=tmp_path / "notes.txt",
    )
