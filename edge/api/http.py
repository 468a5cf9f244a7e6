"""HTTP helpers of the review API, pure and testable without a server: bearer tokens, branch-local
date bounds, byte ranges (RFC 9110 section 14) and chunked file reading."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import BinaryIO
from zoneinfo import ZoneInfo

from fastapi import Request

CHUNK_BYTES = 64 * 1024
BOUND_YEARS = (1900, 8999)  # date filters: far enough either way, and a day or a year of arithmetic still fits
SQL_INT_LIMIT = 2**63  # SQLite INTEGERs are signed 64-bit: a larger offset or id cannot even be asked for
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiable(ValueError):
    """A well-formed byte range that lies wholly beyond the file (answered with 416)."""


def bearer_token(request: Request) -> str | None:
    """The token from ``Authorization: Bearer`` or, for ``<video src>`` and the pages' links, which cannot
    send headers, from ``?token=``. Every authenticated endpoint of the edge app reads it this way."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token")


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz)


def parse_bound(value: str | None, tz: ZoneInfo, *, end: bool) -> datetime | None:
    """A query's date or datetime as an aware datetime; None for None.

    A date (``2026-03-01``) is a branch-local day: as a start it means that day's local midnight, as
    an end (``end=True``) the next local midnight, so the day is included. A datetime is used as is;
    without an offset it is branch-local time. Raises ValueError naming the accepted forms, or the
    accepted years (:data:`BOUND_YEARS`) for a moment the arithmetic done on bounds could not hold.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if not BOUND_YEARS[0] <= day.year <= BOUND_YEARS[1]:
                raise _out_of_range(value)
            return local_midnight(day + timedelta(days=1) if end else day, tz)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        if isinstance(exc, BoundOutOfRange):
            raise
        raise ValueError(f"{value!r} is not an ISO date (2026-03-01) or datetime (2026-03-01T09:30:00+08:00; "
                         "write + as %2B in a URL)") from exc
    bound = moment.replace(tzinfo=tz) if moment.tzinfo is None else moment
    try:
        year = bound.astimezone(UTC).year
    except OverflowError:
        raise _out_of_range(value) from None
    if not BOUND_YEARS[0] <= year <= BOUND_YEARS[1]:
        raise _out_of_range(value)
    return bound


class BoundOutOfRange(ValueError):
    """A well-formed date or datetime outside :data:`BOUND_YEARS`."""


def _out_of_range(value: str) -> BoundOutOfRange:
    return BoundOutOfRange(f"{value!r} is out of range: dates must lie between {BOUND_YEARS[0]} and "
                           f"{BOUND_YEARS[1]}")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte span ``(first, last)`` a ``Range`` header asks of a ``size``-byte file.

    None means "send the whole file with 200": no header, a unit other than bytes, a malformed or
    multi-part range, or ``first > last``. RFC 9110 lets a server ignore such a header, and ignoring
    it is safer than guessing. A last position past the end is cut to the end. Raises
    :class:`RangeNotSatisfiable` for a valid range with nothing in the file: a first position at or
    past the end, a zero-length suffix (``bytes=-0``) or any range of an empty file.
    """
    if header is None:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:  # suffix: the last n bytes
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable(header)
    return first, min(last, size - 1)


def file_chunks(handle: BinaryIO, start: int, length: int, chunk: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Yield ``length`` bytes from ``start`` in chunks of at most ``chunk`` bytes, then close the file.

    Stops early (short) if the file shrinks underneath. The file is closed when the iterator is
    exhausted or closed (the server closes it when the client goes away)."""
    try:
        handle.seek(start)
        left = length
        while left > 0:
            data = handle.read(min(chunk, left))
            if not data:
                return
            left -= len(data)
            yield data
    finally:
        handle.close()
