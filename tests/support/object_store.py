"""Stands in for Amazon S3: a real S3-compatible HTTP server, moto's standalone ``moto_server``, in a
subprocess on a loopback port it chooses itself.

It keeps objects in memory (a restart loses them; ``tests.support.tcp_proxy`` cuts it off instead) and takes
any credentials, unless ``enforce_auth``: then it knows none and refuses every request. ``env()`` gives the
standard AWS variables that point boto3 at it with dummy credentials, shielded from the developer's own
``~/.aws``; ``client`` is a boto3 client of it configured directly, for a test's own look behind the storage.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from tests.support import PATIENCE_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

S3_REGION = "us-east-1"
S3_ACCESS_KEY = "restyle-test-key"
S3_SECRET_KEY = "restyle-test-secret"


class S3Server:
    """A real S3-compatible HTTP server, moto's standalone ``moto_server``, in a subprocess on a loopback port.
    It keeps objects in memory and takes any credentials, unless ``enforce_auth``: then it knows none and
    refuses every request, as S3 refuses an unknown access key."""

    def __init__(self, log_path: Path, *, enforce_auth: bool = False) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        env = dict(os.environ)
        if enforce_auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"  # moto checks signatures after that many requests
        # Port 0, then the port it announces: a port chosen here could be taken before the server binds it.
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"]
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.endpoint = self._wait_ready()
        # For a test's own look behind the storage: configured here, not by the environment.
        self.client: S3Client = boto3.session.Session(
            aws_access_key_id=S3_ACCESS_KEY, aws_secret_access_key=S3_SECRET_KEY, region_name=S3_REGION
        ).client("s3", endpoint_url=self.endpoint)

    def _wait_ready(self) -> str:
        """The endpoint, once the server says where it listens."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"moto_server exited with {self.process.returncode}:\n{self.log()}")
            listening = re.search(r"Running on (http://127\.0\.0\.1:\d+)", self.log())
            if listening:
                return listening.group(1)
            time.sleep(0.05)
        pytest.fail(f"moto_server did not start:\n{self.log()}")

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3 at this server with dummy credentials, shielded from
        the developer's own ``~/.aws`` files."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": S3_REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def create_bucket(self) -> str:
        """A new, empty bucket's name."""
        name = f"restyle-test-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]
