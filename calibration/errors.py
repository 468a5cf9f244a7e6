"""Errors for malformed calibration input."""

from __future__ import annotations


class CalibrationError(ValueError):
    """A zone, line or calibration file that cannot be used; the message names the problem."""
