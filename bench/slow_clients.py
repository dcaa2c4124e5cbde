"""Slow-client benchmark (prints figures; not a test): many body tricklers from one address against a running
service, while a health probe from another address measures how the API answers everyone else. Usage:

    .venv/bin/python bench/slow_clients.py http://127.0.0.1:8000             # 1000 tricklers, 90 s
    .venv/bin/python bench/slow_clients.py URL --reconnect --json figures.json  # a trickler back as each is closed

Each trickler connects from ``--source`` (127.0.0.1), sends the headers of a ``POST /v1/jobs`` that declares
a ``--length`` byte multipart body and the start of a file part, then one byte every ``--every`` seconds
(2 s: the pace of the slowloris in issue 24) until the server closes it or the run ends; with ``--reconnect``
it connects again ``--every`` seconds after each close, so the pressure lasts the whole run. Meanwhile a
thread fetches ``/healthz`` every ``--probe-every`` seconds (0.5) over a fresh connection from
``--probe-source`` (127.0.0.2: Linux routes all of 127.0.0.0/8 to loopback, so this is another client to the
server), each with a 5 s timeout. At the end it prints the probes' latency (p50, p99, max), how many failed
or took over 1 s, and what became of the connections: refused at once (by status and problem code), cut off
by the server (and after how long), or still open when the run ended. Every socket is closed before it exits.

The service's port must be reachable from both addresses (``restyle up --host 127.0.0.1`` is), and this
process needs a file descriptor per trickler: the soft limit is raised to the hard one when it is lower.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import resource
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

BOUNDARY = "slowclientboundary"
# A probe slower than this fails the bar ("/healthz answering every probe within 1 s").
PROBE_BAR_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 5.0


@dataclass
class Trickler:
    """What became of one trickling connection."""

    outcome: str = "open"  # open | refused | cut | reset | unreachable
    status: int | None = None
    code: str | None = None
    seconds: float | None = None  # from its connection to the server's close
    sent: int = 0


@dataclass
class Probes:
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


def request_head(host: str, length: int) -> bytes:
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="content"; filename="slow.png"\r\n\r\n'
    )
    return head.encode()


def parse_answer(raw: bytes) -> tuple[int | None, str | None]:
    """The status and problem ``code`` of what the server sent before closing, as far as they can be read."""
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None, None
    try:
        code = json.loads(body).get("code")
    except ValueError:
        code = None
    return status, code if isinstance(code, str) else None


async def trickle(host: str, port: int, source: str, head: bytes, every: float, until: float, result: Trickler) -> None:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    except OSError:
        result.outcome = "unreachable"
        return
    received = b""
    try:
        writer.write(head)
        next_byte = time.monotonic() + every
        while time.monotonic() < until:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), max(0.0, min(next_byte, until) - time.monotonic()))
            except TimeoutError:
                if time.monotonic() >= next_byte:
                    writer.write(b"x")
                    await writer.drain()
                    result.sent += 1
                    next_byte += every
                continue
            if not chunk:
                result.status, result.code = parse_answer(received)
                result.seconds = time.monotonic() - started
                quick = result.seconds < every
                result.outcome = "refused" if quick and result.status is not None else "cut"
                return
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        result.status, result.code = parse_answer(received)
        result.seconds = time.monotonic() - started
        result.outcome = "reset"
    finally:
        writer.close()


def probe(host: str, port: int, source: str, every: float, stop: threading.Event, probes: Probes) -> None:
    """``GET /healthz`` every ``every`` seconds over a new connection, as a load balancer's health check does."""
    while not stop.is_set():
        started = time.monotonic()
        connection = http.client.HTTPConnection(host, port, timeout=PROBE_TIMEOUT_SECONDS, source_address=(source, 0))
        try:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                probes.latencies.append(time.monotonic() - started)
            else:
                probes.failures[f"status {response.status}"] += 1
        except OSError as error:
            probes.failures[type(error).__name__] += 1
        finally:
            connection.close()
        stop.wait(max(0.0, every - (time.monotonic() - started)))


async def client(
    host: str, port: int, args: argparse.Namespace, head: bytes, until: float, results: list[Trickler]
) -> None:
    """One trickler; with ``--reconnect``, a new one ``--every`` seconds after each is closed, until the end."""
    while True:
        result = Trickler()
        results.append(result)
        await trickle(host, port, args.source, head, args.every, until, result)
        if not args.reconnect or time.monotonic() + args.every >= until:
            return
        await asyncio.sleep(args.every)


async def run(args: argparse.Namespace, host: str, port: int) -> tuple[list[Trickler], Probes, float]:
    head = request_head(host, args.length)
    probes, stop = Probes(), threading.Event()
    prober = threading.Thread(target=probe, args=(host, port, args.probe_source, args.probe_every, stop, probes))
    started = time.monotonic()
    prober.start()
    until = started + args.seconds
    tricklers: list[Trickler] = []
    try:
        await asyncio.gather(*(client(host, port, args, head, until, tricklers) for _ in range(args.clients)))
    finally:
        stop.set()
        prober.join()
    return tricklers, probes, time.monotonic() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(tricklers: list[Trickler], probes: Probes, seconds: float) -> dict[str, object]:
    latencies = probes.latencies
    answered = len(latencies)
    figures: dict[str, object] = {
        "seconds": round(seconds, 1),
        "probes": answered + sum(probes.failures.values()),
        "probes_ok": answered,
        "probe_failures": dict(probes.failures),
        "probes_over_1s": sum(1 for latency in latencies if latency > PROBE_BAR_SECONDS),
        "probe_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "probe_p99_ms": round(1000 * percentile(latencies, 0.99), 1) if latencies else None,
        "probe_max_ms": round(1000 * max(latencies), 1) if latencies else None,
        "connections": len(tricklers),
        "outcomes": dict(Counter(f"{t.outcome} {t.status or ''} {t.code or ''}".strip() for t in tricklers)),
    }
    cut = [t.seconds for t in tricklers if t.outcome == "cut" and t.seconds is not None]
    if cut:
        figures["cut_after_s"] = {"min": round(min(cut), 1), "max": round(max(cut), 1)}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the running service, e.g. http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=1000, help="tricklers (default 1000)")
    parser.add_argument("--seconds", type=float, default=90.0, help="length of the run (default 90)")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between a trickler's bytes (default 2)")
    parser.add_argument("--length", type=int, default=10 * 2**20, help="declared body length (default 10 MiB)")
    parser.add_argument("--source", default="127.0.0.1", help="tricklers' address (default 127.0.0.1)")
    parser.add_argument("--probe-source", default="127.0.0.2", help="the probe's address (default 127.0.0.2)")
    parser.add_argument("--probe-every", type=float, default=0.5, help="seconds between probes (default 0.5)")
    parser.add_argument(
        "--reconnect", action="store_true", help="each trickler connects again --every seconds after it is closed"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    target = urlsplit(args.url)
    host, port = target.hostname or "127.0.0.1", target.port or 80

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.clients + 64
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
        if hard < wanted:
            print(f"only {hard} file descriptors may be open: fewer tricklers will connect", file=sys.stderr)

    tricklers, probes, seconds = asyncio.run(run(args, host, port))
    figures = report(tricklers, probes, seconds)
    for name, value in figures.items():
        print(f"{name:>16}: {value}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"arguments": vars(args), **figures, "tricklers_detail": [asdict(t) for t in tricklers]}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
