"""Camera sources (files, folders, RTSP, HTTP, USB), their readers, and the camera worker that feeds a pipeline."""

__all__ = ["config", "readers", "sources", "tap", "worker"]  # the modules other capability folders may import
