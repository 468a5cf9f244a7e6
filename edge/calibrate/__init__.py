"""The branch-IT calibration room: cameras, zones, floor homography and lens, saved as versions of the config."""

__all__ = ["camera_yaml", "versions"]  # the modules other capability folders may import
