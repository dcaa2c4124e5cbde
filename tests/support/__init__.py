"""The stand-ins the tests run the service against, one module each, and the constants they share.

- ``pictures``: small generated pictures (``make_png``).
- ``settings``: isolated settings on the shared test Redis (db 15, a key prefix and queue of their own), the
  API keys and webhook secret they hold, and the environment that reproduces them in another process.
- ``worker_process``: a real ``celery worker`` process (``WorkerProcess``).
- ``api_server``: the real app in a real uvicorn server on a loopback port (``ApiServer``).
- ``jobs``: submitting jobs over HTTP and waiting for them (``submit``, ``wait_for`` and its predicates).
- ``webhook_receiver``: a loopback HTTP server that records webhook deliveries (``WebhookReceiver``).
- ``object_store``: a real S3-compatible server, moto's ``moto_server`` (``S3Server``).
- ``ports``: a free loopback port (``free_port``).
- ``tcp_proxy``: a loopback TCP relay a test can cut and restore (``TcpProxy``).
- ``weights_files``: VGG weights files from seeded random filters, in the download's layout.
- ``weights_server``: a loopback stand-in for the weights download (``WeightsServer``).
- ``trained_weights``: Keras's trained ImageNet VGG16, cached once per machine outside the checkout.
- ``webhook_urls``: webhook URLs that must be refused.
- ``clips``: MP4, WebM and GIF clips written without the codec under test (``write_test_clip``).

The fixtures built on them are in tests/conftest.py.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

# The helpers' assertions (``jobs.succeeded``) explain themselves as a test's do, as they did in conftest.py.
# Each module by name: this package is being imported, and pytest warns about rewriting a module already imported.
pytest.register_assert_rewrite(*(f"{__name__}.{module.name}" for module in pkgutil.iter_modules(__path__)))

REPO_ROOT = Path(__file__).resolve().parents[2]
# Long enough for a loaded 2-core machine; only a broken test ever waits this long.
PATIENCE_SECONDS = 120.0
