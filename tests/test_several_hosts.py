"""The service spread over hosts that share nothing but Redis and an S3 bucket.

Each process (two API replicas, two workers) starts in an empty working directory of its own, with a storage
directory of its own that it must never use, and moto's S3 server on loopback as the store: whatever one
process needs from another can only have come through Redis or the bucket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from restyle.client import Client
from restyle.jobs import JobStore
from restyle.jobs.retention import purge_expired
from restyle.settings import Settings
from restyle.storage.s3 import S3Storage
from tests.api.conftest import ApiProcess
from tests.support.jobs import finished, running_with_progress, submit, succeeded, wait_for
from tests.support.object_store import S3Server
from tests.support.settings import ALICE, settings_env
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker_process import WorkerProcess

# A job long enough to be caught running (killed, its store cut) a moment after its first progress: a few seconds
# on an idle machine. wait_for is patient while a job moves, so a loaded machine only makes it slower.
SLOW_SIZE, SLOW_ITERATIONS = 64, 150
# Within what the S3 client's retries ride out (docs/deploy.md, "S3 and other object stores"): about 97 % of the time
# for 5 s, so 4 s keeps the test from flaking.
OUTAGE_SECONDS = 4.0


@dataclass
class Host:
    """One process's machine: its working directory and the environment it was started with."""

    root: Path
    env: dict[str, str]

    def untouched(self) -> bool:
        """Nothing written to this host's disk: the process kept everything in Redis and the bucket."""
        return not any(self.root.rglob("*"))


@dataclass
class Cluster:
    api: ApiProcess  # streams results
    redirecting_api: ApiProcess  # answers result downloads with 307 to a presigned URL
    workers: list[WorkerProcess]
    hosts: list[Host]
    settings: Settings

    def client(self, api: ApiProcess | None = None) -> httpx.Client:
        return httpx.Client(base_url=(api or self.api).url, headers={"Authorization": f"Bearer {ALICE}"}, timeout=60)


@pytest.fixture
def store_endpoint(s3_server: S3Server) -> Iterator[TcpProxy]:
    """The bucket's endpoint as the processes see it: a relay to the S3 server that a test can cut."""
    host, port = s3_server.endpoint.removeprefix("http://").split(":")
    proxy = TcpProxy((host, int(port)))
    yield proxy
    proxy.close()


@pytest.fixture
def cluster(
    s3_settings: Settings,
    s3_env: dict[str, str],
    store_endpoint: TcpProxy,
    tmp_path: Path,
    redis_client: redis.Redis[bytes],
) -> Iterator[Cluster]:
    def host(name: str, **overrides: str) -> Host:
        root = tmp_path / name / "cwd"
        root.mkdir(parents=True)
        env = settings_env(s3_settings) | s3_env | overrides
        # A storage directory of its own, outside its working directory, which must stay empty too.
        env["RESTYLE_STORAGE_DIR"] = str(tmp_path / name / "storage-dir-never-used")
        env["AWS_ENDPOINT_URL"] = f"http://{store_endpoint.address}"
        return Host(root, env)

    hosts = [host("api-a"), host("api-b", RESTYLE_RESULT_REDIRECT="true"), host("gpu-1"), host("gpu-2")]
    started: list[ApiProcess | WorkerProcess] = []
    try:
        apis = [ApiProcess(s3_settings, h.root.parent / "api.log", cwd=h.root, env=h.env) for h in hosts[:2]]
        started += apis
        workers = [WorkerProcess(s3_settings, h.root.parent / "worker.log", cwd=h.root, env=h.env) for h in hosts[2:]]
        started += workers
        for worker in workers:
            worker.wait_ready(redis_client)
        yield Cluster(apis[0], apis[1], workers, hosts, s3_settings)
    finally:
        for process in started:
            process.stop()


def objects(s3_server: S3Server, settings: Settings) -> list[str]:
    bucket = (settings.storage_url or "").removeprefix("s3://").split("/")[0]
    listed = s3_server.client.list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_jobs_complete_with_nothing_shared_but_redis_and_the_bucket(cluster: Cluster, s3_server: S3Server) -> None:
    with cluster.client() as http:
        jobs = [submit(http, size="48", iterations="5").json()["id"] for _ in range(4)]
        done = [wait_for(http, job_id, finished) for job_id in jobs]
        results = [http.get(f"/v1/jobs/{job_id}/result") for job_id in jobs]
    assert [job["status"] for job in done] == ["succeeded"] * 4
    assert [result.content[:4] for result in results] == [b"\x89PNG"] * 4
    assert {job_id for key in objects(s3_server, cluster.settings) for job_id in jobs if f"/{job_id}/" in key} == set(
        jobs
    )
    assert all(host.untouched() for host in cluster.hosts)


def test_both_workers_take_jobs(cluster: Cluster) -> None:
    with cluster.client() as http:
        jobs = [submit(http, size=SLOW_SIZE, iterations=SLOW_ITERATIONS).json()["id"] for _ in range(2)]
        runners = {wait_for(http, job_id, running_with_progress)["runs"][-1]["worker"] for job_id in jobs}
    assert runners == {worker.name for worker in cluster.workers}


@pytest.mark.slow  # waits out the killed worker's lease, by nature
def test_a_worker_killed_mid_job_leaves_it_to_the_other(cluster: Cluster) -> None:
    with cluster.client() as http:
        job_id = submit(http, size=SLOW_SIZE, iterations=SLOW_ITERATIONS).json()["id"]
        first = wait_for(http, job_id, running_with_progress)["runs"][-1]["worker"]
        victim = next(worker for worker in cluster.workers if worker.name == first)
        victim.kill()
        job = wait_for(http, job_id, finished)
    assert job["status"] == "succeeded"
    assert [run["worker"] for run in job["runs"]] == [first, *(w.name for w in cluster.workers if w is not victim)]


def test_a_result_downloads_streamed_and_through_a_presigned_redirect(cluster: Cluster) -> None:
    with cluster.client() as http, cluster.client(cluster.redirecting_api) as redirected:
        job_id = submit(http, size="48", iterations="5").json()["id"]
        wait_for(http, job_id, succeeded)
        streamed = http.get(f"/v1/jobs/{job_id}/result")
        redirect = redirected.get(f"/v1/jobs/{job_id}/result")
        job = redirected.get(f"/v1/jobs/{job_id}").json()
    assert redirect.status_code == 307
    presigned = httpx.get(redirect.headers["Location"])  # straight from the store, no API key
    assert presigned.content == streamed.content
    assert presigned.headers["Content-Type"] == "image/png"
    assert job["result_url"].startswith(cluster.redirecting_api.url)


def test_the_python_client_follows_the_redirect_to_the_store(cluster: Cluster) -> None:
    with cluster.client() as http:
        job_id = submit(http, size="48", iterations="5").json()["id"]
        wait_for(http, job_id, succeeded)
        streamed = http.get(f"/v1/jobs/{job_id}/result").content
    with Client(cluster.redirecting_api.url, api_key=ALICE) as client:
        assert client.result(job_id) == streamed


def test_retention_removes_a_jobs_objects_from_the_bucket(
    cluster: Cluster, s3_server: S3Server, s3_environ: None, redis_client: redis.Redis[bytes]
) -> None:
    with cluster.client() as http:
        job_id = submit(http, size="48", iterations="5").json()["id"]
        wait_for(http, job_id, succeeded)
    assert any(job_id in key for key in objects(s3_server, cluster.settings))
    settings = cluster.settings
    store = JobStore(redis_client, settings.key_prefix, settings.retention_seconds)
    bucket, _, prefix = (settings.storage_url or "").removeprefix("s3://").partition("/")
    purged = purge_expired(store.ledger, S3Storage(bucket, prefix), now=time.time() + settings.retention_seconds + 1)
    assert job_id in purged
    assert not any(job_id in key for key in objects(s3_server, cluster.settings))


def test_a_store_gone_for_seconds_mid_run_leaves_the_job_succeeded_and_every_answer_deliberate(
    cluster: Cluster, store_endpoint: TcpProxy, s3_server: S3Server, redis_client: redis.Redis[bytes]
) -> None:
    with cluster.client() as http:
        job_id = submit(http, size=SLOW_SIZE, iterations=SLOW_ITERATIONS).json()["id"]
        wait_for(http, job_id, running_with_progress)
        store_endpoint.cut()
        threading.Timer(OUTAGE_SECONDS, store_endpoint.restore).start()
        statuses = poll_for(http, job_id, seconds=OUTAGE_SECONDS + 2)
        job = wait_for(http, job_id, finished)
    assert not [code for code in statuses if code >= 500 and code != 503], statuses
    assert job["status"] == "succeeded", job
    record = JobStore(redis_client, cluster.settings.key_prefix, cluster.settings.retention_seconds).get(job_id)
    assert record is not None
    stored = set(objects(s3_server, cluster.settings))
    for key in (record.result_key, record.preview_key):
        assert f"restyle/{key}" in stored, (key, sorted(stored))


def poll_for(http: httpx.Client, job_id: str, seconds: float) -> list[int]:
    """The status codes of the job and its preview (streamed from the store), asked for ``seconds``."""
    codes: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        codes += [http.get(f"/v1/jobs/{job_id}{path}").status_code for path in ("", "/preview")]
        time.sleep(0.2)
    return codes
