"""Offline evaluation and calibration: face and plate evaluation, the open-set protocol, adaptation, plots,
voter calibration and the config editor that writes calibrated values back."""

__all__ = ["calibrate_faces", "eval_faces", "eval_plates"]  # the modules other capability folders may import
