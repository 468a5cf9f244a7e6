"""Offline evaluation and calibration: face and plate evaluation, the open-set protocol, adaptation, plots,
voter calibration (it writes calibrated values back with edge.config_edit)."""

__all__ = ["calibrate_faces", "eval_faces", "eval_plates"]  # the modules other capability folders may import
