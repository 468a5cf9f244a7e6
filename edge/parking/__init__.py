"""Parking: the plate pipeline, the plate registry, its config section and the VIP vehicle rule."""
