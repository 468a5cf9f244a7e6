"""The branch-IT calibration room: cameras, zones, floor homography and lens, saved as versions of the config."""
