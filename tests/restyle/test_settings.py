"""Settings: read from RESTYLE_… variables, refusing bad configuration at start-up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from restyle.settings import Settings

# The reference of every setting, one table row per environment variable.
CONFIGURATION_REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [name for name in os.environ if name.startswith("RESTYLE_")]:
        monkeypatch.delenv(name)


def test_defaults_pick_the_best_weights_and_device_available() -> None:
    settings = Settings()
    assert (settings.weights, settings.device) == ("auto", None)


def test_api_keys_are_one_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTYLE_API_KEYS", "first, second,,")
    assert [key.get_secret_value() for key in Settings().api_keys] == ["first", "second"]


def test_without_api_keys_the_service_runs_open() -> None:
    assert Settings().open_mode


def test_variables_use_the_restyle_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTYLE_MAX_QUEUE_DEPTH", "7")
    assert Settings().max_queue_depth == 7


def test_redelivery_defaults_to_ten_minutes_past_the_job_time_limit() -> None:
    assert Settings(job_time_limit=100).redelivery_seconds == 700


def test_a_visibility_timeout_within_the_job_time_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTYLE_JOB_TIME_LIMIT", "60")
    monkeypatch.setenv("RESTYLE_VISIBILITY_TIMEOUT", "60")
    with pytest.raises(ValidationError, match=r"visibility_timeout .* must exceed job_time_limit"):
        Settings()


def test_a_redis_url_without_a_redis_scheme_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTYLE_REDIS_URL", "localhost:6379")
    with pytest.raises(ValidationError, match="redis_url"):
        Settings()


def test_an_ill_typed_value_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTYLE_MAX_UPLOAD_BYTES", "lots")
    with pytest.raises(ValidationError, match="max_upload_bytes"):
        Settings()


def test_an_unknown_log_level_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTYLE_LOG_LEVEL", "chatty")
    with pytest.raises(ValidationError, match="log_level"):
        Settings()


def test_the_webhook_allow_list_takes_host_names_and_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTYLE_WEBHOOK_ALLOW_HOSTS", "hooks.internal.example, 10.20.0.0/16")
    assert Settings().webhook_allow_hosts == ["hooks.internal.example", "10.20.0.0/16"]


def test_a_webhook_allow_list_entry_that_is_neither_a_name_nor_a_network_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RESTYLE_WEBHOOK_ALLOW_HOSTS", "10.0.0.0/33")
    with pytest.raises(ValidationError, match="neither a host name nor a CIDR"):
        Settings()


def test_the_memory_budget_defaults_to_the_engines_choice() -> None:
    assert Settings().memory_budget is None


@pytest.mark.parametrize(("text", "expected"), [("8GiB", 8 * 2**30), ("512MiB", 512 * 2**20), ("1000000", 10**6)])
def test_the_memory_budget_reads_units(monkeypatch: pytest.MonkeyPatch, text: str, expected: int) -> None:
    monkeypatch.setenv("RESTYLE_MEMORY_BUDGET", text)
    assert Settings().memory_budget == expected


def test_a_memory_budget_that_is_not_a_size_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTYLE_MEMORY_BUDGET", "plenty")
    with pytest.raises(ValidationError, match="memory_budget"):
        Settings()


def test_the_size_cap_defaults_to_2048_and_goes_up_to_print_size(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().max_size == 2048
    monkeypatch.setenv("RESTYLE_MAX_SIZE", "4096")
    assert Settings().max_size == 4096
    monkeypatch.setenv("RESTYLE_MAX_SIZE", "8192")
    with pytest.raises(ValidationError, match="max_size"):
        Settings()


def test_every_setting_has_one_row_in_the_configuration_reference() -> None:
    rows = re.findall(r"^\| `RESTYLE_([A-Z0-9_]+)` \|", CONFIGURATION_REFERENCE.read_text(), flags=re.MULTILINE)
    assert sorted(rows) == sorted(name.upper() for name in Settings.model_fields)


def test_no_trusted_proxies_by_default() -> None:
    assert Settings().trusted_proxies == []


def test_trusted_proxies_are_addresses_and_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTYLE_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.5,fd00::/8")
    assert Settings().trusted_proxies == ["10.0.0.0/8", "192.0.2.5", "fd00::/8"]


@pytest.mark.parametrize("entry", ["proxy.example", "10.0.0.1/8"])  # a name; a CIDR with host bits set
def test_a_trusted_proxy_that_is_not_an_address_or_network_stops_the_settings(
    monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    monkeypatch.setenv("RESTYLE_TRUSTED_PROXIES", f"10.0.0.0/8,{entry}")
    with pytest.raises(ValidationError, match=re.escape(entry)):
        Settings()
