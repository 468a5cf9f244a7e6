"""For tests that start real servers: a free loopback port, and waiting for a condition with a guard time."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], object], timeout_s: float = 60.0, what: str = "condition") -> None:
    """Poll until ``condition()`` is true; fail after ``timeout_s`` (a guard against hanging, not a measurement)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
