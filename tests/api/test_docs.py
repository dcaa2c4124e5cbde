"""``/docs`` (Swagger UI) and ``/redoc``: the interactive API docs work on a closed network, their scripts,
styles and icon served by the API itself rather than a CDN, beside the web page's own at ``/``."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests.support.api_server import ApiServer

PAGES = ["/docs", "/redoc", "/"]
# Swagger UI's and ReDoc's bundles are megabytes, the other scripts, stylesheets and icons kilobytes: anything
# under this is an error page or a stub, not the asset.
SMALLEST_ASSET_BYTES = 1024


class AssetReferences(HTMLParser):
    """The URLs of the scripts, stylesheets and icons that a page makes the browser fetch (a ``data:`` URL
    carries its content inline)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attribute = {"script": "src", "link": "href"}.get(tag)
        url = dict(attrs).get(attribute) if attribute else None
        if url and not url.startswith("data:"):
            self.urls.append(url)


def assets_of(api: ApiServer, page: str) -> list[str]:
    with api.client(key=None) as http:
        response = http.get(page)
    assert response.status_code == 200
    return AssetReferences(response.text).urls


@pytest.mark.parametrize("page", PAGES)
def test_a_page_loads_nothing_from_another_host(api: ApiServer, page: str) -> None:
    urls = assets_of(api, page)
    assert urls, f"{page} references no script or stylesheet at all"
    assert [url for url in urls if "//" in url] == []  # http://, https:// and protocol-relative //cdn… alike


@pytest.mark.parametrize("page", PAGES)
def test_every_asset_a_page_references_is_served_by_the_api(api: ApiServer, page: str) -> None:
    with api.client(key=None) as http:
        served = {url: http.get(url) for url in assets_of(api, page)}
    answers = {
        url: (response.status_code, len(response.content) >= SMALLEST_ASSET_BYTES) for url, response in served.items()
    }
    assert answers == {url: (200, True) for url in served}
