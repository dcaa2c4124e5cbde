"""Webhooks: when a job reaches a final state, POST its JSON to the job's ``webhook_url``, signed and retried.

The final transition of a job record (``Ledger.on_final``) puts the job id on a due-list in Redis in the same
transaction, so a webhook is never forgotten between "job finished" and "webhook sent". A dispatcher thread in
each worker process claims due entries with a lease (a crashed dispatcher's claims fall due again), sends them,
and on failure reschedules with exponential backoff until ``webhook_max_attempts``. Any error of one delivery is
that delivery's failed attempt; it never holds up the rest of its batch.

Where a webhook may go is ``restyle.webhook_targets``' decision, made again at every attempt: the host is
resolved, every address checked, and the request sent to a checked address itself (the URL's host name rides
in the Host header and, for https, in SNI and the certificate check), so DNS cannot point the POST elsewhere
between check and connection. A target refused at delivery is given up at once, without connecting.

Receivers check ``X-Restyle-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body under the shared
secret, with ``verify_signature``; ``X-Restyle-Delivery`` is stable across retries of one delivery.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import threading
import time

import httpx
import redis

from restyle.jobs import JobNotFound, JobPublic, JobRecord, JobStore, WebhookStatus
from restyle.webhook_targets import (
    InvalidWebhookUrl,
    IPAddress,
    UnresolvedWebhookHost,
    WebhookPolicy,
    WebhookTarget,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Restyle-Signature"
EVENT_HEADER = "X-Restyle-Event"
DELIVERY_HEADER = "X-Restyle-Delivery"

# Atomically take the due entries and push their due time past the lease, so no other dispatcher sends them.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: str, signature: str) -> bool:
    """What a receiver runs on the raw body; constant-time, so the signature cannot be guessed byte by byte."""
    return hmac.compare_digest(sign(body, secret), signature)


class WebhookDispatcher:
    """Sends due webhooks; ``run`` loops in a background thread of a worker process."""

    def __init__(
        self,
        store: JobStore,
        secret: str,
        *,
        timeout: float,
        max_attempts: int,
        backoff_seconds: float,
        public_url: str | None = None,
        policy: WebhookPolicy | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.store = store
        self.secret = secret
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.base_url = (public_url or "").rstrip("/")
        self.policy = policy or WebhookPolicy()
        # No keep-alive: the pool is keyed by address, so a connection verified for one host name would carry
        # the next request for another name on the same address. No proxies or netrc from the environment:
        # the hosts come from clients, so ambient configuration must not decide where their requests go.
        self.client = client or httpx.Client(
            timeout=timeout, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0), trust_env=False
        )
        self._attempts = f"{store.keys.prefix}:webhooks:attempts"
        self._claim = store.redis.register_script(_CLAIM)

    def deliver_due(self, batch: int = 10) -> int:
        """Send every webhook that is due now; returns how many were tried."""
        now = time.time()
        lease = now + self.timeout + 30
        claimed = self._claim(keys=[self.store.keys.webhooks_due], args=[now, lease, batch])
        for raw in claimed:
            job_id = raw.decode()
            try:
                self._deliver(job_id)
            except redis.RedisError as error:  # the claim's lease brings the entry back once Redis answers
                log.warning("webhook for job %s not sent, Redis unavailable (%s)", job_id, error)
            except Exception as error:
                log.exception("webhook for job %s failed unexpectedly", job_id)
                self._failed(job_id, f"{type(error).__name__}: {error}")
        return len(claimed)

    def run(self, stop: threading.Event, interval: float = 0.25) -> None:
        """Deliver until ``stop`` is set; Redis hiccups are logged and retried, never fatal to the worker."""
        while not stop.is_set():
            try:
                if self.deliver_due():
                    continue
            except Exception:
                log.exception("webhook dispatch failed; retrying")
            stop.wait(interval)

    def _deliver(self, job_id: str) -> None:
        record = self.store.get(job_id)
        if record is None or not record.webhook_url:
            self._forget(job_id)  # purged after retention, nothing left to announce
            return
        try:
            target = self.policy.target(record.webhook_url)
        except InvalidWebhookUrl as refusal:  # no later attempt can do better: give up without connecting
            log.error("webhook for job %s given up: %s", job_id, refusal)
            self._settle(job_id, "failed", str(refusal))
            return
        except UnresolvedWebhookHost as error:  # the host does not resolve now; it may at the next attempt
            self._failed(job_id, str(error))
            return
        body = JobPublic.from_record(record, self.base_url).model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "restyle-webhook/1",
            SIGNATURE_HEADER: sign(body, self.secret),
            EVENT_HEADER: f"job.{record.status}",
            DELIVERY_HEADER: f"{job_id}.{record.version}",
        }
        try:
            response = self._post(target, body, headers)
            problem = None if response.is_success else f"receiver answered {response.status_code}"
        except httpx.HTTPError as error:
            problem = f"{type(error).__name__}: {error}"
        if problem is None:
            log.info("webhook for job %s delivered to %s", job_id, record.webhook_url)
            self._settle(job_id, "delivered")
            return
        self._failed(job_id, problem)

    def _post(self, target: WebhookTarget, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST to the checked addresses in turn until one accepts the connection."""
        headers = {**headers, "Host": target.host_header}
        extensions = {} if target.literal or not target.url.https else {"sni_hostname": target.url.host}
        for address in target.addresses[:-1]:
            try:
                return self._post_to(target, address, body, headers, extensions)
            except httpx.ConnectError as error:
                log.info(
                    "webhook receiver %s unreachable at %s (%s); trying the next address",
                    target.url.host,
                    address,
                    error,
                )
        return self._post_to(target, target.addresses[-1], body, headers, extensions)

    def _post_to(
        self,
        target: WebhookTarget,
        address: IPAddress,
        body: bytes,
        headers: dict[str, str],
        extensions: dict[str, str],
    ) -> httpx.Response:
        request = self.client.build_request(
            "POST",
            target.request_url(address),
            content=body,
            headers=headers,
            timeout=self.timeout,
            extensions=extensions,
        )
        return self.client.send(request, follow_redirects=False)

    def _failed(self, job_id: str, problem: str) -> None:
        """Count a failed attempt: retry after a backoff, or give up after the last attempt."""
        attempts = int(self.store.redis.hincrby(self._attempts, job_id, 1))
        if attempts >= self.max_attempts:
            log.error("webhook for job %s given up after %d attempts: %s", job_id, attempts, problem)
            self._settle(job_id, "failed", f"given up after {attempts} attempts: {problem}")
            return
        delay = self.backoff_seconds * 2 ** (attempts - 1)
        log.warning("webhook for job %s failed (%s); attempt %d in %.1f s", job_id, problem, attempts + 1, delay)
        self.store.redis.zadd(self.store.keys.webhooks_due, {job_id: time.time() + delay})

    def _settle(self, job_id: str, status: WebhookStatus, error: str | None = None) -> None:
        """Record the webhook's fate on its job, where its owner can see it, and stop trying."""

        def change(record: JobRecord) -> JobRecord:
            return record.model_copy(update={"webhook_status": status, "webhook_error": error})

        with contextlib.suppress(JobNotFound):  # purged meanwhile: nobody is left to tell
            self.store.ledger.update(job_id, change)
        self._forget(job_id)

    def _forget(self, job_id: str) -> None:
        with self.store.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.store.keys.webhooks_due, job_id)
            pipe.hdel(self._attempts, job_id)
            pipe.execute()
