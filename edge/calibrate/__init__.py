"""The branch-IT calibration room: cameras, zones, floor homography and lens, saved as versions of the config."""

# the modules other capability folders may import
__all__ = ["camera_yaml", "live_routes", "routes", "service", "versions"]
