"""Webhooks: signed POSTs of the final job, delivered from the due-list with retries and backoff."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from restyle.jobs import JobStore
from restyle.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, WebhookDispatcher, sign, verify_signature
from tests.conftest import WEBHOOK_SECRET, WebhookReceiver
from tests.restyle.conftest import OWNER, new_record


@pytest.fixture
def dispatcher(store: JobStore) -> Iterator[WebhookDispatcher]:
    """A dispatcher running in a thread, as in a worker, with a fast backoff."""
    dispatcher = WebhookDispatcher(store, WEBHOOK_SECRET, timeout=5, max_attempts=3, backoff_seconds=0.1)
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
    dispatcher = WebhookDispatcher(store, WEBHOOK_SECRET, timeout=5, max_attempts=3, backoff_seconds=0.1)
    finish_with_webhook(store, webhook_receiver.url)
    assert dispatcher.deliver_due() == 1
    assert store.redis.zcard(store.keys.webhooks_due) == 0


def test_delivery_is_given_up_after_the_last_attempt(store: JobStore, webhook_receiver: WebhookReceiver) -> None:
    dispatcher = WebhookDispatcher(store, WEBHOOK_SECRET, timeout=5, max_attempts=2, backoff_seconds=0.001)
    webhook_receiver.statuses = [500, 500, 500]
    finish_with_webhook(store, webhook_receiver.url)
    dispatcher.deliver_due()
    store.redis.zadd(
        store.keys.webhooks_due, {member: 0 for member in store.redis.zrange(store.keys.webhooks_due, 0, -1)}
    )
    dispatcher.deliver_due()
    assert webhook_receiver.received.qsize() == 2
    assert store.redis.zcard(store.keys.webhooks_due) == 0
