#!/usr/bin/env bash
# Create or update the virtual environment at .venv with the project's server install (the `server` extra:
# the engine with its pinned torch, the API, the worker, the `restyle` command at .venv/bin/restyle).
# Usage: scripts/bootstrap.sh [EXTRAS]   e.g. "dev" for the test tools, installed beside the server extra.
# Fast when nothing changed: the install is skipped while pyproject.toml and the extras match what was
# installed last. (The Python client alone needs no script: `pip install .`, see docs/client.md.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

extras=${1:-}
spec=".[server${extras:+,$extras}]"
python=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
# One stamp per extras set; an install with the dev extras (server included) also satisfies a plain one.
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
stamp=".venv/.restyle-installed-${extras:-server}"
installed() { [ "$(cat "$1" 2>/dev/null)" = "$hash" ]; }
if installed "$stamp" || { [ -z "$extras" ] && installed .venv/.restyle-installed-dev; }; then
  exit 0
fi
echo "bootstrap: installing restyle[server${extras:+,$extras}] into .venv (torch==2.14.1 is pinned)"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e "$spec"
echo "$hash" > "$stamp"
