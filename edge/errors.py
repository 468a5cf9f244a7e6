"""Errors of the edge service."""

from __future__ import annotations

from vault.errors import ClipFileError as ClipFileError  # raised by vault.clip_file; edge code names it here


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


class NotAVideoError(SourceError):
    """A file source that opens but is not a video (text, audio, truncated, no decodable frame)."""


class EvalDataError(EdgeError):
    """Evaluation input that cannot be used (missing folder, CSV without its columns, unreadable
    image); the message names the file."""


class DataFolderError(EdgeError):
    """A data folder the box must not start on: a missing or wrong key, parts that disagree (a database
    gone while the gallery and clips remain, a database from another epoch), a key rotation in progress.
    ``code`` is stable; :meth:`text` says what is wrong and what to do, in Chinese or English."""

    def __init__(self, code: str, *, en: str, zh: str) -> None:
        super().__init__(en)
        self.code = code
        self.en = en
        self.zh = zh

    def text(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en
