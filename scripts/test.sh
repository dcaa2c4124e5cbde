#!/usr/bin/env bash
# The README's test command: set everything up on a fresh machine, run the static checks, then the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/core -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh dev
bash scripts/redis.sh
# The page test drives Debian's Chromium; without it that one test skips and says so.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test: installing Debian's chromium for the browser test"
  bash scripts/apt-install.sh chromium \
    || echo "test: could not install chromium; the browser test will be skipped"
fi
# Static checks first, over everything that is Python (tests included): a lint or type error fails the run
# before the suite's minutes are spent. The tools' versions are pinned in pyproject.toml's dev extras.
echo "test: ruff check, ruff format --check, mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy core api worker restyle bench tests scripts
# OpenMP threads that wait by spinning (libgomp's default) burn the CPU a busy machine's other processes need,
# and are descheduled in the middle of their own spin: beside a CPU hog on both cores that doubled the engine
# tests' time, while passive waiting costs an idle machine nothing measurable (bench/RESULTS.md). Worker
# processes the tests start inherit it. A caller's own setting wins.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# One pytest process per CPU this run may use (nproc honours taskset), at most four; RESTYLE_TEST_PROCESSES
# overrides (0: one process, no xdist). A test file stays in one process (--dist loadfile), so its module
# fixtures start once; files go out in collection order, which puts those with slow tests first (tests/conftest.py),
# so that no long file is left for the end. Every test isolates its own Redis keys, ports and folders, so the
# order is free.
processes="${RESTYLE_TEST_PROCESSES:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}"
exec .venv/bin/python -m pytest -n "$processes" --dist loadfile --no-loadscope-reorder "$@"
