"""The storage failing under a run: inputs it cannot read or a result it cannot take fail the job as
``storage_unavailable``; a preview it cannot take costs only that preview.

The run happens in this process, on a storage double (a local directory cannot fail on cue), with the worker's
own ``run_job`` and a network loaded once for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from restyle.jobs import JobError, JobRecord
from restyle.settings import Settings
from restyle.storage import Storage
from restyle.storage.local import LocalStorage
from tests.api.storage_doubles import OUTAGE_MESSAGE, UnavailableStorage
from tests.support.pictures import make_png
from tests.support.settings import MakeSettings
from tests.worker.conftest import record_job
from worker import tasks
from worker.runtime import Runtime, build_runtime


@pytest.fixture(scope="module")
def state(make_settings: MakeSettings) -> Iterator[Runtime]:
    """A worker's resources, its network loaded, for jobs of the module's own settings."""
    loaded = build_runtime(make_settings())
    loaded.network()
    yield loaded
    loaded.redis.close()


def run_on(state: Runtime, storage: Storage) -> JobRecord:
    """Admit and release a tiny job (inputs in the real directory), run it on ``storage``: the job as it ended."""
    record = record_job(state.settings, state.store, make_png(), make_png())
    state.store.release(record)
    run = state.runs.claim("test-worker")
    assert run is not None and run.job_id == record.id
    tasks.run_job(replace(state, storage=storage), run)
    ended = state.store.get(record.id)
    assert ended is not None
    return ended


def outage(settings: Settings, operation: str, keys_containing: str = "") -> UnavailableStorage:
    return UnavailableStorage(settings.storage_dir, failing={operation}, keys_containing=keys_containing)


def test_inputs_the_storage_cannot_read_fail_the_job_as_storage_unavailable(state: Runtime) -> None:
    ended = run_on(state, outage(state.settings, "get"))
    assert (ended.status, ended.error) == ("failed", JobError(code="storage_unavailable", message=OUTAGE_MESSAGE))


def test_a_result_the_storage_cannot_take_fails_the_job_as_storage_unavailable(state: Runtime) -> None:
    ended = run_on(state, outage(state.settings, "put", keys_containing="result"))
    assert (ended.status, ended.error) == ("failed", JobError(code="storage_unavailable", message=OUTAGE_MESSAGE))


def test_a_job_whose_result_could_not_be_stored_points_at_no_result(state: Runtime) -> None:
    assert run_on(state, outage(state.settings, "put", keys_containing="result")).result_key is None


def test_the_result_is_stored_before_the_job_is_recorded_as_succeeded(state: Runtime) -> None:
    class Watching(LocalStorage):
        """Notes the job's status at the moment its result is written."""

        status_then: str | None = None

        def put(self, key: str, data: bytes) -> None:
            if "/result-" in key:
                job = state.store.get(key.split("/")[1])
                self.status_then = job.status if job else None
            super().put(key, data)

    storage = Watching(state.settings.storage_dir)
    assert run_on(state, storage).status == "succeeded"
    assert storage.status_then == "running"


def test_a_preview_the_storage_cannot_take_does_not_fail_the_job(state: Runtime) -> None:
    ended = run_on(state, outage(state.settings, "put", keys_containing="preview"))
    assert (ended.status, ended.preview_key) == ("succeeded", None)
