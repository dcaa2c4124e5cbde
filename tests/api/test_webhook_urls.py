"""Webhook URLs at submission: malformed ones and ones pointing inside the network get 422 ``invalid_webhook_url``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from restyle import webhook_targets
from restyle.webhook_targets import UnresolvedWebhookHost
from tests.support.jobs import submit
from tests.support.webhook_urls import FORBIDDEN, MALFORMED, fuzzed


def refusal(response: httpx.Response) -> dict[str, Any]:
    """The problem body of a refused webhook URL, after checking that that is what the response is."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == "invalid_webhook_url", body
    return body


def unresolved(host: str, port: int) -> Sequence[str]:
    raise UnresolvedWebhookHost(f"{host} does not resolve in this test")


@pytest.fixture
def offline_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """No name resolves, so the tests never wait on (or depend on) real DNS; the API runs in this process."""
    monkeypatch.setattr(webhook_targets, "resolve_host", unresolved)


@pytest.mark.parametrize("url", FORBIDDEN)
def test_a_webhook_url_pointing_inside_the_network_is_refused(
    strict_client: httpx.Client, offline_dns: None, url: str
) -> None:
    assert refusal(submit(strict_client, webhook_url=url))["detail"].startswith("webhook_url: ")


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_webhook_url_is_refused(strict_client: httpx.Client, offline_dns: None, url: str) -> None:
    refusal(submit(strict_client, webhook_url=url))


def test_a_name_that_resolves_to_a_private_address_is_refused(
    strict_client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_targets, "resolve_host", lambda host, port: ["93.184.215.14", "10.0.0.7"])
    body = refusal(submit(strict_client, webhook_url="https://hooks.example.com/hook"))
    assert "10.0.0.7 is a private address" in body["detail"]


def test_a_name_that_does_not_resolve_yet_is_accepted(strict_client: httpx.Client, offline_dns: None) -> None:
    response = submit(strict_client, webhook_url="https://hooks.example.com/hook")
    assert response.status_code == 202, response.text
    assert response.json()["webhook_url"] == "https://hooks.example.com/hook"


def test_a_name_that_resolves_to_public_addresses_is_accepted(
    strict_client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_targets, "resolve_host", lambda host, port: ["93.184.215.14", "2606:2800:21f::1"])
    assert submit(strict_client, webhook_url="https://hooks.example.com/hook").status_code == 202


def test_an_allow_listed_address_is_accepted(client: httpx.Client) -> None:
    assert submit(client, webhook_url="http://127.0.0.1:9/hook").status_code == 202


def test_no_webhook_url_is_ever_a_server_error(strict_client: httpx.Client, offline_dns: None) -> None:
    for url in fuzzed(300):
        response = submit(strict_client, webhook_url=url)
        assert response.status_code < 500, (url, response.text)
        if response.status_code == 422:
            assert response.json()["code"] in ("invalid_webhook_url", "invalid_parameters"), (url, response.text)
