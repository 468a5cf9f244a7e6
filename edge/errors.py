"""Errors of the edge service."""

from __future__ import annotations


class EdgeError(Exception):
    """Base class."""


class ConfigError(EdgeError):
    """A config file that cannot be used; the message names the file and the field."""


class EnrolmentError(EdgeError):
    """An enrolment refused; ``code`` is stable, the message is for people."""

    def __init__(self, code: str, message: str, status: int = 422, *, person_id: str | None = None,
                 score: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.person_id = person_id  # "duplicate": the already-enrolled person; "not_same_person": the one compared
        self.score = score  # the cosine similarity to ``person_id``


class SourceError(EdgeError):
    """A camera source that cannot be opened or read."""


class EvalDataError(EdgeError):
    """Evaluation input that cannot be used (missing folder, CSV without its columns, unreadable
    image); the message names the file."""
