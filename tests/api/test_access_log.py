"""Keys never reach logs: credentials in query strings are blanked in the access log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx
import pytest

from api.access_log import ACCESS_LOGGER, QueryRedaction, install_access_log_redaction, redact_query
from restyle.settings import Settings
from tests.api.conftest import ApiProcess
from tests.support import PATIENCE_SECONDS
from tests.support.jobs import submit
from tests.support.settings import ALICE, MakeSettings


def test_the_access_token_is_redacted() -> None:
    assert redact_query("/v1/jobs/abc/events?access_token=alice-key") == "/v1/jobs/abc/events?access_token=[redacted]"


def test_other_parameters_are_kept() -> None:
    assert redact_query("/v1/jobs?limit=5&access_token=k&status=queued") == (
        "/v1/jobs?limit=5&access_token=[redacted]&status=queued"
    )


@pytest.mark.parametrize("name", ["api_key", "apikey", "token", "client_secret", "password", "X-Amz-Signature"])
def test_credential_like_parameters_of_other_clients_are_redacted(name: str) -> None:
    assert redact_query(f"/?{name}=s3cret") == f"/?{name}=[redacted]"


def test_a_percent_encoded_name_is_recognised_as_the_app_decodes_it() -> None:
    assert redact_query("/v1/jobs?access_%74oken=alice-key") == "/v1/jobs?access_%74oken=[redacted]"


def test_a_path_without_a_query_is_unchanged() -> None:
    assert redact_query("/v1/jobs/abc") == "/v1/jobs/abc"


def test_the_record_keeps_the_argument_shape_uvicorns_formatter_unpacks() -> None:
    args = ("127.0.0.1:5000", "GET", "/v1/jobs?access_token=k", "1.1", 200)
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)
    assert QueryRedaction().filter(record)
    assert record.args == ("127.0.0.1:5000", "GET", "/v1/jobs?access_token=[redacted]", "1.1", 200)


def test_installing_twice_filters_once() -> None:
    install_access_log_redaction()
    install_access_log_redaction()
    filters = logging.getLogger(ACCESS_LOGGER).filters
    assert sum(isinstance(existing, QueryRedaction) for existing in filters) == 1


def logged(api: ApiProcess, fragment: str) -> str:
    """The API's log once ``fragment`` appears in it (the line is written as the response starts)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while fragment not in (text := api.log()):
        assert time.monotonic() < deadline, f"{fragment!r} never logged:\n{text[-3000:]}"
        time.sleep(0.05)
    return text


def test_a_key_sent_as_access_token_is_absent_from_the_access_log_of_restyle_api(
    make_settings: MakeSettings, start_api_process: Callable[[Settings], ApiProcess]
) -> None:
    api = start_api_process(make_settings(api_keys=[ALICE]))
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {ALICE}"}) as http:
        job_id = submit(http).json()["id"]
    assert httpx.get(f"{api.url}/v1/jobs/{job_id}", params={"access_token": ALICE}).status_code == 200
    text = logged(api, f'"GET /v1/jobs/{job_id}?access_token=[redacted] HTTP/1.1" 200')
    assert ALICE not in text
