"""The web page at `/` in real headless Chromium against the real service (real Redis, a real worker).

Each test saves a screenshot per step under test-output/page/<test name>/.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from restyle.settings import Settings
from restyle.weights_notice import FETCH_COMMAND, untrained_notice
from tests.client.served import Served, key_of
from tests.page.steps import Pictures, choose, open_restyle, set_parameters, wait_until_done, wait_until_running

if TYPE_CHECKING:
    from playwright.sync_api import Page

Snap = Callable[["Page", str], Path]


def test_a_photo_and_two_paintings_become_a_result_to_download(
    api: Served, worker: object, page: Page, pictures: Pictures, snap: Snap
) -> None:
    open_restyle(page, api.url, key_of(api))
    snap(page, "empty")
    choose(page, pictures.photo, pictures.paintings)
    set_parameters(page, size=32, iterations=20)
    snap(page, "chosen")

    page.click("#go")
    wait_until_running(page)
    snap(page, "running")
    wait_until_done(page)
    snap(page, "done")

    seen = page.evaluate("window.seen")
    assert seen["progress"] == sorted(seen["progress"])
    assert len({value for value in seen["progress"] if value > 0}) >= 2
    assert seen["previews"] >= 1
    assert page.inner_text("#run-mode") == "Updates arrive by fetch stream."  # a key is set: no EventSource
    assert page.eval_on_selector("#result", "image => [image.naturalWidth, image.naturalHeight]") == [32, 27]
    assert "random(seed=0)" in page.inner_text("#used")
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename.endswith(".png")
    with Image.open(io.BytesIO(Path(download.path()).read_bytes())) as picture:
        assert (picture.format, picture.size) == ("PNG", (32, 27))


def test_a_service_on_random_weights_says_so_at_the_top_in_the_servers_words(
    api: Served, worker: object, page: Page, snap: Snap
) -> None:
    open_restyle(page, api.url)  # no API key: readiness is open, so the notice shows before a key is typed
    page.wait_for_selector("#weights-notice", state="visible")
    snap(page, "notice")

    notice = untrained_notice("random(seed=0)")
    assert notice is not None
    assert page.inner_text("#weights-notice") == notice.replace("`", "")
    assert page.inner_text("#weights-notice code") == FETCH_COMMAND
    assert page.get_attribute("#weights-notice", "role") == "status"


def test_a_service_on_imagenet_weights_shows_no_notice(
    imagenet_api: Served, imagenet_worker: object, page: Page, snap: Snap
) -> None:
    open_restyle(page, imagenet_api.url)
    page.wait_for_function("document.querySelector('#service-weights').textContent.includes('vgg19-imagenet')")
    snap(page, "no-notice")

    assert page.is_hidden("#weights-notice")


def test_a_non_image_shows_the_services_message_and_keeps_the_form_filled(
    api: Served, page: Page, pictures: Pictures, snap: Snap
) -> None:
    open_restyle(page, api.url, key_of(api))
    choose(page, pictures.not_a_picture, pictures.paintings)
    set_parameters(page, size=32, iterations=3)
    snap(page, "chosen")

    page.click("#go")
    page.wait_for_selector("#problem", state="visible")
    snap(page, "error")

    message = page.inner_text("#problem")
    assert "content (notes.txt) is not an image" in message
    assert page.get_attribute("#content-thumbs li", "title") == "notes.txt"
    assert page.locator("#style-thumbs li").count() == 2
    assert page.input_value("#param-size") == "32"
    assert page.is_enabled("#go")


def test_without_an_api_key_the_page_asks_for_one(api: Served, page: Page, pictures: Pictures, snap: Snap) -> None:
    open_restyle(page, api.url)
    choose(page, pictures.photo, pictures.paintings[:1])
    snap(page, "chosen")

    page.click("#go")
    page.wait_for_selector("#problem", state="visible")
    snap(page, "asks-for-key")

    assert "API key" in page.inner_text("#problem")
    assert page.locator("#key-settings").evaluate("details => details.open")


def test_cancel_stops_the_running_job(api: Served, worker: object, page: Page, pictures: Pictures, snap: Snap) -> None:
    open_restyle(page, api.url, key_of(api))
    choose(page, pictures.photo, pictures.paintings[:1])
    set_parameters(page, size=32, iterations=5000)
    page.click("#go")
    wait_until_running(page)
    snap(page, "running")

    page.click("#cancel")
    page.wait_for_selector("#run", state="hidden")
    snap(page, "canceled")

    assert page.inner_text("#problem").startswith("Canceled.")
    assert page.is_enabled("#go")


def test_finished_jobs_are_listed_with_thumbnails_and_reopen(
    api: Served, worker: object, page: Page, pictures: Pictures, snap: Snap
) -> None:
    open_restyle(page, api.url, key_of(api))
    choose(page, pictures.photo, pictures.paintings)
    set_parameters(page, size=32, iterations=3)
    page.click("#go")
    wait_until_done(page)
    snap(page, "done")

    page.reload()
    page.wait_for_selector("#recent li")
    snap(page, "listed")
    entry = page.locator("#recent li")
    assert entry.count() == 1
    assert entry.locator(".badge").inner_text().lower() == "succeeded"
    assert (entry.locator("img").get_attribute("src") or "").startswith("data:image/jpeg")

    entry.locator("button").click()
    wait_until_done(page)
    snap(page, "reopened")
    assert page.eval_on_selector("#result", "image => image.naturalWidth") == 32


def test_without_keys_on_the_server_progress_arrives_by_event_source(
    make_settings: Callable[..., Settings],
    start_api: Callable[[Settings], Served],
    start_worker: Callable[[Settings], object],
    page: Page,
    pictures: Pictures,
    snap: Snap,
) -> None:
    settings = make_settings(api_keys=[])
    open_api = start_api(settings)
    start_worker(settings)
    open_restyle(page, open_api.url)
    choose(page, pictures.photo, pictures.paintings[:1])
    set_parameters(page, size=32, iterations=20)

    page.click("#go")
    wait_until_running(page)
    snap(page, "running")
    mode = page.inner_text("#run-mode")
    wait_until_done(page)
    snap(page, "done")

    assert mode == "Updates arrive by event stream."
    assert len({value for value in page.evaluate("window.seen.progress") if value > 0}) >= 2
