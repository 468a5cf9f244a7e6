"""Domain errors of the alert stream. Each carries a stable machine ``code``."""

from __future__ import annotations


class AlertsError(Exception):
    """Base class for alert-stream errors."""

    code = "alerts_error"


class BadCursor(AlertsError, ValueError):
    """A terminal's place in the stream (``since``, ``epoch``) that cannot be a place in any stream."""

    code = "bad_cursor"
