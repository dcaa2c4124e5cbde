"""Webhooks: signed POSTs of the final job, delivered from the due-list with retries and backoff."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

from restyle.jobs import JobStore
from restyle.webhook_targets import UnresolvedWebhookHost, WebhookPolicy
from restyle.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, WebhookDispatcher, sign, verify_signature
from tests.restyle.conftest import OWNER, new_record
from tests.support.settings import WEBHOOK_SECRET
from tests.support.webhook_receiver import WebhookReceiver

PUBLIC = "93.184.215.14"  # what the fake DNS answers for the public names below


def new_dispatcher(store: JobStore, **overrides: Any) -> WebhookDispatcher:
    """A dispatcher that may reach the loopback receiver (allow-listed, as an operator would), fast backoff."""
    options: dict[str, Any] = {
        "timeout": 5,
        "max_attempts": 3,
        "backoff_seconds": 0.1,
        "policy": WebhookPolicy(["127.0.0.1"]),
        **overrides,
    }
    return WebhookDispatcher(store, WEBHOOK_SECRET, **options)


def fake_dns(answers: dict[str, list[str]]) -> Callable[[str, int], Sequence[str]]:
    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise UnresolvedWebhookHost(f"{host} is not in the fake DNS")
        return answers[host]

    return resolve


class Recorder(httpx.BaseTransport):
    """A transport that records the requests it is given and answers 200, connecting nowhere."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200)


class Poisoned(httpx.HTTPTransport):
    """A real transport that raises something no one expects (not an httpx.HTTPError) for one host."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.headers["Host"] == self.host:
            raise RuntimeError("a client bug nobody foresaw")
        return super().handle_request(request)


def make_due(store: JobStore) -> None:
    """Bring every scheduled retry forward to now."""
    store.redis.zadd(
        store.keys.webhooks_due, {member: 0 for member in store.redis.zrange(store.keys.webhooks_due, 0, -1)}
    )


@pytest.fixture
def dispatcher(store: JobStore) -> Iterator[WebhookDispatcher]:
    """A dispatcher running in a thread, as in a worker, with a fast backoff."""
    dispatcher = new_dispatcher(store)
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop, 0.02), daemon=True)
    thread.start()
    yield dispatcher
    stop.set()
    thread.join(5)


def finish_with_webhook(store: JobStore, url: str) -> str:
    record, _ = store.create(new_record(webhook_url=url))
    store.cancel(record.id, OWNER)
    return record.id


def test_a_signature_verifies_only_for_the_exact_body_and_secret() -> None:
    signature = sign(b'{"id": 1}', "secret")
    assert signature.startswith("sha256=")
    assert verify_signature(b'{"id": 1}', "secret", signature)
    assert not verify_signature(b'{"id": 2}', "secret", signature)
    assert not verify_signature(b'{"id": 1}', "other", signature)


def test_a_final_job_is_posted_with_a_valid_signature(
    store: JobStore, dispatcher: WebhookDispatcher, webhook_receiver: WebhookReceiver
) -> None:
    job_id = finish_with_webhook(store, webhook_receiver.url)
    headers, body = webhook_receiver.next()
    assert verify_signature(body, WEBHOOK_SECRET, headers[SIGNATURE_HEADER])
    assert json.loads(body)["id"] == job_id
    assert json.loads(body)["status"] == "canceled"
    assert headers[EVENT_HEADER] == "job.canceled"


def test_a_failed_delivery_is_retried_with_the_same_delivery_id(
    store: JobStore, dispatcher: WebhookDispatcher, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.statuses = [500]
    finish_with_webhook(store, webhook_receiver.url)
    first, _ = webhook_receiver.next()
    second, body = webhook_receiver.next()
    assert second[DELIVERY_HEADER] == first[DELIVERY_HEADER]
    assert verify_signature(body, WEBHOOK_SECRET, second[SIGNATURE_HEADER])


def test_a_delivered_webhook_leaves_the_due_list(store: JobStore, webhook_receiver: WebhookReceiver) -> None:
    dispatcher = new_dispatcher(store)
    finish_with_webhook(store, webhook_receiver.url)
    assert dispatcher.deliver_due() == 1
    assert store.redis.zcard(store.keys.webhooks_due) == 0


def test_a_delivered_webhook_is_marked_delivered_on_its_job(store: JobStore, webhook_receiver: WebhookReceiver) -> None:
    job_id = finish_with_webhook(store, webhook_receiver.url)
    new_dispatcher(store).deliver_due()
    record = store.get_owned(job_id, OWNER)
    assert (record.webhook_status, record.webhook_error) == ("delivered", None)


def test_marking_the_webhook_does_not_count_the_job_again(store: JobStore, webhook_receiver: WebhookReceiver) -> None:
    finish_with_webhook(store, webhook_receiver.url)
    new_dispatcher(store).deliver_due()
    assert store.stats().outcomes["canceled"] == 1
    assert store.redis.zcard(store.keys.webhooks_due) == 0


def test_delivery_is_given_up_after_the_last_attempt(store: JobStore, webhook_receiver: WebhookReceiver) -> None:
    dispatcher = new_dispatcher(store, max_attempts=2, backoff_seconds=0.001)
    webhook_receiver.statuses = [500, 500, 500]
    finish_with_webhook(store, webhook_receiver.url)
    dispatcher.deliver_due()
    make_due(store)
    dispatcher.deliver_due()
    assert webhook_receiver.received.qsize() == 2
    assert store.redis.zcard(store.keys.webhooks_due) == 0


def test_a_webhook_given_up_is_marked_failed_on_its_job_with_the_reason(
    store: JobStore, webhook_receiver: WebhookReceiver
) -> None:
    dispatcher = new_dispatcher(store, max_attempts=1)
    webhook_receiver.statuses = [500]
    job_id = finish_with_webhook(store, webhook_receiver.url)
    dispatcher.deliver_due()
    record = store.get_owned(job_id, OWNER)
    assert (record.webhook_status, record.webhook_error) == (
        "failed",
        "given up after 1 attempts: receiver answered 500",
    )


def test_a_loopback_receiver_that_is_not_allow_listed_is_never_contacted(
    store: JobStore, webhook_receiver: WebhookReceiver
) -> None:
    dispatcher = new_dispatcher(store, policy=WebhookPolicy())
    finish_with_webhook(store, webhook_receiver.url)
    assert dispatcher.deliver_due() == 1
    assert webhook_receiver.received.empty()
    assert store.redis.zcard(store.keys.webhooks_due) == 0


def test_a_name_that_resolves_to_loopback_at_delivery_is_given_up_with_the_reason(
    store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    transport = Recorder()
    policy = WebhookPolicy(resolver=fake_dns({"hooks.example.com": ["127.0.0.1"]}))  # rebound since submission
    dispatcher = new_dispatcher(store, policy=policy, client=httpx.Client(transport=transport))
    job_id = finish_with_webhook(store, "https://hooks.example.com/hook")
    with caplog.at_level(logging.ERROR, logger="restyle.webhooks"):
        dispatcher.deliver_due()
    assert transport.requests == []
    assert store.redis.zcard(store.keys.webhooks_due) == 0
    assert f"webhook for job {job_id} given up" in caplog.text
    record = store.get_owned(job_id, OWNER)
    assert record.webhook_status == "failed"
    assert "127.0.0.1 is a loopback address" in (record.webhook_error or "")


def test_the_request_goes_to_the_checked_address_under_the_original_name(store: JobStore) -> None:
    transport = Recorder()
    policy = WebhookPolicy(resolver=fake_dns({"hooks.example.com": [PUBLIC]}))
    dispatcher = new_dispatcher(store, policy=policy, client=httpx.Client(transport=transport))
    finish_with_webhook(store, "https://hooks.example.com:8443/hook?source=restyle")
    dispatcher.deliver_due()
    [request] = transport.requests
    assert str(request.url) == f"https://{PUBLIC}:8443/hook?source=restyle"
    assert request.headers["Host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"  # TLS checks the name, not the address


def test_a_redirect_is_a_failed_attempt_not_followed(store: JobStore) -> None:
    requests: list[httpx.Request] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(302, headers={"Location": "http://127.0.0.1:6379/"})

    policy = WebhookPolicy(resolver=fake_dns({"hooks.example.com": [PUBLIC]}))
    client = httpx.Client(transport=httpx.MockTransport(redirect), follow_redirects=True)
    dispatcher = new_dispatcher(store, policy=policy, client=client)
    job_id = finish_with_webhook(store, "https://hooks.example.com/hook")
    dispatcher.deliver_due()
    assert len(requests) == 1
    assert store.redis.zscore(store.keys.webhooks_due, job_id) is not None  # rescheduled


def test_a_host_that_does_not_resolve_at_delivery_is_retried(store: JobStore) -> None:
    transport = Recorder()
    dispatcher = new_dispatcher(
        store, policy=WebhookPolicy(resolver=fake_dns({})), client=httpx.Client(transport=transport)
    )
    job_id = finish_with_webhook(store, "https://hooks.example.com/hook")
    dispatcher.deliver_due()
    assert transport.requests == []
    assert store.redis.zscore(store.keys.webhooks_due, job_id) is not None


def test_a_delivery_that_makes_the_client_raise_fails_alone_and_is_given_up_after_the_last_attempt(
    store: JobStore, webhook_receiver: WebhookReceiver
) -> None:
    poisoned_host = "poison.example.com"
    policy = WebhookPolicy(["127.0.0.1"], resolver=fake_dns({poisoned_host: [PUBLIC]}))
    client = httpx.Client(transport=Poisoned(poisoned_host))
    dispatcher = new_dispatcher(store, policy=policy, client=client, max_attempts=3)
    poisoned = finish_with_webhook(store, f"http://{poisoned_host}/hook")
    good = finish_with_webhook(store, webhook_receiver.url)
    store.redis.zadd(store.keys.webhooks_due, {poisoned: 1, good: 2})  # the poisoned one comes first in the batch
    assert dispatcher.deliver_due() == 2
    assert webhook_receiver.received.qsize() == 1  # delivered in the same pass, not after the poisoned one's retries
    _, body = webhook_receiver.next()
    assert json.loads(body)["id"] == good
    for _ in range(2):
        make_due(store)
        dispatcher.deliver_due()
    assert store.redis.zcard(store.keys.webhooks_due) == 0
    assert webhook_receiver.received.empty()
