"""The container set-up, checked without Docker: docker-compose.yml (and its CPU override), the Dockerfile and
.dockerignore hold the structure the service needs, and every command they name exists in the project."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from celery import Celery
from celery.app.utils import find_app

from restyle.cli import build_parser
from restyle.settings import Settings
from restyle.workers import WorkerRegistry
from tests.support.api_server import ApiServer
from tests.support.settings import MakeSettings, settings_env

ROOT = Path(__file__).resolve().parent.parent
RESTYLE_SERVICES = ("api", "worker", "flower")


class ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it: ``!reset`` (drop an inherited value) becomes None."""


ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def load_compose(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.load((ROOT / name).read_text(), Loader=ComposeLoader)
    return document


COMPOSE = load_compose("docker-compose.yml")
CPU_OVERRIDE = load_compose("docker-compose.cpu.yml")
S3_OVERRIDE = load_compose("docker-compose.s3.yml")
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped, as Docker parses."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


DOCKERFILE = dockerfile_instructions()


def arguments_of(keyword: str) -> list[str]:
    return [arguments for instruction, arguments in DOCKERFILE if instruction == keyword]


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) command, or a shell-form one split like a shell would."""
    parsed: list[str] = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
    return parsed


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in arguments_of("ENV"):
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def healthcheck_command() -> list[str]:
    """The command of the image's HEALTHCHECK (its options, like --interval, come first)."""
    (arguments,) = arguments_of("HEALTHCHECK")
    return exec_form(arguments[arguments.index("CMD ") + len("CMD ") :])


def compose_test(service: str) -> list[str]:
    test: list[str] = SERVICES[service]["healthcheck"]["test"]
    assert test[0] == "CMD", f"{service}: healthcheck should be an exec-form CMD"
    return test[1:]


def restyle_commands() -> dict[str, list[str]]:
    """Every ``restyle …`` command line that the containers run, by where it is written."""
    commands = {f"compose {name}": SERVICES[name]["command"] for name in RESTYLE_SERVICES}
    commands["Dockerfile CMD"] = exec_form(arguments_of("CMD")[-1])
    return {origin: command for origin, command in commands.items() if command[0] == "restyle"}


# Compose: services -------------------------------------------------------------------------------------


def test_compose_runs_redis_an_api_a_worker_and_flower() -> None:
    assert set(SERVICES) == {"redis", "api", "worker", "flower"}


def test_redis_keeps_its_data_with_append_only_persistence_on_a_volume() -> None:
    redis_service = SERVICES["redis"]
    command = redis_service["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volume, _, target = redis_service["volumes"][0].partition(":")
    assert volume in COMPOSE["volumes"]
    assert target == "/data"


def test_redis_is_healthy_only_once_it_answers_ping() -> None:
    test = SERVICES["redis"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert "redis-cli ping" in test[1]


@pytest.mark.parametrize("service", RESTYLE_SERVICES)
def test_each_restyle_service_starts_only_after_redis_is_healthy(service: str) -> None:
    assert SERVICES[service]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_api_is_health_checked_by_the_image() -> None:
    # The API has no healthcheck of its own in compose: it inherits the image's HEALTHCHECK.
    assert "healthcheck" not in SERVICES["api"]
    assert len(arguments_of("HEALTHCHECK")) == 1


def test_the_worker_reserves_an_nvidia_gpu() -> None:
    (device,) = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]


def test_only_the_worker_reserves_a_gpu() -> None:
    reserving = {name for name, service in SERVICES.items() if "deploy" in service}
    assert reserving == {"worker"}


def test_the_worker_yields_the_cpu_to_the_api_under_contention() -> None:
    default_weight = 1024
    assert SERVICES["worker"]["cpu_shares"] < SERVICES["api"].get("cpu_shares", default_weight)


def test_the_api_and_the_worker_share_a_storage_volume_where_the_image_keeps_storage() -> None:
    storage_dir = dockerfile_env()["RESTYLE_STORAGE_DIR"]
    mounts = {name: SERVICES[name]["volumes"] for name in ("api", "worker")}
    assert mounts["api"] == mounts["worker"]
    volume, _, target = mounts["api"][0].partition(":")
    assert volume in COMPOSE["volumes"]
    assert target == storage_dir


def test_the_api_and_the_worker_share_one_configuration() -> None:
    # Same Redis, key prefix and queue, or the worker would never see the API's jobs.
    assert SERVICES["api"]["environment"] == SERVICES["worker"]["environment"]
    assert SERVICES["api"]["environment"]["RESTYLE_REDIS_URL"].startswith("redis://redis:")


def test_the_limits_compose_spells_out_are_the_settings_defaults() -> None:
    # ${RESTYLE_X:-default}: what the API runs with unless the shell says otherwise.
    spelled = {
        name: match.group(1)
        for name, value in SERVICES["api"]["environment"].items()
        if isinstance(value, str) and (match := re.fullmatch(r"\$\{" + name + r":-(.*)\}", value))
    }
    assert {"RESTYLE_HTTP_MAX_CONNECTIONS", "RESTYLE_HTTP_MAX_CONNECTIONS_PER_CLIENT", "RESTYLE_HTTP_MIN_RATE"} <= set(
        spelled
    )
    for name, value in spelled.items():
        default = Settings.model_fields[name.removeprefix("RESTYLE_").lower()].default
        assert type(default)(value) == default, name


def test_one_image_built_once_runs_every_restyle_service() -> None:
    assert {SERVICES[name]["image"] for name in RESTYLE_SERVICES} == {SERVICES["api"]["image"]}
    assert [name for name, service in SERVICES.items() if "build" in service] == ["api"]


def test_the_gpu_setup_builds_cuda_torch() -> None:
    assert "cu" in SERVICES["api"]["build"]["args"]["TORCH_VARIANT"]


def test_the_api_publishes_the_port_its_command_listens_on() -> None:
    args = build_parser().parse_args(SERVICES["api"]["command"][1:])
    assert args.host == "0.0.0.0"
    assert SERVICES["api"]["ports"] == [f"{args.port}:{args.port}"]


# Compose: the CPU override ----------------------------------------------------------------------------


def test_the_cpu_override_drops_the_worker_gpu_reservation() -> None:
    worker = CPU_OVERRIDE["services"]["worker"]
    assert "deploy" in worker and worker["deploy"] is None


def test_the_cpu_override_builds_cpu_torch_under_its_own_image_tag() -> None:
    services = CPU_OVERRIDE["services"]
    assert services["api"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    tags = {services[name]["image"] for name in RESTYLE_SERVICES}
    assert len(tags) == 1
    assert tags != {SERVICES["api"]["image"]}


# Every named command exists ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", restyle_commands().values(), ids=restyle_commands().keys())
def test_restyle_commands_are_real_subcommands_with_real_flags(command: list[str]) -> None:
    args = build_parser().parse_args(command[1:])
    assert args.command == command[1]


def test_the_celery_app_that_flower_watches_is_the_worker_app() -> None:
    command = SERVICES["flower"]["command"]
    assert command[:2] == ["celery", "-A"]
    app = find_app(command[2])
    assert isinstance(app, Celery)
    assert "worker.tasks" in app.conf.include


def test_the_image_installs_the_server_extra() -> None:
    """The base dependencies are only the client's; the engine, API and worker come with the server extra."""
    (dependencies,) = [run for run in arguments_of("RUN") if "pip install -r" in run]
    assert "['dependencies']" in dependencies
    assert "['optional-dependencies']['server']" in dependencies


def test_the_image_installs_flower_for_the_flower_service() -> None:
    command = SERVICES["flower"]["command"]
    assert command[3] == "flower"
    extra = PYPROJECT["project"]["optional-dependencies"]["flower"]
    assert any(requirement.startswith("flower") for requirement in extra)
    assert any("['optional-dependencies']['flower']" in run for run in arguments_of("RUN"))


def test_flower_is_published_and_health_checked_on_the_port_it_listens_on() -> None:
    (port,) = [part.removeprefix("--port=") for part in SERVICES["flower"]["command"] if part.startswith("--port=")]
    assert SERVICES["flower"]["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"http://127.0.0.1:{port}/healthcheck" in " ".join(compose_test("flower"))


def test_the_image_healthcheck_probes_the_port_of_the_default_command() -> None:
    args = build_parser().parse_args(exec_form(arguments_of("CMD")[-1])[1:])
    assert f"http://127.0.0.1:{args.port}/healthz" in " ".join(healthcheck_command())
    assert arguments_of("EXPOSE") == [str(args.port)]


def test_the_image_healthcheck_passes_against_a_running_api(idle_api: ApiServer) -> None:
    command = [part.replace("http://127.0.0.1:8000", idle_api.url) for part in healthcheck_command()]
    assert command[0] == "python"
    assert subprocess.run([sys.executable, *command[1:]], timeout=30).returncode == 0


def test_the_worker_healthcheck_passes_while_a_worker_on_this_host_beats(
    make_settings: MakeSettings, redis_client: redis.Redis[bytes]
) -> None:
    settings = make_settings()
    registry = WorkerRegistry(redis_client, settings.key_prefix)
    name, every = f"restyle-1@{socket.gethostname()}", settings.heartbeat_seconds
    command = compose_test("worker")
    # Beating all along, as a worker does: a single beat lapses while a loaded machine starts the check's Python.
    checked = subprocess.Popen([sys.executable, *command[1:]], env=settings_env(settings), cwd=ROOT)
    try:
        while checked.poll() is None:
            registry.beat(name, "random(seed=0)", every=every)
            time.sleep(every)  # the beat's own pace, not a wait for anything
        assert checked.returncode == 0
    finally:
        checked.kill()
        checked.wait()


# The S3 override ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["api", "worker"])
def test_with_the_s3_override_api_and_worker_share_no_volume(service: str) -> None:
    assert S3_OVERRIDE["services"][service]["volumes"] is None  # !reset: the shared `storage` volume goes


@pytest.mark.parametrize("service", ["api", "worker"])
def test_with_the_s3_override_api_and_worker_keep_objects_in_the_bucket(service: str) -> None:
    environment = S3_OVERRIDE["services"][service]["environment"]
    assert environment["RESTYLE_STORAGE_URL"].startswith("s3://")
    assert environment["AWS_ENDPOINT_URL"].endswith("//s3:9000}")


def test_the_s3_override_passes_credentials_only_as_the_standard_aws_variables() -> None:
    environment = S3_OVERRIDE["services"]["api"]["environment"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(environment)
    assert [name for name in environment if name.startswith("RESTYLE_")] == ["RESTYLE_STORAGE_URL"]


def test_the_s3_override_starts_api_and_worker_only_once_the_bucket_exists() -> None:
    for service in ("api", "worker"):
        bucket = S3_OVERRIDE["services"][service]["depends_on"]["bucket"]
        assert bucket == {"condition": "service_completed_successfully"}


# The Dockerfile -----------------------------------------------------------------------------------------


def test_the_dockerfile_pins_torch_and_torchvision_exactly_as_pyproject_does() -> None:
    server = PYPROJECT["project"]["optional-dependencies"]["server"]
    pins = {re.split(r"[=<>!~\[]", requirement)[0]: requirement for requirement in server}
    (install,) = [run for run in arguments_of("RUN") if "torch==" in run]
    assert pins["torch"] in install.split()
    assert pins["torchvision"] in install.split()


def test_the_dockerfile_builds_from_the_official_python_image_unless_told_otherwise() -> None:
    first, second = DOCKERFILE[0], DOCKERFILE[1]
    assert first == ("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm")
    assert second == ("FROM", "${PYTHON_IMAGE}")


def test_the_dockerfile_needs_no_frontend_lookup() -> None:
    """A ``# syntax=`` line makes BuildKit fetch a frontend image: an offline build would fail on it."""
    assert not (ROOT / "Dockerfile").read_text().startswith("# syntax")


def test_the_dockerfile_builds_cpu_torch_from_the_pytorch_index_unless_told_otherwise() -> None:
    assert "TORCH_VARIANT=cpu" in arguments_of("ARG")
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}" in arguments_of("ARG")
    (install,) = [run for run in arguments_of("RUN") if "torch==" in run]
    assert '--index-url "${TORCH_INDEX_URL}"' in install


def test_the_dockerfile_fetches_the_imagenet_vgg19_weights_into_a_fixed_torch_home_unless_told_otherwise() -> None:
    assert dockerfile_env()["TORCH_HOME"].startswith("/")
    assert "VGG_WEIGHTS=auto" in arguments_of("ARG")
    assert "core/weights_download.py /tmp/weights_download.py" in arguments_of("COPY")
    (fetch,) = [run for run in arguments_of("RUN") if "python /tmp/weights_download.py" in run]
    assert "imagenet)" in fetch and "auto)" in fetch


def test_with_auto_weights_the_dockerfile_falls_back_to_keras_vgg16_once_the_project_is_installed() -> None:
    steps = [f"{instruction} {arguments}" for instruction, arguments in DOCKERFILE]
    installed = next(index for index, step in enumerate(steps) if "pip install --no-deps" in step)
    fallback = next(index for index, step in enumerate(steps) if "python -m core.keras_vgg16" in step)
    runtime_user = next(index for index, (instruction, _) in enumerate(DOCKERFILE) if instruction == "USER")
    assert installed < fallback < runtime_user  # the installed project (onnx) is needed; root writes TORCH_HOME
    assert '"${VGG_WEIGHTS}" = auto' in steps[fallback] and "cached_tier() is None" in steps[fallback]


def test_the_dockerfile_fetches_the_weights_before_the_dependencies_so_a_dependency_change_keeps_them() -> None:
    steps = [f"{instruction} {arguments}" for instruction, arguments in DOCKERFILE]
    fetch = next(index for index, step in enumerate(steps) if "/tmp/weights_download.py" in step and "RUN" in step)
    assert fetch < next(index for index, step in enumerate(steps) if "pip install -r" in step)


def test_the_image_asks_for_the_weights_it_was_built_with_by_name() -> None:
    assert dockerfile_env()["RESTYLE_WEIGHTS"] == "${VGG_WEIGHTS}"


def test_the_dockerfile_proves_the_runtime_user_can_load_those_weights() -> None:
    user_index = next(index for index, (instruction, _) in enumerate(DOCKERFILE) if instruction == "USER")
    later_runs = [arguments for instruction, arguments in DOCKERFILE[user_index:] if instruction == "RUN"]
    assert any("load_vgg(get_settings().weights" in run and "${VGG_WEIGHTS}" in run for run in later_runs)


def test_installing_the_source_fetches_no_build_backend() -> None:
    """The backend is installed with the dependencies, so a code change does not download it again."""
    (dependencies,) = [run for run in arguments_of("RUN") if "pip install -r" in run]
    (source,) = [run for run in arguments_of("RUN") if "pip install --no-deps" in run]
    assert "['build-system']['requires']" in dependencies
    assert "--no-build-isolation" in source


def test_the_dockerfile_runs_as_a_non_root_user() -> None:
    user = arguments_of("USER")[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert any("useradd" in run and user in run.split() for run in arguments_of("RUN"))


def test_the_dockerfile_installs_dependencies_before_copying_the_source() -> None:
    steps = [f"{instruction} {arguments}" for instruction, arguments in DOCKERFILE]
    dependencies = next(index for index, step in enumerate(steps) if "pip install -r" in step)
    first_source = next(index for index, step in enumerate(steps) if step.startswith("COPY core ./core"))
    assert steps[dependencies - 1].startswith("COPY pyproject.toml")
    assert dependencies < first_source


def test_the_dockerfile_copies_every_package_that_pyproject_installs() -> None:
    copied = {arguments.split()[0] for arguments in arguments_of("COPY")}
    packages = {pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied


def test_dockerignore_admits_everything_the_dockerfile_copies() -> None:
    lines = (line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines())
    rules = [line for line in lines if line and not line.startswith("#")]
    admitted = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    sources = {source for arguments in arguments_of("COPY") for source in arguments.split()[:-1]}
    assert rules[0] == "*"
    assert all(any(f"{source}/".startswith(f"{rule}/") for rule in admitted) for source in sources)
