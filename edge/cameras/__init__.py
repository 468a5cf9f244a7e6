"""Camera sources (files, folders, RTSP, HTTP, USB), their readers, and the camera worker that feeds a pipeline."""

# the modules other capability folders may import
__all__ = ["config", "preview_config", "readers", "scheduler", "sources", "tap", "undistort", "worker"]
