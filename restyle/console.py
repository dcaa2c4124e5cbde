"""The ``restyle`` console script: the command line (restyle.cli), or one line saying to install the server.

Every subcommand (stylize, api, worker, up, fetch-weights) runs the engine or the service, whose libraries
come with the ``server`` extra; a client-only install (``pip install .``, see docs/client.md) has the script
but not them. There the command exits with one line naming the extra instead of an import traceback. Imports
nothing itself, so that line costs nothing to reach.
"""

from __future__ import annotations

import sys

# A missing module of the project itself is a broken checkout, not a missing extra: its traceback stays.
_OWN_PACKAGES = frozenset({"core", "api", "worker", "restyle"})
EXIT_NOT_INSTALLED = 1


def main(argv: list[str] | None = None) -> int:
    """Run ``restyle`` (restyle.cli.main); without the server extra, say how to install it and return 1."""
    try:
        from restyle.cli import main as run_command

        return run_command(argv)
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if not missing or missing in _OWN_PACKAGES:
            raise
        print(
            f"restyle: error: this command needs the server extra ({missing} is not installed): "
            'install restyle[server], e.g. pip install ".[server]" in a Restyle checkout',
            file=sys.stderr,
        )
        return EXIT_NOT_INSTALLED
