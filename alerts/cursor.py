"""A terminal's place in the alert stream: the store's epoch and the last seq it has seen.

Seqs only compare within one epoch (one database). A cursor of another epoch, or one ahead of the
log's last seq (the log was reset, restored or pruned under the terminal), cannot be resumed: the
terminal gets a full replay from the start, newest kept within the replay limit, and is told that a
reset happened so that it drops what it shows. A cursor that fits no stream at all (a negative seq,
one past SQLite's 64-bit integers, an epoch that is no id) is refused with :class:`BadCursor`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from alerts.envelope import Alert
from alerts.errors import BadCursor

SEQ_LIMIT = 2**63  # seqs are SQLite INTEGERs: signed 64-bit
EPOCH_MAX_LEN = 64
EPOCH_PATTERN = rf"^[0-9A-Za-z_-]{{1,{EPOCH_MAX_LEN}}}$"
_EPOCH = re.compile(EPOCH_PATTERN)
_DIGITS = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class Cursor:
    """``since``: the last seq the terminal has (None: live only, no replay); ``epoch``: of that seq, if known."""

    since: int | None = None
    epoch: str | None = None

    def __post_init__(self) -> None:
        if self.since is not None and not 0 <= self.since < SEQ_LIMIT:
            raise BadCursor("since must be an integer in [0, 2^63)")
        if self.epoch is not None and not _EPOCH.fullmatch(self.epoch):
            raise BadCursor(f"epoch must be 1 to {EPOCH_MAX_LEN} letters, digits, '-' or '_'")

    @classmethod
    def parse(cls, since: str | None, epoch: str | None) -> Cursor:
        """A cursor from query-string values; an empty value is an absent one."""
        if since in (None, ""):
            value = None
        elif _DIGITS.fullmatch(since):
            value = int(since)
        else:
            raise BadCursor("since must be a non-negative integer in ASCII digits")
        return cls(value, epoch or None)

    def start(self, epoch: str, last_seq: int) -> int | None:
        """Where the replay starts in the log of ``epoch`` that ends at ``last_seq``; None: a reset (from 0)."""
        if self.since is None:
            return last_seq
        if (self.epoch is not None and self.epoch != epoch) or self.since > last_seq:
            return None
        return self.since


@dataclass(frozen=True)
class Replay:
    """What a terminal at a cursor missed."""

    epoch: str  # the store's epoch
    last_seq: int  # the log's true last seq (never the terminal's)
    reset: bool  # the cursor was of another epoch or ahead of the log: replayed from the start
    alerts: list[Alert]  # oldest first; the newest ones when more than the limit were missed
    missed: int = 0  # older alerts past the replay limit that were not replayed (seqs are contiguous per epoch)
