"""Redaction of credentials in text the box shows: camera URLs, error strings and log records.

The rule: what a URL carries to authenticate is never shown. That is its userinfo (``user:password@``,
of any scheme) and the value of any query or path parameter whose name says it is a secret
(``password=``, ``token=``, ``api_key=``, ``sig=``, …). Malformed URLs are redacted on the safe side:
a password holding an unescaped ``/``, ``?``, ``#``, ``@`` or space hides everything up to the last
``@``. Everything else (scheme, host, port, path, other parameters) is kept so that an operator can
still tell the cameras apart.

:func:`redact_url` is for a string known to be a URL; :func:`redact_text` finds URLs and secrets
inside free text (exception messages from OpenCV or FFmpeg, for example). :func:`install_log_redaction`
applies :class:`RedactingFilter` to every log record when it is made, so that every handler (the
console, uvicorn's, a test's) only ever sees redacted text.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

_SECRET_NAME = r"[\w.\-\[\]]*(?:pass|pwd|token|secret|key|sig|auth|cred|session)[\w.\-\[\]]*"
_SECRET_PARAM = re.compile(rf"(?i)((?:^|(?<=[?&;#/\s,(\"'])){_SECRET_NAME}=)([^&;#\s\"',)]+)")
_BEARER = re.compile(r"(?i)(\bbearer\s+|\bauthorization\s*[:=]\s*(?:basic|digest)\s+)[A-Za-z0-9._~+/\-]{8,}=*")
_URL = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*)?://[^\s'\"<>]*")
_URL_END = re.compile(r"[\s'\"<>]")
_PORT = re.compile(r"\d*")


def _split_authority(rest: str) -> tuple[str, str]:
    """``rest`` (the part after ``://``) as (authority, remainder)."""
    end = len(rest)
    for stop in "/?#":
        at = rest.find(stop)
        if at != -1:
            end = min(end, at)
    return rest[:end], rest[end:]


def _credential_like(authority: str) -> bool:
    """True for ``user:pass`` (no ``@``), False for ``host``, ``host:port`` or ``[v6]:port``."""
    if authority.startswith("[") or ":" not in authority:
        return False
    return _PORT.fullmatch(authority.split(":", 1)[1]) is None


def _redact_rest(rest: str) -> str:
    """The part after ``://`` with its userinfo hidden."""
    authority, remainder = _split_authority(rest)
    if "@" in authority:
        return f"{MASK}@{authority.rsplit('@', 1)[1]}{remainder}"
    if _credential_like(authority):
        if "@" in rest:  # a password with an unescaped delimiter: hide up to the last @
            return f"{MASK}@{rest.rsplit('@', 1)[1]}"
        return f"{MASK}{remainder}"
    return rest


def _redact_params(text: str) -> str:
    return _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, text)


def redact_url(url: str) -> str:
    """``url`` without its credentials, for display; never raises."""
    at = url.find("://")
    head, rest = (url, "") if at == -1 else (url[:at + 3], url[at + 3:])
    return _redact_params(head + _redact_rest(rest)) if at != -1 else _redact_params(url)


def redact_text(text: str) -> str:
    """``text`` with the credentials of every URL in it, secret parameters and bearer tokens hidden."""
    if "://" not in text and "=" not in text and "earer" not in text.lower():
        return text
    out: list[str] = []
    pos = 0
    for match in _URL.finditer(text):
        if match.start() < pos:
            continue
        out.append(text[pos:match.start()])
        token, end = match.group(0), match.end()
        rest = token.split("://", 1)[1]
        authority, _ = _split_authority(rest)
        if "@" not in authority and _credential_like(authority):
            line_end = text.find("\n", end)
            at = text.rfind("@", end, len(text) if line_end == -1 else line_end)
            if at != -1:  # a password with a space in it: the URL runs on to the last @ of the line
                host_end = _URL_END.search(text, at + 1)
                end = len(text) if host_end is None else host_end.start()
                token = text[match.start():end]
        out.append(redact_url(token))
        pos = end
    out.append(text[pos:])
    return _BEARER.sub(lambda m: m.group(1) + MASK, _redact_params("".join(out)))



def _redact_value(value: Any) -> Any:
    """A log argument, redacted; numbers and other objects whose text holds no secret are left as they are."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else str(value)
    shown = redact_text(text)
    return value if shown == text else shown


class RedactingFilter(logging.Filter):
    """Redacts a record in place: message, arguments, exception and stack text. Never drops a record."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _redact_value(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = redact_text(self._formatter.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def install_log_redaction() -> None:
    """Redact every log record of this process when it is made, whichever handler formats it later."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacting", False):
        return
    redactor = RedactingFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        redactor.filter(record)
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)

