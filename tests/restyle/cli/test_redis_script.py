"""scripts/redis.sh: the Redis it starts where none answers keeps what it holds through a crash."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import PATIENCE_SECONDS, REPO_ROOT
from tests.support.ports import free_port
from tests.support.waiting import eventually

SCRIPT = REPO_ROOT / "scripts" / "redis.sh"


class ScriptedRedis:
    """The Redis that scripts/redis.sh starts on a free port, with its files in a directory of its own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = f"redis://127.0.0.1:{free_port()}/0"
        self.environment = {key: value for key, value in os.environ.items() if not key.startswith("RESTYLE_")}
        self.environment |= {"RESTYLE_REDIS_URL": self.url, "RESTYLE_REDIS_DIR": str(directory)}

    def start(self) -> redis.Redis[bytes]:
        """Run the script, which returns once the Redis it started answers."""
        subprocess.run(["bash", str(SCRIPT)], env=self.environment, check=True, timeout=PATIENCE_SECONDS)
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def wait_until_appended(self, fragment: bytes) -> None:
        """Until ``fragment`` is in the append-only file: with ``appendfsync everysec`` a reply may come before
        the write reaches the file, and only what is in the file outlives a SIGKILL."""
        eventually(
            lambda: any(fragment in path.read_bytes() for path in self.directory.rglob("*.aof")),
            f"{fragment!r} never reached the append-only file",
        )

    def crash(self) -> None:
        """SIGKILL: no shutdown, no last write of the append-only file."""
        os.kill(self._pid(), signal.SIGKILL)
        eventually(lambda: not self._answers(), "the killed redis-server still answers")

    def stop(self) -> None:
        if self._answers():
            os.kill(self._pid(), signal.SIGKILL)

    def _pid(self) -> int:
        with redis.Redis.from_url(self.url, socket_timeout=5) as client:
            return int(client.info("server")["process_id"])

    def _answers(self) -> bool:
        try:
            with redis.Redis.from_url(self.url, socket_timeout=5) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False


@pytest.fixture
def scripted_redis(tmp_path: Path) -> Iterator[ScriptedRedis]:
    """A private Redis, killed at the end: the shared one on 6379 is never touched."""
    started = ScriptedRedis(tmp_path / "redis")
    try:
        yield started
    finally:
        started.stop()


def test_the_redis_it_starts_keeps_its_data_through_a_crash(scripted_redis: ScriptedRedis) -> None:
    with scripted_redis.start() as client:
        client.set("restyle-test:kept", "still here")
    scripted_redis.wait_until_appended(b"restyle-test:kept")
    scripted_redis.crash()
    with scripted_redis.start() as client:
        assert client.get("restyle-test:kept") == b"still here"
