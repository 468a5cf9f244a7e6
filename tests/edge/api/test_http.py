"""The review API's pure HTTP helpers: byte ranges (RFC 9110) and branch-local date bounds."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge.api.http import RangeNotSatisfiable, file_chunks, parse_bound, parse_range

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 1000, None),
    ("", 1000, None),
    ("bytes=0-99", 1000, (0, 99)),
    ("bytes=500-599", 1000, (500, 599)),
    ("bytes=-100", 1000, (900, 999)),
    ("bytes=-5000", 1000, (0, 999)),  # suffix longer than the file: the whole file
    ("bytes=900-", 1000, (900, 999)),
    ("bytes=900-5000", 1000, (900, 999)),  # last position cut to the end
    ("bytes=999-999", 1000, (999, 999)),
    ("BYTES = 1 - 2", 1000, (1, 2)),
    ("bytes=5-2", 1000, None),  # invalid: ignored, whole file
    ("bytes=abc", 1000, None),
    ("bytes=-", 1000, None),
    ("items=0-1", 1000, None),
    ("bytes=0-1,5-6", 1000, None),  # multipart is not served: whole file
])
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=1000-", 1000), ("bytes=5000-6000", 1000), ("bytes=-0", 1000),
                                              ("bytes=0-0", 0), ("bytes=-10", 0)])
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


@pytest.mark.parametrize(("value", "end", "expected"), [
    (None, False, None),
    ("2026-03-02", False, "2026-03-02T00:00:00+08:00"),
    ("2026-03-02", True, "2026-03-03T00:00:00+08:00"),  # an end date includes that whole local day
    ("2026-03-02T09:30:00", False, "2026-03-02T09:30:00+08:00"),  # no offset: branch-local
    ("2026-03-02T01:30:00Z", True, "2026-03-02T01:30:00+00:00"),
    ("2026-03-02T09:30:00+08:00", False, "2026-03-02T09:30:00+08:00"),
])
def test_parse_bound(value: str | None, end: bool, expected: str | None) -> None:
    bound = parse_bound(value, SHANGHAI, end=end)
    assert (None if bound is None else bound.isoformat()) == expected


@pytest.mark.parametrize("value", ["", "yesterday", "2026-13-01", "2026-03-02T09:30:00 08:00"])
def test_parse_bound_refuses_bad_input(value: str) -> None:
    with pytest.raises(ValueError, match="ISO date"):
        parse_bound(value, SHANGHAI, end=False)


@pytest.mark.parametrize(("value", "end"), [
    ("9999-12-31", True),  # the next midnight is past the calendar
    ("0001-01-01", False),  # local midnight of year 1 is before UTC's year 1
    ("9999-12-31T23:59:59-14:00", False),
    ("0001-01-01T00:00:00+14:00", True),
    ("1899-12-31", False),
    ("9000-01-01", False),
])
def test_parse_bound_refuses_dates_out_of_range_with_a_value_error(value: str, end: bool) -> None:
    # a date the calendar arithmetic after it (next midnight, UTC, a year's span) cannot hold is bad input
    with pytest.raises(ValueError, match="between 1900 and 8999"):
        parse_bound(value, SHANGHAI, end=end)


@pytest.mark.parametrize(("start", "length", "chunk", "sizes"), [
    (0, 10, 4, [4, 4, 2]),
    (3, 4, 64, [4]),
    (0, 0, 4, []),  # nothing asked: nothing read
    (8, 10, 4, [2]),  # the file is shorter than asked: stops short
])
def test_file_chunks_reads_the_span_in_chunks_and_closes_the_file(tmp_path: Path, start: int, length: int,
                                                                  chunk: int, sizes: list[int]) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(10)))
    handle = path.open("rb")
    parts = list(file_chunks(handle, start, length, chunk))
    assert [len(p) for p in parts] == sizes
    assert b"".join(parts) == bytes(range(10))[start:start + length]
    assert handle.closed
