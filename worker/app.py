"""The worker's Celery application (``celery -A worker.app worker``); ``restyle worker`` starts it for you."""

from __future__ import annotations

from restyle.broker import create_celery
from restyle.settings import get_settings
from worker import lifecycle

app = create_celery(get_settings())
app.conf.include = ["worker.tasks"]
lifecycle.connect()
