"""The ``restyle`` command: one entry point whose subcommands live in their own modules."""

from __future__ import annotations

import argparse
import sys

from restyle.cli import serve, stylize


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand module contributes its own parser, so this file only wires them."""
    parser = argparse.ArgumentParser(prog="restyle", description="Repaint a photo in the style of an artwork.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stylize.add_parser(commands)
    serve.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; each subcommand returns the process exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
