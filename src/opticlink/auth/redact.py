"""Keeping secrets out of output: the password in `scheme://user:password@host` and any known secret
(a camera's configured password) become `***` in text, JSON and log lines."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*):(?P<password>[^/@\s]*)@")
MIN_SECRET = 3  # characters: masking every "a" in a log would mangle it and hide nothing


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET:
            text = text.replace(secret, MASK)
    return text


def redact_data(data: object, secrets: Iterable[str | None] = ()) -> object:
    """`data` (JSON-like) with every string redacted."""
    secrets = list(secrets)
    if isinstance(data, str):
        return redact(data, secrets)
    if isinstance(data, dict):
        return {k: redact_data(v, secrets) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(v, secrets) for v in data]
    return data


class RedactingFilter(logging.Filter):
    """Rewrites every record passing a handler so that its message holds no password."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets = {s for s in secrets if s}

    def add(self, *secrets: str | None) -> None:
        self.secrets.update(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_redactor = RedactingFilter()
_factory_installed = False


def install_log_redaction(secrets: Iterable[str | None] = ()) -> RedactingFilter:
    """Redact every log record of the process as it is made (a record factory, so records reach no
    handler unredacted: ours, uvicorn's or a test's), knowing `secrets` too."""
    global _factory_installed
    _redactor.add(*secrets)
    if not _factory_installed:
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            with contextlib.suppress(Exception):  # a malformed record is the logging module's to report
                _redactor.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True
    return _redactor
