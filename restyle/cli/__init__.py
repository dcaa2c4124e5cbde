"""The ``restyle`` command: one entry point whose subcommands live in their own modules."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from restyle.cli import serve, stylize, weights
from restyle.cli.arguments import EXIT_INTERRUPTED, fail
from restyle.settings import get_settings


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand module contributes its own parser, so this file only wires them."""
    parser = argparse.ArgumentParser(prog="restyle", description="Repaint a photo in the style of an artwork.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stylize.add_parser(commands)
    serve.add_parsers(commands)
    weights.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; each subcommand returns the exit code, and Ctrl-C anywhere exits 130."""
    try:
        return _dispatch(build_parser().parse_args(argv))
    except KeyboardInterrupt:
        print("restyle: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _dispatch(args: argparse.Namespace) -> int:
    """Run the subcommand once the settings are known to be valid: a bad RESTYLE_… variable stops any command
    before it does work, even one that would not have read that variable."""
    try:
        get_settings()
    except ValidationError as error:
        return fail(_settings_problems(error))
    code: int = args.run(args)
    return code


def _settings_problems(error: ValidationError) -> str:
    """Name the environment variable to fix, never its value (it may be a secret such as an API key)."""
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        # A check across several settings has no single field; its message names the fields itself.
        where = f"RESTYLE_{str(item['loc'][0]).upper()}" if item["loc"] else "settings"
        problems.append(f"{where}: {message}")
    return "; ".join(problems)
