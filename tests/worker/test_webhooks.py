"""Webhooks end to end: a job submitted with a webhook_url is announced to a local receiver, signed."""

from __future__ import annotations

import json

import httpx

from restyle.webhooks import EVENT_HEADER, SIGNATURE_HEADER, verify_signature
from tests.support.jobs import submit, wait_for
from tests.support.settings import WEBHOOK_SECRET
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.worker_process import WorkerProcess


def test_a_finished_job_is_posted_to_its_webhook_with_a_valid_signature(
    client: httpx.Client, worker: WorkerProcess, webhook_receiver: WebhookReceiver
) -> None:
    job = submit(client, webhook_url=webhook_receiver.url).json()
    headers, body = webhook_receiver.next()
    assert verify_signature(body, WEBHOOK_SECRET, headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert (payload["id"], payload["status"], headers[EVENT_HEADER]) == (job["id"], "succeeded", "job.succeeded")
    assert payload["result_url"].endswith(f"/v1/jobs/{job['id']}/result")


def test_a_refused_webhook_is_delivered_again(
    client: httpx.Client, worker: WorkerProcess, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.statuses = [503]
    job = submit(client, webhook_url=webhook_receiver.url).json()
    webhook_receiver.next()
    _, retried = webhook_receiver.next()
    assert json.loads(retried)["id"] == job["id"]


def test_the_job_shows_its_webhook_pending_then_delivered(
    client: httpx.Client, worker: WorkerProcess, webhook_receiver: WebhookReceiver
) -> None:
    job = submit(client, webhook_url=webhook_receiver.url).json()
    webhook_receiver.next()
    delivered = wait_for(client, job["id"], lambda job: job["webhook_status"] != "pending")
    assert (job["webhook_status"], delivered["webhook_status"], delivered["webhook_error"]) == (
        "pending",
        "delivered",
        None,
    )
