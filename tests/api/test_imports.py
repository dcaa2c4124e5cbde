"""The API process stays light: importing and building the app never loads torch."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO_ROOT


def test_the_api_never_imports_torch() -> None:
    program = (
        "import sys\n"
        "from api.main import create_app\n"
        "from restyle.settings import Settings\n"
        "create_app(Settings())\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
