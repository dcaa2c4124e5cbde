"""Upload memory benchmark (prints figures; not a test): the API process's peak resident memory while it takes
~50 MB uploads one after another, beside the same figure for the code of another git revision. Usage:

    .venv/bin/python bench/uploads.py                          # this working tree's API
    .venv/bin/python bench/uploads.py --baseline HEAD~1        # and that revision's, for comparison

Each run starts its own `restyle api` (loopback, Redis db 15 under a fresh key prefix, a temporary storage
directory, no worker: the jobs stay queued until their keys and files are removed at the end), submits one
small job to warm it up, then N jobs whose content is a 4096×4096 noise PNG: 48 MiB, because noise does not
compress, and within the default 50 MiB limit of a request. VmHWM (the peak resident set) is read from
/proc before and after. Part of the growth is the decoding that validates the picture (Pillow holds 4 bytes
a pixel, 64 MiB here, and decoding makes an RGB copy), which every version pays; the rest is what a request
holds of the upload itself. A baseline revision runs from a `git archive` of its packages, put ahead of this
tree on PYTHONPATH: nothing in the working tree is touched.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

# Run as a script, this file's directory is on sys.path: the existing benchmark's helpers import as `service`.
from service import MEGABYTE, own_service, png

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["api", "core", "restyle", "worker"]
SIDE = 4096  # 4096² RGB noise: 48 MiB of PNG, 16.8 megapixels (the default pixel limit is 40)
JOB = {"size": "32", "iterations": "1"}
PATIENCE_SECONDS = 300.0


@dataclass(frozen=True)
class Figures:
    """Peak resident memory of one API process, after its warm-up and after the uploads."""

    code: str
    before: int
    after: int
    uploads: int

    def line(self, upload_bytes: int) -> str:
        growth = self.after - self.before
        return (
            f"{self.code:<28} {self.before / MEGABYTE:9.1f} {self.after / MEGABYTE:9.1f} {growth / MEGABYTE:9.1f} MiB"
            f" {growth / upload_bytes:9.2f}×"
        )


def peak_rss(pid: int) -> int:
    """VmHWM of a process, in bytes: the most memory it has held resident since it started."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def submit(client: httpx.Client, content: bytes, style: bytes) -> None:
    files = [("content", ("content.png", content, "image/png")), ("style", ("style.png", style, "image/png"))]
    client.post("/v1/jobs", files=files, data=JOB).raise_for_status()


def measure(code: str, content: bytes, uploads: int, log_path: Path, extra_env: dict[str, str]) -> Figures:
    """Start an API, warm it up, send ``uploads`` submissions of ``content`` one at a time; its figures."""
    small = png(48, 40)
    with (
        own_service(log_path, command="api", extra_env=extra_env) as (url, process),
        httpx.Client(base_url=url, timeout=PATIENCE_SECONDS) as client,
    ):
        submit(client, small, small)
        before = peak_rss(process.pid)
        for _ in range(uploads):
            submit(client, content, small)
        return Figures(code, before, peak_rss(process.pid), uploads)


@contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """The service's packages as they are at git ``revision``, in a temporary directory."""
    archive = subprocess.run(
        ["git", "archive", revision, *PACKAGES], cwd=REPO_ROOT, check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryDirectory(prefix="restyle-baseline-") as scratch:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(scratch, filter="data")
        yield Path(scratch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=5, help="submissions of the large picture per API")
    parser.add_argument("--baseline", metavar="REVISION", help="also measure the API of this git revision")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        sys.exit("bench/uploads.py reads peak memory from /proc (Linux only)")

    content = png(SIDE, SIDE, noise=True)
    size = f"{len(content) / MEGABYTE:.1f} MiB ({SIDE}×{SIDE} noise PNG)"
    print(f"Restyle upload memory: {args.uploads} uploads of {size}, one at a time, to `restyle api`.")
    print("Peak resident memory (VmHWM) of the API process, after a warm-up and after the uploads:\n")
    header = f"{'code':<28} {'before':>9} {'after':>9} {'growth':>9}     {'growth / upload':>10}"
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "api.log"
        results.append(measure("this tree", content, args.uploads, log, {}))
        if args.baseline:
            with checkout(args.baseline) as old:
                python_path = os.pathsep.join(filter(None, [str(old), os.environ.get("PYTHONPATH")]))
                figures = measure(args.baseline, content, args.uploads, log, {"PYTHONPATH": python_path})
                results.append(figures)
    print("\n".join([header, *(figures.line(len(content)) for figures in results)]))


if __name__ == "__main__":
    main()
