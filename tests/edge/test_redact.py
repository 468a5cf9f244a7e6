"""Credentials never leave the box in text: URLs, free text and every log record are redacted."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from edge.redact import install_log_redaction, redact_text, redact_url

SECRET = "S3cretPass"


@pytest.mark.parametrize(("url", "shown"), [
    ("", ""),
    ("rtsp://admin:S3cretPass@127.0.0.1:9/x", "rtsp://***@127.0.0.1:9/x"),
    ("rtsps://admin:S3cretPass@cam.local:322/live?channel=1", "rtsps://***@cam.local:322/live?channel=1"),
    ("RTSP://Admin:S3cretPass@CAM/x", "RTSP://***@CAM/x"),
    ("rtsp://S3cretPass@cam/x", "rtsp://***@cam/x"),
    ("http://admin:S3cretPass@10.0.0.5/video.mjpg?user=admin&password=S3cretPass",
     "http://***@10.0.0.5/video.mjpg?user=admin&password=***"),
    ("https://cam.example/s.m3u8?token=S3cretPass&quality=hd", "https://cam.example/s.m3u8?token=***&quality=hd"),
    ("http://cam/x?api_key=S3cretPass;sig=S3cretPass#t=1", "http://cam/x?api_key=***;sig=***#t=1"),
    ("http://cam/x?PWD=S3cretPass&access_token=S3cretPass", "http://cam/x?PWD=***&access_token=***"),
    ("rtsp://admin:S3cretPass@[fe80::1]:554/live", "rtsp://***@[fe80::1]:554/live"),
    ("smb://admin:S3cretPass@nas/share/v.mp4", "smb://***@nas/share/v.mp4"),
    ("file://admin:S3cretPass@nas/share/v.mp4", "file://***@nas/share/v.mp4"),
    # malformed: characters a password should have escaped, no host, no scheme
    ("rtsp://admin:S3cret Pass@cam/x", "rtsp://***@cam/x"),
    ("rtsp://admin:S3cret/Pass@cam/x", "rtsp://***@cam/x"),
    ("rtsp://admin:S3cret?Pass@cam/x", "rtsp://***@cam/x"),
    ("rtsp://admin:S3cret#Pass@cam/x", "rtsp://***@cam/x"),
    ("rtsp://admin:S3cret@Pass@cam/x", "rtsp://***@cam/x"),
    ("rtsp://admin:S3cretPass@", "rtsp://***@"),
    ("rtsp://admin:S3cretPass", "rtsp://***"),
    ("://admin:S3cretPass@cam/x", "://***@cam/x"),
    ("rtsp://", "rtsp://"),
    # nothing to hide
    ("rtsp://cam.local:554/live", "rtsp://cam.local:554/live"),
    ("rtsp://cam.local:554/live@main", "rtsp://cam.local:554/live@main"),
    ("rtsp://[::1]:554/live", "rtsp://[::1]:554/live"),
    ("http://cam/x?channel=2&user=door", "http://cam/x?channel=2&user=door"),
    ("file:/videos/door@2x.mp4", "file:/videos/door@2x.mp4"),
    ("/videos/door.mp4", "/videos/door.mp4"),
    ("dir:/frames", "dir:/frames"),
    ("usb:0", "usb:0"),
    ("not a url at all", "not a url at all"),
])
def test_redact_url(url: str, shown: str) -> None:
    # given a camera URL, when it is shown, then userinfo and secret query values are hidden, the rest kept
    assert redact_url(url) == shown
    assert SECRET not in redact_url(url) and "S3cret" not in redact_url(url).replace("***", "")
    # and redacting twice changes nothing more
    assert redact_url(shown) == shown


@pytest.mark.parametrize("text", [
    "cannot open camera source rtsp://admin:S3cretPass@127.0.0.1:9/x",
    "OpenCV(4.14.0) error: can't open 'rtsp://admin:S3cretPass@cam/x' (-215)",
    'open "http://u:S3cretPass@cam/a.mjpg", retrying',
    "GET /terminal?token=S3cretPass HTTP/1.1",
    "login failed password=S3cretPass user=admin",
    "Authorization: Bearer S3cretPassS3cretPass",
    "camera rtsp://admin:S3cret Pass@cam/x failed",
    "two: rtsp://a:S3cretPass@c1/x and rtsp://b:S3cretPass@c2/y",
])
def test_redact_text_hides_credentials_inside_free_text(text: str) -> None:
    shown = redact_text(text)
    assert "S3cret" not in shown and "Pass@" not in shown
    assert "***" in shown


def test_redact_text_keeps_ordinary_text() -> None:
    text = "camera door: 25 frames, rtsp://cam.local:554/live ok; contact it@bank.example"
    assert redact_text(text) == text


@pytest.fixture()
def log_redaction() -> Iterator[None]:
    """The service's log redaction, removed again after the test."""
    before = logging.getLogRecordFactory()
    install_log_redaction()
    install_log_redaction()  # idempotent
    yield
    logging.setLogRecordFactory(before)


def test_log_records_are_redacted_for_every_handler(log_redaction: None, caplog: pytest.LogCaptureFixture) -> None:
    # given the service's log redaction and a logger of a library the service does not control
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("some.native.wrapper")
    url = "rtsp://admin:S3cretPass@127.0.0.1:9/x"
    # when credentials reach the logs as the message, as arguments, as an exception and as a dict argument
    log.warning("cannot open %s", url)
    log.warning("failed: %s (%r)", OSError(f"open {url} failed"), url)
    log.warning(f"preformatted {url}")
    log.info("args %(src)s", {"src": url})
    try:
        raise RuntimeError(f"FFmpeg could not read {url}")
    except RuntimeError:
        log.exception("camera crashed")
    # then no formatted record holds the secret, and the rest of each message survives
    text = caplog.text
    assert SECRET not in text
    assert "rtsp://***@127.0.0.1:9/x" in text
    assert "cannot open" in text and "FFmpeg could not read" in text and "RuntimeError" in text
    formatter = logging.Formatter("%(message)s")
    assert all(SECRET not in formatter.format(r) for r in caplog.records)
