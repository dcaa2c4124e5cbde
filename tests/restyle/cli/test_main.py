"""``restyle``'s entry point: what every subcommand shares before it runs."""

from __future__ import annotations

import pytest

from restyle.cli import main


@pytest.mark.usefixtures("fresh_settings")
@pytest.mark.parametrize(
    "command",
    [["stylize", "photo.jpg", "painting.png", "-o", "out.png"], ["api"], ["worker"], ["up"]],
    ids=lambda c: c[0],
)
def test_a_bad_setting_stops_every_subcommand_with_one_line_naming_the_variable(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESTYLE_SNAPSHOT_EVERY", "-1")
    assert main(command) == 2
    assert capsys.readouterr().err == (
        "restyle: error: RESTYLE_SNAPSHOT_EVERY: Input should be greater than or equal to 0\n"
    )


@pytest.mark.usefixtures("fresh_settings")
@pytest.mark.parametrize(
    ("environment", "problem"),
    [
        ({"RESTYLE_REDIS_URL": "http://x"}, "RESTYLE_REDIS_URL: must be a redis://, rediss:// or unix:// URL"),
        (
            {"RESTYLE_JOB_TIME_LIMIT": "600", "RESTYLE_VISIBILITY_TIMEOUT": "60"},
            "settings: visibility_timeout (60 s) must exceed job_time_limit (600.0 s)",
        ),
    ],
    ids=["one setting", "across settings"],
)
def test_a_settings_check_is_reported_in_its_own_words(
    environment: dict[str, str], problem: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert main(["worker"]) == 2
    assert capsys.readouterr().err == f"restyle: error: {problem}\n"
