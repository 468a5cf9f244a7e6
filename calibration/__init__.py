"""Camera geometry: zones (polygons), the image-to-floor homography, the lens model and its undistortion maps."""
