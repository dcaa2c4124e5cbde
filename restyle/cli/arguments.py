"""What the subcommands share about their command line: range-checked numbers, error reports and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from core.units import parse_bytes

EXIT_USAGE = 2  # argparse's code for a bad command line; ours too for any input or setting a run cannot use
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command stopped with Ctrl-C


def int_in_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type for an integer from ``low`` to ``high`` inclusive (no upper bound when None).

    Refusing out-of-range numbers here keeps them from reaching code that would silently reinterpret them.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            allowed = f"{low} or more" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {allowed}, not {value}")
        return value

    return parse


def byte_count(text: str) -> int:
    """An argparse type for an amount of memory: bytes, or 8GiB, 512MiB, 8GB (``core.units.parse_bytes``)."""
    try:
        return parse_bytes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def fail(message: str) -> int:
    """Report a problem in argparse's own format, so every error of the command reads alike."""
    print(f"restyle: error: {message}", file=sys.stderr)
    return EXIT_USAGE
