"""Credentials in query strings never reach the access log: uvicorn logs each request line with its query, and
browsers send the API key as ``?access_token=`` (EventSource and ``<img>`` cannot set headers)."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[redacted]"

# Parameters whose name holds one of these are taken for credentials: ours (access_token) and the usual names
# of other clients' (api_key, token, secret, password, signature…). Blanking a harmless value by mistake costs
# a log line its detail; missing a credential leaks it to whoever reads the logs.
_CREDENTIAL_NAME = re.compile(r"token|key|secret|passw|signature|auth", re.IGNORECASE)


def redact_query(target: str) -> str:
    """``target`` (a path with an optional query) with the value of every credential-like parameter blanked.

    Names are matched decoded, as the app reads them: ``access_%74oken=`` is the API key as well.
    """
    path, mark, query = target.partition("?")
    if not mark:
        return target
    fields = []
    for field in query.split("&"):
        name, equals, value = field.partition("=")
        if equals and value and _CREDENTIAL_NAME.search(unquote_plus(name)):
            value = REDACTED
        fields.append(name + equals + value)
    return path + mark + "&".join(fields)


class QueryRedaction(logging.Filter):
    """Rewrites the request targets of access-log records in place, so that every handler sees them redacted.

    The record keeps the shape of its ``args``: uvicorn's access formatter unpacks them by position.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.msg, str) and not record.args:
            record.msg = redact_query(record.msg)
        return True


def install_access_log_redaction() -> None:
    """Filter uvicorn's access logger; idempotent, since every app built in a process calls it.

    A filter on the logger survives uvicorn's (or a ``--log-config``) logging set-up, which replaces handlers
    but keeps filters, and covers ``restyle api`` and ``uvicorn --factory api.main:create_app`` alike.
    """
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, QueryRedaction) for existing in logger.filters):
        logger.addFilter(QueryRedaction())
