"""The compose stack keeps the service's promises: jobs finish through Redis restarts, a killed worker and a
whole `down` + `up`; everything runs unprivileged and healthy. In order: the last test takes the stack down."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.compose.conftest import (
    API_KEY,
    JOB_SECONDS,
    METRICS_TOKEN,
    QUICK_JOB,
    SERVICES,
    SLOW_JOB,
    Stack,
    submit,
    wait_for,
)
from tests.support.jobs import finished, running_with_progress, succeeded
from tests.support.pictures import make_png

RESTYLE_UID = "10001"  # the Dockerfile's unprivileged user
RESTYLE_SERVICES = ("api", "worker", "flower")


def test_every_healthcheck_turns_healthy(stack: Stack) -> None:
    health = {service: stack.inspect(service)["State"]["Health"]["Status"] for service in SERVICES}
    assert health == {service: "healthy" for service in SERVICES}


def test_every_restyle_process_runs_as_the_unprivileged_user(stack: Stack) -> None:
    for service in RESTYLE_SERVICES:
        # Every process in the container, the one reading the table included.
        table = stack.exec(service, "sh", "-c", "cat /proc/[0-9]*/status")
        uids = {line.split()[1] for line in table.splitlines() if line.startswith("Uid:")}
        assert uids == {RESTYLE_UID}, (service, uids)


def test_redis_does_not_run_as_root(stack: Stack) -> None:
    processes = stack.compose("top", "redis")
    owners = [line.split()[0] for line in processes.splitlines() if "redis-server" in line]
    assert owners and "root" not in owners, processes


def test_readyz_counts_the_worker_and_names_the_imagenet_weights_the_image_was_built_with(http: httpx.Client) -> None:
    ready = http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert len(ready.json()["workers"]) == 1
    assert ready.json()["weights"] == ["vgg19-imagenet"]


def test_the_image_keeps_only_the_convolutions_of_the_weights_download(stack: Stack) -> None:
    listing = stack.exec("worker", "ls", "/opt/torch/hub/checkpoints")
    assert listing.split() == ["vgg19-dcbb9e9d-features.pth"]


def test_metrics_answer_with_the_metrics_token(stack: Stack) -> None:
    assert httpx.get(f"{stack.api_url}/metrics").status_code == 401
    metrics = httpx.get(f"{stack.api_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert metrics.status_code == 200
    assert "restyle_queue_depth" in metrics.text


def test_flower_answers(stack: Stack) -> None:
    assert httpx.get(f"{stack.flower_url}/healthcheck").text == "OK"


def test_the_docs_page_loads_its_assets_from_the_image(stack: Stack) -> None:
    page = httpx.get(f"{stack.api_url}/docs")
    assert page.status_code == 200
    assert "https://" not in page.text


def test_a_job_submitted_with_curl_succeeds_and_its_result_downloads(
    stack: Stack, http: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "photo.png").write_bytes(make_png(96, 80))
    (tmp_path / "painting.png").write_bytes(make_png(80, 80, seed=1))
    submitted = curl(
        stack,
        "-F",
        "content=@photo.png",
        "-F",
        "style=@painting.png",
        "-F",
        "size=48",
        "-F",
        "iterations=5",
        f"{stack.api_url}/v1/jobs",
        cwd=tmp_path,
    )
    job_id = httpx.Response(202, content=submitted).json()["id"]
    assert wait_for(http, job_id, finished)["status"] == "succeeded"
    curl(stack, "-o", "result.png", f"{stack.api_url}/v1/jobs/{job_id}/result", cwd=tmp_path)
    assert (tmp_path / "result.png").read_bytes().startswith(b"\x89PNG")


def test_a_redis_restart_mid_run_keeps_every_job(stack: Stack, http: httpx.Client) -> None:
    done = submit(http, QUICK_JOB)
    wait_for(http, done, succeeded)
    # Only the running job needs to be slow (caught mid-run); the queued one only has to run afterwards.
    running, queued = submit(http, SLOW_JOB), submit(http, QUICK_JOB)
    wait_for(http, running, running_with_progress)
    assert http.get(f"/v1/jobs/{queued}").json()["status"] == "queued"

    stack.compose("restart", "redis")

    for job_id in (running, queued):
        wait_for(http, job_id, succeeded)
    assert http.get(f"/v1/jobs/{done}").json()["status"] == "succeeded"
    assert http.get(f"/v1/jobs/{done}/result").status_code == 200


def test_a_worker_killed_mid_job_leaves_it_to_run_again(stack: Stack, http: httpx.Client) -> None:
    job_id = submit(http, SLOW_JOB)
    wait_for(http, job_id, running_with_progress)

    # The worker is the only child of the container's init; SIGKILL gives it no chance to hand the job back.
    stack.exec("worker", "sh", "-c", "kill -KILL $(cat /proc/1/task/1/children)", check=False)

    job = wait_for(http, job_id, succeeded)
    assert job["attempts"] == 2


def test_a_worker_that_cannot_load_its_network_fails_its_healthcheck(stack: Stack) -> None:
    # A second worker container, given weights that do not exist; its healthcheck runs once the worker has
    # given up on them, a little after a ready worker would have beaten. The script prints the check's exit
    # status: `compose run` here reports 0 whatever the container's.
    script = (
        "restyle worker >/tmp/worker.log 2>&1 & "
        "for _ in $(seq 120); do grep -q 'cannot load VGG19' /tmp/worker.log && break; sleep 1; done; "
        "grep -q 'cannot load VGG19' /tmp/worker.log || echo 'the worker never gave up'; "
        "sleep 3; python -m worker.healthcheck; echo healthcheck exit $?"
    )
    run_alone = ("run", "--rm", "--no-deps", "-T", "-e", "RESTYLE_WEIGHTS=/nowhere/vgg19.pth")
    checked = stack.compose(*run_alone, "worker", "sh", "-c", script, timeout=JOB_SECONDS)
    assert "the worker never gave up" not in checked
    assert "unhealthy" in checked
    assert checked.strip().endswith("healthcheck exit 1")


def test_docker_stop_ends_every_restyle_process_cleanly(stack: Stack) -> None:
    stack.compose("stop")
    exit_codes = {service: stack.inspect(service)["State"]["ExitCode"] for service in RESTYLE_SERVICES}
    stack.up()
    assert exit_codes == {service: 0 for service in RESTYLE_SERVICES}


def test_down_then_up_keeps_records_and_results(stack: Stack, http: httpx.Client) -> None:
    job_id = submit(http, QUICK_JOB)
    wait_for(http, job_id, succeeded)
    result = http.get(f"/v1/jobs/{job_id}/result").content

    stack.down()
    stack.up()

    with stack.client() as again:
        assert again.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
        assert again.get(f"/v1/jobs/{job_id}/result").content == result


def curl(stack: Stack, *args: str, cwd: Path) -> bytes:
    """curl with the API key, failing on an HTTP error; its output."""
    done = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail", "-H", f"Authorization: Bearer {API_KEY}", *args],
        cwd=cwd,
        capture_output=True,
        check=True,
    )
    return done.stdout
