"""Camera sources (files, folders, RTSP, HTTP, USB), their readers, and the camera worker that feeds a pipeline."""
