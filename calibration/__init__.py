"""Camera geometry: zones and lines as polygons in image pixels."""
