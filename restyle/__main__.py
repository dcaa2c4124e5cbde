"""``python -m restyle``: the console script, for a child process run with this interpreter."""

import sys

from restyle.console import main

sys.exit(main())
