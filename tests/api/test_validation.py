"""Bad input: every kind gets a 4xx problem that names what is wrong, never a 5xx."""

from __future__ import annotations

import socket
import struct
import time
import zlib
from typing import Any

import httpx
import pytest

from tests.api.conftest import METRICS_TOKEN
from tests.support.api_server import ApiServer
from tests.support.jobs import submit
from tests.support.pictures import make_png
from tests.support.settings import ALICE, MakeSettings

Files = list[tuple[str, tuple[str, bytes, str]]]


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes whose header declares a huge picture: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def post(http: httpx.Client, files: Files, data: dict[str, Any] | None = None) -> httpx.Response:
    return http.post("/v1/jobs", files=files, data=data or {})


def content(data: bytes, name: str = "photo.png") -> tuple[str, tuple[str, bytes, str]]:
    return ("content", (name, data, "image/png"))


def style(data: bytes, name: str = "painting.png") -> tuple[str, tuple[str, bytes, str]]:
    return ("style", (name, data, "image/png"))


def encoded_submission(http: httpx.Client) -> httpx.Request:
    """A valid submission, encoded but not sent, for tests that tamper with its bytes or headers."""
    return http.build_request("POST", "/v1/jobs", files=[content(make_png()), style(make_png())], data={"size": "32"})


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem body, after checking the status and the problem media type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def test_a_missing_content_file_is_refused(client: httpx.Client) -> None:
    body = problem(post(client, [style(make_png())]), 422)
    assert body["code"] == "invalid_upload"
    assert "'content'" in body["detail"]


def test_a_missing_style_file_is_refused(client: httpx.Client) -> None:
    body = problem(post(client, [content(make_png())]), 422)
    assert "'style'" in body["detail"]


def test_more_than_four_styles_are_refused(client: httpx.Client) -> None:
    body = problem(post(client, [content(make_png())] + [style(make_png())] * 5), 422)
    assert "between 1 and 4 'style' files" in body["detail"]


def test_two_content_files_are_refused(client: httpx.Client) -> None:
    body = problem(post(client, [content(make_png()), content(make_png()), style(make_png())]), 422)
    assert "exactly one 'content' file" in body["detail"]


def test_an_unexpected_file_field_is_refused_by_name(client: httpx.Client) -> None:
    files = [content(make_png()), style(make_png()), ("mask", ("mask.png", make_png(), "image/png"))]
    body = problem(post(client, files), 422)
    assert "mask" in body["detail"]


def test_content_sent_as_text_instead_of_a_file_is_refused(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", data={"content": "photo.png"}, files=[style(make_png())])
    assert "'content' must be a file upload" in problem(response, 422)["detail"]


def test_a_non_image_is_refused_naming_the_file(client: httpx.Client) -> None:
    body = problem(post(client, [content(b"%PDF-1.4 not a picture", "report.pdf"), style(make_png())]), 422)
    assert body["code"] == "not_an_image"
    assert "report.pdf" in body["detail"]


def test_a_truncated_image_is_refused_naming_the_file(client: httpx.Client) -> None:
    cut = make_png(48, 40, image_format="JPEG")[:-200]
    body = problem(post(client, [content(make_png()), style(cut, "cut.jpg")]), 422)
    assert body["code"] == "truncated_image"
    assert "style 1 (cut.jpg)" in body["detail"]


def test_a_decompression_bomb_is_refused_without_decoding_it(client: httpx.Client) -> None:
    body = problem(post(client, [content(png_declaring(50_000, 50_000), "bomb.png"), style(make_png())]), 422)
    assert body["code"] == "image_too_large"
    assert "bomb.png" in body["detail"]


def test_a_picture_over_the_pixel_limit_is_refused(client: httpx.Client) -> None:
    body = problem(post(client, [content(png_declaring(2000, 1000), "big.png"), style(make_png())]), 422)
    assert body["code"] == "image_too_large"


def test_a_tiny_image_is_refused(client: httpx.Client) -> None:
    body = problem(post(client, [content(make_png(8, 8), "icon.png"), style(make_png())]), 422)
    assert body["code"] == "image_too_small"
    assert "icon.png" in body["detail"]


def test_a_panorama_too_thin_at_the_requested_size_is_refused(client: httpx.Client) -> None:
    body = problem(post(client, [content(make_png(400, 16), "ribbon.png"), style(make_png())], {"size": 64}), 422)
    assert body["code"] == "image_too_small"
    assert "ribbon.png" in body["detail"] and "64×3" in body["detail"]


def test_a_multipart_body_cut_before_its_closing_boundary_is_refused(client: httpx.Client) -> None:
    request = encoded_submission(client)
    whole = request.read()
    cut = whole[: whole.rindex(b"\r\n--")]  # the last field loses its closing boundary, as a dropped connection would
    response = client.post("/v1/jobs", content=cut, headers={"Content-Type": request.headers["Content-Type"]})
    assert problem(response, 400)["code"] == "incomplete_upload"


def test_the_multipart_media_type_is_case_insensitive(client: httpx.Client) -> None:
    request = encoded_submission(client)
    media_type = request.headers["Content-Type"].replace("multipart/form-data", "Multipart/Form-Data")
    response = client.post("/v1/jobs", content=request.read(), headers={"Content-Type": media_type})
    assert response.status_code == 202, response.text


def test_a_client_leaving_mid_upload_is_not_counted_as_a_server_error(metered_api: ApiServer) -> None:
    host, port = metered_api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ALICE.encode() + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n--x\r\n"
        )
    deadline = time.monotonic() + 10
    with metered_api.client(METRICS_TOKEN) as scraper:
        while '/v1/jobs",status="499"' not in (metrics := scraper.get("/metrics").text) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert '/v1/jobs",status="499"' in metrics
    assert '/v1/jobs",status="500"' not in metrics


def test_an_upload_over_the_size_limit_is_refused_with_413(client: httpx.Client) -> None:
    huge = b"\0" * (300 * 1024)
    body = problem(post(client, [content(huge), style(make_png())]), 413)
    assert body["code"] == "upload_too_large"


def test_a_chunked_upload_is_cut_off_at_the_size_limit(client: httpx.Client) -> None:
    def chunks() -> Any:
        yield b'--x\r\nContent-Disposition: form-data; name="content"; filename="a.png"\r\n\r\n'
        for _ in range(40):
            yield b"\0" * 16384

    response = client.post("/v1/jobs", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert problem(response, 413)["code"] == "upload_too_large"


def test_an_out_of_range_parameter_is_refused_naming_the_field(client: httpx.Client) -> None:
    body = problem(submit(client, size=9999), 422)
    assert body["code"] == "invalid_parameters"
    assert body["errors"][0]["field"] == "size"
    assert body["detail"].startswith("size:")


def test_a_size_over_the_servers_cap_is_refused_naming_the_cap_and_its_setting(client: httpx.Client) -> None:
    body = problem(submit(client, size=3000), 422)
    assert body["code"] == "invalid_parameters"
    assert body["errors"] == [
        {"field": "size", "message": "3000 px is over this server's limit of 2048 px (its RESTYLE_MAX_SIZE)"}
    ]
    assert body["detail"] == f"size: {body['errors'][0]['message']}"


def test_a_server_with_a_higher_cap_accepts_print_sizes(make_settings: MakeSettings, start_api: Any) -> None:
    server: ApiServer = start_api(make_settings(max_size=4096))
    with server.client() as http:
        response = submit(http, size=3000)
    assert response.status_code == 202, response.text
    assert response.json()["params"]["size"] == 3000


def test_an_ill_typed_parameter_is_refused_naming_the_field(client: httpx.Client) -> None:
    body = problem(submit(client, iterations="many"), 422)
    assert body["errors"][0]["field"] == "iterations"


def test_an_unknown_parameter_is_refused_naming_it(client: httpx.Client) -> None:
    body = problem(submit(client, colour="red"), 422)
    assert body["errors"][0]["field"] == "colour"


def test_an_unknown_layer_is_refused_naming_the_field(client: httpx.Client) -> None:
    body = problem(submit(client, style_layers="relu9_9"), 422)
    assert body["errors"][0]["field"] == "style_layers"


def test_blend_weights_that_do_not_match_the_styles_are_refused(client: httpx.Client) -> None:
    body = problem(submit(client, styles=2, style_blend="1,2,3"), 422)
    assert body["code"] == "invalid_request"
    assert "style_blend" in body["detail"]


def test_a_webhook_url_that_is_not_http_is_refused(client: httpx.Client) -> None:
    body = problem(submit(client, webhook_url="ftp://example.org/hook"), 422)
    assert "webhook_url" in body["detail"]


def test_webhooks_are_refused_when_the_server_has_no_secret(make_settings: MakeSettings, start_api: Any) -> None:
    server: ApiServer = start_api(make_settings(webhook_secret=None))
    with server.client() as http:
        body = problem(submit(http, webhook_url="http://127.0.0.1:9/hook"), 422)
    assert "RESTYLE_WEBHOOK_SECRET" in body["detail"]


def test_a_body_that_is_not_multipart_is_refused_with_415(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json={"content": "photo.png"})
    assert problem(response, 415)["code"] == "unsupported_media_type"


def test_an_unknown_job_is_404(client: httpx.Client) -> None:
    body = problem(client.get("/v1/jobs/0190f5c2-7a1e-7c3b-9a4e-2f1d0c9b8a7f"), 404)
    assert body["code"] == "job_not_found"


@pytest.mark.parametrize("path", ["/result", "/preview", "/events"])
def test_an_unknown_jobs_subresources_are_404(client: httpx.Client, path: str) -> None:
    assert client.get(f"/v1/jobs/no-such-job{path}").status_code == 404


def test_an_out_of_range_page_size_is_refused_naming_the_field(client: httpx.Client) -> None:
    body = problem(client.get("/v1/jobs", params={"limit": 1000}), 422)
    assert body["errors"][0]["field"] == "limit"


def test_a_full_queue_answers_503_with_retry_after(make_settings: MakeSettings, start_api: Any) -> None:
    server: ApiServer = start_api(make_settings(max_queue_depth=1))
    with server.client() as http:
        assert submit(http).status_code == 202
        response = submit(http)
    assert problem(response, 503)["code"] == "queue_full"
    assert response.headers["Retry-After"] == "7"
