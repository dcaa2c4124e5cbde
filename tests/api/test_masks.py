"""Masks on POST /v1/jobs: each tied to its style by its field, stored beside the job's pictures and recorded on
the job; every unusable mask refused with a problem that names its field, before anything is stored or queued."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from restyle.jobs import mask_key
from tests.api.test_validation import png_declaring, problem
from tests.support.api_server import ApiServer
from tests.support.jobs import submit
from tests.support.pictures import make_mask, make_png


def stored_files(api: ApiServer) -> list[Path]:
    return [path for path in Path(api.settings.storage_dir).rglob("*") if path.is_file()]


def refused(api: ApiServer, status: int = 422, **submission: Any) -> dict[str, Any]:
    """The problem answering ``submit(**submission)``, after checking that it left no job and no file behind."""
    with api.client() as http:
        body = problem(submit(http, **submission), status)
        assert http.get("/v1/jobs").json()["jobs"] == []
    assert stored_files(api) == []
    return body


def transparent_canvas() -> bytes:
    """What a paint program saves for a layer with nothing painted on it: white, and transparent everywhere."""
    buffer = io.BytesIO()
    Image.new("RGBA", (48, 40), (255, 255, 255, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


# Accepted -------------------------------------------------------------------------------------------------------


def test_a_masked_job_records_which_styles_have_masks(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        response = submit(http, styles=2, masks={"mask_2": make_mask(), "source_mask_1": make_mask()})
    assert response.status_code == 202, response.text
    assert (response.json()["masks"], response.json()["source_masks"]) == ([2], [1])


def test_a_job_without_masks_records_none(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        job = submit(http).json()
    assert (job["masks"], job["source_masks"]) == ([], [])


def test_masks_are_stored_byte_for_byte_beside_the_pictures(idle_api: ApiServer) -> None:
    sky, region = make_mask(covered=0.3), make_mask(covered=0.7)
    with idle_api.client() as http:
        job = submit(http, styles=2, masks={"mask_1": sky, "source_mask_2": region}).json()
    folder = Path(idle_api.settings.storage_dir)
    assert (folder / mask_key(job["id"], 1)).read_bytes() == sky
    assert (folder / mask_key(job["id"], 2, source=True)).read_bytes() == region


def test_a_mask_of_another_size_than_the_photo_is_accepted(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        response = submit(http, content=make_png(48, 40), masks={"mask_1": make_mask(7, 300)})
    assert response.status_code == 202, response.text


def test_a_colour_jpeg_mask_is_accepted(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        response = submit(http, masks={"mask_1": make_png(image_format="JPEG")})
    assert response.status_code == 202, response.text


def test_the_same_idempotency_key_with_another_mask_is_refused(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        submit(http, masks={"mask_1": make_mask(covered=0.3)}, headers={"Idempotency-Key": "masked-1"})
        response = submit(http, masks={"mask_1": make_mask(covered=0.6)}, headers={"Idempotency-Key": "masked-1"})
    assert problem(response, 422)["code"] == "idempotency_key_reused"


def test_the_same_idempotency_key_with_the_same_masks_replays_the_job(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        first = submit(http, masks={"mask_1": make_mask()}, headers={"Idempotency-Key": "masked-2"})
        again = submit(http, masks={"mask_1": make_mask()}, headers={"Idempotency-Key": "masked-2"})
    assert again.json()["id"] == first.json()["id"]


# Refused --------------------------------------------------------------------------------------------------------


def test_a_mask_for_a_style_that_was_not_sent_is_refused_naming_the_field(idle_api: ApiServer) -> None:
    body = refused(idle_api, styles=2, masks={"mask_3": make_mask()})
    assert body["code"] == "invalid_upload"
    assert body["detail"] == "'mask_3' is a mask for style 3, but only 2 'style' files were sent"


def test_a_source_mask_for_a_style_that_was_not_sent_is_refused_naming_the_field(idle_api: ApiServer) -> None:
    body = refused(idle_api, masks={"source_mask_2": make_mask()})
    assert body["detail"] == "'source_mask_2' is a mask for style 2, but only 1 'style' file was sent"


def test_a_mask_field_beyond_the_fourth_style_is_refused_as_unexpected(idle_api: ApiServer) -> None:
    body = refused(idle_api, masks={"mask_5": make_mask()})
    assert body["code"] == "invalid_upload"
    assert body["detail"].startswith("unexpected file field(s) mask_5:")


def test_a_mask_that_is_not_an_image_is_refused_naming_the_field(idle_api: ApiServer) -> None:
    body = refused(idle_api, masks={"mask_1": b"sky, roughly the top half"})
    assert body["code"] == "not_an_image"
    assert body["detail"].startswith("mask_1 (mask_1.png) is not an image")


def test_a_truncated_mask_is_refused_naming_the_field(idle_api: ApiServer) -> None:
    body = refused(idle_api, masks={"source_mask_1": make_png(48, 40, image_format="JPEG")[:-200]})
    assert body["code"] == "truncated_image"
    assert body["detail"].startswith("source_mask_1 (source_mask_1.png) is truncated")


def test_a_mask_over_the_pixel_limit_is_refused_without_decoding_it(idle_api: ApiServer) -> None:
    body = refused(idle_api, masks={"mask_1": png_declaring(50_000, 50_000)})
    assert body["code"] == "image_too_large"
    assert "mask_1" in body["detail"]


def test_an_all_black_mask_is_refused_with_the_engines_code_and_message(idle_api: ApiServer) -> None:
    body = refused(idle_api, masks={"mask_1": make_mask(covered=0)})
    assert body["code"] == "mask_all_black"
    assert body["detail"] == "mask_1 (mask_1.png): the mask for style 1 is all black: it would paint nothing"


def test_an_all_black_source_mask_is_refused_naming_its_field(idle_api: ApiServer) -> None:
    body = refused(idle_api, styles=2, masks={"source_mask_2": make_mask(covered=0)})
    assert body["code"] == "mask_all_black"
    assert body["detail"].startswith("source_mask_2 (source_mask_2.png): ")


def test_a_mask_painted_nowhere_on_a_transparent_canvas_counts_as_all_black(idle_api: ApiServer) -> None:
    body = refused(idle_api, masks={"mask_1": transparent_canvas()})
    assert body["code"] == "mask_all_black"


def test_a_mask_sent_as_text_is_refused(idle_api: ApiServer) -> None:
    with idle_api.client() as http:
        response = http.post(
            "/v1/jobs",
            data={"mask_1": "left half", "size": "32"},
            files=[("content", ("photo.png", make_png(), "image/png")), ("style", ("p.png", make_png(), "image/png"))],
        )
    assert problem(response, 422)["detail"].startswith("'mask_1' must be a file upload")


def test_two_masks_in_one_field_are_refused(idle_api: ApiServer) -> None:
    files: list[tuple[str, tuple[str, bytes, str]]] = [
        ("content", ("photo.png", make_png(), "image/png")),
        ("style", ("painting.png", make_png(), "image/png")),
        ("mask_1", ("a.png", make_mask(), "image/png")),
        ("mask_1", ("b.png", make_mask(), "image/png")),
    ]
    with idle_api.client() as http:
        body = problem(http.post("/v1/jobs", files=files, data={"size": "32"}), 422)
    assert body["detail"] == "'mask_1': send at most one mask per field, not 2"


def test_a_bad_mask_is_refused_even_when_the_other_masks_are_good(idle_api: ApiServer) -> None:
    body = refused(idle_api, styles=2, masks={"mask_1": make_mask(), "mask_2": make_mask(covered=0)})
    assert body["detail"].startswith("mask_2 ")


def test_the_form_documents_every_mask_field_as_an_image(idle_api: ApiServer) -> None:
    with idle_api.client(key=None) as http:
        form = http.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    schema, encoding = form["multipart/form-data"]["schema"], form["multipart/form-data"]["encoding"]
    fields = [f"{kind}_{number}" for kind in ("mask", "source_mask") for number in range(1, 5)]
    assert all(schema["properties"][field]["format"] == "binary" for field in fields)
    assert all(encoding[field] == {"contentType": "image/*"} for field in fields)
    assert set(fields).isdisjoint(schema["required"])
