"""Clips on the web page: a video chosen instead of a photo is painted frame by frame, and its result plays beside it.

Each test saves a screenshot per step under test-output/page/<test name>/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tests.client.served import Served, key_of
from tests.core.pictures import encoded, make_photo
from tests.core.test_video import panned_frames
from tests.page.steps import (
    Pictures,
    choose,
    open_restyle,
    set_parameters,
    wait_until_clip_done,
    wait_until_done,
)
from tests.support.clips import write_test_clip

if TYPE_CHECKING:
    from playwright.sync_api import Page

Snap = Callable[["Page", str], Path]
FRAMES = 6


def make_clip(folder: Path, container: Literal["mp4", "webm", "gif"]) -> Path:
    return write_test_clip(folder / f"clip.{container}", panned_frames(FRAMES), container)


def shown_video(page: Page, selector: str) -> dict[str, Any]:
    """What the browser knows of a <video>: where it plays from and whether it has read the clip's length."""
    return page.eval_on_selector(
        selector,
        "video => ({ tag: video.tagName, src: video.src, ready: video.readyState, duration: video.duration,"
        " width: video.videoWidth })",
    )


def test_a_clip_and_a_painting_become_a_clip_that_plays_beside_the_original(
    api: Served, worker: object, page: Page, pictures: Pictures, tmp_path: Path, snap: Snap
) -> None:
    open_restyle(page, api.url, key_of(api))
    choose(page, make_clip(tmp_path, "mp4"), pictures.paintings[:1])
    set_parameters(page, size=32, iterations=4)
    page.wait_for_selector("#clip-options", state="visible")
    snap(page, "chosen")

    assert page.eval_on_selector("#content-thumbs li > :first-child", "thumb => thumb.tagName") == "VIDEO"
    assert page.is_hidden("#regions")
    assert page.input_value("#param-clip_format") == "mp4"  # this Chromium plays H.264
    page.click("#go")
    wait_until_clip_done(page)
    snap(page, "done")

    texts = page.evaluate("window.seen.texts")
    assert any(re.search(rf"· frame [1-{FRAMES}] of {FRAMES}\b", text) for text in texts), texts
    result = shown_video(page, "#result-video")
    assert str(result["src"]).startswith("blob:")
    assert (result["width"], result["duration"] > 0) == (32, True)
    assert page.is_hidden("#result")
    original = shown_video(page, "#done-inputs .photo")
    assert original["tag"] == "VIDEO" and str(original["src"]).startswith("blob:")
    assert f"{FRAMES} frames" in page.inner_text("#done-summary")
    assert "clip_format" in page.inner_text("#used")
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename.endswith(".mp4")
    assert Path(download.path()).read_bytes()[4:8] == b"ftyp"

    page.reload()
    page.wait_for_selector("#recent li")
    snap(page, "listed")
    entry = page.locator("#recent li")
    assert entry.locator(".badge").inner_text().lower() == "succeeded"
    assert (entry.locator("img").get_attribute("src") or "").startswith("data:image/jpeg")
    assert "clip" in entry.locator(".recent-meta").inner_text()
    entry.locator("button").click()
    wait_until_clip_done(page)
    snap(page, "reopened")
    assert page.eval_on_selector("#done-inputs .photo", "thumb => thumb.tagName") == "IMG"


def test_a_photo_chosen_after_a_clip_is_sent_without_the_clips_fields(
    api: Served, worker: object, page: Page, pictures: Pictures, tmp_path: Path, snap: Snap
) -> None:
    open_restyle(page, api.url, key_of(api))
    choose(page, make_clip(tmp_path, "webm"), pictures.paintings[:1])
    page.wait_for_selector("#clip-options", state="visible")
    page.fill("#param-temporal_weight", "2")
    page.fill("#param-frame_iterations", "3")
    page.set_input_files("#content-input", str(pictures.photo))
    page.wait_for_selector("#clip-options", state="hidden")
    page.wait_for_selector("#regions", state="visible")
    set_parameters(page, size=32, iterations=4)
    snap(page, "photo-chosen")

    page.click("#go")
    wait_until_done(page)
    snap(page, "done")

    # The service refuses a clip's fields with a photo (422), so a finished photo job was sent none of them.
    assert page.is_hidden("#problem")
    assert page.is_hidden("#result-video")
    assert "temporal_weight" not in page.inner_text("#used")


def test_a_browser_that_cannot_play_mp4_asks_for_a_webm_clip(
    api: Served, worker: object, page: Page, pictures: Pictures, tmp_path: Path, snap: Snap
) -> None:
    page.add_init_script(
        "const canPlay = HTMLMediaElement.prototype.canPlayType;"
        "HTMLMediaElement.prototype.canPlayType = function (type) {"
        "  return type.startsWith('video/mp4') ? '' : canPlay.call(this, type); };"
    )
    open_restyle(page, api.url, key_of(api))
    choose(page, make_clip(tmp_path, "webm"), pictures.paintings[:1])
    set_parameters(page, size=32, iterations=4)
    assert page.input_value("#param-clip_format") == "webm"

    page.click("#go")
    wait_until_clip_done(page)
    snap(page, "done")

    with page.expect_download() as download_info:
        page.click("#download")
    assert download_info.value.suggested_filename.endswith(".webm")
    assert Path(download_info.value.path()).read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML: Matroska, WebM


def test_a_truncated_clip_shows_the_services_message_and_keeps_the_form_filled(
    api: Served, page: Page, pictures: Pictures, tmp_path: Path, snap: Snap
) -> None:
    whole = make_clip(tmp_path, "webm").read_bytes()
    truncated = tmp_path / "truncated.webm"
    truncated.write_bytes(whole[: len(whole) * 7 // 10])
    open_restyle(page, api.url, key_of(api))
    choose(page, truncated, pictures.paintings[:1])
    set_parameters(page, size=32, iterations=4)

    page.click("#go")
    page.wait_for_selector("#problem", state="visible")
    snap(page, "error")

    assert "clip (truncated.webm) is truncated" in page.inner_text("#problem")
    assert page.get_attribute("#content-thumbs li", "title") == "truncated.webm"
    assert page.is_visible("#clip-options")
    assert page.is_enabled("#go")


def test_an_animated_gif_is_a_clip_and_a_still_one_a_photo(
    api: Served, page: Page, pictures: Pictures, tmp_path: Path, snap: Snap
) -> None:
    still = tmp_path / "still.gif"
    still.write_bytes(encoded(make_photo(), "GIF"))
    open_restyle(page, api.url, key_of(api))
    choose(page, make_clip(tmp_path, "gif"), pictures.paintings[:1])
    page.wait_for_selector("#clip-options", state="visible")
    snap(page, "animated")

    assert page.eval_on_selector("#content-thumbs li > :first-child", "thumb => thumb.tagName") == "IMG"
    assert page.is_hidden("#regions")

    page.set_input_files("#content-input", str(still))
    page.wait_for_selector("#regions", state="visible")
    snap(page, "still")
    assert page.is_hidden("#clip-options")
