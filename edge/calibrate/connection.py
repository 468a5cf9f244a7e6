""""Test connection": open a camera source once, with a time limit, and return its first frame or why not.

The answer names the reason in words a branch IT engineer can act on - a malformed URL, a file that is
not there, a port that refuses, a host that does not answer in time, a file that is not a video - and
never repeats the credentials of the URL. For a network camera the TCP port is tried first, so that
"refused" and "timed out" are told apart before FFmpeg is asked to open the stream. The open runs in
its own daemon thread: a capture stuck inside FFmpeg cannot hold the request past the time limit.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

import numpy as np
from pydantic import ValidationError

from edge.cameras.config import SourceConfig
from edge.cameras.readers import describe, open_reader
from edge.errors import NotAVideoError, SourceError
from edge.redact import redact_text, redact_url

logger = logging.getLogger(__name__)

FailCode = Literal["bad_url", "not_found", "refused", "timeout", "unreachable", "not_a_video", "no_frame",
                   "cannot_open"]
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class ConnectionResult:
    """A frame (BGR) when the source opened and gave one; otherwise a failure code and its reason."""

    source: str  # the URL as shown: credentials redacted
    image: np.ndarray | None = None
    code: FailCode | None = None
    reason: str | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.image is not None


def _fail(source: str, code: FailCode, reason: str) -> ConnectionResult:
    return ConnectionResult(source, code=code, reason=redact_text(reason))


def _probe_port(url: str, timeout_s: float) -> tuple[FailCode, str] | None:
    """Try the TCP port of a network URL; None when it accepts a connection."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    shown = redact_url(url)
    try:
        port = parsed.port or DEFAULT_PORTS.get(parsed.scheme.lower(), 554)
    except ValueError:
        return "bad_url", f"the port of {shown} is not a number"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except ConnectionRefusedError:
        return "refused", f"{host}:{port} refused the connection (nothing listens on that port)"
    except TimeoutError:
        return "timeout", f"{host}:{port} did not answer within {timeout_s:g} s"
    except socket.gaierror:
        return "unreachable", f"host {host} is not known (DNS)"
    except OSError as exc:
        return "unreachable", f"{host}:{port} cannot be reached: {exc.strerror or exc}"


def _first_frame(config: SourceConfig) -> np.ndarray:
    reader = open_reader(config)
    try:
        image = reader.read()
    finally:
        reader.close()
    if image is None:
        raise SourceError(f"{describe(config)} opened but gave no frame")
    return image


def check_connection(url: str, timeout_s: float = 8.0) -> ConnectionResult:
    """Open ``url`` as a camera source and read one frame within ``timeout_s`` seconds."""
    try:
        config = SourceConfig(url=url, loop=False, realtime=False)
    except ValidationError as exc:
        reason = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        return _fail(redact_url(url.strip()), "bad_url", reason or "the URL is not valid")
    shown = describe(config)
    if config.kind == "stream":
        refused = _probe_port(config.url, min(timeout_s, 5.0))
        if refused is not None:
            return _fail(shown, *refused)
    elif config.kind in ("file", "dir") and not config.path.exists():
        kind = "folder" if config.kind == "dir" else "file"
        return _fail(shown, "not_found", f"{kind} not found: {shown}")
    outcome: list[np.ndarray | BaseException] = []
    opener = threading.Thread(target=lambda: outcome.append(_try(config)), name="test-connection", daemon=True)
    opener.start()
    opener.join(timeout_s)
    if not outcome:
        return _fail(shown, "timeout", f"{shown} gave no frame within {timeout_s:g} s")
    result = outcome[0]
    if isinstance(result, NotAVideoError):
        return _fail(shown, "not_a_video", str(result))
    if isinstance(result, SourceError):
        code: FailCode = "no_frame" if "gave no frame" in str(result) else "cannot_open"
        return _fail(shown, code, str(result))
    if isinstance(result, BaseException):
        return _fail(shown, "cannot_open", f"{shown} could not be opened: {result}")
    return ConnectionResult(shown, image=result)


def _try(config: SourceConfig) -> np.ndarray | BaseException:
    try:
        return _first_frame(config)
    except (SourceError, OSError, ValueError) as exc:  # NotAVideoError is a SourceError
        return exc


