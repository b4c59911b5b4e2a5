"""Keeping secrets out of what we print, log and store as error text.

A config may carry secrets: API keys and other values read from the environment
(``${VAR}``), passwords in a source's URL (``https://user:pass@host/feed``), tokens in
its query string. They are needed to make requests, and nowhere else: every log line
(through :class:`RedactingFilter`), every error we store or print and every ``status``
output passes through a :class:`Redactor`, which replaces them with ``***``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values would mask ordinary words ("en", "on") and say little anyway.
MIN_SECRET = 4
_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/\s:@]*):(?P<pw>[^@/\s]+)@", re.I)
_SECRET_PARAM = re.compile(
    r"(?P<head>[?&;](?:api[_-]?key|apikey|key|token|access[_-]?token|auth|secret|password|passwd|pwd|sig|signature)=)"
    r"(?P<value>[^&#;,\s\"'<>]+)", re.I)


class Redactor:
    """Masks a fixed set of secret values (and their URL-encoded forms), URL passwords
    and secret-looking query parameters in any text."""

    def __init__(self, secrets: Iterable[str] = ()):
        forms: set[str] = set()
        for s in secrets:
            if s and len(s) >= MIN_SECRET:
                forms |= {s, quote(s, safe=""), quote_plus(s)}
        # Longest first, so that a secret containing another is masked whole.
        self._pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))) \
            if forms else None

    def __call__(self, text: str) -> str:
        if not text:
            return text
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        text = _mask_userinfo(text)
        return _SECRET_PARAM.sub(lambda m: m["head"] + MASK, text)

    def obj(self, value: Any) -> Any:
        """The same structure (dicts, lists, tuples of strings...) with every string masked."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.obj(v) for v in value)
        return value


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record's message and traceback before any handler writes it."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.redactor(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True


_installed = Redactor()


def install(redactor: Redactor) -> None:
    """Mask ``redactor``'s secrets in everything the root logger's handlers write (and in
    :func:`redact`). Installing again replaces the previous filter (a reloaded config)."""
    global _installed
    _installed = redactor
    for handler in logging.getLogger().handlers:
        for f in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(f)
        handler.addFilter(RedactingFilter(redactor))


def redact(text: str) -> str:
    """``text`` masked with the installed redactor (URL passwords and tokens at least)."""
    return _installed(text)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (how a PostgreSQL store is named in
    messages, logs and ``status``)."""
    return _mask_userinfo(url)


def _mask_userinfo(text: str) -> str:
    return _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
