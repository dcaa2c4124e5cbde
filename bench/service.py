"""Service benchmark (prints figures; not a test): HTTP latency under pollers and uploads, and the time the
service adds around the engine. Loopback only, bounded in requests and time, stops by itself. Usage:

    .venv/bin/python bench/service.py                      # starts its own `restyle up` (random weights, CPU)
    .venv/bin/python bench/service.py --url http://127.0.0.1:8000 [--api-key KEY]
    .venv/bin/python bench/service.py --storage-compare    # local directory beside S3 (moto_server), own services

Figures and targets:
- GET /v1/jobs/{id} with 50 concurrent pollers, p99 < 20 ms: each poller follows its own job at a steady
  pace (a client polling, not a flood), once with the worker idle and once with it busy on the same CPU.
- POST /v1/jobs with a 1 MB upload, p99 < 100 ms: one request at a time, the worker running those jobs.
- Submit → first iteration, and last iteration → result downloadable, < 150 ms each (judged on p99): tiny
  jobs on an idle worker, followed live on the job's event stream. The first is the time from sending the
  POST to the first progress event, less the iterations that event covers (the iteration time comes from
  the same stream); the second runs from the event of the last iteration to a completed download.
- Recovery (own service only), target < 30 s: SIGKILL the worker of `restyle up` while it runs a job, a few
  times; the time from the kill to the job being queued again (its run ended `lost`, from the record) and to
  a worker running it again (the next run's start), p50 and max. The bound is made of the lease (10 s), one
  housekeeping pass (a quarter lease), and the restarted worker's start-up, since `restyle up` has one worker.

--storage-compare measures instead, in one table with the storage backends as columns, p50 and p99 in ms:
- POST /v1/jobs with a 1 MB upload (as above, --posts of them), and GET /v1/jobs/{id}/result of one finished
  512 px job (~0.75 MiB PNG, --downloads times, one at a time, the worker idle): streamed through the API and,
  on S3 only, with RESTYLE_RESULT_REDIRECT=true, the 307 and the client's GET of the presigned URL after it.
  Each configuration gets its own `restyle up` (three in all); S3 is moto's standalone server on loopback
  (`moto[server]`, a dev extra) with a fresh bucket, so its figures show this protocol's and boto3's cost
  beside a local disk, not a real S3's network.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import redis
from PIL import Image

POLLERS = 50
MEGABYTE = 2**20
# Our own service's Redis: db 15 and a fresh key prefix and queue, so a shared Redis is left as it was.
OWN_REDIS_URL = os.environ.get("RESTYLE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
TINY_JOB = {"size": "32", "iterations": "1"}
TIMED_JOB = {"size": "32", "iterations": "10"}
BUSY_JOB = {"size": "64", "iterations": "500"}
RECOVERY_JOB = {"size": "64", "iterations": "5000"}
RECOVERY_TARGET_SECONDS = 30.0
# A result worth downloading: 512 px from the 1 MB noise picture makes a PNG of about 0.75 MiB.
RESULT_JOB = {"size": "512", "iterations": "1"}
# moto_server takes any credentials; boto3 only needs some to sign with.
S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY = "us-east-1", "restyle-bench-key", "restyle-bench-secret"
# `restyle up` may wait for a running job before it stops its worker; past this, everything is killed.
STOP_SECONDS = 60

Json = dict[str, Any]


class OutOfTime(RuntimeError):
    """The run passed its --max-seconds budget."""


@dataclass(frozen=True)
class Figure:
    name: str
    samples: list[float]  # seconds
    target_ms: float
    note: str = ""

    def line(self) -> str:
        if not self.samples:
            return f"{self.name:<52} {'no samples':>21} {'':>13}  MISS  {self.note}"
        p50, p99 = percentile(self.samples, 50) * 1e3, percentile(self.samples, 99) * 1e3
        verdict = "PASS" if p99 < self.target_ms else "MISS"
        target = f"p99 < {self.target_ms:g} ms"
        return f"{self.name:<52} {p50:8.1f} {p99:8.1f} ms {target:>15}  {verdict}  n={len(self.samples)} {self.note}"


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least pct % of the samples at or below it."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def png(width: int, height: int, noise: bool = False) -> bytes:
    """A picture in memory: noise (incompressible, so its size is predictable) or a smooth gradient."""
    if noise:
        image = Image.frombytes("RGB", (width, height), random.randbytes(width * height * 3))
    else:
        image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Bench:
    """One run against one service; every wait is bounded by the run's deadline."""

    def __init__(self, client: httpx.AsyncClient, deadline: float) -> None:
        self.client = client
        self.deadline = deadline
        self.small = png(48, 40)
        side = int((MEGABYTE / 3) ** 0.5)
        self.megabyte = png(side, side, noise=True)

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise OutOfTime("the benchmark ran out of its time budget (--max-seconds)")
        return left

    async def warm_up(self) -> None:
        """One tiny job through both the API's and the worker's paths, before anything is timed."""
        await self.wait_final([(await self.submit(TINY_JOB))["id"]])

    async def submit(self, params: dict[str, str], content: bytes | None = None) -> Json:
        files = [
            ("content", ("content.png", content or self.small, "image/png")),
            ("style", ("style.png", self.small, "image/png")),
        ]
        response = await self.client.post("/v1/jobs", files=files, data=params, timeout=self.remaining())
        response.raise_for_status()
        job: Json = response.json()
        return job

    async def wait_final(self, job_ids: list[str]) -> list[Json]:
        """Poll (gently) until every job is final."""
        final: dict[str, Json] = {}
        while len(final) < len(job_ids):
            for job_id in job_ids:
                if job_id not in final:
                    job = (await self.client.get(f"/v1/jobs/{job_id}", timeout=self.remaining())).json()
                    if job["status"] in ("succeeded", "failed", "canceled"):
                        final[job_id] = job
            await asyncio.sleep(min(0.2, self.remaining()))
        return [final[job_id] for job_id in job_ids]

    async def poll(self, job_ids: list[str], seconds: float, interval: float) -> list[float]:
        """Latencies of GET /v1/jobs/{id}: one poller per job, each at a steady pace, for ``seconds``."""
        latencies: list[float] = []
        stop = time.monotonic() + min(seconds, self.remaining())

        async def poller(job_id: str) -> None:
            await asyncio.sleep(random.uniform(0, interval))  # spread the pollers out, as real clients are
            while time.monotonic() < stop:
                started = time.perf_counter()
                response = await self.client.get(f"/v1/jobs/{job_id}")
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))

        await asyncio.gather(*(poller(job_id) for job_id in job_ids))
        return latencies

    async def post_latencies(self, count: int) -> list[float]:
        """Latencies of ``count`` 1 MB submissions, one at a time while the worker runs them; returned once
        those jobs are final, so the next figure starts on an idle worker."""
        latencies, job_ids = [], []
        for _ in range(count):
            self.remaining()
            started = time.perf_counter()
            job = await self.submit(TINY_JOB, content=self.megabyte)
            latencies.append(time.perf_counter() - started)
            job_ids.append(job["id"])
        await self.wait_final(job_ids)
        return latencies

    async def download_latencies(self, result_url: str, count: int, redirected: bool) -> tuple[list[float], int]:
        """Latencies of ``count`` downloads of one result, redirects followed, and its size in bytes; each
        must (``redirected``) or must not have come through a redirect, so a misconfigured service fails the
        run instead of measuring the other path."""
        latencies, size = [], 0
        for _ in range(count):
            started = time.perf_counter()
            response = await self.client.get(result_url, follow_redirects=True, timeout=self.remaining())
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            if bool(response.history) != redirected:
                raise RuntimeError(f"{result_url} was {'not ' if redirected else ''}redirected: {response.url}")
            size = len(response.content)
        return latencies, size

    async def follow(self, params: dict[str, str]) -> tuple[float, float, Json] | None:
        """One job from submission to download: (submit → first iteration, last iteration → downloadable, job);
        None when the stream could not tell the first iteration from the last (then nothing is measured)."""
        sent = time.perf_counter()
        job = await self.submit(params)
        total = int(params["iterations"])
        first: tuple[float, int] | None = None  # (arrival time, iteration) of the first progress event
        last: float | None = None  # arrival time of the event for the last iteration
        async with self.client.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=self.remaining()) as events:
            async for line in events.aiter_lines():
                if not line.startswith("data: "):
                    continue
                arrived = time.perf_counter()
                state = json.loads(line.removeprefix("data: "))
                iteration = state.get("progress", {}).get("iteration", 0)
                if state.get("status") == "running" and iteration > 0:
                    first = first or (arrived, iteration)
                    if iteration == total:
                        last = arrived
                if state.get("status") in ("succeeded", "failed", "canceled"):
                    job = state
                    break
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
        if first is None or last is None or first[1] == total:
            return None
        download = await self.client.get(job["result_url"], timeout=self.remaining())
        download.raise_for_status()
        downloaded = time.perf_counter()
        iteration_seconds = (last - first[0]) / (total - first[1])
        to_first = first[0] - sent - first[1] * iteration_seconds
        return to_first, downloaded - last, job

    async def cancel(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            await self.client.post(f"/v1/jobs/{job_id}/cancel", timeout=self.remaining())


def seconds_between(job: Json, start: str, end: str) -> float:
    return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job[start])).total_seconds()


async def measure(url: str, api_key: str | None, args: argparse.Namespace) -> list[str]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=POLLERS + 10, max_keepalive_connections=POLLERS + 10)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        bench = Bench(client, time.monotonic() + args.max_seconds)
        await bench.warm_up()

        idle_ids = [(await bench.submit(TINY_JOB))["id"] for _ in range(POLLERS)]
        await bench.wait_final(idle_ids)
        idle = await bench.poll(idle_ids, args.poll_seconds, args.poll_interval)

        busy_ids = [(await bench.submit(BUSY_JOB))["id"] for _ in range(POLLERS)]
        busy = await bench.poll(busy_ids, args.poll_seconds, args.poll_interval)
        await bench.cancel(busy_ids)
        await bench.wait_final(busy_ids)

        posts = await bench.post_latencies(args.posts)

        to_first, to_download, worker_extra, queue_waits = [], [], [], []
        for _ in range(args.jobs):
            followed = await bench.follow(TIMED_JOB)
            if followed is None:
                continue
            first, downloadable, job = followed
            to_first.append(first)
            to_download.append(downloadable)
            queue_waits.append(seconds_between(job, "created_at", "started_at"))
            worker_extra.append(seconds_between(job, "started_at", "finished_at") - job["run_seconds"])

    pace = f"each every {args.poll_interval:g} s"
    figures = [
        Figure(f"GET /v1/jobs/{{id}}, {POLLERS} pollers, worker idle", idle, 20, pace),
        Figure(f"GET /v1/jobs/{{id}}, {POLLERS} pollers, worker busy", busy, 20, pace),
        Figure("POST /v1/jobs, 1 MB upload", posts, 100, f"({len(bench.megabyte) / MEGABYTE:.2f} MiB bodies)"),
        Figure("submit → engine's first iteration", to_first, 150, f"of {args.jobs} jobs"),
        Figure("engine's last iteration → result downloadable", to_download, 150, f"of {args.jobs} jobs"),
    ]
    median_ms = {
        name: statistics.median(values) * 1e3 for name, values in (("queue", queue_waits), ("worker", worker_extra))
    }
    return [
        f"{'figure':<52} {'p50':>8} {'p99':>8}    {'target':>15}",
        *(figure.line() for figure in figures),
        "",
        "Breakdown from the job records (median of the followed jobs):",
        f"  created_at → started_at (API and queue hand-over):        {median_ms['queue']:7.1f} ms",
        f"  started_at → finished_at outside the engine's run_seconds: {median_ms['worker']:7.1f} ms",
    ]


def measure_recovery(url: str, service: subprocess.Popen[bytes], kills: int, deadline: float) -> list[str]:
    """Kill `restyle up`'s worker mid-job ``kills`` times; how long until the job is queued, then running, again."""
    queued_again: list[float] = []
    running_again: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(kills):
            job = client.post("/v1/jobs", data=RECOVERY_JOB, files=_pictures()).raise_for_status().json()
            path = f"/v1/jobs/{job['id']}"
            _poll_until(client, path, _running_with_progress, deadline)
            (worker,) = _children(service.pid)
            os.kill(worker, signal.SIGKILL)
            killed_at = datetime.now(UTC)
            again = _poll_until(client, path, lambda job: len(job["runs"]) >= 2, deadline)
            queued_again.append((datetime.fromisoformat(again["runs"][0]["ended_at"]) - killed_at).total_seconds())
            running_again.append((datetime.fromisoformat(again["runs"][1]["started_at"]) - killed_at).total_seconds())
            client.post(f"{path}/cancel").raise_for_status()
            _poll_until(client, path, lambda job: job["status"] in ("succeeded", "failed", "canceled"), deadline)
            wait_ready(url, service, Path(os.devnull))  # the replacement worker is up before the next kill

    def line(name: str, samples: list[float]) -> str:
        verdict = "PASS" if max(samples) < RECOVERY_TARGET_SECONDS else "MISS"
        p50, worst = statistics.median(samples), max(samples)
        target = f"max < {RECOVERY_TARGET_SECONDS:g} s"
        return f"{name:<52} {p50:7.1f} s {worst:6.1f} s {target:>15}  {verdict}  n={len(samples)}"

    return [
        f"{'recovery (worker SIGKILL mid-job)':<52} {'p50':>9} {'max':>8}    {'target':>15}",
        line("worker SIGKILL → job queued again", queued_again),
        line("worker SIGKILL → job running again", running_again),
    ]


def _running_with_progress(job: Json) -> bool:
    return job["status"] == "running" and job["progress"]["iteration"] >= 1


def _pictures() -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("content", ("photo.png", png(64, 48), "image/png")), ("style", ("painting.png", png(48, 48), "image/png"))]


def _poll_until(client: httpx.Client, path: str, done: Callable[[Json], bool], deadline: float) -> Json:
    while time.monotonic() < deadline:
        job: Json = client.get(path).raise_for_status().json()
        if done(job):
            return job
        time.sleep(0.05)
    raise OutOfTime(f"{path} did not reach the expected state before the --max-seconds budget ran out")


def _children(pid: int) -> list[int]:
    """Child processes of ``pid``, whichever of its threads started them (Linux lists them per thread)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(child) for task in tasks for child in (task / "children").read_text().split()]


LOCAL_COLUMN, S3_COLUMN = "local directory", "S3 (moto_server)"
POST_ROW = "POST /v1/jobs, 1 MB upload"
STREAMED_ROW = "GET /v1/jobs/{id}/result, streamed by the API"
REDIRECT_ROW = "GET /v1/jobs/{id}/result, 307 → presigned URL"


def compare_storage(args: argparse.Namespace, scratch: Path) -> list[str]:
    """--storage-compare: the same figures from a `restyle up` on each backend, and on S3 once more with
    result redirects (a setting of the API, so a service of its own; it skips the POSTs, measured just before)."""
    deadline = time.monotonic() + args.max_seconds
    columns: dict[str, dict[str, list[float]]] = {LOCAL_COLUMN: {}, S3_COLUMN: {}}
    sizes: set[str] = set()  # the same picture from each service, give or take a few bytes
    with moto_server(scratch / "moto.log") as s3_env:
        setups = [
            (LOCAL_COLUMN, {}, args.posts, False),
            (S3_COLUMN, s3_env, args.posts, False),
            (S3_COLUMN, s3_env | {"RESTYLE_RESULT_REDIRECT": "true"}, 0, True),
        ]
        for column, extra_env, posts, redirected in setups:
            with own_service(scratch / "service.log", extra_env=extra_env) as (url, _):
                figures, size = asyncio.run(measure_storage(url, posts, args.downloads, redirected, deadline))
            columns[column].update(figures)
            sizes.add(f"{size / MEGABYTE:.2f} MiB")
    result = " or ".join(sorted(sizes))
    return [
        *storage_table(columns),
        "",
        f"n = {args.posts} POSTs (the worker running those jobs), {args.downloads} downloads of one {result} PNG "
        f"result (worker idle), one at a time.",
    ]


async def measure_storage(
    url: str, posts: int, downloads: int, redirected: bool, deadline: float
) -> tuple[dict[str, list[float]], int]:
    """One service's latencies by row of the storage table (no POSTs when ``posts`` is 0), and the size in
    bytes of the result it downloaded; ``redirected`` says the service answers downloads with a 307."""
    figures: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        bench = Bench(client, deadline)
        await bench.warm_up()
        if posts:
            figures[POST_ROW] = await bench.post_latencies(posts)
        (job,) = await bench.wait_final([(await bench.submit(RESULT_JOB, content=bench.megabyte))["id"]])
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
        # Untimed first download: it opens the connections (to the object store too, after a redirect).
        await bench.download_latencies(job["result_url"], 1, redirected)
        latencies, size = await bench.download_latencies(job["result_url"], downloads, redirected)
    figures[REDIRECT_ROW if redirected else STREAMED_ROW] = latencies
    return figures, size


def storage_table(columns: dict[str, dict[str, list[float]]]) -> list[str]:
    """Rows of figures, one column per backend, p50 and p99 in ms; "—" where a backend has no such figure."""
    names = list(columns)
    lines = [f"{'storage backends (ms)':<50} {'':>4}" + "".join(f"{name:>20}" for name in names)]
    for row in (POST_ROW, STREAMED_ROW, REDIRECT_ROW):
        for pct in (50, 99):
            cells = [
                f"{percentile(columns[name][row], pct) * 1e3:.1f}" if row in columns[name] else "—" for name in names
            ]
            lines.append(f"{row if pct == 50 else '':<50} {f'p{pct}':>4}" + "".join(f"{cell:>20}" for cell in cells))
    return lines


@contextmanager
def moto_server(log_path: Path, patience: float = 60.0) -> Iterator[dict[str, str]]:
    """moto's standalone S3-compatible server on a loopback port, with one fresh bucket: yields the environment
    that points `restyle` at it (the standard AWS variables with dummy credentials, the developer's own ~/.aws
    files hidden, and RESTYLE_STORAGE_URL); stopped on the way out, which drops the objects (it keeps them in
    memory)."""
    with log_path.open("wb") as log:
        # Port 0, then the port it announces: a port chosen here could be taken before the server binds it.
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        endpoint = _announced_endpoint(process, log_path, patience)
        bucket = f"restyle-bench-{uuid.uuid4().hex[:10]}"
        session = boto3.session.Session(
            aws_access_key_id=S3_ACCESS_KEY, aws_secret_access_key=S3_SECRET_KEY, region_name=S3_REGION
        )
        session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": S3_REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "RESTYLE_STORAGE_URL": f"s3://{bucket}/restyle",
        }
    finally:
        stop(process)


def _announced_endpoint(process: subprocess.Popen[bytes], log_path: Path, patience: float) -> str:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        log = log_path.read_text(errors="replace")
        if process.poll() is not None:
            sys.exit(f"moto_server exited with {process.returncode} (is moto[server] installed?):\n{log[-3000:]}")
        listening = re.search(r"Running on (http://127\.0\.0\.1:\d+)", log)
        if listening:
            return listening.group(1)
        time.sleep(0.05)
    sys.exit(f"moto_server did not announce its port within {patience:g} s:\n{log_path.read_text()[-3000:]}")


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        sys.exit(f"bench/service.py only measures a service on this machine (loopback), not {host!r}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def own_service(
    log_path: Path, command: str = "up", extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`restyle up` (or `restyle api`, with ``command``) on a free loopback port with random weights, its own
    storage, key prefix and queue, and ``extra_env``; returned once ready (`up`) or answering (`api`, which has
    no worker to wait for); stopped, and its Redis keys and files removed, on the way out."""
    port = free_port()
    tag = f"restyle-bench-{uuid.uuid4().hex[:10]}"
    storage = Path(tempfile.mkdtemp(prefix="restyle-bench-"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("RESTYLE_")}
    env.update(
        RESTYLE_REDIS_URL=OWN_REDIS_URL,
        RESTYLE_KEY_PREFIX=tag,
        RESTYLE_QUEUE=tag,
        RESTYLE_STORAGE_DIR=str(storage),
        RESTYLE_WEIGHTS="random",
        RESTYLE_DEVICE="cpu",
        RESTYLE_LOG_LEVEL="WARNING",
        RESTYLE_MAX_QUEUE_DEPTH="1000",
    )
    env.update(extra_env or {})
    restyle = Path(sys.executable).with_name("restyle")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(restyle), command, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so nothing it started can outlive the run
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log_path, path="/readyz" if command == "up" else "/healthz")
        yield url, process
    finally:
        stop(process)
        client = redis.Redis.from_url(OWN_REDIS_URL)
        keys = list(client.scan_iter(match=f"{tag}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()
        shutil.rmtree(storage, ignore_errors=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as Ctrl-C would (`restyle up` stops its worker, waiting for a running job up to a limit);
    then SIGKILL for whatever is left in the process group, so no orphaned worker keeps consuming."""
    process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_ready(
    url: str, process: subprocess.Popen[bytes], log_path: Path, patience: float = 120.0, path: str = "/readyz"
) -> None:
    """Until ``path`` answers 200: /readyz once a worker is alive (it beats once its network is loaded)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"`restyle` exited with {process.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    log = log_path.read_text(errors="replace")[-3000:]
    sys.exit(f"the service on {url} was not ready after {patience:g} s:\n{log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="measure a running service at this loopback URL instead of starting one")
    parser.add_argument("--api-key", default=os.environ.get("RESTYLE_BENCH_API_KEY"), help="Bearer key for --url")
    parser.add_argument("--poll-seconds", type=float, default=10.0, help="length of each polling phase")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between one poller's requests")
    parser.add_argument("--posts", type=int, default=100, help="number of 1 MB submissions")
    parser.add_argument("--storage-compare", action="store_true", help="local directory beside S3, not the above")
    parser.add_argument("--downloads", type=int, default=100, help="result downloads per storage configuration")
    parser.add_argument("--jobs", type=int, default=20, help="number of jobs followed for the overheads")
    parser.add_argument("--kills", type=int, default=3, help="worker kills for the recovery figure (own service)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="give up after this long")
    args = parser.parse_args()
    if args.storage_compare and args.url:
        parser.error("--storage-compare starts its own services; it takes no --url")

    print(f"Restyle service benchmark: {os.cpu_count()} CPU cores; other load on the machine shows in the figures.")
    try:
        if args.storage_compare:
            with tempfile.TemporaryDirectory() as scratch:
                print(f"storage: each backend under its own `restyle up`, random weights, CPU, Redis {OWN_REDIS_URL}\n")
                lines = compare_storage(args, Path(scratch))
        elif args.url:
            require_loopback(args.url)
            print(f"service: {args.url} (as configured there)\n")
            lines = asyncio.run(measure(args.url.rstrip("/"), args.api_key, args))
        else:
            with tempfile.TemporaryDirectory() as scratch, own_service(Path(scratch) / "service.log") as (url, up):
                print(f"service: `restyle up` on {url}, random weights, CPU, Redis {OWN_REDIS_URL}\n")
                lines = asyncio.run(measure(url, None, args))
                if args.kills:
                    deadline = time.monotonic() + args.max_seconds
                    lines += ["", *measure_recovery(url, up, args.kills, deadline)]
    except OutOfTime as error:
        sys.exit(str(error))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
